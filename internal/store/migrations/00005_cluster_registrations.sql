-- The registrations each node of a cluster holds, published by the node
-- itself so that any node's API lists the cluster's registrations. A node
-- writes its heartbeat into cluster_nodes with every batch; readers ignore
-- the rows of a node whose heartbeat is stale (it died without removing
-- them). This is live state, not history: backups do not carry it. Times
-- are microseconds since 1970 UTC.

-- +goose Up
CREATE TABLE cluster_nodes (
	node         TEXT PRIMARY KEY,
	heartbeat_at BIGINT NOT NULL
);

CREATE TABLE cluster_registrations (
	node          TEXT NOT NULL,
	aor           TEXT NOT NULL,
	contact       TEXT NOT NULL,
	source        TEXT NOT NULL,
	transport     TEXT NOT NULL,
	registered_at BIGINT NOT NULL,
	refreshed_at  BIGINT NOT NULL,
	expires_at    BIGINT NOT NULL,
	PRIMARY KEY (node, aor, contact)
);

CREATE INDEX cluster_registrations_expires ON cluster_registrations (expires_at);

-- +goose Down
DROP TABLE cluster_registrations;
DROP TABLE cluster_nodes;
