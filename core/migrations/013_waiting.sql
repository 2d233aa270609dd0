-- A change of this device dropped because it built on a refused one, and not entered
-- again whole because it wrote into records of another device's dropped change, waits
-- for that device to enter its change again: then it goes into the records as they are
-- (`waits` 1 while it waits, 0 for every other row). It is tried again each time more of
-- the other devices' dropped changes in its history are back than at its last try
-- (`tried_back`: how many were back then).
ALTER TABLE refusals ADD COLUMN waits INTEGER NOT NULL DEFAULT 0;
ALTER TABLE refusals ADD COLUMN tried_back INTEGER NOT NULL DEFAULT 0;
