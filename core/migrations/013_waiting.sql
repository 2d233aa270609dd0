-- A change of this device dropped because it built on a refused one, and not entered
-- again whole because it wrote into records of another device's dropped change, waits
-- for that device to enter its change again: then it goes into the records as they are
-- (1 while it waits; 0 for every other row).
ALTER TABLE refusals ADD COLUMN waits INTEGER NOT NULL DEFAULT 0;
