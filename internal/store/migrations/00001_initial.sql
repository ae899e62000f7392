-- Portico's first schema. Times are BIGINT microseconds since 1970 UTC (0 is
-- "unset") so they round-trip exactly between SQLite and PostgreSQL.
-- {{id}} and {{blob}} are spelled per dialect by package migrations.

-- +goose Up
CREATE TABLE config_versions (
	version    BIGINT PRIMARY KEY,
	document   {{blob}} NOT NULL,
	sha256     TEXT NOT NULL,
	author     TEXT NOT NULL,
	comment    TEXT NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE TABLE users (
	name          TEXT PRIMARY KEY,
	password_hash {{blob}} NOT NULL,
	role          TEXT NOT NULL,
	disabled      BIGINT NOT NULL,
	created_at    BIGINT NOT NULL,
	updated_at    BIGINT NOT NULL
);
CREATE TABLE tokens (
	id         TEXT PRIMARY KEY,
	hash       {{blob}} NOT NULL UNIQUE,
	username   TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
	kind       TEXT NOT NULL,
	name       TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE TABLE audit (
	id     {{id}},
	time   BIGINT NOT NULL,
	username TEXT NOT NULL,
	source TEXT NOT NULL,
	action TEXT NOT NULL,
	target TEXT NOT NULL,
	detail TEXT NOT NULL
);
CREATE INDEX audit_time ON audit(time);
CREATE TABLE certificates (
	name       TEXT PRIMARY KEY,
	cert_pem   {{blob}} NOT NULL,
	key_pem    {{blob}} NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE TABLE turn_users (
	realm      TEXT NOT NULL,
	name       TEXT NOT NULL,
	key        {{blob}} NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (realm, name)
);
CREATE TABLE registration_events (
	id        {{id}},
	time      BIGINT NOT NULL,
	protocol  TEXT NOT NULL,
	aor       TEXT NOT NULL,
	contact   TEXT NOT NULL,
	source    TEXT NOT NULL,
	transport TEXT NOT NULL,
	kind      TEXT NOT NULL,
	expires   BIGINT NOT NULL,
	reason    TEXT NOT NULL
);
CREATE INDEX registration_events_time ON registration_events(time);
CREATE TABLE calls (
	id          TEXT PRIMARY KEY,
	protocol    TEXT NOT NULL,
	call_type   TEXT NOT NULL,
	caller      TEXT NOT NULL,
	callee      TEXT NOT NULL,
	source_addr TEXT NOT NULL,
	started_at  BIGINT NOT NULL,
	answered_at BIGINT NOT NULL,
	ended_at    BIGINT NOT NULL,
	duration_ms BIGINT NOT NULL,
	ended_by    TEXT NOT NULL,
	status      BIGINT NOT NULL,
	disposition TEXT NOT NULL,
	codecs      TEXT NOT NULL,
	streams     TEXT NOT NULL
);
CREATE INDEX calls_ended_at ON calls(ended_at);
CREATE TABLE events (
	id        {{id}},
	time      BIGINT NOT NULL,
	severity  TEXT NOT NULL,
	component TEXT NOT NULL,
	message   TEXT NOT NULL
);
CREATE INDEX events_time ON events(time);

-- +goose Down
DROP TABLE events;
DROP TABLE calls;
DROP TABLE registration_events;
DROP TABLE turn_users;
DROP TABLE certificates;
DROP TABLE audit;
DROP TABLE tokens;
DROP TABLE users;
DROP TABLE config_versions;
