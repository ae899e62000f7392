-- Blocks an administrator placed by hand (POST /api/v1/guard/blocks), so
-- that they outlive a restart. Automatic blocks are not stored. A source is
-- an address or a network in CIDR form; times are microseconds since 1970
-- UTC, as everywhere in the schema.

-- +goose Up
CREATE TABLE guard_blocks (
	source     TEXT PRIMARY KEY,
	reason     TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE guard_blocks;
