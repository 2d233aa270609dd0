-- Devices the server refused a change of for its signer (rule `signature`: the device was
-- revoked, or its account disabled), learned from the server's refusals of changes this
-- phone carried: a certificate of the device issued at or before `issued_before` (unix
-- seconds, the newest this phone held of it then) vouches for nothing more on this phone,
-- so its changes are refused on site too. A device whose account is enabled again signs in
-- again, and its newer certificate vouches for it.
CREATE TABLE revoked_devices (
    actor         TEXT PRIMARY KEY,
    issued_before INTEGER NOT NULL,
    reason        TEXT NOT NULL
) STRICT;
