-- Device certificates and signed receipts.
--
-- Certificates: every certificate the server issued a device at sign-in (its public key
-- bound to its account, actor and a validity window, signed with the server's key), kept
-- for ever so that changes signed under an old one stay verifiable. Receipts gain the
-- server's signature of (change hash, actor, received_at) and the id of the server key
-- that made it.
CREATE TABLE certificates (
    id        INTEGER PRIMARY KEY,
    actor_id  TEXT NOT NULL REFERENCES devices (actor_id),
    key_id    BLOB NOT NULL,
    bytes     BLOB NOT NULL,
    issued_at TEXT NOT NULL
) STRICT;

CREATE INDEX certificates_by_actor ON certificates (actor_id);

ALTER TABLE receipts ADD COLUMN receipt_issuer BLOB;
ALTER TABLE receipts ADD COLUMN receipt_signature BLOB;
