-- What supervisors' pages need: browser sessions (cookie + CSRF token, stored hashed),
-- the inspection team of each case, and more of each finding for the rectification board
-- and the bulletins. The projections are rebuilt from the documents after this step; the
-- flag below says so until the rebuild has finished (it survives a crash in between).
CREATE TABLE web_sessions (
    session_hash TEXT PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id),
    csrf_token   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);

CREATE TABLE case_team (
    case_id    TEXT NOT NULL REFERENCES cases (case_id),
    user_id    TEXT NOT NULL,
    name       TEXT NOT NULL,
    department TEXT NOT NULL,
    district   TEXT NOT NULL,
    PRIMARY KEY (case_id, user_id)
);

CREATE INDEX case_team_by_user ON case_team (user_id);

ALTER TABLE findings ADD COLUMN category TEXT NOT NULL DEFAULT '';
ALTER TABLE findings ADD COLUMN place TEXT NOT NULL DEFAULT '';
ALTER TABLE findings ADD COLUMN recorded_by TEXT NOT NULL DEFAULT '';
ALTER TABLE findings ADD COLUMN recorded_at TEXT NOT NULL DEFAULT '';
ALTER TABLE findings ADD COLUMN measures TEXT;
ALTER TABLE findings ADD COLUMN responsible TEXT;
ALTER TABLE findings ADD COLUMN evidence BIGINT NOT NULL DEFAULT 0; -- evidence photos + re-inspection note
ALTER TABLE findings ADD COLUMN violation_post TEXT;
ALTER TABLE findings ADD COLUMN violation_person TEXT;

ALTER TABLE cases ADD COLUMN amends TEXT; -- the case this one amends (更正), if any

CREATE INDEX findings_open ON findings (rectification, deadline);
CREATE INDEX cases_by_amended ON cases (amends);
CREATE INDEX cases_by_opened ON cases (opened_at);

INSERT INTO meta (key, value) VALUES ('reproject_pending', '1')
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;
