-- Device keys, receipts of relayed changes, and refusals kept.
--
-- Device keys: every public key a device registered at sign-in, kept for ever (a device
-- that makes a new key keeps its old ones, so that changes it signed before stay
-- verifiable). Receipts record who wrote a change (user_id: its author, which for a change
-- relayed by another device is not the sender), who relayed it, and its signature.
CREATE TABLE device_keys (
    key_id        BYTEA PRIMARY KEY,
    actor_id      TEXT NOT NULL REFERENCES devices (actor_id),
    algorithm     TEXT NOT NULL,
    public_key    BYTEA NOT NULL,
    registered_at TEXT NOT NULL
);

CREATE INDEX device_keys_by_actor ON device_keys (actor_id);

ALTER TABLE receipts ADD COLUMN relayed_by BIGINT REFERENCES users (id);
ALTER TABLE receipts ADD COLUMN key_id BYTEA;
ALTER TABLE receipts ADD COLUMN signature BYTEA;

-- Every change the server refused, with the rule and the reason: a refusal is final, so a
-- refused change that comes back (relayed by another phone that merged it on site) is
-- refused again, for the same reason. Changes held back for their signer are not kept.
CREATE TABLE refused_changes (
    change_hash TEXT PRIMARY KEY,
    case_id     TEXT NOT NULL,
    rule        TEXT NOT NULL,
    reason      TEXT NOT NULL,
    refused_at  TEXT NOT NULL
);
