//! The rules of enforcement documents (执法文书, docs/decisions/0004): a document is made
//! whole, edited only as a draft, sealed once under the SHA-256 of its content, signed on
//! that content, issued only with two inspectors' signatures (each with a 执法证号) and
//! the enterprise's signature or refusal, and voided with a reason; nothing of it is ever
//! removed. On an approved case only the follow-up's documents (整改复查意见书) move.

use std::collections::{BTreeSet, HashMap};

use super::{Author, CaseState, OpAt, Ops, Refusal, Rule, Trust, decides};
use crate::codes::{HazardAction, WritKind};
use crate::codes::{ReviewState, SignerRole, WritId};
use crate::model::{Writ, WritSignature};
use crate::numbering::{MAX_NUMBER_CHARS, PROVISIONAL_MARK, SignedBlock};
use crate::paths::{Leaf, Seg};

/// The document an operation writes into, if it writes into one (or makes the map).
fn writ_of(op: &OpAt) -> Option<Option<WritId>> {
    match op.path.as_slice() {
        [Seg::Key(root)] if root == "writs" => Some(None),
        [Seg::Key(root), Seg::Key(id), ..] if root == "writs" => Some(id.parse().ok()),
        _ => None,
    }
}

/// Documents one case holds: far more than any visit needs, and few enough that a change
/// making many cannot make judging it cost the server and every phone minutes.
pub const MAX_WRITS: usize = 1_000;

/// Signatures one document holds: two inspectors or more and the enterprise sign a
/// document, never dozens.
pub const MAX_SIGNATURES: usize = 32;

fn refuse(why: impl Into<String>) -> Refusal {
    Refusal::new(Rule::Writ, why)
}

/// Judges the operations of a change on the case's documents.
pub(super) fn judge(
    author: &Author,
    before: Option<&CaseState>,
    after: &CaseState,
    ops: &Ops,
    trust: &Trust<'_>,
) -> Result<(), Refusal> {
    let mut touched = BTreeSet::new();
    let mut fields_edited = BTreeSet::new();
    for op in ops.iter() {
        let Some(writ) = writ_of(op) else { continue };
        if op.value.is_none() {
            return Err(Refusal::new(
                Rule::Evidence,
                "执法文书及其签名、作废记录不能删除 (an enforcement document stays recorded)",
            ));
        }
        let Some(id) = writ else {
            // The map of documents, made once (at opening, or with an old case's first).
            if op.value != Some(Leaf::Map) || op.overwrites {
                return Err(refuse(
                    "执法文书记录不能替换 (the documents' map is never replaced)",
                ));
            }
            continue;
        };
        touched.insert(id);
        let key = op.path.get(2).and_then(Seg::key);
        if key == Some("fields") {
            fields_edited.insert(id);
        }
        let whole = |op: &OpAt| !op.overwrites && matches!(op.value, Some(Leaf::Map | Leaf::List));
        let fine = match (op.path.len(), key) {
            (2, _) => whole(op),
            (3, Some("seal" | "refusal" | "issued" | "voided" | "numbered" | "printed")) => {
                whole(op)
            }
            (3, _) => op.in_new_object,
            (4, Some("fields")) => true,
            (4, Some("signatures")) => whole(op),
            _ => op.in_new_object,
        };
        if !fine {
            return Err(refuse(
                "执法文书只能按步骤追加记录（定稿、签名、拒签、签发、作废），已有记录不能修改 (a document's records are only added, each once)",
            ));
        }
    }
    if touched.is_empty() {
        return Ok(());
    }
    let grows = after.case.writs.len() > before.map_or(0, |b| b.case.writs.len());
    if grows && after.case.writs.len() > MAX_WRITS {
        return Err(refuse(format!(
            "一个案件至多有 {MAX_WRITS} 份执法文书 (a case holds at most {MAX_WRITS} documents)"
        )));
    }
    let (now, was) = (by_id(after), before.map(by_id).unwrap_or_default());
    // Two maps of documents (made at once by two devices) read one after the other: a
    // document under an id the other map holds too would be a second document of that id.
    let doubled = |s: &CaseState, ids: &HashMap<WritId, &Writ>| s.case.writs.len() - ids.len();
    if doubled(after, &now) > before.map_or(0, |b| doubled(b, &was)) {
        return Err(refuse("执法文书的标识重复 (two documents under one id)"));
    }
    let approved = before.is_some_and(|b| b.case.state == ReviewState::Approved);
    for id in touched {
        let Some(&writ) = now.get(&id) else {
            return Err(refuse("执法文书记录不完整 (the document is incomplete)"));
        };
        let old = was.get(&id).copied();
        if approved && !writ.kind.is_follow_up() {
            return Err(Refusal::new(
                Rule::ApprovedLock,
                format!(
                    "案件已审核通过：{}属于检查时的文书，不能再办理 (the case is approved)",
                    writ.kind.label()
                ),
            ));
        }
        steps(author, after, old, writ, fields_edited.contains(&id))?;
        certified(trust, old, writ)?;
        numbers(author, trust, after, old, writ)?;
    }
    Ok(())
}

