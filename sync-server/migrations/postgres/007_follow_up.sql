-- The hazards' follow-up (decision 0003), projected for the rectification board and the
-- bulletins: each finding's listing for supervision (挂牌督办) and its on-site measures,
-- and every step with its day, so that a bulletin counts what happened in a period
-- whatever the date it is read.
ALTER TABLE findings ADD COLUMN listed_authority TEXT;
ALTER TABLE findings ADD COLUMN listed_number TEXT;
ALTER TABLE findings ADD COLUMN listed_deadline TEXT;
ALTER TABLE findings ADD COLUMN onsite TEXT NOT NULL DEFAULT '';

-- One row per step of a finding's follow-up. `day` is the step's local day (YYYY-MM-DD,
-- in the offset it was recorded with); `on_time` is set for a 合格 re-inspection: 1 when
-- it was on or before the deadline in force then, 0 when after it.
CREATE TABLE hazard_steps (
    case_id    TEXT NOT NULL REFERENCES cases (case_id),
    finding_id TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    day        TEXT NOT NULL,
    by_user    TEXT NOT NULL,
    result     TEXT,
    on_time    BIGINT,
    PRIMARY KEY (case_id, finding_id, seq)
);

CREATE INDEX hazard_steps_by_day ON hazard_steps (kind, day);

INSERT INTO meta (key, value) VALUES ('reproject_pending', '1')
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;
