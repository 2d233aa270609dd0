-- An unfinished upload is its uploader's alone: it was one per blob, so that another user
-- who may see the blob's case could append to it, spoil it or have it forgotten. Two users
-- sending the same blob now each send their own; the first to finish stores it, and that
-- forgets every upload of it. Unfinished uploads are not carried over: the apps ask what
-- the server holds and start those uploads again.
DROP TABLE upload_parts;
DROP TABLE uploads;

CREATE TABLE uploads (
    sha256     TEXT NOT NULL,
    user_id    BIGINT NOT NULL REFERENCES users (id),
    bytes      BIGINT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (sha256, user_id)
);

CREATE INDEX uploads_by_user ON uploads (user_id);
CREATE INDEX uploads_by_age ON uploads (updated_at);

CREATE TABLE upload_parts (
    sha256  TEXT NOT NULL,
    user_id BIGINT NOT NULL,
    start   BIGINT NOT NULL,
    bytes   BYTEA NOT NULL,
    PRIMARY KEY (sha256, user_id, start)
);
