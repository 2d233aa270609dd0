-- Signatures of changes: this device's own, made as it commits them, and those that came
-- with changes from other devices (on-site merges, the server). They travel with the
-- changes: in exports, and on the wire to a server that reads them.
CREATE TABLE change_signatures (
    change_hash TEXT PRIMARY KEY,
    case_id     TEXT NOT NULL,
    key_id      BLOB NOT NULL,
    signature   BLOB NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX change_signatures_by_case ON change_signatures (case_id);
