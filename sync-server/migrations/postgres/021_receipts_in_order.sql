-- A device asks for a case's receipts a page at a time, from the last it was given
-- (`POST /api/v1/proofs`, in the order of `received_at`, then `change_hash`): each page is
-- read in that order from here rather than sorted from all of the case's receipts.
CREATE INDEX receipts_in_order ON receipts (case_id, received_at, change_hash);

DROP INDEX receipts_by_case;
