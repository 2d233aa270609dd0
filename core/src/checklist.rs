//! Checklist templates (检查表): loading, validating and versioning the TOML files in
//! `checklists/` (format in `checklists/README.md`).
//!
//! A template's version is the SHA-256 of its canonical content, so a case records exactly
//! which questions it was answered against. `released.lock` remembers the text every item
//! id was released with: an id whose text changes is refused, because old answers would
//! then read as answers to a different question.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::codes::{Industry, Level};

coded_enum!(
    /// What a template is for.
    TemplateKind, "kind" {
        /// “三违”行为清单 by post (measure 10).
        ThreeViolations = "three_violations" / "三违行为清单",
        /// 特殊作业 (GB 30871-2022, measure 8).
        SpecialOperation = "special_operation" / "特殊作业",
        /// 重大事故隐患判定标准.
        MajorHazard = "major_hazard" / "重大事故隐患判定",
        /// Any other routine checklist.
        Routine = "routine" / "日常检查",
    }
);

coded_enum!(
    /// The special operation a template checks.
    Operation, "operation" {
        /// 动火作业
        HotWork = "hot_work" / "动火作业",
        /// 受限空间作业
        ConfinedSpace = "confined_space" / "受限空间作业",
        /// 高处作业
        WorkAtHeight = "work_at_height" / "高处作业",
        /// 吊装作业
        Lifting = "lifting" / "吊装作业",
        /// 临时用电作业
        TemporaryPower = "temporary_power" / "临时用电作业",
        /// 盲板抽堵作业
        BlindPlate = "blind_plate" / "盲板抽堵作业",
        /// 动土作业
        Excavation = "excavation" / "动土作业",
        /// 断路作业
        RoadClosure = "road_closure" / "断路作业",
        /// 检维修作业
        Maintenance = "maintenance" / "检维修作业",
        /// 开停车
        StartupShutdown = "startup_shutdown" / "开停车",
    }
);

/// A checklist template, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Template {
    /// Stable id; equals the file name without `.toml`.
    pub id: String,
    /// Chinese title.
    pub title: String,
    /// What it is for.
    pub kind: TemplateKind,
    /// The industry it belongs to, if one.
    pub industry: Option<Industry>,
    /// The special operation it checks, if one.
    pub operation: Option<Operation>,
    /// What it is for and what it is based on.
    pub description: String,
    /// The document the template is drawn from: its title, number and date of issue or
    /// entry into force (shown in the template's header).
    pub source: String,
    /// Items in display order.
    pub items: Vec<TemplateItem>,
    /// SHA-256 (hex) of the canonical content above.
    #[serde(skip)]
    pub version: String,
}

/// One question of a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateItem {
    /// Stable id, unique within the template, never reused for another question.
    pub id: String,
    /// What the inspector checks, phrased so that 符合 means compliant.
    pub text: String,
    /// 违章指挥 / 违章作业 / 违反劳动纪律 for three-violation lists, else a known category.
    pub category: String,
    /// Posts (岗位) it applies to.
    #[serde(default)]
    pub posts: Vec<String>,
    /// Legal or standard basis (依据条款).
    pub basis: String,
    /// The hazard level a 不符合 answer suggests.
    pub level: Level,
}

impl Template {
    /// The item with this id.
    pub fn item(&self, id: &str) -> Option<&TemplateItem> {
        self.items.iter().find(|item| item.id == id)
    }
}

/// What is wrong with a template file: which file, which item, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// The file name.
    pub file: String,
    /// The item id, when the problem is in one item.
    pub item: Option<String>,
    /// What is wrong and what would be right.
    pub problem: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.item {
            Some(item) => write!(f, "{}: item {item}: {}", self.file, self.problem),
            None => write!(f, "{}: {}", self.file, self.problem),
        }
    }
}

impl std::error::Error for TemplateError {}

/// The categories items may use (`checklists/categories.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Categories {
    /// The three kinds of violation.
    pub three_violations: BTreeSet<String>,
    /// Categories of every other kind of template.
    pub general: BTreeSet<String>,
}

/// Item texts as released (`checklists/released.lock`): template id → item id → text.
pub type Released = BTreeMap<String, BTreeMap<String, String>>;

/// A set of validated templates.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    templates: BTreeMap<String, Template>,
}

