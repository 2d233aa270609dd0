-- Blocks of document numbers the server allocated this device (docs/decisions/0004),
-- each bound to the device key it was allocated to: after a restore from a backup the
-- store has a new key and issues from none of these, only provisional numbers, until
-- the server allocates new blocks. `next` is the next sequence to issue; a block whose
-- `next` is past `last` is used up and kept as a record.
CREATE TABLE number_blocks (
    block  TEXT PRIMARY KEY,
    kind   TEXT NOT NULL,
    year   INTEGER NOT NULL,
    first  INTEGER NOT NULL,
    last   INTEGER NOT NULL,
    next   INTEGER NOT NULL,
    key_id BLOB NOT NULL
) STRICT, WITHOUT ROWID;
