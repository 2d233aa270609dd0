-- A document's signature images and the photo of an enterprise's refusal to sign are
-- blobs the case names: the projections of blob references are rebuilt to hold them, so
-- that garbage collection keeps them and they upload.
SELECT 1;
