-- History lists page newest first with the row id as tie-breaker, and call
-- history can also be read by start time and by token owner.

-- +goose Up
CREATE INDEX calls_started_at ON calls(started_at);
CREATE INDEX tokens_username ON tokens(username);
CREATE INDEX tokens_expires_at ON tokens(expires_at);

-- +goose Down
DROP INDEX tokens_expires_at;
DROP INDEX tokens_username;
DROP INDEX calls_started_at;
