-- Each document's current heads (hex, sorted, comma-separated), kept with every write, so
-- that finding the cases a server has not acknowledged is one query, not a read of every
-- document. Filled from the documents when this migration runs.
ALTER TABLE documents ADD COLUMN heads TEXT NOT NULL DEFAULT '';