/// The documents of a case by their ids; of two under one id (which `judge` refuses a
/// change to make), the first in the case's order.
fn by_id(state: &CaseState) -> HashMap<WritId, &Writ> {
    let mut ids = HashMap::new();
    for writ in &state.case.writs {
        ids.entry(writ.id).or_insert(writ);
    }
    ids
}

/// The steps a change takes on one document, judged against the document before it.
fn steps(
    author: &Author,
    after: &CaseState,
    old: Option<&Writ>,
    writ: &Writ,
    edits_fields: bool,
) -> Result<(), Refusal> {
    let name = writ.kind.label();
    if let Some(key) = writ
        .fields
        .keys()
        .find(|k| !crate::writs::has_field(writ.kind, k))
    {
        return Err(refuse(format!("{name}没有“{key}”一栏 (no such field)")));
    }
    if edits_fields && old.is_some_and(|w| w.seal.is_some()) {
        return Err(refuse(format!(
            "{name}已定稿编号，内容不能再修改；如需更正，请制作新文书并作废原文书 (a sealed document is never edited)"
        )));
    }
    if old.is_some_and(|w| w.voided.is_some()) {
        return Err(refuse(format!("{name}已作废 (the document is voided)")));
    }
    if let Some(replaced) = writ.replaces
        && old.is_none()
        && !after
            .case
            .writs
            .iter()
            .any(|w| w.id == replaced && w.id != writ.id)
    {
        return Err(refuse(format!(
            "被更正的文书 {replaced} 不存在 (no such document to correct)"
        )));
    }
    let new = |was: bool, is: bool| is && !was;
    if new(old.is_some_and(|w| w.seal.is_some()), writ.seal.is_some()) {
        let seal = writ.seal.as_ref().expect("checked just above");
        let content =
            crate::writs::content_sha256(after.case.id, writ.kind, &seal.number, &writ.fields);
        if seal.number.trim().is_empty() || seal.sha256 != content {
            return Err(refuse(format!(
                "{name}的定稿须有文书编号，且摘要与内容一致 (a seal names a number and the SHA-256 of the content)"
            )));
        }
        // Sealing freezes the content under a number: the maker's act, not a reader's on
        // a colleague's draft.
        if writ.created_by != author.user_id {
            return Err(Refusal::new(
                Rule::Decide,
                format!("{name}由制作人定稿编号 (sealed by whoever drew it up)"),
            ));
        }
    }
    let sealed = writ.seal.as_ref().map(|s| s.sha256.as_str());
    let signed = new_signatures(old, writ);
    let refused_now = new(
        old.is_some_and(|w| w.refusal.is_some()),
        writ.refusal.is_some(),
    );
    let answered_now = refused_now || signed.iter().any(|s| s.role == SignerRole::Enterprise);
    // The document handed over is the one issued: nothing is signed or refused on it after.
    if old.is_some_and(|w| w.issued.is_some()) && (!signed.is_empty() || refused_now) {
        return Err(refuse(format!(
            "{name}已签发，不能再签名或记录拒签 (an issued document takes no more signatures)"
        )));
    }
    let enterprise_signed = writ
        .signatures
        .iter()
        .any(|s| s.role == SignerRole::Enterprise);
    if answered_now && enterprise_signed && writ.refusal.is_some() {
        return Err(refuse(format!(
            "{name}的被检查单位已签名或已记录拒签，二者只有其一 (the enterprise signs or refuses, not both)"
        )));
    }
    if !signed.is_empty() && writ.signatures.len() > MAX_SIGNATURES {
        return Err(refuse(format!(
            "{name}至多有 {MAX_SIGNATURES} 个签名 (a document holds at most {MAX_SIGNATURES} signatures)"
        )));
    }
    for signature in signed {
        if Some(signature.sha256.as_str()) != sealed {
            return Err(refuse(format!(
                "签名须针对{name}定稿后的内容 (a signature is given on the sealed content)"
            )));
        }
        let member = after.case.team.iter().any(|m| m.user_id == signature.user);
        let fine = match signature.role {
            SignerRole::Inspector => member && !signature.certificate_no.trim().is_empty(),
            // The enterprise's signer is a person on site, not an account.
            SignerRole::Enterprise => {
                !signature.name.trim().is_empty()
                    && signature.user.is_empty()
                    && signature.certificate_no.is_empty()
            }
        };
        if !fine {
            return Err(refuse(
                "执法人员签名须为检查组成员并注明执法证号；被检查单位签名须写明姓名，不填账号和执法证号 (an inspector who signs is on the team and has a 执法证号; the enterprise's signer is named, with no account or 执法证号)",
            ));
        }
    }
    // The enterprise's answer is recorded by whoever presents the document: its keeper,
    // or an inspector whose signature it held before (not one given with the answer, as
    // any reader may join the team and sign).
    let signer = old.is_some_and(|w| w.inspectors_signed().contains(author.user_id.as_str()));
    if answered_now && !keeper(author, old, writ) && !signer {
        return Err(Refusal::new(
            Rule::Decide,
            format!(
                "{name}的被检查单位签名或拒签由制作、定稿或已签名的执法人员记录 (the enterprise's answer is recorded by the document's maker, sealer or an inspector who signed it)"
            ),
        ));
    }
    if refused_now {
        let refusal = writ.refusal.as_ref().expect("checked just above");
        if sealed.is_none() || refusal.reason.trim().is_empty() || refusal.witness.trim().is_empty()
        {
            return Err(refuse(format!(
                "拒签须在{name}定稿后记录，并写明理由和见证人 (a refusal to sign has a reason and a witness)"
            )));
        }
    }
    if new(
        old.is_some_and(|w| w.issued.is_some()),
        writ.issued.is_some(),
    ) {
        if writ.inspectors_signed().len() < 2 || !writ.enterprise_answered() {
            return Err(refuse(format!(
                "{name}须有两名以上执法人员签名（注明执法证号），并有被检查单位签名或拒签记录，方可签发 (two inspectors and the enterprise sign first)"
            )));
        }
        if !writ.inspectors_signed().contains(author.user_id.as_str()) {
            return Err(Refusal::new(
                Rule::Decide,
                format!("{name}由签名的执法人员签发 (issued by an inspector who signed it)"),
            ));
        }
        grounded(after, writ)?;
    }
    if new(
        old.is_some_and(|w| w.printed.is_some()),
        writ.printed.is_some(),
    ) {
        if writ.issued.is_none() || writ.voided.is_some() {
            return Err(refuse(format!(
                "{name}签发后方可留存交付的文书 PDF (the PDF kept is the issued document's)"
            )));
        }
        // The PDF handed to the enterprise is kept once: by whoever signed the document,
        // not by anyone who may read the case.
        if !writ.inspectors_signed().contains(author.user_id.as_str()) {
            return Err(Refusal::new(
                Rule::Decide,
                format!(
                    "{name}交付的 PDF 由签名的执法人员留存 (the PDF handed over is kept by an inspector who signed it)"
                ),
            ));
        }
    }
    if new(
        old.is_some_and(|w| w.voided.is_some()),
        writ.voided.is_some(),
    ) {
        let voiding = writ.voided.as_ref().expect("checked just above");
        // Not a co-signer's: any reader may join the team and sign, then void in a later
        // change (a shared district's inspector, another department's).
        let may = keeper(author, old, writ) || decides(author, &after.case.district);
        if sealed.is_none() || voiding.reason.trim().is_empty() {
            return Err(refuse(format!(
                "只有已定稿编号的{name}需要作废，且须写明理由 (a sealed document is voided with a reason)"
            )));
        }
        if !may {
            return Err(Refusal::new(
                Rule::Decide,
                format!(
                    "{name}由制作、签名的执法人员或辖区监管负责人作废 (voided by its makers or the district's supervisors)"
                ),
            ));
        }
    }
    Ok(())
}

