-- Devices the server refused a change of for its signer (rule `signature`: the device was
-- revoked, or its account disabled), learned from the server's refusals: their changes
-- are refused on this phone too, whatever certificate a teammate hands over with them.
CREATE TABLE revoked_devices (
    actor      TEXT PRIMARY KEY,
    reason     TEXT NOT NULL,
    learned_at TEXT NOT NULL
);
