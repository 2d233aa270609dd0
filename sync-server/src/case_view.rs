//! A case as the API shows it (`GET /api/v1/cases/{id}`): typed, so that what is sent is
//! exactly what the OpenAPI description says.

use anjian_core::Case;
use anjian_core::sync::DocumentId;
use serde::Serialize;
use utoipa::ToSchema;

use crate::review::{CaseDetail, HistoryRow};
use crate::schemas;

/// A case in full, as a reviewer reads it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Case)]
pub struct CaseView {
    /// Case id (UUID).
    #[schema(format = Uuid)]
    pub id: String,
    /// The inspected enterprise.
    pub enterprise: EnterpriseView,
    /// Case type code.
    #[serde(rename = "type")]
    #[schema(value_type = schemas::CaseType)]
    pub case_type: &'static str,
    /// Owning district.
    #[schema(value_type = schemas::DistrictCode)]
    pub district: String,
    /// The owning district's name (黄浦区), or `null` when the server's table of districts
    /// does not know the code.
    pub district_name: Option<&'static str>,
    /// Districts the case is shared with besides its owner.
    #[schema(value_type = Vec<schemas::DistrictCode>)]
    pub visible_to: Vec<String>,
    /// The inspection team.
    pub team: Vec<TeamMemberView>,
    /// When the visit began (RFC 3339, device clock).
    #[schema(format = DateTime)]
    pub opened_at: String,
    /// User id of who opened it.
    pub opened_by: String,
    /// Review state code.
    #[schema(value_type = schemas::ReviewState)]
    pub state: &'static str,
    /// The case this one amends (更正), if any.
    #[schema(format = Uuid)]
    pub amends: Option<String>,
    /// Whether the server holds the case `amends` names, of the same enterprise and
    /// approved (false without `amends`): a device may write any case id there.
    pub amends_confirmed: bool,
    /// The review trail, oldest first.
    pub review_events: Vec<ReviewEventView>,
    /// Findings, as recorded.
    pub findings: Vec<FindingView>,
    /// Enforcement documents (执法文书), oldest first.
    pub writs: Vec<WritView>,
    /// The automerge-repo document id of the case.
    pub document_id: String,
    /// Fields in conflict, with every value and who wrote it.
    pub conflicts: Vec<ConflictView>,
    /// Every change, oldest first: device time and server receipt time side by side.
    pub history: Vec<HistoryRow>,
    /// Cases in the reader's scope that amend this one, oldest first.
    pub amendments: Vec<AmendmentView>,
}

/// The enterprise of a case.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = CaseEnterprise)]
pub struct EnterpriseView {
    /// Name.
    pub name: String,
    /// 统一社会信用代码.
    pub credit_code: String,
    /// District.
    #[schema(value_type = schemas::DistrictCode)]
    pub district: String,
    /// The district's name, or `null` when the server's table of districts does not know
    /// the code.
    pub district_name: Option<&'static str>,
    /// Industry code.
    #[schema(value_type = schemas::Industry)]
    pub industry: &'static str,
    /// Risk grade code.
    #[schema(value_type = schemas::RiskGrade)]
    pub risk_grade: &'static str,
}

/// A member of the inspection team.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = TeamMember)]
pub struct TeamMemberView {
    /// User id (username).
    pub user_id: String,
    /// Full name.
    pub name: String,
    /// Department.
    pub department: String,
    /// District.
    #[schema(value_type = schemas::DistrictCode)]
    pub district: String,
    /// The district's name, or `null` when the server's table of districts does not know
    /// the code.
    pub district_name: Option<&'static str>,
}

/// One entry of the review trail.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = ReviewEvent)]
pub struct ReviewEventView {
    /// `comment`, or the code of the review action it records.
    #[schema(value_type = schemas::ReviewAction)]
    pub kind: String,
    /// User id of who recorded it.
    pub by: String,
    /// When, as recorded (RFC 3339, device or server clock).
    pub at: String,
    /// The comment.
    pub text: String,
}

