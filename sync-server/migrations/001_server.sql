-- Accounts, devices and tokens; case documents (snapshot + chunks) with the change
-- sequence the catalog reads; who may see each case; when each change was received.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    district      TEXT NOT NULL,
    department    TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL
) STRICT;

CREATE TABLE devices (
    actor_id   TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
) STRICT;

CREATE TABLE tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    actor_id   TEXT NOT NULL REFERENCES devices (actor_id),
    created_at TEXT NOT NULL,
    revoked_at TEXT
) STRICT;

CREATE TABLE documents (
    case_id  TEXT PRIMARY KEY,
    snapshot BLOB NOT NULL,
    heads    TEXT NOT NULL, -- hex, sorted, comma-separated
    seq      INTEGER NOT NULL -- the catalog sequence of its last change
) STRICT;

CREATE INDEX documents_by_seq ON documents (seq);

CREATE TABLE chunks (
    case_id TEXT NOT NULL REFERENCES documents (case_id),
    seq     INTEGER NOT NULL,
    bytes   BLOB NOT NULL,
    PRIMARY KEY (case_id, seq)
) STRICT, WITHOUT ROWID;

-- The owning district and every visible_to district of each case.
CREATE TABLE visibility (
    district TEXT NOT NULL,
    case_id  TEXT NOT NULL REFERENCES documents (case_id),
    PRIMARY KEY (district, case_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE receipts (
    change_hash TEXT PRIMARY KEY,
    case_id     TEXT NOT NULL,
    actor_id    TEXT NOT NULL,
    user_id     INTEGER NOT NULL,
    device_time INTEGER NOT NULL,
    received_at TEXT NOT NULL
) STRICT;

CREATE INDEX receipts_by_case ON receipts (case_id);

-- Projections for supervisors' queries.
CREATE TABLE cases (
    case_id         TEXT PRIMARY KEY REFERENCES documents (case_id),
    enterprise_name TEXT NOT NULL,
    credit_code     TEXT NOT NULL,
    industry        TEXT NOT NULL,
    district        TEXT NOT NULL,
    case_type       TEXT NOT NULL,
    state           TEXT NOT NULL,
    opened_at       TEXT NOT NULL,
    opened_by       TEXT NOT NULL,
    findings        INTEGER NOT NULL,
    major_findings  INTEGER NOT NULL,
    conflicts       INTEGER NOT NULL,
    updated_at      TEXT NOT NULL
) STRICT;

CREATE TABLE findings (
    case_id       TEXT NOT NULL REFERENCES cases (case_id),
    finding_id    TEXT NOT NULL,
    title         TEXT NOT NULL,
    level         TEXT NOT NULL,
    rectification TEXT NOT NULL,
    deadline      TEXT,
    violation     TEXT,
    PRIMARY KEY (case_id, finding_id)
) STRICT, WITHOUT ROWID;
