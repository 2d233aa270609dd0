-- Unfinished uploads are held in the database, part by part, so that any server process
-- sharing it may take an upload's next part (blobs themselves may live in an object
-- store). What earlier versions held in files under blobs/partial is not carried over:
-- the apps ask what the server holds and start those uploads again.
DELETE FROM uploads;

CREATE TABLE upload_parts (
    sha256 TEXT NOT NULL,
    start  BIGINT NOT NULL,
    bytes  BYTEA NOT NULL,
    PRIMARY KEY (sha256, start)
);

CREATE INDEX uploads_by_age ON uploads (updated_at);