/// A finding.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Finding)]
pub struct FindingView {
    /// Finding id (UUID).
    #[schema(format = Uuid)]
    pub id: String,
    /// What was found.
    pub description: String,
    /// Level code.
    #[schema(value_type = schemas::Level)]
    pub level: &'static str,
    /// Category.
    pub category: String,
    /// The legal basis cited.
    pub legal_basis: String,
    /// Where at the enterprise.
    pub place: String,
    /// User id of who recorded it.
    pub recorded_by: String,
    /// When (RFC 3339, device clock).
    #[schema(format = DateTime)]
    pub recorded_at: String,
    /// The rectification ordered, if any.
    pub rectification: Option<RectificationView>,
    /// The three-violation record, if it is one.
    pub violation: Option<ViolationView>,
    /// Its photos.
    pub photos: Vec<PhotoView>,
    /// Its follow-up: on-site measures and every step since, in the order written.
    pub events: Vec<StepView>,
}

/// An enforcement document (执法文书, docs/schema.md, Writ) as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Writ)]
pub struct WritView {
    /// Its id (UUID).
    #[schema(format = Uuid)]
    pub id: String,
    /// `inspection_record`, `rectification_order`, `onsite_decision` or
    /// `reinspection_opinion`.
    pub kind: &'static str,
    /// The kind's name (责令限期整改指令书 …).
    pub title: &'static str,
    /// `draft`, `sealed`, `issued` or `voided`.
    pub state: &'static str,
    /// The number, once sealed.
    pub number: Option<String>,
    /// Whether the number is provisional.
    pub provisional: bool,
    /// The provisional number it was sealed with, once the server gave it its number.
    pub provisional_number: Option<String>,
    /// SHA-256 of the PDF handed to the enterprise, once printed (`GET
    /// /api/v1/blobs/{sha256}`).
    pub pdf: Option<String>,
    /// SHA-256 of the sealed content.
    pub sha256: Option<String>,
    /// Its content by field key.
    pub fields: std::collections::BTreeMap<String, String>,
    /// Who drew it up.
    pub created_by: String,
    /// Who signed: inspectors' user ids with their 执法证号, and the enterprise's signer.
    pub signers: Vec<String>,
    /// The enterprise's refusal to sign (拒签): reason and witness.
    pub refusal: Option<String>,
    /// The document it corrects.
    pub replaces: Option<String>,
    /// Why it was voided.
    pub voided: Option<String>,
}

impl From<&anjian_core::Writ> for WritView {
    fn from(w: &anjian_core::Writ) -> WritView {
        WritView {
            id: w.id.to_string(),
            kind: w.kind.code(),
            title: w.kind.label(),
            state: w.state().code(),
            number: w.number().map(str::to_owned),
            provisional: w.provisional(),
            provisional_number: w
                .numbered
                .as_ref()
                .and(w.seal.as_ref())
                .map(|s| s.number.clone()),
            pdf: w.printed.as_ref().map(|p| p.sha256.clone()),
            sha256: w.seal.as_ref().map(|s| s.sha256.clone()),
            fields: w.fields.clone(),
            created_by: w.created_by.clone(),
            signers: w
                .signatures
                .iter()
                .map(|s| match s.role {
                    anjian_core::SignerRole::Inspector => {
                        format!("{}（{}，执法证号 {}）", s.name, s.user, s.certificate_no)
                    }
                    anjian_core::SignerRole::Enterprise => format!("{}（被检查单位）", s.name),
                })
                .collect(),
            refusal: w
                .refusal
                .as_ref()
                .map(|r| format!("{}（见证人：{}）", r.reason, r.witness)),
            replaces: w.replaces.map(|r| r.to_string()),
            voided: w.voided.as_ref().map(|v| v.reason.clone()),
        }
    }
}

/// A step of a hazard's follow-up (docs/schema.md, Step): the fields of its action only.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[schema(as = HazardStep)]
pub struct StepView {
    /// The step's action code.
    #[schema(value_type = schemas::HazardAction)]
    pub action: &'static str,
    /// User id of who took it.
    pub by: String,
    /// When (RFC 3339, the clock of who recorded it).
    #[schema(format = DateTime)]
    pub at: String,
    /// `onsite`: the measure's code.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<schemas::OnsiteMeasure>)]
    pub measure: Option<&'static str>,
    /// `onsite`: its legal basis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basis: Option<&'static str>,
    /// `reinspect`: `pass` or `fail`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<schemas::ReinspectionResult>)]
    pub result: Option<&'static str>,
    /// `extend`, `reinspect` (a new deadline), `list`: the deadline it sets.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = Date)]
    pub deadline: Option<String>,
    /// The rectification deadline the step replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = Date)]
    pub previous_deadline: Option<String>,
    /// The step's text fields by name (`note`, `reason`, `escalation`, `authority`,
    /// `number`, `measures`, `funds`, `responsible`, `interim`, `text`), as its action has them.
    pub fields: std::collections::BTreeMap<&'static str, String>,
    /// `reinspect`: the SHA-256 of each evidence photo it saw.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<schemas::Sha256>)]
    pub evidence: Vec<String>,
}

