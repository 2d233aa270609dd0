-- A document's signature images and the photo of an enterprise's refusal to sign are
-- blobs the case names: the projections are rebuilt from the documents on the next start,
-- so that their blob references hold them and the phones may upload them.
INSERT OR REPLACE INTO meta (key, value) VALUES ('reproject_pending', '1');
