-- Content-addressed blobs (photo originals and thumbnails, addressed by the SHA-256 of
-- their bytes), what ingesting a photo learned, and which cases reference which blobs.
CREATE TABLE blobs (
    sha256      TEXT PRIMARY KEY,
    kind        TEXT NOT NULL, -- 'original' or 'thumbnail'
    mime        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    bytes       BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    uploaded_at TEXT -- NULL until the server has acknowledged the whole blob
) STRICT;

CREATE INDEX blobs_not_uploaded ON blobs (kind, created_at) WHERE uploaded_at IS NULL;

CREATE TABLE photos (
    sha256      TEXT PRIMARY KEY REFERENCES blobs (sha256) ON DELETE CASCADE,
    thumbnail   TEXT NOT NULL,
    mime        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    width       INTEGER NOT NULL,
    height      INTEGER NOT NULL,
    orientation INTEGER NOT NULL,
    captured_at TEXT,
    latitude    REAL,
    longitude   REAL
) STRICT;

-- Projection: every blob hash a case document mentions (removed findings included: their
-- photos are still evidence). Garbage collection keeps exactly these.
CREATE TABLE blob_refs (
    case_id TEXT NOT NULL REFERENCES cases (case_id) ON DELETE CASCADE,
    sha256  TEXT NOT NULL,
    PRIMARY KEY (case_id, sha256)
) STRICT, WITHOUT ROWID;

CREATE INDEX blob_refs_by_blob ON blob_refs (sha256);