/// What a document of each kind records must be in the case when it is issued: a
/// 责令限期整改指令书 orders at least one rectification, a 现场处理措施决定书 decides
/// measures taken on site (`HazardStep::Onsite`), a 整改复查意见书 gives the result of a
/// re-inspection. A 现场检查记录 records the visit, whatever was found.
fn grounded(after: &CaseState, writ: &Writ) -> Result<(), Refusal> {
    let findings = &after.case.findings;
    let (fine, what) = match writ.kind {
        WritKind::InspectionRecord => (true, ""),
        WritKind::RectificationOrder => (
            findings.iter().any(|f| f.rectification.is_some()),
            "责令整改的隐患",
        ),
        WritKind::OnsiteDecision => (
            findings
                .iter()
                .any(|f| f.onsite_measures().next().is_some()),
            "现场处理措施",
        ),
        WritKind::ReinspectionOpinion => (
            findings
                .iter()
                .any(|f| f.last(HazardAction::Reinspect).is_some()),
            "复查结果",
        ),
    };
    if fine {
        Ok(())
    } else {
        Err(refuse(format!(
            "案件中尚无{what}，不能签发{} (the case records nothing this document decides)",
            writ.kind.label()
        )))
    }
}

/// Whether `author` keeps `writ`: made it, or had sealed it before the change (`old`): a
/// seal given with the voiding or the answer is not yet that, as any reader may seal a
/// draft of the case.
fn keeper(author: &Author, old: Option<&Writ>, writ: &Writ) -> bool {
    writ.created_by == author.user_id
        || old
            .and_then(|w| w.seal.as_ref())
            .is_some_and(|s| s.by == author.user_id)
}

