//! Photos inside a case document: lists of photo records (hashes and metadata, never
//! bytes) on findings, rectifications and checklist answers.

use std::collections::BTreeSet;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value, ValueRef};

use super::{Fields, live_finding, map, parse_field, string};
use crate::codes::{ChecklistId, is_sha256};
use crate::codes::{GeoPoint, RectificationState};
use crate::error::{Error, Result};
use crate::model::{PhotoRef, PhotoTarget};

/// The list that holds the photos of `target`, or why photos cannot be attached there.
pub(crate) fn list_of(doc: &AutoCommit, target: &PhotoTarget) -> Result<ObjId> {
    match target {
        PhotoTarget::Finding(id) => list(doc, &live_finding(doc, *id)?, "photos"),
        PhotoTarget::Rectification(id) => {
            let rect = map(doc, &live_finding(doc, *id)?, "rectification")?;
            if parse_field::<RectificationState>(doc, &rect, "state")? == RectificationState::None {
                return Err(Error::NotAllowed(format!(
                    "no rectification was ordered for finding {id}; order it before adding evidence"
                )));
            }
            list(doc, &rect, "evidence")
        }
        PhotoTarget::Answer { checklist, item } => {
            let answer = answer_obj(doc, *checklist, item)?;
            if doc.get(&answer, "result")?.is_none() {
                return Err(Error::NotAllowed(format!(
                    "answer item {item} before adding photos to it"
                )));
            }
            list(doc, &answer, "photos")
        }
    }
}

/// Appends a photo record unless the list already holds this photo.
pub(crate) fn attach(doc: &mut AutoCommit, list: &ObjId, photo: &PhotoRef) -> Result<bool> {
    if read_list(doc, list)
        .iter()
        .any(|p| p.sha256 == photo.sha256)
    {
        return Ok(false);
    }
    let entry = doc.insert_object(list, doc.length(list), ObjType::Map)?;
    doc.put(&entry, "sha256", photo.sha256.as_str())?;
    doc.put(&entry, "thumbnail", photo.thumbnail.as_str())?;
    doc.put(&entry, "caption", photo.caption.as_str())?;
    doc.put(&entry, "mime", photo.mime.as_str())?;
    doc.put(&entry, "size", ScalarValue::Uint(photo.size))?;
    doc.put(&entry, "width", i64::from(photo.width))?;
    doc.put(&entry, "height", i64::from(photo.height))?;
    if let Some(at) = photo.captured_at {
        doc.put(&entry, "captured_at", at.to_rfc3339())?;
    }
    if let Some(gps) = photo.gps {
        doc.put(&entry, "latitude", gps.latitude)?;
        doc.put(&entry, "longitude", gps.longitude)?;
    }
    doc.put(&entry, "added_by", photo.added_by.as_str())?;
    doc.put(&entry, "added_at", photo.added_at.to_rfc3339())?;
    Ok(true)
}

/// Removes a photo record from the list; the blob stays until garbage collection finds
/// no case that references it.
pub(crate) fn detach(doc: &mut AutoCommit, list: &ObjId, sha256: &str) -> Result<()> {
    let positions: Vec<usize> = (0..doc.length(list))
        .filter(|&i| match doc.get(list, i) {
            Ok(Some((Value::Object(ObjType::Map), entry))) => {
                string(doc, &entry, "sha256").as_deref() == Some(sha256)
            }
            _ => false,
        })
        .collect();
    if positions.is_empty() {
        return Err(Error::not_found("photo", sha256));
    }
    for i in positions.into_iter().rev() {
        doc.delete(list, i)?;
    }
    Ok(())
}

/// The photo records of a list, skipping malformed ones.
pub(crate) fn read_list(doc: &AutoCommit, list: &ObjId) -> Vec<PhotoRef> {
    doc.list_range(list, ..)
        .filter(|item| matches!(item.value, ValueRef::Object(ObjType::Map)))
        .filter_map(|item| read_entry(&Fields::of(doc, &item.id())))
        .collect()
}

/// The photo records under `obj.key`, if that is a list.
pub(crate) fn read_at(doc: &AutoCommit, obj: &ObjId, key: &str) -> Vec<PhotoRef> {
    match doc.get(obj, key) {
        Ok(Some((Value::Object(ObjType::List), list))) => read_list(doc, &list),
        _ => Vec::new(),
    }
}

