//! Enforcement documents (执法文书): the fields of each kind, their content filled from a
//! case, and the canonical content a seal's SHA-256 covers (docs/decisions/0004).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::codes::{CaseId, HazardAction, WritKind};
use crate::model::{Case, HazardStep};

/// The fields of a document of `kind`: (key, label), in the order the form prints them.
pub fn fields(kind: WritKind) -> &'static [(&'static str, &'static str)] {
    match kind {
        WritKind::InspectionRecord => &[
            ("enterprise", "被检查单位"),
            ("address", "地址"),
            ("representative", "法定代表人（负责人）"),
            ("place", "检查场所"),
            ("time", "检查时间"),
            ("inspectors", "执法人员"),
            ("content", "检查情况"),
        ],
        WritKind::RectificationOrder => &[
            ("enterprise", "被检查单位"),
            ("hazards", "经查，你单位存在下列问题"),
            ("deadline", "限期整改"),
            ("requirement", "整改要求"),
            ("appeal", "救济途径"),
        ],
        WritKind::OnsiteDecision => &[
            ("enterprise", "被检查单位"),
            ("facts", "现场检查时发现的违法违规行为和事故隐患"),
            ("basis", "依据"),
            ("measures", "现场处理决定"),
            ("appeal", "救济途径"),
        ],
        WritKind::ReinspectionOpinion => &[
            ("enterprise", "被复查单位"),
            ("order", "原决定"),
            ("results", "复查情况"),
            ("opinion", "复查意见"),
        ],
    }
}

/// The model forms' sentence on applying for administrative review or suing, which an
/// order or a decision carries (安全生产行政执法文书式样, 2016): the blanks name the
/// government, the department and the court, which the inspector completes before
/// sealing.
pub fn appeal(kind: WritKind) -> String {
    let what = match kind {
        WritKind::OnsiteDecision => "决定",
        _ => "指令",
    };
    format!(
        "如果不服本{what}，可以依法在60日内向　　　　人民政府或者　　　　申请行政复议，或者在6个月内依法向　　　　人民法院提起行政诉讼，但本{what}不停止执行，法律另有规定的除外。"
    )
}

/// Whether `key` is a field of `kind`.
pub fn has_field(kind: WritKind, key: &str) -> bool {
    fields(kind).iter().any(|(k, _)| *k == key)
}

