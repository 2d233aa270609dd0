-- Indexes for supervisors' queries over years of a city's cases (docs/BENCHMARKS.md,
-- supervisors' queries at city scale): the rectification board finds the hazards listed
-- for supervision without reading every finding, and a bulletin finds the findings
-- recorded and the follow-up steps taken in its period by their day.
CREATE INDEX findings_listed ON findings (listed_number) WHERE listed_number IS NOT NULL;
CREATE INDEX findings_by_recorded ON findings (recorded_at);
DROP INDEX hazard_steps_by_day;
CREATE INDEX hazard_steps_by_day ON hazard_steps (day, kind, result, on_time);
