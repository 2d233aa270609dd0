-- A change the server did not refuse itself, dropped because it built on one it did, is
-- entered again on the device as a new change: the refusal row keeps the old change as
-- evidence and names the new one (NULL for a change refused itself or not entered again).
ALTER TABLE refusals ADD COLUMN reentered_as TEXT;
