//! Checklists inside a case document: attaching a template (with a copy of its questions)
//! and answering its items.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use chrono::{DateTime, FixedOffset};

use super::{map, parse_field, parse_time, put_judgement, string};
use crate::checklist::{Template, TemplateItem, TemplateKind};
use crate::codes::{AnswerResult, Level};
use crate::codes::{ChecklistId, FindingId};
use crate::error::{Error, Result};
use crate::model::{Answer, AnswerInput, CaseChecklist, ChecklistEntry};

/// Attaches `template` to the case: its identity, version and a copy of every question,
/// and an empty answer record per item (created here, once, so that two inspectors
/// answering the same item write into the same record and meet as a conflict).
pub(crate) fn attach(
    doc: &mut AutoCommit,
    id: ChecklistId,
    template: &Template,
    by: &str,
    at: DateTime<FixedOffset>,
) -> Result<()> {
    let checklists = map(doc, &ROOT, "checklists")?;
    let obj = doc.put_object(&checklists, id.to_string(), ObjType::Map)?;
    doc.put(&obj, "template", template.id.as_str())?;
    doc.put(&obj, "version", template.version.as_str())?;
    doc.put(&obj, "title", template.title.as_str())?;
    doc.put(&obj, "kind", template.kind.code())?;
    doc.put(&obj, "attached_by", by)?;
    doc.put(&obj, "attached_at", at.to_rfc3339())?;
    let items = doc.put_object(&obj, "items", ObjType::Map)?;
    let answers = doc.put_object(&obj, "answers", ObjType::Map)?;
    for (order, item) in template.items.iter().enumerate() {
        let entry = doc.put_object(&items, item.id.as_str(), ObjType::Map)?;
        doc.put(&entry, "order", order as i64)?;
        doc.put(&entry, "text", item.text.as_str())?;
        doc.put(&entry, "category", item.category.as_str())?;
        let posts = doc.put_object(&entry, "posts", ObjType::List)?;
        for (i, post) in item.posts.iter().enumerate() {
            doc.insert(&posts, i, post.as_str())?;
        }
        doc.put(&entry, "basis", item.basis.as_str())?;
        doc.put(&entry, "level", item.level.code())?;
        let answer = doc.put_object(&answers, item.id.as_str(), ObjType::Map)?;
        doc.put_object(&answer, "photos", ObjType::List)?;
    }
    Ok(())
}

/// The attached checklist's kind and the question `item` as attached, or a typed error
/// when the checklist or the item is not in the case.
pub(crate) fn attached_item(
    doc: &AutoCommit,
    id: ChecklistId,
    item: &str,
) -> Result<(TemplateKind, TemplateItem)> {
    let obj = checklist_obj(doc, id)?;
    let kind = parse_field(doc, &obj, "kind")?;
    let items = map(doc, &obj, "items")?;
    let entry = match doc.get(&items, item)? {
        Some((Value::Object(ObjType::Map), entry)) => entry,
        _ => {
            let template = string(doc, &obj, "template").unwrap_or_default();
            let version = string(doc, &obj, "version").unwrap_or_default();
            return Err(Error::invalid(
                "item",
                format!(
                    "item {item:?} is not in template {template} as attached (version {})",
                    &version[..version.len().min(12)]
                ),
            ));
        }
    };
    Ok((kind, read_item(doc, item, &entry)?))
}

/// Writes an answer; returns the finding already linked to it, if any.
pub(crate) fn answer(
    doc: &mut AutoCommit,
    id: ChecklistId,
    item: &str,
    input: &AnswerInput,
    post: &str,
    by: &str,
    at: DateTime<FixedOffset>,
) -> Result<Option<FindingId>> {
    let obj = checklist_obj(doc, id)?;
    let answers = map(doc, &obj, "answers")?;
    let answer = map(doc, &answers, item)?;
    put_judgement(doc, &answer, "result", input.result.code())?;
    doc.put(&answer, "note", input.note.as_str())?;
    doc.put(&answer, "post", post)?;
    doc.put(
        &answer,
        "person",
        input.person.as_deref().unwrap_or_default(),
    )?;
    doc.put(&answer, "answered_by", by)?;
    doc.put(&answer, "answered_at", at.to_rfc3339())?;
    Ok(string(doc, &answer, "finding").and_then(|f| f.parse().ok()))
}

/// Links the finding a 不符合 answer created to the answer.
pub(crate) fn link_finding(
    doc: &mut AutoCommit,
    id: ChecklistId,
    item: &str,
    finding: FindingId,
) -> Result<()> {
    let obj = checklist_obj(doc, id)?;
    let answers = map(doc, &obj, "answers")?;
    let answer = map(doc, &answers, item)?;
    doc.put(&answer, "finding", finding.to_string())?;
    Ok(())
}

