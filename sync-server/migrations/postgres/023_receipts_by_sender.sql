-- An inspector's case list shows the cases they are on the team of or sent changes to
-- (`policy::Scope::Own`): whether they sent a change to a case is looked up here, where it
-- read every receipt of every case of the district.
CREATE INDEX receipts_by_sender ON receipts (user_id, case_id);