/// The template files shipped inside every app and server.
const BUILTIN: &[(&str, &str)] = &[
    (
        "hazchem-three-violations.toml",
        include_str!("../../checklists/hazchem-three-violations.toml"),
    ),
    (
        "non-coal-mine-three-violations.toml",
        include_str!("../../checklists/non-coal-mine-three-violations.toml"),
    ),
    (
        "construction-three-violations.toml",
        include_str!("../../checklists/construction-three-violations.toml"),
    ),
    (
        "industry-trade-three-violations.toml",
        include_str!("../../checklists/industry-trade-three-violations.toml"),
    ),
    (
        "hot-work.toml",
        include_str!("../../checklists/hot-work.toml"),
    ),
    (
        "confined-space.toml",
        include_str!("../../checklists/confined-space.toml"),
    ),
    (
        "work-at-height.toml",
        include_str!("../../checklists/work-at-height.toml"),
    ),
    (
        "lifting.toml",
        include_str!("../../checklists/lifting.toml"),
    ),
    (
        "temporary-power.toml",
        include_str!("../../checklists/temporary-power.toml"),
    ),
    (
        "blind-plate.toml",
        include_str!("../../checklists/blind-plate.toml"),
    ),
    (
        "excavation.toml",
        include_str!("../../checklists/excavation.toml"),
    ),
    (
        "road-closure.toml",
        include_str!("../../checklists/road-closure.toml"),
    ),
    (
        "maintenance.toml",
        include_str!("../../checklists/maintenance.toml"),
    ),
    (
        "startup-shutdown.toml",
        include_str!("../../checklists/startup-shutdown.toml"),
    ),
    (
        "hazchem-major-hazard-criteria.toml",
        include_str!("../../checklists/hazchem-major-hazard-criteria.toml"),
    ),
    (
        "city-gas-users.toml",
        include_str!("../../checklists/city-gas-users.toml"),
    ),
    (
        "city-gas-pipelines.toml",
        include_str!("../../checklists/city-gas-pipelines.toml"),
    ),
    (
        "industry-trade-major-hazard-management.toml",
        include_str!("../../checklists/industry-trade-major-hazard-management.toml"),
    ),
    (
        "metallurgy-major-hazard.toml",
        include_str!("../../checklists/metallurgy-major-hazard.toml"),
    ),
    (
        "dust-explosion-major-hazard.toml",
        include_str!("../../checklists/dust-explosion-major-hazard.toml"),
    ),
    (
        "confined-space-industry-trade.toml",
        include_str!("../../checklists/confined-space-industry-trade.toml"),
    ),
    (
        "work-safety-law-basics.toml",
        include_str!("../../checklists/work-safety-law-basics.toml"),
    ),
    (
        "construction-major-hazard.toml",
        include_str!("../../checklists/construction-major-hazard.toml"),
    ),
    (
        "building-materials-major-hazard.toml",
        include_str!("../../checklists/building-materials-major-hazard.toml"),
    ),
];
/// The `.toml` files in `checklists/` that are not templates.
const NOT_TEMPLATES: &[&str] = &["categories.toml", STANDARDS_FILE];
/// The list of standards and documents templates may cite.
pub const STANDARDS_FILE: &str = "standards.toml";
const BUILTIN_STANDARDS: &str = include_str!("../../checklists/standards.toml");
const BUILTIN_CATEGORIES: &str = include_str!("../../checklists/categories.toml");
const BUILTIN_RELEASED: &str = include_str!("../../checklists/released.lock");

/// The file names of the built-in templates.
pub fn builtin_files() -> impl Iterator<Item = &'static str> {
    BUILTIN.iter().map(|(name, _)| *name)
}

impl Catalog {
    /// The templates shipped with this build (validated once; a broken shipped template
    /// fails the test suite, never an app).
    pub fn builtin() -> Arc<Catalog> {
        static CATALOG: OnceLock<Arc<Catalog>> = OnceLock::new();
        CATALOG
            .get_or_init(|| {
                Arc::new(
                    Catalog::from_sources(BUILTIN, BUILTIN_CATEGORIES, BUILTIN_RELEASED)
                        .expect("shipped templates are validated by the test suite"),
                )
            })
            .clone()
    }

