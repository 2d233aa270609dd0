-- Sync with a server: where the catalog was read up to, the Automerge sync state per
-- document (only its shared heads are kept), what the server has acknowledged, and
-- changes it refused (kept, with the reason, as evidence of what was not accepted).
CREATE TABLE sync_servers (
    server       TEXT PRIMARY KEY,
    cursor       INTEGER NOT NULL DEFAULT 0,
    last_sync_at TEXT,
    last_result  TEXT
) STRICT;

CREATE TABLE sync_states (
    server  TEXT NOT NULL,
    case_id TEXT NOT NULL,
    state   BLOB NOT NULL,
    acked   TEXT NOT NULL DEFAULT '', -- heads (hex, sorted, comma-separated) the server holds
    PRIMARY KEY (server, case_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE change_acks (
    case_id     TEXT NOT NULL,
    change_hash TEXT NOT NULL,
    acked_at    TEXT NOT NULL,
    PRIMARY KEY (case_id, change_hash)
) STRICT, WITHOUT ROWID;

CREATE TABLE refusals (
    case_id     TEXT NOT NULL,
    change_hash TEXT NOT NULL,
    reason      TEXT NOT NULL,
    refused_at  TEXT NOT NULL,
    change      BLOB NOT NULL,
    PRIMARY KEY (case_id, change_hash)
) STRICT;
