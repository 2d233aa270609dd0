-- Each kept refusal names the account whose device made the refused change, so that what
-- one account's changes may have kept is bounded (`limits.refusals_per_user`): before,
-- every signed-in device could fill the table for ever with changes made to be refused, a
-- row for each. Refusals kept before this have no account and count against none.
-- `user refusals-clear` sets an account's to none again: they stay final.
ALTER TABLE refused_changes ADD COLUMN user_id INTEGER;

CREATE INDEX refused_changes_by_user ON refused_changes (user_id);
