-- The projections write every time they compare or sort as text in China's offset (UTC+8),
-- and every day as the day in China: a case's `opened_at`, a finding's `recorded_at`, a
-- document's `sealed_at` and `issued_at`, a step's `day`, and so the tallies' days. They
-- were written with the offset of the device's clock, so that a phone set to another zone
-- sorted apart from the others and counted a visit after midnight China time under the
-- day before. Nothing changes in the tables: the projections are rebuilt from the
-- documents on the next start, then the tallies counted from them.
INSERT INTO meta (key, value) VALUES ('reproject_pending', '1')
    ON CONFLICT (key) DO UPDATE SET value = excluded.value;
INSERT INTO meta (key, value) VALUES ('retally_pending', '1')
    ON CONFLICT (key) DO UPDATE SET value = excluded.value;