    /// Loads and validates every `*.toml` template in `dir`, with the `categories.toml`
    /// and `released.lock` beside them.
    pub fn load_dir(dir: &Path) -> Result<Catalog, TemplateError> {
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name)).map_err(|e| TemplateError {
                file: name.to_owned(),
                item: None,
                problem: format!("cannot be read: {e}"),
            })
        };
        let categories = read("categories.toml")?;
        let released = read("released.lock")?;
        let mut files = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| TemplateError {
            file: dir.display().to_string(),
            item: None,
            problem: format!("cannot be listed: {e}"),
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".toml") && !NOT_TEMPLATES.contains(&name.as_str()) {
                let text = read(&name)?;
                files.push((name, text));
            }
        }
        files.sort();
        let sources: Vec<(&str, &str)> = files
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        Catalog::from_sources(&sources, &categories, &released)
    }

    /// Validates templates given as (file name, TOML text).
    pub fn from_sources(
        sources: &[(&str, &str)],
        categories: &str,
        released: &str,
    ) -> Result<Catalog, TemplateError> {
        let categories: Categories = toml::from_str(categories).map_err(|e| TemplateError {
            file: "categories.toml".into(),
            item: None,
            problem: e.to_string(),
        })?;
        let released: Released = toml::from_str(released).map_err(|e| TemplateError {
            file: "released.lock".into(),
            item: None,
            problem: e.to_string(),
        })?;
        let mut templates = BTreeMap::new();
        for (file, text) in sources {
            let template = parse(file, text, &categories, &released)?;
            templates.insert(template.id.clone(), template);
        }
        Ok(Catalog { templates })
    }

    /// The template with this id.
    pub fn get(&self, id: &str) -> Option<&Template> {
        self.templates.get(id)
    }

    /// Every template, by id.
    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        self.templates.values()
    }

    /// The `released.lock` that records every item text of this catalog (for the
    /// maintainer who has checked that changed texts keep their meaning).
    pub fn released(&self) -> Released {
        self.templates
            .values()
            .map(|t| {
                (
                    t.id.clone(),
                    t.items
                        .iter()
                        .map(|i| (i.id.clone(), i.text.clone()))
                        .collect(),
                )
            })
            .collect()
    }
}

/// A template file as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    id: String,
    title: String,
    kind: String,
    industry: Option<String>,
    operation: Option<String>,
    description: String,
    source: String,
    items: Vec<TemplateItem>,
}

