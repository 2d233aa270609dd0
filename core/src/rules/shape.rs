//! The shape of a case document (docs/schema.md), as the rule book checks it: every value
//! at a path the schema names, of the type the schema gives, under keys of the right
//! form. Anything else (an unknown key, a number where a string belongs, a map nested
//! where none is expected) is refused, whoever sent it.

use crate::codes::{
    AnswerResult, CaseId, ChecklistId, DistrictCode, FindingId, HazardAction, Level, OnsiteMeasure,
    RectificationState, ReinspectionResult, ReviewAction, ReviewState, SignerRole, ViolationKind,
    WritId, WritKind, is_sha256,
};
use crate::paths::{Leaf, Seg};

use super::{Refusal, Rule};

/// The most bytes one string value may hold: far more than anyone types into a field
/// (some 20,000 Chinese characters), and a bound on what each value written costs every
/// reader of the case, since a case keeps every value ever written. (A collaborative
/// text grows a character per operation, and operations are bounded per change and per
/// case.)
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// What the schema expects at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// A string, or a collaborative text: the stock JavaScript client writes every string
    /// as a text, the apps write descriptions so, and readers read both alike.
    Str,
    Int,
    /// A number, integer or float (coordinates).
    Num,
    Map,
    List,
    /// A string holding one of the codes of a coded field.
    Code(Coded),
}

/// The coded fields whose every value (conflicting ones too) must be a valid code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coded {
    Level,
    Rectification,
    Violation,
    ReviewState,
    ReviewAction,
    Answer,
    District,
    Date,
    HazardAction,
    Reinspection,
    Measure,
    Sha256,
    WritKind,
    Signer,
    /// A case id as the apps write it (lower-case hyphenated UUID, nothing around it).
    CaseId,
}

impl Coded {
    fn accepts(self, value: &str) -> bool {
        match self {
            Coded::Level => value.parse::<Level>().is_ok(),
            Coded::Rectification => value.parse::<RectificationState>().is_ok(),
            Coded::Violation => value.parse::<ViolationKind>().is_ok(),
            Coded::ReviewState => value.parse::<ReviewState>().is_ok(),
            Coded::ReviewAction => value.parse::<ReviewAction>().is_ok(),
            Coded::Answer => value.parse::<AnswerResult>().is_ok(),
            Coded::District => value
                .parse::<DistrictCode>()
                .is_ok_and(|d| d.as_str() == value),
            Coded::Date => crate::codes::parse_day(value).is_some(),
            Coded::HazardAction => value.parse::<HazardAction>().is_ok(),
            Coded::Reinspection => value.parse::<ReinspectionResult>().is_ok(),
            Coded::Measure => value.parse::<OnsiteMeasure>().is_ok(),
            Coded::Sha256 => is_sha256(value),
            Coded::WritKind => value.parse::<WritKind>().is_ok(),
            Coded::Signer => value.parse::<SignerRole>().is_ok(),
            Coded::CaseId => canonical::<CaseId>(value),
        }
    }
}

/// Whether `value` is an id written exactly as the apps write it. Ids parse leniently
/// (spaces around them, upper case, braces); a record under a key that reads as another's
/// id would pass every rule keyed on that id while the projections and the readers found
/// two records of one id.
fn canonical<T: std::str::FromStr + std::fmt::Display>(value: &str) -> bool {
    value.parse::<T>().is_ok_and(|id| id.to_string() == value)
}

/// A path step as the patterns below read it.
#[derive(Debug, Clone, Copy)]
enum P<'a> {
    K(&'a str),
    I,
}

use P::{I, K};

/// Checks a value written at `path` against the schema.
pub(super) fn check(path: &[Seg], value: &Leaf) -> Result<(), Refusal> {
    let pattern: Vec<P<'_>> = path
        .iter()
        .map(|s| match s {
            Seg::Key(k) => K(k),
            Seg::Index(_) => I,
        })
        .collect();
    let shown = || {
        path.iter()
            .map(|s| match s {
                Seg::Key(k) => k.clone(),
                Seg::Index(i) => i.to_string(),
            })
            .collect::<Vec<_>>()
            .join("/")
    };
    let Some(want) = expected(&pattern) else {
        return Err(Refusal::new(
            Rule::Shape,
            format!(
                "检查记录中不应有“{}” (the case schema has no such field)",
                shown()
            ),
        ));
    };
    if let Leaf::Str(text) = value
        && text.len() > MAX_VALUE_BYTES
    {
        return Err(Refusal::new(
            Rule::Shape,
            format!(
                "检查记录的“{}”内容过长（{} 字节，上限 {MAX_VALUE_BYTES} 字节） (a value holds at most {MAX_VALUE_BYTES} bytes)",
                shown(),
                text.len()
            ),
        ));
    }
    let fits = match (want, value) {
        (Want::Str, Leaf::Str(_) | Leaf::Text(_)) => true,
        (Want::Int, Leaf::Int(_) | Leaf::Uint(_)) => true,
        (Want::Num, Leaf::Int(_) | Leaf::Uint(_) | Leaf::F64(_)) => true,
        (Want::Map, Leaf::Map) => true,
        (Want::List, Leaf::List) => true,
        (Want::Code(code), Leaf::Str(s) | Leaf::Text(s)) => code.accepts(s),
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(Refusal::new(
            Rule::Shape,
            format!(
                "检查记录的“{}”类型不对 (expected {want:?}, found {value:?})",
                shown()
            ),
        ))
    }
}

