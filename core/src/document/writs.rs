//! Enforcement documents in the case document: `writs`, a map of document id → document
//! (docs/schema.md). Each step writes a map of its own, once (the seal, the refusal, the
//! issuing, the voiding) or appends to the signatures; whether it may is the rule
//! book's (`rules::writs`).

use std::collections::BTreeMap;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use chrono::{DateTime, FixedOffset};

use super::{map, parse_field, parse_time, put_judgement, string};
use crate::codes::{CaseId, WritId, WritKind};
use crate::error::{Error, Result};
use crate::model::{
    Numbering, Printed, SignatureInput, SignatureRefusal, Stamp, Voiding, Writ, WritSeal,
    WritSignature,
};

/// The root key of the enforcement documents.
pub(crate) const WRITS: &str = "writs";

/// Draws up a document of `kind` with `fields` (filled from the case).
pub(crate) fn create(
    doc: &mut AutoCommit,
    id: WritId,
    kind: WritKind,
    fields: &BTreeMap<String, String>,
    replaces: Option<WritId>,
    by: &str,
    at: DateTime<FixedOffset>,
) -> Result<()> {
    let writs = match doc.get(ROOT, WRITS)? {
        Some((Value::Object(ObjType::Map), writs)) => writs,
        // A case opened before documents were kept gets the map with its first one.
        None => doc.put_object(ROOT, WRITS, ObjType::Map)?,
        Some(_) => return Err(Error::InvalidDocument("writs is not a map".into())),
    };
    let writ = doc.put_object(&writs, id.to_string(), ObjType::Map)?;
    doc.put(&writ, "kind", kind.code())?;
    doc.put(&writ, "created_by", by)?;
    doc.put(&writ, "created_at", at.to_rfc3339())?;
    if let Some(replaced) = replaces {
        doc.put(&writ, "replaces", replaced.to_string())?;
    }
    let content = doc.put_object(&writ, "fields", ObjType::Map)?;
    for (key, value) in fields {
        doc.put(&content, key.as_str(), value.as_str())?;
    }
    doc.put_object(&writ, "signatures", ObjType::List)?;
    Ok(())
}

/// Writes one field of a draft (as a judgement: it meets a concurrent edit as a conflict).
pub(crate) fn edit(doc: &mut AutoCommit, id: WritId, key: &str, value: &str) -> Result<()> {
    let writ = writ_obj(doc, id)?;
    let content = map(doc, &writ, "fields")?;
    put_judgement(doc, &content, key, value)
}

/// Seals a draft: its number, and the SHA-256 of its content as it reads now.
pub(crate) fn seal(
    doc: &mut AutoCommit,
    case: CaseId,
    id: WritId,
    number: &str,
    block: Option<&str>,
    by: &str,
    at: DateTime<FixedOffset>,
) -> Result<String> {
    let writ = read_one(doc, id)?;
    let sha256 = crate::writs::content_sha256(case, writ.kind, number, &writ.fields);
    let obj = writ_obj(doc, id)?;
    let seal = doc.put_object(&obj, "seal", ObjType::Map)?;
    doc.put(&seal, "number", number)?;
    doc.put(&seal, "provisional", i64::from(block.is_none()))?;
    if let Some(block) = block {
        doc.put(&seal, "block", block)?;
    }
    doc.put(&seal, "sha256", sha256.as_str())?;
    doc.put(&seal, "by", by)?;
    doc.put(&seal, "at", at.to_rfc3339())?;
    Ok(sha256)
}

/// Gives a document sealed with a provisional number its number (the server does, in the
/// name of who sealed it).
pub(crate) fn number(doc: &mut AutoCommit, id: WritId, numbering: &Numbering) -> Result<()> {
    let obj = writ_obj(doc, id)?;
    let entry = doc.put_object(&obj, "numbered", ObjType::Map)?;
    doc.put(&entry, "number", numbering.number.as_str())?;
    doc.put(&entry, "block", numbering.block.as_str())?;
    doc.put(&entry, "by", numbering.by.as_str())?;
    doc.put(&entry, "at", numbering.at.to_rfc3339())?;
    Ok(())
}

