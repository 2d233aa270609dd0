-- Query projections of the case documents, kept in step with them in the same
-- transaction. They can always be rebuilt from `documents` and `chunks`.
CREATE TABLE cases (
    case_id         TEXT PRIMARY KEY REFERENCES documents (case_id) ON DELETE CASCADE,
    enterprise_code TEXT NOT NULL,
    enterprise_name TEXT NOT NULL,
    district        TEXT NOT NULL,
    case_type       TEXT NOT NULL,
    state           TEXT NOT NULL,
    opened_at       TEXT NOT NULL, -- device time with its offset, as recorded
    opened_ts       INTEGER NOT NULL, -- the same instant in Unix seconds, for ordering
    opened_on       TEXT NOT NULL, -- the local date of the visit, for date filters
    -- Conflicts outside the findings; each finding row counts its own.
    conflicts       INTEGER NOT NULL
) STRICT;

CREATE INDEX cases_by_opened ON cases (opened_ts DESC, case_id);
CREATE INDEX cases_by_district ON cases (district, opened_ts DESC, case_id);
CREATE INDEX cases_by_enterprise ON cases (enterprise_code, opened_ts DESC, case_id);
CREATE INDEX cases_by_state ON cases (state, opened_ts DESC, case_id);

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
) STRICT, WITHOUT ROWID;

CREATE INDEX findings_by_level ON findings (level, rectification);
CREATE INDEX findings_by_deadline ON findings (rectification, deadline);