/// Whether the value at `path` names who did something (`recorded_by`, `added_by`, …):
/// a new value there must name the change's author.
pub(super) fn is_attribution(path: &[Seg]) -> bool {
    let keys: Vec<Option<&str>> = path.iter().map(Seg::key).collect();
    matches!(
        keys.as_slice(),
        [Some("opened_by")]
            | [Some("findings"), _, Some("recorded_by")]
            | [Some("findings"), _, Some("removed"), Some("by")]
            | [
                Some("findings"),
                _,
                Some("rectification"),
                Some("reinspected_by")
            ]
            | [Some("checklists"), _, Some("attached_by")]
            | [
                Some("checklists"),
                _,
                Some("answers"),
                _,
                Some("answered_by")
            ]
            | [Some("review"), Some("events"), None, Some("by")]
            | [Some("findings"), _, Some("events"), None, Some("by")]
            | [Some("writs"), _, Some("created_by")]
            | [
                Some("writs"),
                _,
                Some("seal" | "refusal" | "issued" | "voided" | "numbered" | "printed"),
                Some("by")
            ]
            | [Some("writs"), _, Some("signatures"), None, Some("by")]
    ) || (keys.len() >= 3
        && keys[keys.len() - 1] == Some("added_by")
        && keys[keys.len() - 2].is_none()
        && matches!(keys[keys.len() - 3], Some("photos" | "evidence")))
}