/// Appends a signature on the sealed content.
pub(crate) fn sign(
    doc: &mut AutoCommit,
    id: WritId,
    input: &SignatureInput,
    by: &str,
    at: DateTime<FixedOffset>,
) -> Result<()> {
    let sealed = read_one(doc, id)?.seal.ok_or_else(|| {
        Error::NotAllowed("文书尚未定稿编号，不能签名 (seal the document first)".into())
    })?;
    let obj = writ_obj(doc, id)?;
    let list = match doc.get(&obj, "signatures")? {
        Some((Value::Object(ObjType::List), list)) => list,
        _ => return Err(Error::InvalidDocument(format!("writ {id}: signatures"))),
    };
    let entry = doc.insert_object(&list, doc.length(&list), ObjType::Map)?;
    doc.put(&entry, "role", input.role.code())?;
    doc.put(&entry, "user", input.user.as_str())?;
    doc.put(&entry, "name", input.name.as_str())?;
    doc.put(&entry, "certificate_no", input.certificate_no.as_str())?;
    doc.put(&entry, "image", input.image.as_str())?;
    doc.put(&entry, "sha256", sealed.sha256.as_str())?;
    doc.put(&entry, "by", by)?;
    doc.put(&entry, "at", at.to_rfc3339())?;
    Ok(())
}

/// Records the enterprise's refusal to sign.
pub(crate) fn refuse(doc: &mut AutoCommit, id: WritId, refusal: &SignatureRefusal) -> Result<()> {
    let obj = writ_obj(doc, id)?;
    let entry = doc.put_object(&obj, "refusal", ObjType::Map)?;
    doc.put(&entry, "reason", refusal.reason.as_str())?;
    doc.put(&entry, "witness", refusal.witness.as_str())?;
    if let Some(photo) = &refusal.photo {
        doc.put(&entry, "photo", photo.as_str())?;
    }
    doc.put(&entry, "by", refusal.by.as_str())?;
    doc.put(&entry, "at", refusal.at.to_rfc3339())?;
    Ok(())
}

/// Records the PDF of the issued document as handed to the enterprise (a blob).
pub(crate) fn print(
    doc: &mut AutoCommit,
    id: WritId,
    sha256: &str,
    by: &str,
    at: DateTime<FixedOffset>,
) -> Result<()> {
    let obj = writ_obj(doc, id)?;
    let entry = doc.put_object(&obj, "printed", ObjType::Map)?;
    doc.put(&entry, "sha256", sha256)?;
    doc.put(&entry, "by", by)?;
    doc.put(&entry, "at", at.to_rfc3339())?;
    Ok(())
}

/// Marks the document issued (every signature is there: the rule book checks).
pub(crate) fn issue(
    doc: &mut AutoCommit,
    id: WritId,
    by: &str,
    at: DateTime<FixedOffset>,
) -> Result<()> {
    let obj = writ_obj(doc, id)?;
    let entry = doc.put_object(&obj, "issued", ObjType::Map)?;
    doc.put(&entry, "by", by)?;
    doc.put(&entry, "at", at.to_rfc3339())?;
    Ok(())
}

/// Voids the document with a reason.
pub(crate) fn void(
    doc: &mut AutoCommit,
    id: WritId,
    reason: &str,
    by: &str,
    at: DateTime<FixedOffset>,
) -> Result<()> {
    let obj = writ_obj(doc, id)?;
    let entry = doc.put_object(&obj, "voided", ObjType::Map)?;
    doc.put(&entry, "reason", reason)?;
    doc.put(&entry, "by", by)?;
    doc.put(&entry, "at", at.to_rfc3339())?;
    Ok(())
}

/// Every document of the case, oldest first. Two devices that each gave an old case its
/// map at once leave two maps under the key: both are read.
pub(crate) fn read_all(doc: &AutoCommit) -> Result<Vec<Writ>> {
    let mut writs = Vec::new();
    for (value, obj) in doc.get_all(ROOT, WRITS)? {
        if !matches!(value, Value::Object(ObjType::Map)) {
            continue;
        }
        for key in doc.keys(&obj).collect::<Vec<_>>() {
            let Ok(id) = key.parse::<WritId>() else {
                continue;
            };
            if let Some((Value::Object(ObjType::Map), entry)) = doc.get(&obj, &key)? {
                writs.push(read(doc, id, &entry)?);
            }
        }
    }
    writs.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    Ok(writs)
}

fn read_one(doc: &AutoCommit, id: WritId) -> Result<Writ> {
    let obj = writ_obj(doc, id)?;
    read(doc, id, &obj)
}

