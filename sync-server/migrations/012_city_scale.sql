-- Indexes for supervisors' queries over years of a city's cases (docs/BENCHMARKS.md,
-- supervisors' queries at city scale). The rectification board filters, counts and sorts
-- by what `findings_open` holds, and finds the hazards listed for supervision by
-- `findings_listed`, reading no finding's row but those of the page it shows; the case
-- list finds a district's cases, newest first; a bulletin finds the findings recorded and
-- the follow-up steps taken in its period by their day.
DROP INDEX findings_open;
CREATE INDEX findings_open ON findings (rectification, deadline, listed_number, listed_deadline, level);
CREATE INDEX findings_listed ON findings (listed_number) WHERE listed_number IS NOT NULL;
CREATE INDEX findings_by_recorded ON findings (recorded_at);
CREATE INDEX cases_by_district ON cases (district, opened_at);
DROP INDEX hazard_steps_by_day;
CREATE INDEX hazard_steps_by_day ON hazard_steps (day, kind, result, on_time);