fn expected(path: &[P<'_>]) -> Option<Want> {
    use Want::*;
    Some(match path {
        [K("schema")] => Int,
        [K("district")] => Code(Coded::District),
        [K("case_id" | "amends")] => Code(Coded::CaseId),
        [K("kind" | "type" | "opened_at" | "opened_by")] => Str,
        [K("enterprise")] => Map,
        [
            K("enterprise"),
            K("name" | "credit_code" | "district" | "industry" | "risk_grade"),
        ] => Str,
        [K("visible_to")] => List,
        [K("visible_to"), I] => Code(Coded::District),
        [K("team")] => Map,
        [K("team"), K(user)] if is_name(user) => Map,
        [K("team"), K(user), K("name" | "department")] if is_name(user) => Str,
        [K("team"), K(user), K("district")] if is_name(user) => Code(Coded::District),
        [K("location")] => Map,
        [K("location"), K("latitude" | "longitude")] => Num,
        [K("findings")] => Map,
        [K("findings"), K(id), rest @ ..] if canonical::<FindingId>(id) => finding(rest)?,
        [K("checklists")] => Map,
        [K("checklists"), K(id), rest @ ..] if canonical::<ChecklistId>(id) => checklist(rest)?,
        [K("writs")] => Map,
        [K("writs"), K(id), rest @ ..] if canonical::<WritId>(id) => writ(rest)?,
        [K("review")] => Map,
        [K("review"), K("state")] => Code(Coded::ReviewState),
        [K("review"), K("events")] => List,
        [K("review"), K("events"), I] => Map,
        [K("review"), K("events"), I, K("kind")] => Code(Coded::ReviewAction),
        [K("review"), K("events"), I, K("by" | "at" | "text")] => Str,
        _ => return None,
    })
}

fn finding(path: &[P<'_>]) -> Option<Want> {
    use Want::*;
    Some(match path {
        [] => Map,
        [K("description")] => Str,
        [K("level")] => Code(Coded::Level),
        [K("category" | "legal_basis" | "place" | "recorded_by" | "recorded_at")] => Str,
        [K("photos"), rest @ ..] => photos(rest)?,
        [K("rectification")] => Map,
        [K("rectification"), K("state")] => Code(Coded::Rectification),
        [K("rectification"), K("deadline")] => Code(Coded::Date),
        [K("rectification"), K("ordered_level")] => Code(Coded::Level),
        [
            K("rectification"),
            K(
                "measures" | "responsible" | "reinspection_note" | "reinspected_by"
                | "reinspected_at",
            ),
        ] => Str,
        [K("rectification"), K("evidence"), rest @ ..] => photos(rest)?,
        [K("events"), rest @ ..] => follow_up(rest)?,
        [K("violation")] => Map,
        [K("violation"), K("kind")] => Code(Coded::Violation),
        [K("violation"), K("post" | "person")] => Str,
        [K("source")] => Map,
        [K("source"), K("checklist" | "item")] => Str,
        [K("removed")] => Map,
        [K("removed"), K("by" | "at")] => Str,
        _ => return None,
    })
}

/// An enforcement document.
fn writ(path: &[P<'_>]) -> Option<Want> {
    use Want::*;
    Some(match path {
        [] => Map,
        [K("kind")] => Code(Coded::WritKind),
        [K("created_by" | "created_at" | "replaces")] => Str,
        [K("fields")] => Map,
        [K("fields"), K(key)] if is_name(key) => Str,
        [K("seal")] => Map,
        [K("seal"), K("number" | "block" | "by" | "at")] => Str,
        [K("seal"), K("sha256")] => Code(Coded::Sha256),
        [K("seal"), K("provisional")] => Int,
        [K("signatures")] => List,
        [K("signatures"), I] => Map,
        [K("signatures"), I, K("role")] => Code(Coded::Signer),
        [
            K("signatures"),
            I,
            K("user" | "name" | "certificate_no" | "by" | "at"),
        ] => Str,
        [K("signatures"), I, K("image" | "sha256")] => Code(Coded::Sha256),
        [K("refusal")] => Map,
        [K("refusal"), K("reason" | "witness" | "by" | "at")] => Str,
        [K("refusal"), K("photo")] => Code(Coded::Sha256),
        [K("issued")] => Map,
        [K("issued"), K("by" | "at")] => Str,
        [K("voided")] => Map,
        [K("voided"), K("reason" | "by" | "at")] => Str,
        [K("printed")] => Map,
        [K("printed"), K("sha256")] => Code(Coded::Sha256),
        [K("printed"), K("by" | "at")] => Str,
        [K("numbered")] => Map,
        [K("numbered"), K("number" | "block" | "by" | "at")] => Str,
        _ => return None,
    })
}

/// A finding's follow-up: a list of steps.
fn follow_up(path: &[P<'_>]) -> Option<Want> {
    use Want::*;
    Some(match path {
        [] => List,
        [I] => Map,
        [I, K("kind")] => Code(Coded::HazardAction),
        [I, K("result")] => Code(Coded::Reinspection),
        [I, K("measure")] => Code(Coded::Measure),
        [I, K("deadline" | "previous_deadline")] => Code(Coded::Date),
        [
            I,
            K(
                "by" | "at" | "note" | "basis" | "reason" | "escalation" | "authority" | "number"
                | "measures" | "funds" | "responsible" | "interim" | "text",
            ),
        ] => Str,
        [I, K("evidence")] => List,
        [I, K("evidence"), I] => Code(Coded::Sha256),
        _ => return None,
    })
}

fn checklist(path: &[P<'_>]) -> Option<Want> {
    use Want::*;
    Some(match path {
        [] => Map,
        [K("template" | "version" | "title" | "kind" | "attached_by" | "attached_at")] => Str,
        [K("items")] => Map,
        [K("items"), K(item)] if is_name(item) => Map,
        [K("items"), K(item), K("text" | "category" | "basis")] if is_name(item) => Str,
        [K("items"), K(item), K("level")] if is_name(item) => Code(Coded::Level),
        [K("items"), K(item), K("order")] if is_name(item) => Int,
        [K("items"), K(item), K("posts")] if is_name(item) => List,
        [K("items"), K(item), K("posts"), I] if is_name(item) => Str,
        [K("answers")] => Map,
        [K("answers"), K(item)] if is_name(item) => Map,
        [K("answers"), K(item), K("result")] if is_name(item) => Code(Coded::Answer),
        [
            K("answers"),
            K(item),
            K("note" | "post" | "person" | "answered_by" | "answered_at" | "finding"),
        ] if is_name(item) => Str,
        [K("answers"), K(item), K("photos"), rest @ ..] if is_name(item) => photos(rest)?,
        _ => return None,
    })
}

/// A list of photo records.
fn photos(path: &[P<'_>]) -> Option<Want> {
    use Want::*;
    Some(match path {
        [] => List,
        [I] => Map,
        [I, K("sha256" | "thumbnail")] => Code(Coded::Sha256),
        [
            I,
            K("caption" | "mime" | "captured_at" | "added_by" | "added_at"),
        ] => Str,
        [I, K("size" | "width" | "height")] => Int,
        [I, K("latitude" | "longitude")] => Num,
        _ => return None,
    })
}

/// A user id or checklist item id used as a map key: 1 to 64 characters, no control
/// characters.
fn is_name(key: &str) -> bool {
    (1..=64).contains(&key.chars().count()) && !key.chars().any(char::is_control)
}