impl From<&anjian_core::HazardEvent> for StepView {
    fn from(e: &anjian_core::HazardEvent) -> StepView {
        use anjian_core::HazardStep as S;
        let mut view = StepView {
            action: e.step.action().code(),
            by: e.by.clone(),
            at: e.at.to_rfc3339(),
            previous_deadline: e.previous_deadline.map(|d| d.to_string()),
            deadline: e.step.new_deadline().map(|d| d.to_string()),
            evidence: e.evidence.clone(),
            ..StepView::default()
        };
        let mut text = |key: &'static str, value: &str| {
            view.fields.insert(key, value.to_owned());
        };
        match &e.step {
            S::Onsite { note, .. } | S::Close { note } | S::Delist { note } => text("note", note),
            S::Extend { reason, .. } => text("reason", reason),
            S::Reinspect {
                note, escalation, ..
            } => {
                text("note", note);
                text("escalation", escalation);
            }
            S::List {
                authority, number, ..
            } => {
                text("authority", authority);
                text("number", number);
            }
            S::Plan {
                measures,
                funds,
                responsible,
                interim,
            } => {
                text("measures", measures);
                text("funds", funds);
                text("responsible", responsible);
                text("interim", interim);
            }
            S::Progress { text: report } => text("text", report),
        }
        match &e.step {
            S::Onsite { measure, .. } => {
                view.measure = Some(measure.code());
                view.basis = Some(measure.basis());
            }
            S::Reinspect { result, .. } => view.result = Some(result.code()),
            S::List { deadline, .. } => view.deadline = Some(deadline.to_string()),
            _ => {}
        }
        view
    }
}

/// A rectification (整改) in its closed loop.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Rectification)]
pub struct RectificationView {
    /// 整改措施.
    pub measures: String,
    /// 整改期限.
    #[schema(format = Date)]
    pub deadline: String,
    /// Who is responsible at the enterprise.
    pub responsible: String,
    /// Rectification state code.
    #[schema(value_type = schemas::RectificationState)]
    pub state: &'static str,
    /// SHA-256 of each evidence photo (整改佐证).
    #[schema(value_type = Vec<schemas::Sha256>)]
    pub evidence: Vec<String>,
    /// The re-inspection (复查), once recorded.
    pub reinspection: Option<ReinspectionView>,
    /// The finding's level when rectification was ordered (absent for an order recorded
    /// before the level was kept with it): a hazard ordered as major is closed by the
    /// supervisors even if lowered since.
    #[schema(value_type = Option<schemas::Level>)]
    pub ordered_level: Option<&'static str>,
}

/// A re-inspection.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Reinspection)]
pub struct ReinspectionView {
    /// `pass` 合格 or `fail` 不合格.
    #[schema(value_type = schemas::ReinspectionResult)]
    pub result: &'static str,
    /// What the inspector found.
    pub note: String,
    /// User id of the inspector.
    pub by: String,
    /// When (RFC 3339, device clock).
    #[schema(format = DateTime)]
    pub at: String,
}

/// A three-violation record (三违).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Violation)]
pub struct ViolationView {
    /// Kind code.
    #[schema(value_type = schemas::ViolationKind)]
    pub kind: &'static str,
    /// The post (岗位).
    pub post: String,
    /// The person.
    pub person: String,
}

/// A photo of a finding.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Photo)]
pub struct PhotoView {
    /// SHA-256 of the original (`/api/v1/blobs/{sha256}`).
    #[schema(value_type = schemas::Sha256)]
    pub sha256: String,
    /// SHA-256 of the thumbnail.
    #[schema(value_type = schemas::Sha256)]
    pub thumbnail: String,
    /// What it shows.
    pub caption: String,
}

/// A field in conflict.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Conflict)]
pub struct ConflictView {
    /// Path from the document root, e.g. `["findings", "<id>", "level"]`.
    pub path: Vec<String>,
    /// Every value, the one readers see first.
    pub values: Vec<ConflictValueView>,
}

