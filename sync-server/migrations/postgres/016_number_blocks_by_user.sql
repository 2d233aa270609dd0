-- The cap on the blocks of document numbers one account holds a year counts them by
-- account: an index for that count, which every allocation makes.
CREATE INDEX number_blocks_by_user ON number_blocks (user_id, kind, year);
