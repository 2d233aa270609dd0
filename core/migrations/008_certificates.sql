-- Certificates, the server keys that issue them, and receipts. A device keeps its own certificate
-- (from sign-in) and those of teammates whose changes it received on site, so that it can
-- verify who wrote a change with no signal and show the certificate to the next peer.
-- Server keys are those of servers the device signed in to: it trusts certificates and
-- receipts only they signed.
CREATE TABLE certificates (
    key_id    BLOB NOT NULL,
    actor     TEXT NOT NULL,
    not_after INTEGER NOT NULL,
    bytes     BLOB NOT NULL,
    PRIMARY KEY (key_id, actor)
) STRICT, WITHOUT ROWID;

CREATE TABLE server_keys (
    key_id     BLOB PRIMARY KEY,
    public_key BLOB NOT NULL,
    server     TEXT NOT NULL,
    first_seen TEXT NOT NULL
) STRICT, WITHOUT ROWID;

-- The server's signed receipts of changes (proof of when each reached the server).
CREATE TABLE receipts (
    change_hash TEXT PRIMARY KEY,
    case_id     TEXT NOT NULL,
    actor       TEXT NOT NULL,
    received_at TEXT NOT NULL,
    issuer      BLOB NOT NULL,
    signature   BLOB NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX receipts_by_case ON receipts (case_id);
