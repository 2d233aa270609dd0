-- Blobs (photo originals and thumbnails) held as files under the data folder, and which
-- cases mention which blob: a blob is accepted and served only for a case the user may see.
CREATE TABLE blobs (
    sha256    TEXT PRIMARY KEY,
    size      BIGINT NOT NULL,
    mime      TEXT NOT NULL,
    stored_at TEXT NOT NULL
);

CREATE TABLE blob_refs (
    case_id TEXT NOT NULL REFERENCES documents (case_id),
    sha256  TEXT NOT NULL,
    PRIMARY KEY (case_id, sha256)
);

CREATE INDEX blob_refs_by_blob ON blob_refs (sha256);