/// A document of `kind` filled from `case`: the enterprise, the team, the findings with
/// their basis and deadlines, the measures taken on site, the re-inspections. Every
/// field is there (empty when the case says nothing of it); the inspector edits them
/// before sealing.
pub fn fill(kind: WritKind, case: &Case) -> BTreeMap<String, String> {
    let findings = || case.findings.iter().enumerate().map(|(i, f)| (i + 1, f));
    let title = |f: &crate::model::Finding| f.description.lines().next().unwrap_or("").to_owned();
    let mut out: BTreeMap<String, String> = fields(kind)
        .iter()
        .map(|(k, _)| ((*k).to_owned(), String::new()))
        .collect();
    let mut put = |key: &str, value: String| {
        out.insert(key.to_owned(), value);
    };
    put("enterprise", case.enterprise.name.clone());
    match kind {
        WritKind::InspectionRecord => {
            put(
                "time",
                case.opened_at.format("%Y年%m月%d日 %H时%M分").to_string(),
            );
            let names: Vec<&str> = case.team.iter().map(|m| m.name.as_str()).collect();
            put(
                "inspectors",
                format!(
                    "我们是{}的行政执法人员{}，证件号码为　　　　，这是我们的证件（出示证件）。现依法对你单位进行现场检查，请予以配合。",
                    case.team.first().map_or("", |m| m.department.as_str()),
                    names.join("、")
                ),
            );
            let found: Vec<String> = findings()
                .map(|(n, f)| format!("{n}. {}（{}）", title(f), f.level.label()))
                .collect();
            put(
                "content",
                if found.is_empty() {
                    "未发现事故隐患。".to_owned()
                } else {
                    format!("发现以下问题：\n{}", found.join("\n"))
                },
            );
        }
        WritKind::RectificationOrder => {
            let ordered: Vec<_> = findings()
                .filter_map(|(n, f)| Some((n, f, f.rectification.as_ref()?)))
                .collect();
            put(
                "hazards",
                ordered
                    .iter()
                    .map(|(n, f, r)| {
                        format!(
                            "{n}. {}；依据：{}；整改期限：{}",
                            title(f),
                            f.legal_basis,
                            r.deadline.format("%Y年%m月%d日")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
            if let Some(last) = ordered.iter().map(|(_, _, r)| r.deadline).max() {
                put(
                    "deadline",
                    format!(
                        "现责令你单位对上述问题于{}前整改完毕，达到有关法律法规规章和标准规定的要求。由此造成事故的，依法追究有关人员的责任。\n整改期间，你单位应当采取措施，确保安全生产。对安全生产违法行为，将依法予以行政处罚。",
                        last.format("%Y年%m月%d日")
                    ),
                );
            }
            put("appeal", appeal(kind));
            put(
                "requirement",
                ordered
                    .iter()
                    .map(|(n, _, r)| format!("{n}. {}", r.measures))
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
        }
        WritKind::OnsiteDecision => {
            let taken: Vec<_> = findings()
                .flat_map(|(n, f)| f.onsite_measures().map(move |(e, m)| (n, f, e, m)))
                .collect();
            let items: Vec<String> = taken
                .iter()
                .map(|(n, f, _, _)| format!("{n}. {}", title(f)))
                .collect();
            put(
                "facts",
                format!(
                    "本机关于{}现场检查时，发现你单位有下列违法违规行为和事故隐患：\n{}",
                    case.opened_at.format("%Y年%m月%d日"),
                    items.join("\n")
                ),
            );
            put(
                "measures",
                taken
                    .iter()
                    .map(|(n, _, e, m)| match &e.step {
                        HazardStep::Onsite { note, .. } if !note.is_empty() => {
                            format!("{n}. {}：{note}", m.label())
                        }
                        _ => format!("{n}. {}", m.label()),
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
            let mut bases: Vec<&str> = taken.iter().map(|(_, _, _, m)| m.basis()).collect();
            bases.dedup();
            put("basis", bases.join("；"));
            put("appeal", appeal(kind));
        }
        WritKind::ReinspectionOpinion => {
            // The order re-inspected: the case's latest issued 责令限期整改指令书.
            let order = case
                .writs
                .iter()
                .filter(|w| w.kind == WritKind::RectificationOrder)
                .filter(|w| w.state() == crate::codes::WritState::Issued)
                .max_by_key(|w| w.issued.as_ref().map(|i| i.at));
            if let Some(order) = order {
                let at = order.issued.as_ref().map(|i| i.at.format("%Y年%m月%d日"));
                put(
                    "order",
                    format!(
                        "本机关于{}作出了责令限期整改的决定［{}］，经对你单位整改情况进行复查，提出如下意见：",
                        at.map(|a| a.to_string()).unwrap_or_default(),
                        order.number().unwrap_or_default()
                    ),
                );
            }
            let checked: Vec<_> = findings()
                .filter_map(|(n, f)| Some((n, f, f.last(HazardAction::Reinspect)?)))
                .collect();
            put(
                "results",
                checked
                    .iter()
                    .map(|(n, f, e)| match &e.step {
                        HazardStep::Reinspect { result, note, .. } => {
                            format!("{n}. {}：{}。{note}", title(f), result.label())
                        }
                        _ => String::new(),
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
        }
    }
    out
}

/// The SHA-256 (hex) of a document's canonical content: its case, kind, number and
/// fields as compact JSON with sorted keys. A seal records it; each signature names it.
pub fn content_sha256(
    case: CaseId,
    kind: WritKind,
    number: &str,
    fields: &BTreeMap<String, String>,
) -> String {
    let canonical = serde_json::json!({
        "case": case.to_string(),
        "kind": kind.code(),
        "number": number,
        "fields": fields,
    });
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::Level;
    use crate::model::{NewFinding, RectificationOrder};
    use crate::{Store, sample};

    /// A case with `n` findings, each ordered to be rectified.
    fn case_with_findings(n: u32) -> Case {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store =
            Store::open(dir.path().join("s.db"), sample::inspector("u1")).expect("store");
        let ent = sample::enterprise(1);
        store.register_enterprise(&ent).expect("enterprise");
        let case = store.open_case(&sample::new_case(&ent)).expect("case");
        for i in 0..n {
            let f = store
                .add_finding(
                    case,
                    &NewFinding {
                        level: Some(Level::Major),
                        ..sample::finding(&format!("隐患{i}"))
                    },
                )
                .expect("finding");
            let order = RectificationOrder {
                measures: "立即整改".into(),
                deadline: "2027-01-31".parse().expect("day"),
                responsible: "王五".into(),
            };
            store.order_rectification(case, f, &order).expect("order");
        }
        store.case(case).expect("case")
    }

    #[test]
    fn every_kind_is_filled_with_exactly_its_fields() {
        let case = case_with_findings(2);
        for kind in WritKind::ALL {
            let filled = fill(*kind, &case);
            let keys: Vec<&str> = filled.keys().map(String::as_str).collect();
            let mut wanted: Vec<&str> = fields(*kind).iter().map(|(k, _)| *k).collect();
            wanted.sort_unstable();
            assert_eq!(keys, wanted, "{kind:?}");
            assert_eq!(filled["enterprise"], case.enterprise.name);
        }
    }

    #[test]
    fn the_content_hash_changes_with_every_part_of_the_content() {
        let case = case_with_findings(1);
        let fields = fill(WritKind::RectificationOrder, &case);
        let hash = |case, kind, number: &str, fields: &BTreeMap<String, String>| {
            content_sha256(case, kind, number, fields)
        };
        let base = hash(case.id, WritKind::RectificationOrder, "1号", &fields);
        assert_eq!(
            base,
            hash(
                case.id,
                WritKind::RectificationOrder,
                "1号",
                &fields.clone()
            )
        );
        let mut edited = fields.clone();
        edited.insert("deadline".into(), "2027年1月1日前".into());
        for other in [
            hash(
                CaseId::from_uuid(uuid::Uuid::from_u128(7)),
                WritKind::RectificationOrder,
                "1号",
                &fields,
            ),
            hash(case.id, WritKind::OnsiteDecision, "1号", &fields),
            hash(case.id, WritKind::RectificationOrder, "2号", &fields),
            hash(case.id, WritKind::RectificationOrder, "1号", &edited),
        ] {
            assert_ne!(base, other);
        }
    }
}
