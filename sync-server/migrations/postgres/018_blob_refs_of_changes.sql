-- The blob references a judged change adds are read under the same keys as a whole
-- document's: before, a signature image or a refusal photo added by a change after
-- migration 017 got no reference, and its upload was refused. The projections are rebuilt
-- from the documents on the next start, so that their references hold them.
INSERT INTO meta (key, value) VALUES ('reproject_pending', '1')
    ON CONFLICT (key) DO UPDATE SET value = excluded.value;
