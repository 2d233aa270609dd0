-- The register of enforcement documents (执法文书, decision 0004), projected from the
-- cases: every document with its number (provisional or not), state and dates, for the
-- register (`GET /api/v1/documents`) and the bulletins' counts by kind.
CREATE TABLE writs (
    case_id      TEXT NOT NULL REFERENCES cases (case_id),
    writ_id      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    state        TEXT NOT NULL,
    number       TEXT,
    provisional  BIGINT NOT NULL DEFAULT 0,
    department   TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    sealed_at    TEXT,
    issued_at    TEXT,
    voided       TEXT,
    PRIMARY KEY (case_id, writ_id)
);

CREATE INDEX writs_by_issued ON writs (issued_at);

INSERT INTO meta (key, value) VALUES ('reproject_pending', '1')
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;