/// Parses and validates one template file.
pub fn parse(
    file: &str,
    text: &str,
    categories: &Categories,
    released: &Released,
) -> Result<Template, TemplateError> {
    let fail = |item: Option<&str>, problem: String| TemplateError {
        file: file.to_owned(),
        item: item.map(str::to_owned),
        problem,
    };
    let raw: RawTemplate = toml::from_str(text)
        .map_err(|e| fail(None, format!("invalid TOML: {}", e.to_string().trim())))?;
    let valid_id = |id: &str| {
        !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if !valid_id(&raw.id) {
        return Err(fail(
            None,
            format!("id {:?} must be lowercase letters, digits and '-'", raw.id),
        ));
    }
    if file.strip_suffix(".toml") != Some(raw.id.as_str()) {
        return Err(fail(
            None,
            format!("id {:?} must equal the file name without .toml", raw.id),
        ));
    }
    for (field, value) in [
        ("title", &raw.title),
        ("description", &raw.description),
        ("source", &raw.source),
    ] {
        if value.trim().is_empty() {
            return Err(fail(None, format!("{field} is empty")));
        }
    }
    if !has_year(&raw.source) {
        return Err(fail(
            None,
            format!(
                "source {:?} names no date; give the document's date of issue or entry into force",
                raw.source
            ),
        ));
    }
    let kind: TemplateKind = raw
        .kind
        .parse()
        .map_err(|e: crate::Error| fail(None, e.to_string()))?;
    let industry = raw
        .industry
        .as_deref()
        .map(str::parse::<Industry>)
        .transpose()
        .map_err(|e| fail(None, e.to_string()))?;
    let operation = raw
        .operation
        .as_deref()
        .map(str::parse::<Operation>)
        .transpose()
        .map_err(|e| fail(None, e.to_string()))?;
    if operation.is_some() != (kind == TemplateKind::SpecialOperation) {
        return Err(fail(
            None,
            "operation is required for special_operation templates and only there".into(),
        ));
    }
    if raw.items.is_empty() {
        return Err(fail(None, "a template needs at least one item".into()));
    }
    let mut seen = BTreeSet::new();
    let was_released = released.get(&raw.id);
    for item in &raw.items {
        let at = Some(item.id.as_str());
        if !valid_id(&item.id) {
            return Err(fail(
                at,
                "item id must be lowercase letters, digits and '-'".into(),
            ));
        }
        if !seen.insert(item.id.as_str()) {
            return Err(fail(
                at,
                "duplicate item id; every item needs its own".into(),
            ));
        }
        if item.text.trim().is_empty() {
            return Err(fail(at, "text is empty".into()));
        }
        if item.basis.trim().is_empty() {
            return Err(fail(
                at,
                "basis is empty; cite the law or standard (依据条款)".into(),
            ));
        }
        let allowed = if kind == TemplateKind::ThreeViolations {
            &categories.three_violations
        } else {
            &categories.general
        };
        if !allowed.contains(&item.category) {
            return Err(fail(
                at,
                format!(
                    "unknown category {:?}; use one of {} (or add it to categories.toml)",
                    item.category,
                    allowed.iter().cloned().collect::<Vec<_>>().join("、")
                ),
            ));
        }
        if kind == TemplateKind::ThreeViolations && item.posts.iter().all(|p| p.trim().is_empty()) {
            return Err(fail(
                at,
                "a three-violation item needs the posts (岗位) it applies to".into(),
            ));
        }
        if kind == TemplateKind::MajorHazard && item.level != Level::Major {
            return Err(fail(
                at,
                "every item of a major_hazard template is level \"major\"".into(),
            ));
        }
        if let Some(old) = was_released.and_then(|items| items.get(&item.id))
            && *old != item.text
        {
            return Err(fail(
                at,
                format!(
                    "the id was released for {old:?} and now reads {:?}; give a changed requirement a new id, or, \
                     if the meaning is the same, record the new text in released.lock",
                    item.text
                ),
            ));
        }
    }
    let mut template = Template {
        id: raw.id,
        title: raw.title,
        kind,
        industry,
        operation,
        description: raw.description,
        source: raw.source,
        items: raw.items,
        version: String::new(),
    };
    let canonical = serde_json::to_vec(&template).expect("a template always serialises");
    template.version = hex::encode(Sha256::digest(&canonical));
    Ok(template)
}

/// Whether `text` holds a year: four ASCII digits starting 19 or 20.
fn has_year(text: &str) -> bool {
    text.as_bytes()
        .windows(4)
        .any(|w| w.iter().all(u8::is_ascii_digit) && (w.starts_with(b"19") || w.starts_with(b"20")))
}

/// The standards and documents templates may cite (`checklists/standards.toml`): those in
/// force, and those replaced, each with its successor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Standards {
    /// Standards and documents in force.
    pub current: Vec<Standard>,
    /// Standards and documents replaced by another.
    #[serde(default)]
    pub superseded: Vec<SupersededStandard>,
}

/// A standard or document in force.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Standard {
    /// Its number (`GB 30871-2022`, `应急管理部令第10号`, `安监总管三〔2017〕121号`); laws
    /// without one are known by title only.
    #[serde(default)]
    pub code: Option<String>,
    /// Its Chinese title, as cited between 《》.
    pub title: String,
    /// Date of entry into force where known, else of issue (`2022-10-01`, `2017-11-13`).
    pub date: String,
}

/// A standard or document no longer in force.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupersededStandard {
    /// Its number, if it has one.
    #[serde(default)]
    pub code: Option<String>,
    /// Its title, if citing it by title alone would be wrong.
    #[serde(default)]
    pub title: Option<String>,
    /// What replaced it (a `code` or `title` of the current list).
    pub successor: String,
}

/// A standard's number as cited: `GB/T 33579`, `TSG 81-2022`, `JGJ/T 46-2024`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StandardNumber {
    prefix: String,
    number: String,
    year: Option<String>,
}

impl StandardNumber {
    /// Whether a citation (`self`, perhaps without a year) names `entry`.
    fn names(&self, entry: &StandardNumber) -> bool {
        self.prefix == entry.prefix
            && self.number == entry.number
            && (self.year.is_none() || self.year == entry.year)
    }
}

