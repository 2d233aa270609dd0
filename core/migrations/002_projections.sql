-- Query projections of the case documents, kept in step with them in the same
-- transaction. They can always be rebuilt from `documents` and `chunks`.
CREATE TABLE cases (
    case_id         TEXT PRIMARY KEY REFERENCES documents (case_id) ON DELETE CASCADE,
    enterprise_code TEXT NOT NULL,
    enterprise_name TEXT NOT NULL,
    district        TEXT NOT NULL,
    case_type       TEXT NOT NULL,
    state           TEXT NOT NULL,
    opened_at       TEXT NOT NULL,
    opened_on       TEXT NOT NULL,
    findings        INTEGER NOT NULL,
    major_findings  INTEGER NOT NULL,
    conflicts       INTEGER NOT NULL,
    finding_conflicts INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX cases_by_opened ON cases (opened_on DESC, case_id);
CREATE INDEX cases_by_district ON cases (district, opened_on DESC);
CREATE INDEX cases_by_enterprise ON cases (enterprise_code, opened_on DESC);
CREATE INDEX cases_by_state ON cases (state, opened_on DESC);

CREATE TABLE findings (
    case_id       TEXT NOT NULL REFERENCES cases (case_id) ON DELETE CASCADE,
    finding_id    TEXT NOT NULL,
    title         TEXT NOT NULL,
    level         TEXT NOT NULL,
    rectification TEXT NOT NULL,
    deadline      TEXT,
    violation     TEXT,
    recorded_at   TEXT NOT NULL,
    conflicts     INTEGER NOT NULL,
    PRIMARY KEY (case_id, finding_id)
) STRICT;

CREATE INDEX findings_by_level ON findings (level, rectification);
CREATE INDEX findings_by_deadline ON findings (rectification, deadline);
