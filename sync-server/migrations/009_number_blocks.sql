-- Document numbers (decision 0004): the next sequence per department prefix, kind and
-- year, and every block allocated from it, to a device's key or to the server itself
-- (a provisional number replaced): a number is allocated once, ever.
CREATE TABLE number_sequences (
    prefix TEXT NOT NULL,
    kind   TEXT NOT NULL,
    year   INTEGER NOT NULL,
    next   INTEGER NOT NULL,
    PRIMARY KEY (prefix, kind, year)
) STRICT, WITHOUT ROWID;

CREATE TABLE number_blocks (
    prefix     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    year       INTEGER NOT NULL,
    first      INTEGER NOT NULL,
    last       INTEGER NOT NULL,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    actor_id   TEXT NOT NULL,
    key_id     BLOB NOT NULL,
    issued_at  TEXT NOT NULL,
    block      TEXT NOT NULL,
    PRIMARY KEY (prefix, kind, year, first)
) STRICT, WITHOUT ROWID;

CREATE INDEX number_blocks_by_key ON number_blocks (key_id);

-- Inspectors' enforcement certificates (执法证): an inspector's signature on a document
-- names its number and is given while it is valid.
CREATE TABLE enforcement_certificates (
    user_id     INTEGER PRIMARY KEY REFERENCES users (id),
    number      TEXT NOT NULL UNIQUE,
    valid_until TEXT NOT NULL,
    recorded_at TEXT NOT NULL
) STRICT;

-- The provisional number a document was sealed with, once the server replaced it.
ALTER TABLE writs ADD COLUMN provisional_number TEXT;

-- A number is looked up in the register before a seal naming it is accepted.
CREATE INDEX writs_by_number ON writs (number);

INSERT OR REPLACE INTO meta (key, value) VALUES ('reproject_pending', '1');