/// The signatures of `writ` that `old` does not have, wherever they are in the list: a
/// signature made concurrently with one already there may be placed before it (Automerge
/// orders concurrent insertions by their ids), so the new ones are not the last ones.
fn new_signatures<'a>(old: Option<&Writ>, writ: &'a Writ) -> Vec<&'a WritSignature> {
    super::added(
        old.map_or(&[][..], |w| w.signatures.as_slice()),
        &writ.signatures,
    )
}

/// Where the judge holds the enforcement certificates on record (the server), every new
/// inspector's signature names the signer's certificate, valid on the day signed.
fn certified(trust: &Trust<'_>, old: Option<&Writ>, writ: &Writ) -> Result<(), Refusal> {
    let Some(records) = trust.records else {
        return Ok(());
    };
    for signature in new_signatures(old, writ) {
        if signature.role != SignerRole::Inspector {
            continue;
        }
        let fine = records.certificate(&signature.user)?.is_some_and(|c| {
            c.number == signature.certificate_no.trim()
                && crate::codes::day_in_china(&signature.at) <= c.valid_until
        });
        if !fine {
            return Err(refuse(format!(
                "{} 的执法证号 {} 与登记的执法证不符，或签名时已过有效期 (the 执法证号 is not the signer's certificate on record, valid that day)",
                signature.user, signature.certificate_no
            )));
        }
    }
    Ok(())
}

/// The numbers a change gives a document: a seal's number is either provisional (marked
/// so, with no block) or one of a block the server allocated to the key that signed the
/// change; the server later gives a provisional document its number the same way. No
/// two documents of a case carry the same number (across cases the server's register
/// sees to it).
fn numbers(
    author: &Author,
    trust: &Trust<'_>,
    after: &CaseState,
    old: Option<&Writ>,
    writ: &Writ,
) -> Result<(), Refusal> {
    let name = writ.kind.label();
    let sealed_now = old.is_none_or(|w| w.seal.is_none());
    if let Some(seal) = writ.seal.as_ref().filter(|_| sealed_now) {
        match &seal.block {
            None if seal.provisional
                && seal.number.starts_with(PROVISIONAL_MARK)
                && seal.number.chars().count() <= MAX_NUMBER_CHARS => {}
            Some(block) if !seal.provisional => {
                allocated(author, trust, writ.kind, &seal.number, block)?;
            }
            _ => {
                return Err(refuse(format!(
                    "{name}的编号须来自服务器分配的号段，或标明为临时编号（至多 {MAX_NUMBER_CHARS} 字） (a number comes from an allocated block, or is marked provisional, at most {MAX_NUMBER_CHARS} characters)"
                )));
            }
        }
    }
    if let Some(numbered) = &writ.numbered
        && old.is_none_or(|w| w.numbered.is_none())
    {
        if !writ.seal.as_ref().is_some_and(|s| s.provisional) {
            return Err(refuse(format!(
                "只有使用临时编号的{name}由服务器补编正式编号 (only a provisional number is replaced)"
            )));
        }
        allocated(author, trust, writ.kind, &numbered.number, &numbered.block)?;
    }
    let Some(number) = writ.number().filter(|_| !writ.provisional()) else {
        return Ok(());
    };
    let in_case = after
        .case
        .writs
        .iter()
        .any(|w| w.id != writ.id && !w.provisional() && w.number() == Some(number));
    let numbered_now = old.is_none_or(|w| w.number() != Some(number));
    let elsewhere = || match trust.records {
        Some(records) if numbered_now => records.number_elsewhere(number, after.case.id),
        _ => Ok(false),
    };
    if in_case || elsewhere()? {
        return Err(refuse(format!(
            "文书编号 {number} 已被其他文书使用 (a number is issued once)"
        )));
    }
    Ok(())
}

/// Whether `number` is one of the numbers of `block`, a block for `kind` that a trusted
/// server key allocated to the key that signed the change.
fn allocated(
    author: &Author,
    trust: &Trust<'_>,
    kind: WritKind,
    number: &str,
    block: &str,
) -> Result<(), Refusal> {
    let fine = SignedBlock::decode(block).is_ok_and(|signed| {
        let b = signed.block();
        signed.verify(&trust.servers).is_ok()
            && b.kind == kind
            && author.key == Some(b.key)
            && b.sequence_of(number).is_some()
    });
    if fine {
        Ok(())
    } else {
        Err(refuse(format!(
            "文书编号 {number} 不是服务器分配给签名设备的号段中的编号 (the number was not allocated to the device that signed)"
        )))
    }
}