/// One value of a conflict.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = ConflictValue)]
pub struct ConflictValueView {
    /// The value as text (what `keep` of a resolution names).
    pub value: String,
    /// User id of who wrote it.
    pub written_by: String,
    /// The device (actor id, hex).
    pub device: String,
    /// When, by the device's clock (RFC 3339); none when that clock was out of range.
    #[schema(format = DateTime)]
    pub device_time: Option<String>,
}

/// A case that amends another.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Amendment)]
pub struct AmendmentView {
    /// Its id.
    #[schema(format = Uuid)]
    pub id: String,
    /// When its visit began.
    #[schema(format = DateTime)]
    pub opened_at: String,
}

impl CaseView {
    /// The case of `detail` as the API shows it.
    pub fn of(detail: CaseDetail) -> CaseView {
        let case: &Case = &detail.case;
        CaseView {
            id: case.id.to_string(),
            enterprise: EnterpriseView {
                name: case.enterprise.name.clone(),
                credit_code: case.enterprise.credit_code.as_str().to_owned(),
                district: case.enterprise.district.as_str().to_owned(),
                district_name: case.enterprise.district.name(),
                industry: case.enterprise.industry.code(),
                risk_grade: case.enterprise.risk_grade.code(),
            },
            case_type: case.case_type.code(),
            district: case.district.as_str().to_owned(),
            district_name: case.district.name(),
            visible_to: case
                .visible_to
                .iter()
                .map(|d| d.as_str().to_owned())
                .collect(),
            team: case
                .team
                .iter()
                .map(|m| TeamMemberView {
                    user_id: m.user_id.clone(),
                    name: m.name.clone(),
                    department: m.department.clone(),
                    district: m.district.as_str().to_owned(),
                    district_name: m.district.name(),
                })
                .collect(),
            opened_at: case.opened_at.to_rfc3339(),
            opened_by: case.opened_by.clone(),
            state: case.state.code(),
            amends: case.amends.map(|id| id.to_string()),
            amends_confirmed: detail.amends_confirmed,
            review_events: case
                .review_events
                .iter()
                .map(|e| ReviewEventView {
                    kind: e.kind.clone(),
                    by: e.by.clone(),
                    at: e.at.clone(),
                    text: e.text.clone(),
                })
                .collect(),
            findings: case.findings.iter().map(finding).collect(),
            writs: case.writs.iter().map(WritView::from).collect(),
            document_id: DocumentId::of(case.id).to_string(),
            conflicts: detail
                .conflicts
                .iter()
                .map(|c| ConflictView {
                    path: c.path.clone(),
                    values: c
                        .values
                        .iter()
                        .map(|v| ConflictValueView {
                            value: v.value.to_string(),
                            written_by: v.written_by.clone(),
                            device: v.device.clone(),
                            device_time: chrono::DateTime::from_timestamp(v.device_time, 0)
                                .map(|t| t.to_rfc3339()),
                        })
                        .collect(),
                })
                .collect(),
            history: detail.history,
            amendments: detail
                .amendments
                .into_iter()
                .map(|(id, opened_at)| AmendmentView { id, opened_at })
                .collect(),
        }
    }
}

fn finding(f: &anjian_core::Finding) -> FindingView {
    FindingView {
        id: f.id.to_string(),
        description: f.description.clone(),
        level: f.level.code(),
        category: f.category.clone(),
        legal_basis: f.legal_basis.clone(),
        place: f.place.clone(),
        recorded_by: f.recorded_by.clone(),
        recorded_at: f.recorded_at.to_rfc3339(),
        rectification: f.rectification.as_ref().map(|r| RectificationView {
            measures: r.measures.clone(),
            deadline: r.deadline.to_string(),
            responsible: r.responsible.clone(),
            state: r.state.code(),
            evidence: r.evidence.iter().map(|p| p.sha256.clone()).collect(),
            reinspection: r.reinspection.as_ref().map(|re| ReinspectionView {
                result: re.result.code(),
                note: re.note.clone(),
                by: re.by.clone(),
                at: re.at.to_rfc3339(),
            }),
            ordered_level: r.ordered_level.map(|l| l.code()),
        }),
        violation: f.violation.as_ref().map(|v| ViolationView {
            kind: v.kind.code(),
            post: v.post.clone(),
            person: v.person.clone(),
        }),
        photos: f
            .photos
            .iter()
            .map(|p| PhotoView {
                sha256: p.sha256.clone(),
                thumbnail: p.thumbnail.clone(),
                caption: p.caption.clone(),
            })
            .collect(),
        events: f.events.iter().map(StepView::from).collect(),
    }
}
