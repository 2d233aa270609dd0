-- Indexes for supervisors' queries over years of a city's cases (docs/BENCHMARKS.md,
-- supervisors' queries at city scale). The rectification board filters, counts and sorts
-- by what `findings_open` holds, and finds the hazards listed for supervision by
-- `findings_listed`, reading no finding's row but those of the page it shows; the case
-- list finds a district's cases, newest first; a bulletin counts the findings of its
-- period's cases by `findings_facts`, and finds the findings recorded and the follow-up
-- steps taken in its period by their day.
DROP INDEX findings_open;
CREATE INDEX findings_open ON findings (rectification, deadline, listed_number, listed_deadline, level);
CREATE INDEX findings_listed ON findings (listed_number) WHERE listed_number IS NOT NULL;
CREATE INDEX findings_facts ON findings (case_id, level, rectification, deadline, violation, violation_post);
CREATE INDEX findings_by_recorded ON findings (recorded_at);
CREATE INDEX cases_by_district ON cases (district, opened_at);

-- Each follow-up step's previous step of its class (kind, result, on time) by day, then by
-- order of recording: a bulletin counts a finding once for a class in a period by counting
-- the steps in it whose previous one is before it (or none), from the index alone, not by
-- collecting distinct findings out of hundreds of thousands of steps.
ALTER TABLE hazard_steps ADD COLUMN prev_day TEXT;
UPDATE hazard_steps SET prev_day = (
    SELECT p.day FROM hazard_steps p
    WHERE p.case_id = hazard_steps.case_id AND p.finding_id = hazard_steps.finding_id
      AND p.kind = hazard_steps.kind AND p.result IS NOT DISTINCT FROM hazard_steps.result
      AND p.on_time IS NOT DISTINCT FROM hazard_steps.on_time
      AND (p.day < hazard_steps.day OR (p.day = hazard_steps.day AND p.seq < hazard_steps.seq))
    ORDER BY p.day DESC, p.seq DESC
    LIMIT 1
);
DROP INDEX hazard_steps_by_day;
CREATE INDEX hazard_steps_by_day ON hazard_steps (day, kind, result, on_time, prev_day);
