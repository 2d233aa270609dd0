-- Document numbers (decision 0004): the next sequence per department prefix, kind and
-- year, and every block allocated from it, to a device's key or to the server itself
-- (a provisional number replaced): a number is allocated once, ever.
CREATE TABLE number_sequences (
    prefix TEXT NOT NULL,
    kind   TEXT NOT NULL,
    year   BIGINT NOT NULL,
    next   BIGINT NOT NULL,
    PRIMARY KEY (prefix, kind, year)
);

CREATE TABLE number_blocks (
    prefix     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    year       BIGINT NOT NULL,
    first      BIGINT NOT NULL,
    last       BIGINT NOT NULL,
    user_id    BIGINT NOT NULL REFERENCES users (id),
    actor_id   TEXT NOT NULL,
    key_id     BYTEA NOT NULL,
    issued_at  TEXT NOT NULL,
    block      TEXT NOT NULL,
    PRIMARY KEY (prefix, kind, year, first)
);

CREATE INDEX number_blocks_by_key ON number_blocks (key_id);

-- Inspectors' enforcement certificates (执法证): an inspector's signature on a document
-- names its number and is given while it is valid.
CREATE TABLE enforcement_certificates (
    user_id     BIGINT PRIMARY KEY REFERENCES users (id),
    number      TEXT NOT NULL UNIQUE,
    valid_until TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);

-- The provisional number a document was sealed with, once the server replaced it.
ALTER TABLE writs ADD COLUMN provisional_number TEXT;

-- A number is looked up in the register before a seal naming it is accepted.
CREATE INDEX writs_by_number ON writs (number);

INSERT INTO meta (key, value) VALUES ('reproject_pending', '1')
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;
