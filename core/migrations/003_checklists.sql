-- Projection of checklist answers, for statistics across cases (e.g. how often each
-- three-violation item is found, by post). Rebuilt from the documents when added.
CREATE TABLE answers (
    case_id      TEXT NOT NULL REFERENCES cases (case_id) ON DELETE CASCADE,
    checklist_id TEXT NOT NULL,
    template_id  TEXT NOT NULL,
    item_id      TEXT NOT NULL,
    text         TEXT NOT NULL,
    category     TEXT NOT NULL,
    result       TEXT NOT NULL,
    post         TEXT NOT NULL,
    PRIMARY KEY (case_id, checklist_id, item_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX answers_by_item ON answers (template_id, item_id, post);
