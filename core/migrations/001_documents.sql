-- Identity of the store and its device, enterprises, and case documents as Automerge
-- bytes: one snapshot per case plus the incremental chunks appended since it.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE enterprises (
    credit_code   TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    district      TEXT NOT NULL,
    industry      TEXT NOT NULL,
    risk_grade    TEXT NOT NULL,
    registered_at TEXT NOT NULL
) STRICT;

CREATE TABLE documents (
    case_id  TEXT PRIMARY KEY,
    snapshot BLOB NOT NULL
) STRICT;

CREATE TABLE chunks (
    case_id TEXT NOT NULL REFERENCES documents (case_id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    bytes   BLOB NOT NULL,
    PRIMARY KEY (case_id, seq)
) STRICT, WITHOUT ROWID;