/// The photo records under field `key` of a map read whole, if that is a list.
pub(crate) fn read_field(fields: &Fields, key: &str) -> Vec<PhotoRef> {
    fields
        .object(key, ObjType::List)
        .map(|list| read_list(fields.doc(), &list))
        .unwrap_or_default()
}

fn read_entry(entry: &Fields) -> Option<PhotoRef> {
    let gps = match (entry.float("latitude"), entry.float("longitude")) {
        (Some(lat), Some(lon)) => GeoPoint::new(lat, lon).ok(),
        _ => None,
    };
    Some(PhotoRef {
        sha256: entry.string("sha256")?,
        thumbnail: entry.string("thumbnail").unwrap_or_default(),
        caption: entry.string("caption").unwrap_or_default(),
        mime: entry.string("mime").unwrap_or_default(),
        size: entry.int("size").unwrap_or_default(),
        width: entry
            .int("width")
            .and_then(|w| u32::try_from(w).ok())
            .unwrap_or_default(),
        height: entry
            .int("height")
            .and_then(|h| u32::try_from(h).ok())
            .unwrap_or_default(),
        captured_at: entry.time("captured_at").ok(),
        gps,
        added_by: entry.string("added_by").unwrap_or_default(),
        added_at: entry.time("added_at").ok()?,
    })
}

/// Every blob hash the document mentions anywhere (photo originals and thumbnails, in
/// removed findings too; a document's signature images, the photo of an enterprise's
/// refusal to sign and its printed PDF), for garbage collection and blob access.
pub(crate) fn blob_refs(doc: &AutoCommit) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    collect_refs(doc, &ROOT, &mut found);
    found
}

/// The keys whose values name blobs: a photo's original and thumbnail (and a printed
/// document's PDF), a signature's image, a refusal's photo. One list for reading a whole
/// document and for the changes the rule book judges (`rules::Ops::blob_refs`).
pub(crate) const BLOB_KEYS: [&str; 4] = ["sha256", "thumbnail", "image", "photo"];

fn collect_refs(doc: &AutoCommit, root: &ObjId, found: &mut BTreeSet<String>) {
    // Iterative: a hostile document may nest far deeper than the stack allows.
    let mut stack = vec![root.clone()];
    while let Some(obj) = stack.pop() {
        match doc.object_type(&obj) {
            Ok(ObjType::Map) => {
                for key in BLOB_KEYS {
                    if let Some(hash) = string(doc, &obj, key).filter(|h| is_sha256(h)) {
                        found.insert(hash);
                    }
                }
                stack.extend(
                    doc.keys(&obj)
                        .filter_map(|key| container(doc.get(&obj, key.as_str()))),
                );
            }
            Ok(ObjType::List) => {
                stack.extend((0..doc.length(&obj)).filter_map(|i| container(doc.get(&obj, i))));
            }
            _ => {}
        }
    }
}

fn container(got: Result<Option<(Value<'_>, ObjId)>, automerge::AutomergeError>) -> Option<ObjId> {
    match got {
        Ok(Some((Value::Object(ObjType::Map | ObjType::List), id))) => Some(id),
        _ => None,
    }
}

fn list(doc: &AutoCommit, obj: &ObjId, key: &str) -> Result<ObjId> {
    match doc.get(obj, key)? {
        Some((Value::Object(ObjType::List), list)) => Ok(list),
        _ => Err(Error::InvalidDocument(format!(
            "{key} is missing or not a list"
        ))),
    }
}

fn answer_obj(doc: &AutoCommit, checklist: ChecklistId, item: &str) -> Result<ObjId> {
    let checklists = map(doc, &ROOT, "checklists")?;
    let obj = match doc.get(&checklists, checklist.to_string())? {
        Some((Value::Object(ObjType::Map), obj)) => obj,
        _ => return Err(Error::not_found("checklist", checklist)),
    };
    let answers = map(doc, &obj, "answers")?;
    match doc.get(&answers, item)? {
        Some((Value::Object(ObjType::Map), answer)) => Ok(answer),
        _ => Err(Error::invalid(
            "item",
            format!("item {item:?} is not in this checklist"),
        )),
    }
}
