-- Tokens expire (unix seconds; existing tokens get the default 30 days from when they
-- were issued); revocations are counted, so that every server process sharing the
-- database notices them and closes what they revoke; unfinished uploads are attributed
-- to who parked them, for a quota; the server actors bound before their ids were
-- derived from a server secret are checked once (the flag below, until done).
ALTER TABLE tokens ADD COLUMN expires_at BIGINT NOT NULL DEFAULT 0;
-- created_at is RFC 3339; one without an offset is read as UTC, and fractions of a
-- second are dropped.
SET LOCAL TIME ZONE 'UTC';
UPDATE tokens SET expires_at = floor(extract(epoch FROM created_at::timestamptz))::bigint + 30 * 86400;
CREATE INDEX tokens_by_user ON tokens (user_id);
CREATE INDEX tokens_by_actor ON tokens (actor_id);

INSERT INTO meta (key, value) VALUES ('revocations', '0');
INSERT INTO meta (key, value) VALUES ('server_actors_repair', 'pending');

CREATE TABLE uploads (
    sha256     TEXT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id),
    bytes      BIGINT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE INDEX uploads_by_user ON uploads (user_id);
