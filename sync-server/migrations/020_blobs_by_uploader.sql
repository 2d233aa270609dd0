-- Each stored blob names the account whose upload stored it, so that what one account may
-- store in a day is bounded (`limits.blob_bytes_per_user_per_day`): before, any signed-in
-- device could name blobs in its own cases and fill the blob store with them. Blobs
-- stored before this have no uploader and count against none.
ALTER TABLE blobs ADD COLUMN uploaded_by INTEGER;

CREATE INDEX blobs_by_uploader ON blobs (uploaded_by, stored_at);