fn writ_obj(doc: &AutoCommit, id: WritId) -> Result<ObjId> {
    for (value, obj) in doc.get_all(ROOT, WRITS)? {
        if matches!(value, Value::Object(ObjType::Map))
            && let Some((Value::Object(ObjType::Map), entry)) = doc.get(&obj, id.to_string())?
        {
            return Ok(entry);
        }
    }
    Err(Error::not_found("writ", id))
}

fn read(doc: &AutoCommit, id: WritId, obj: &ObjId) -> Result<Writ> {
    let bad = |what: &str| Error::InvalidDocument(format!("writ {id}: {what}"));
    let text = |obj: &ObjId, key: &str| string(doc, obj, key).unwrap_or_default();
    let child = |key: &str| match doc.get(obj, key) {
        Ok(Some((Value::Object(ObjType::Map), child))) => Some(child),
        _ => None,
    };
    let stamp = |obj: &ObjId| -> Result<Stamp> {
        Ok(Stamp {
            by: text(obj, "by"),
            at: parse_time(doc, obj, "at").map_err(|_| bad("at"))?,
        })
    };
    let fields = match child("fields") {
        Some(content) => doc
            .keys(&content)
            .map(|key| {
                let value = text(&content, &key);
                (key, value)
            })
            .collect(),
        None => BTreeMap::new(),
    };
    let seal = match child("seal") {
        Some(seal) => {
            let provisional = matches!(
                doc.get(&seal, "provisional")?,
                Some((Value::Scalar(s), _)) if matches!(s.as_ref(), ScalarValue::Int(1) | ScalarValue::Uint(1))
            );
            let stamp = stamp(&seal)?;
            Some(WritSeal {
                number: text(&seal, "number"),
                provisional,
                sha256: text(&seal, "sha256"),
                block: string(doc, &seal, "block"),
                by: stamp.by,
                at: stamp.at,
            })
        }
        None => None,
    };
    let mut signatures = Vec::new();
    if let Some((Value::Object(ObjType::List), list)) = doc.get(obj, "signatures")? {
        for i in 0..doc.length(&list) {
            if let Some((Value::Object(ObjType::Map), entry)) = doc.get(&list, i)? {
                let stamp = stamp(&entry)?;
                signatures.push(WritSignature {
                    role: parse_field(doc, &entry, "role").map_err(|_| bad("signature role"))?,
                    user: text(&entry, "user"),
                    name: text(&entry, "name"),
                    certificate_no: text(&entry, "certificate_no"),
                    image: text(&entry, "image"),
                    sha256: text(&entry, "sha256"),
                    by: stamp.by,
                    at: stamp.at,
                });
            }
        }
    }
    let refusal = match child("refusal") {
        Some(entry) => {
            let stamp = stamp(&entry)?;
            Some(SignatureRefusal {
                reason: text(&entry, "reason"),
                witness: text(&entry, "witness"),
                photo: string(doc, &entry, "photo"),
                by: stamp.by,
                at: stamp.at,
            })
        }
        None => None,
    };
    let voided = match child("voided") {
        Some(entry) => {
            let stamp = stamp(&entry)?;
            Some(Voiding {
                reason: text(&entry, "reason"),
                by: stamp.by,
                at: stamp.at,
            })
        }
        None => None,
    };
    Ok(Writ {
        id,
        kind: parse_field(doc, obj, "kind").map_err(|_| bad("kind"))?,
        created_by: text(obj, "created_by"),
        created_at: parse_time(doc, obj, "created_at").map_err(|_| bad("created_at"))?,
        replaces: string(doc, obj, "replaces").and_then(|r| r.parse().ok()),
        fields,
        seal,
        signatures,
        refusal,
        issued: child("issued").map(|i| stamp(&i)).transpose()?,
        voided,
        printed: match child("printed") {
            Some(entry) => {
                let stamp = stamp(&entry)?;
                Some(Printed {
                    sha256: text(&entry, "sha256"),
                    by: stamp.by,
                    at: stamp.at,
                })
            }
            None => None,
        },
        numbered: match child("numbered") {
            Some(entry) => {
                let stamp = stamp(&entry)?;
                Some(Numbering {
                    number: text(&entry, "number"),
                    block: text(&entry, "block"),
                    by: stamp.by,
                    at: stamp.at,
                })
            }
            None => None,
        },
    })
}