impl fmt::Display for StandardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.prefix, self.number)?;
        match &self.year {
            Some(year) => write!(f, "-{year}"),
            None => Ok(()),
        }
    }
}

/// The standard numbers in `text`: an upper-case prefix of two to four letters (with
/// `/T` or `/Z`), a space or none, a number (`30871`, `6067.1`, `N0001`) and an optional
/// `-year`.
fn standard_numbers(text: &str) -> Vec<StandardNumber> {
    let chars: Vec<char> = text.chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let starts_word = i == 0 || !chars[i - 1].is_ascii_alphanumeric();
        if !(starts_word && chars[i].is_ascii_uppercase()) {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < chars.len() && chars[j].is_ascii_uppercase() {
            j += 1;
        }
        let letters = j - i;
        let mut prefix: String = chars[i..j].iter().collect();
        if j + 1 < chars.len() && chars[j] == '/' && matches!(chars[j + 1], 'T' | 'Z') {
            prefix.push('/');
            prefix.push(chars[j + 1]);
            j += 2;
        }
        if !(2..=4).contains(&letters) {
            i = j.max(i + 1);
            continue;
        }
        let mut k = j;
        if k < chars.len() && chars[k] == ' ' {
            k += 1;
        }
        let start = k;
        if k + 1 < chars.len() && chars[k].is_ascii_uppercase() && chars[k + 1].is_ascii_digit() {
            k += 1;
        }
        if k >= chars.len() || !chars[k].is_ascii_digit() {
            i = j.max(i + 1);
            continue;
        }
        while k < chars.len()
            && (chars[k].is_ascii_digit()
                || (chars[k] == '.' && chars.get(k + 1).is_some_and(char::is_ascii_digit)))
        {
            k += 1;
        }
        let number: String = chars[start..k].iter().collect();
        let mut year = None;
        if k + 4 < chars.len()
            && chars[k] == '-'
            && chars[k + 1..k + 5].iter().all(char::is_ascii_digit)
        {
            year = Some(chars[k + 1..k + 5].iter().collect());
            k += 5;
        }
        found.push(StandardNumber {
            prefix,
            number,
            year,
        });
        i = k;
    }
    found
}

/// Whether `c` is a CJK ideograph (the characters of an issuer's name).
fn is_han(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c)
}

/// The document numbers in `text`: `安监总管三〔2017〕121号` and `应急管理部令第10号`.
fn document_numbers(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let issuer_start = |end: usize| {
        let mut s = end;
        while s > 0 && is_han(chars[s - 1]) {
            s -= 1;
        }
        s
    };
    let digits_then_hao = |from: usize| {
        let mut k = from;
        while k < chars.len() && chars[k].is_ascii_digit() {
            k += 1;
        }
        (k > from && chars.get(k) == Some(&'号')).then_some(k + 1)
    };
    let mut found = Vec::new();
    for i in 0..chars.len() {
        let end = if chars[i] == '〔' {
            let year_end = i + 5;
            if year_end < chars.len()
                && chars[i + 1..year_end].iter().all(char::is_ascii_digit)
                && chars[year_end] == '〕'
            {
                digits_then_hao(year_end + 1)
            } else {
                None
            }
        } else if chars[i] == '令' && chars.get(i + 1) == Some(&'第') {
            digits_then_hao(i + 2)
        } else {
            None
        };
        if let Some(end) = end {
            let start = issuer_start(i);
            if start < i || chars[i] == '令' {
                found.push(chars[start..end].iter().collect());
            }
        }
    }
    found
}

/// The titles cited between 《》 in `text`.
fn titles(text: &str) -> Vec<&str> {
    text.split('《')
        .skip(1)
        .filter_map(|rest| rest.split_once('》').map(|(title, _)| title))
        .collect()
}

impl Standards {
    /// The list shipped with this build.
    pub fn builtin() -> Result<Standards, TemplateError> {
        Standards::parse(BUILTIN_STANDARDS)
    }

    /// Parses a `standards.toml`.
    pub fn parse(text: &str) -> Result<Standards, TemplateError> {
        toml::from_str(text).map_err(|e| TemplateError {
            file: STANDARDS_FILE.into(),
            item: None,
            problem: e.to_string(),
        })
    }

