-- The tallies count a three-violation finding by its post as a bulletin shows it: its
-- first 100 characters, and one more to tell it was cut. A post is free text of up to
-- 64 KiB, and a database index holds no row of that size: PostgreSQL refused every
-- commit of a case holding a long one, in the tallies' key and in `findings_facts`, which
-- nothing reads since bulletins read the tallies. Counted again from the projection rows
-- on the next start.
DROP INDEX findings_facts;

INSERT INTO meta (key, value) VALUES ('retally_pending', '1')
    ON CONFLICT (key) DO UPDATE SET value = excluded.value;
