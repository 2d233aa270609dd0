-- Counts kept per district and day with the projections, so that a bulletin of a year
-- reads a few thousand rows whatever the size of the city (docs/BENCHMARKS.md,
-- supervisors' queries at city scale). `district` is a district the case is visible to,
-- or '' for every case (the city's administrator); each case is counted once under ''.
-- Every projection write takes away what the case's old rows counted and adds what its
-- new rows count (`storage::projections`), in the same transaction.
--
-- Findings by the day their case was opened (the case's local day), by what the bulletin
-- tells apart; the deadline only of open rectifications (it decides what is overdue on
-- the day a bulletin is read), '' otherwise and for no violation or post.
CREATE TABLE finding_tallies (
    district      TEXT NOT NULL,
    day           TEXT NOT NULL,
    level         TEXT NOT NULL,
    rectification TEXT NOT NULL,
    deadline      TEXT NOT NULL,
    violation     TEXT NOT NULL,
    post          TEXT NOT NULL,
    n             BIGINT NOT NULL,
    PRIMARY KEY (district, day, level, rectification, deadline, violation, post)
);

-- Follow-up steps by their day and class (kind, result, on time: -1 when not said), with
-- the day of the previous step of the class (`since`, '' when none); and the findings by
-- the day they were recorded, as the kind 'found'.
CREATE TABLE step_tallies (
    district TEXT NOT NULL,
    day      TEXT NOT NULL,
    kind     TEXT NOT NULL,
    result   TEXT NOT NULL,
    on_time  BIGINT NOT NULL,
    since    TEXT NOT NULL,
    n        BIGINT NOT NULL,
    PRIMARY KEY (district, day, kind, result, on_time, since)
);

-- A digest of what the tallies count of each case as its rows hold it: a commit that
-- changes none of it leaves the tallies alone.
ALTER TABLE cases ADD COLUMN tallied TEXT;

-- A case's districts by the case: each projection write replaces them, and the tallies
-- count a case under each (the table's key starts with the district, so finding a
-- case's rows read the whole table).
CREATE INDEX visibility_by_case ON visibility (case_id);

-- Bulletins no longer read steps and findings by their day (the tallies do): each
-- commit stops writing those indexes.
DROP INDEX hazard_steps_by_day;
DROP INDEX findings_by_recorded;

-- Filled from the projection rows on the next start.
INSERT INTO meta (key, value) VALUES ('retally_pending', '1')
    ON CONFLICT (key) DO UPDATE SET value = excluded.value;