    /// What is wrong with the citations in `text` (a basis, description or source): every
    /// standard number, document number and 《title》 it cites must be on the current
    /// list. A superseded one is named with its successor.
    pub fn check(&self, text: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let replaced = |matches: &dyn Fn(&SupersededStandard) -> bool| {
            self.superseded
                .iter()
                .find(|s| matches(s))
                .map(|s| s.successor.clone())
        };
        let current_numbers: Vec<StandardNumber> = self
            .current
            .iter()
            .filter_map(|s| s.code.as_deref())
            .flat_map(standard_numbers)
            .collect();
        for cited in standard_numbers(text) {
            if current_numbers.iter().any(|entry| cited.names(entry)) {
                continue;
            }
            let successor = replaced(&|s| {
                s.code
                    .as_deref()
                    .map(standard_numbers)
                    .is_some_and(|codes| codes.iter().any(|entry| cited.names(entry)))
            });
            problems.push(match successor {
                Some(successor) => {
                    format!("cites {cited}, which is superseded by {successor}; cite {successor}")
                }
                None => format!(
                    "cites {cited}, which is not on the current list in {STANDARDS_FILE}; \
                     add it there once checked, or cite the standard in force"
                ),
            });
        }
        for cited in document_numbers(text) {
            if self
                .current
                .iter()
                .any(|s| s.code.as_deref() == Some(&cited))
            {
                continue;
            }
            problems.push(match replaced(&|s| s.code.as_deref() == Some(&cited)) {
                Some(successor) => {
                    format!("cites {cited}, which is superseded by {successor}; cite {successor}")
                }
                None => {
                    format!("cites {cited}, which is not on the current list in {STANDARDS_FILE}")
                }
            });
        }
        for cited in titles(text) {
            if self.current.iter().any(|s| s.title == cited) {
                continue;
            }
            problems.push(match replaced(&|s| s.title.as_deref() == Some(cited)) {
                Some(successor) => format!(
                    "cites 《{cited}》, which is superseded by {successor}; cite {successor}"
                ),
                None => format!(
                    "cites 《{cited}》, which is not on the current list in {STANDARDS_FILE}"
                ),
            });
        }
        problems
    }

    /// Every citation problem of a catalog: in each template's description and source and
    /// in each item's basis.
    pub fn check_catalog(&self, catalog: &Catalog) -> Vec<TemplateError> {
        let mut errors = Vec::new();
        for template in catalog.templates() {
            let file = format!("{}.toml", template.id);
            for (field, text) in [
                ("description", &template.description),
                ("source", &template.source),
            ] {
                for problem in self.check(text) {
                    errors.push(TemplateError {
                        file: file.clone(),
                        item: None,
                        problem: format!("{field} {problem}"),
                    });
                }
            }
            for item in &template.items {
                for problem in self.check(&item.basis) {
                    errors.push(TemplateError {
                        file: file.clone(),
                        item: Some(item.id.clone()),
                        problem: format!("basis {problem}"),
                    });
                }
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(text: &str) -> Vec<String> {
        standard_numbers(text)
            .iter()
            .map(|n| n.to_string())
            .collect()
    }

    #[test]
    fn standard_numbers_are_found_with_and_without_year() {
        assert_eq!(
            numbers(
                "GB 30871-2022 5.2.1；TSG N0001-2017；JGJ/T 46-2024；GB/T 33579《…》；GB 6067.1-2010"
            ),
            [
                "GB 30871-2022",
                "TSG N0001-2017",
                "JGJ/T 46-2024",
                "GB/T 33579",
                "GB 6067.1-2010"
            ]
        );
        assert!(numbers("照明不大于36V，间距不小于5m，LEL").is_empty());
    }

    #[test]
    fn document_numbers_and_titles_are_found() {
        assert_eq!(
            document_numbers(
                "《化工和危险化学品生产经营单位重大生产安全事故隐患判定标准（试行）》（安监总管三〔2017〕121号）第十八项；《工贸企业重大事故隐患判定标准》（应急管理部令第10号）第三条（二）"
            ),
            ["安监总管三〔2017〕121号", "应急管理部令第10号"]
        );
        assert_eq!(
            titles("《中华人民共和国安全生产法》第三十条；《燃气工程项目规范》GB 55009-2021"),
            ["中华人民共和国安全生产法", "燃气工程项目规范"]
        );
    }
}
