-- Tokens expire (unix seconds; existing tokens get the default 30 days from when they
-- were issued); revocations are counted, so that every server process sharing the
-- database notices them and closes what they revoke; unfinished uploads are attributed
-- to who parked them, for a quota; the server actors bound before their ids were
-- derived from a server secret are checked once (the flag below, until done).
ALTER TABLE tokens ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
UPDATE tokens SET expires_at = CAST(strftime('%s', created_at) AS INTEGER) + 30 * 86400;
CREATE INDEX tokens_by_user ON tokens (user_id);
CREATE INDEX tokens_by_actor ON tokens (actor_id);

INSERT INTO meta (key, value) VALUES ('revocations', '0');
INSERT INTO meta (key, value) VALUES ('server_actors_repair', 'pending');

CREATE TABLE uploads (
    sha256     TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    bytes      INTEGER NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;

CREATE INDEX uploads_by_user ON uploads (user_id);
