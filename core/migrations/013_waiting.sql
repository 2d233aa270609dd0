-- A change of this device dropped because it built on a refused one, with another
-- device's dropped change in its history, and not entered again whole (it wrote into that
-- change's records, say), waits for that device to enter its change again: then it goes
-- into the records as they are (`waits` 1 while it waits, 0 for every other row). It is
-- tried again whenever the changes that hold those again differ from those at its last
-- try (`tried_with`: their hashes then, sorted, comma-separated).
ALTER TABLE refusals ADD COLUMN waits INTEGER NOT NULL DEFAULT 0;
ALTER TABLE refusals ADD COLUMN tried_with TEXT NOT NULL DEFAULT '';