/// Records on a finding the checklist item it came from.
pub(crate) fn put_source(
    doc: &mut AutoCommit,
    finding: &ObjId,
    id: ChecklistId,
    item: &str,
) -> Result<()> {
    let source = doc.put_object(finding, "source", ObjType::Map)?;
    doc.put(&source, "checklist", id.to_string())?;
    doc.put(&source, "item", item)?;
    Ok(())
}

/// Every checklist of the case, in the order attached.
pub(crate) fn read_all(doc: &AutoCommit) -> Result<Vec<CaseChecklist>> {
    let checklists = map(doc, &ROOT, "checklists")?;
    let mut all = Vec::new();
    for key in doc.keys(&checklists).collect::<Vec<_>>() {
        let Ok(id) = key.parse::<ChecklistId>() else {
            continue;
        };
        let obj = checklist_obj(doc, id)?;
        let bad = |what: &str| Error::InvalidDocument(format!("checklist {id}: {what}"));
        let items = map(doc, &obj, "items")?;
        let answers = map(doc, &obj, "answers")?;
        let mut entries: Vec<(i64, ChecklistEntry)> = Vec::new();
        for item_id in doc.keys(&items).collect::<Vec<_>>() {
            let Some((Value::Object(ObjType::Map), entry)) = doc.get(&items, item_id.as_str())?
            else {
                continue;
            };
            let order = match doc.get(&entry, "order")? {
                Some((Value::Scalar(s), _)) => match s.as_ref() {
                    ScalarValue::Int(i) => *i,
                    _ => i64::MAX,
                },
                _ => i64::MAX,
            };
            let item = read_item(doc, &item_id, &entry)?;
            let answer = match doc.get(&answers, item_id.as_str())? {
                Some((Value::Object(ObjType::Map), answer)) => read_answer(doc, &answer)?,
                _ => None,
            };
            entries.push((order, ChecklistEntry { item, answer }));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.item.id.cmp(&b.1.item.id)));
        all.push(CaseChecklist {
            id,
            template_id: string(doc, &obj, "template").ok_or_else(|| bad("template"))?,
            version: string(doc, &obj, "version").unwrap_or_default(),
            title: string(doc, &obj, "title").unwrap_or_default(),
            kind: parse_field(doc, &obj, "kind").map_err(|_| bad("kind"))?,
            attached_by: string(doc, &obj, "attached_by").unwrap_or_default(),
            attached_at: parse_time(doc, &obj, "attached_at").map_err(|_| bad("attached_at"))?,
            entries: entries.into_iter().map(|(_, e)| e).collect(),
        });
    }
    all.sort_by(|a, b| a.attached_at.cmp(&b.attached_at).then(a.id.cmp(&b.id)));
    Ok(all)
}

fn read_item(doc: &AutoCommit, id: &str, entry: &ObjId) -> Result<TemplateItem> {
    let posts = match doc.get(entry, "posts")? {
        Some((Value::Object(ObjType::List), list)) => doc
            .values(&list)
            .filter_map(|(v, _)| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    Ok(TemplateItem {
        id: id.to_owned(),
        text: string(doc, entry, "text").unwrap_or_default(),
        category: string(doc, entry, "category").unwrap_or_default(),
        posts,
        basis: string(doc, entry, "basis").unwrap_or_default(),
        level: parse_field::<Level>(doc, entry, "level")?,
    })
}

fn read_answer(doc: &AutoCommit, answer: &ObjId) -> Result<Option<Answer>> {
    let Ok(result) = parse_field::<AnswerResult>(doc, answer, "result") else {
        return Ok(None);
    };
    Ok(Some(Answer {
        result,
        note: string(doc, answer, "note").unwrap_or_default(),
        answered_by: string(doc, answer, "answered_by").unwrap_or_default(),
        answered_at: parse_time(doc, answer, "answered_at")?,
        post: string(doc, answer, "post").unwrap_or_default(),
        person: string(doc, answer, "person").unwrap_or_default(),
        finding: string(doc, answer, "finding").and_then(|f| f.parse().ok()),
        photos: super::photos::read_at(doc, answer, "photos"),
    }))
}

fn checklist_obj(doc: &AutoCommit, id: ChecklistId) -> Result<ObjId> {
    let checklists = map(doc, &ROOT, "checklists")?;
    match doc.get(&checklists, id.to_string())? {
        Some((Value::Object(ObjType::Map), obj)) => Ok(obj),
        _ => Err(Error::not_found("checklist", id)),
    }
}
