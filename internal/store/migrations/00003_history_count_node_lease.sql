-- Repeated rejections from one source are written as one row that counts
-- them (0 means the row stands for one occurrence, as every older row does),
-- and one row says which node runs on the store, so that a second node
-- started on the same store is refused instead of fighting over its
-- configuration history.

-- +goose Up
ALTER TABLE calls ADD COLUMN count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE registration_events ADD COLUMN count BIGINT NOT NULL DEFAULT 0;
CREATE TABLE node_lease (
	id         BIGINT PRIMARY KEY,
	node       TEXT NOT NULL,
	name       TEXT NOT NULL,
	host       TEXT NOT NULL,
	started_at BIGINT NOT NULL,
	renewed_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE node_lease;
ALTER TABLE registration_events DROP COLUMN count;
ALTER TABLE calls DROP COLUMN count;
