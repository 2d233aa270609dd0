//! `Store`: the offline case store an inspector's app holds, over one SQLite file.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use automerge::{ActorId, AutoCommit};
use chrono::{DateTime, FixedOffset, Local, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::checklist::{Catalog, Template, TemplateKind};
use crate::codes::{AnswerResult, RectificationState, ReviewAction, ViolationKind};
use crate::codes::{CaseId, ChecklistId, CreditCode, DistrictCode, FindingId};
use crate::db::{self, LoadedDoc};
use crate::document::{self, CaseInit, ChangeNote};
use crate::error::{Error, Result};
use crate::model::{
    AnswerInput, Case, CaseSummary, Conflict, Enterprise, FindingEdit, FindingSummary, HazardStep,
    HistoryEntry, Identity, ItemStat, NewCase, NewFinding, RectificationOrder, Resolution,
    TeamMember, Violation,
};
use crate::photo::PhotoLimits;
use crate::projections::{self, CaseQuery, FindingQuery};
use crate::rules;
use crate::schema;
use crate::signing::{ChangeSignature, KeyAlgorithm, PublicKey, SignedCase, Signer, SoftwareKey};
use crate::sync::intake;
use sha2::Digest;

mod peer;
mod photos;
mod proofs;
mod reenter;
mod sync;
mod writs;

pub use peer::{MergedCase, PEER_FORMAT, PEER_MESSAGE_BYTES, PeerReceived, PeerSession};
pub use photos::UNATTACHED_HOURS;

/// How many case documents stay loaded in memory.
const CACHE_CAPACITY: usize = 64;

/// How long sync waits for the server to connect or answer before reporting a network
/// error (the inspector can sync again once the signal is back).
pub const DEFAULT_NETWORK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The offline store of one inspector's device: enterprises, cases as Automerge
/// documents, and query projections, in one SQLite file.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    identity: Identity,
    actor: ActorId,
    cache: DocCache,
    catalog: Arc<Catalog>,
    photo_limits: PhotoLimits,
    upload_originals: bool,
    network_timeout: std::time::Duration,
    clock: Clock,
    ids: Ids,
    /// Cases whose next sync message asks the server for every change again (changes it
    /// sent had to wait for ones it skipped).
    rewind: std::collections::HashSet<CaseId>,
    /// What signs every change this device commits.
    signer: Arc<dyn Signer>,
}

/// Which projections a write has to refresh.
pub(crate) enum Touched {
    Case,
    Finding(FindingId),
    /// A finding just added: its projection is known from the input, no need to read it.
    NewFinding(Box<document::FindingProjection>),
}

impl Store {
    /// Opens the store at `path`, creating it if the file does not exist, for the
    /// inspector `identity`. The device's actor id is created once and kept in the file.
    pub fn open(path: impl AsRef<Path>, identity: Identity) -> Result<Store> {
        Self::open_with_catalog(path, identity, Catalog::builtin())
    }

    /// Opens the store with checklist templates other than the built-in ones (templates
    /// distributed after the app was built).
    pub fn open_with_catalog(
        path: impl AsRef<Path>,
        identity: Identity,
        catalog: Arc<Catalog>,
    ) -> Result<Store> {
        Self::open_with_ids(path, identity, catalog, random_ids())
    }

    /// Opens the store as `open_with_catalog` does, taking every new identifier (the
    /// device's actor id on first open, then cases, findings, checklists) from `ids`: a
    /// seeded source makes a simulated district replay exactly.
    pub fn open_with_ids(
        path: impl AsRef<Path>,
        identity: Identity,
        catalog: Arc<Catalog>,
        ids: Ids,
    ) -> Result<Store> {
        let path = path.as_ref().to_owned();
        let opened = schema::open(&path)?;
        let mut store = Self::from_connection(opened, path, identity, ids)?;
        store.catalog = catalog;
        Ok(store)
    }

    pub(crate) fn from_connection(
        opened: schema::Opened,
        path: PathBuf,
        identity: Identity,
        ids: Ids,
    ) -> Result<Store> {
        let mut conn = opened.conn;
        if opened.rebuild_projections {
            projections::rebuild_projections(&mut conn)?;
        }
        let key_held = key_path(&path).try_exists().map_err(|e| {
            Error::Corrupt(format!(
                "device key file {}: {e}",
                key_path(&path).display()
            ))
        })?;
        if !key_held {
            // A store whose key is gone was restored from a backup (the key never goes
            // into one): it becomes a new device. The lost phone may have written changes
            // after the backup under the old actor id, and each change must be its
            // actor's next; the server binds the new actor and key at the next sign-in.
            let forgot = conn.execute("DELETE FROM meta WHERE key = 'actor_id'", [])?;
            if forgot > 0 {
                tracing::warn!(path = %path.display(), "store restored without its key: a new device");
            }
        }
        let actor = device_actor(&conn, &ids)?;
        let signer = Arc::new(SoftwareKey::load_or_create(
            &key_path(&path),
            KeyAlgorithm::Ed25519,
            || key_seed(&ids),
        )?);
        let tx = conn.transaction()?;
        for (key, value) in [
            ("user_id", identity.user_id.as_str()),
            ("user_name", identity.name.as_str()),
            ("department", identity.department.as_str()),
            ("district", identity.district.as_str()),
            ("role", identity.role.code()),
        ] {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value WHERE value <> excluded.value",
                params![key, value],
            )?;
        }
        tx.commit()?;
        tracing::debug!(path = %path.display(), device = %actor, "store opened");
        Ok(Store {
            conn,
            path,
            identity,
            actor,
            cache: DocCache::default(),
            catalog: Catalog::builtin(),
            photo_limits: PhotoLimits::default(),
            upload_originals: true,
            network_timeout: DEFAULT_NETWORK_TIMEOUT,
            clock: system_clock(),
            ids,
            rewind: std::collections::HashSet::new(),
            signer,
        })
    }

    /// The public key this device signs its changes with (the server records it at
    /// sign-in).
    pub fn public_key(&self) -> PublicKey {
        self.signer.public_key()
    }

    /// Signs this device's changes from now on with `signer` (a key in the platform's key
    /// store) instead of the store's own key file. Sign in again afterwards, so that the
    /// server records the new key; changes signed before stay verifiable with the old one.
    pub fn set_signer(&mut self, signer: Arc<dyn Signer>) {
        self.signer = signer;
    }

    /// The inspector using this store.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// This device's Automerge actor id, hex; stable for the life of the file.
    pub fn device_id(&self) -> String {
        self.actor.to_hex_string()
    }

    /// Sets the clock the store stamps records and changes with (the phone's clock by
    /// default): for demos and training that replay visits on their days. The server
    /// keeps its own receipt time beside it whatever the device says.
    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    /// A new identifier (see `open_with_ids`).
    fn new_id(&self) -> uuid::Uuid {
        (self.ids)()
    }

    /// A new identifier of a record this device makes (a case, a finding, a checklist, a
    /// document), bound to the device (`codes::bound_id`).
    fn new_record_id(&self) -> uuid::Uuid {
        crate::codes::bound_id(self.new_id(), self.actor.to_bytes())
    }

    /// The device clock now (see `set_clock`).
    pub fn now(&self) -> DateTime<FixedOffset> {
        (self.clock)()
    }

    /// Sets the limits photos are checked against (the defaults suit phone cameras).
    pub fn set_photo_limits(&mut self, limits: PhotoLimits) {
        self.photo_limits = limits;
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Registers an enterprise, or updates the one with the same credit code.
    pub fn register_enterprise(&mut self, enterprise: &Enterprise) -> Result<()> {
        if enterprise.name.trim().is_empty() {
            return Err(Error::invalid("name", "the enterprise name is empty"));
        }
        self.conn.execute(
            "INSERT INTO enterprises (credit_code, name, district, industry, risk_grade, registered_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (credit_code) DO UPDATE SET name = excluded.name, district = excluded.district,
                industry = excluded.industry, risk_grade = excluded.risk_grade",
            params![
                enterprise.credit_code.as_str(),
                enterprise.name.trim(),
                enterprise.district.as_str(),
                enterprise.industry.code(),
                enterprise.risk_grade.code(),
                Utc::now().to_rfc3339(),
            ],
        )?;
        Ok(())
    }

    /// The enterprise with this credit code.
    pub fn enterprise(&self, code: &CreditCode) -> Result<Enterprise> {
        self.conn
            .query_row(
                "SELECT credit_code, name, district, industry, risk_grade FROM enterprises WHERE credit_code = ?1",
                [code.as_str()],
                enterprise_row,
            )
            .optional()?
            .ok_or_else(|| Error::not_found("enterprise", code))?
    }

    /// Every registered enterprise, by name.
    pub fn enterprises(&self) -> Result<Vec<Enterprise>> {
        let mut stmt = self.conn.prepare(
            "SELECT credit_code, name, district, industry, risk_grade FROM enterprises ORDER BY name",
        )?;
        let rows = stmt.query_map([], enterprise_row)?;
        rows.map(|row| row?).collect()
    }

    /// Opens a case for a registered enterprise; the inspector is always on its team.
    pub fn open_case(&mut self, new: &NewCase) -> Result<CaseId> {
        let enterprise = self.enterprise(&new.enterprise)?;
        if let Some(amended) = new.amends {
            let original = self.case(amended)?;
            if original.enterprise.credit_code != enterprise.credit_code {
                return Err(Error::invalid(
                    "amends",
                    "an amendment is about the same enterprise as the case it amends",
                ));
            }
        }
        let district = new
            .district
            .clone()
            .unwrap_or_else(|| enterprise.district.clone());
        let mut team: Vec<TeamMember> = vec![TeamMember::from(&self.identity)];
        for member in &new.team {
            if member.user_id.trim().is_empty() || member.name.trim().is_empty() {
                return Err(Error::invalid(
                    "team",
                    "every team member needs a user id and a name",
                ));
            }
            if !team.iter().any(|m| m.user_id == member.user_id) {
                team.push(member.clone());
            }
        }
        let mut visible_to: Vec<DistrictCode> = new.visible_to.clone();
        // Joint and cross-district teams: every member's district may see the case.
        visible_to.extend(team.iter().map(|m| m.district.clone()));
        visible_to.retain(|d| *d != district);
        visible_to.sort();
        visible_to.dedup();

        let id = CaseId::from_uuid(self.new_record_id());
        let mut doc = AutoCommit::new().with_actor(self.actor.clone());
        document::init_case(
            &mut doc,
            &CaseInit {
                id,
                enterprise: &enterprise,
                case_type: new.case_type,
                district: &district,
                visible_to: &visible_to,
                team: &team,
                opened_at: new.opened_at,
                opened_by: &self.identity.user_id,
                location: new.location,
                amends: new.amends,
            },
        )?;
        document::commit(
            &mut doc,
            &ChangeNote::new(&self.identity, "open_case"),
            self.now().timestamp(),
        );
        let opened = rules::CaseState::of_stored(&doc)?;
        let changes = doc.get_changes(&[]);
        for change in &changes {
            rules::check(&mut doc, change)?;
        }
        let ops = rules::Ops::of(&doc, &changes)?;
        let (author, trust) = self.judging()?;
        rules::judge(&author, None, &opened, &ops, &trust)?;
        let projection = document::project_case(&doc)?;
        let snapshot = doc.save();
        let tx = self.conn.transaction()?;
        db::insert_document(&tx, id, &snapshot)?;
        db::set_heads(&tx, id, &mut doc)?;
        projections::write_case_projection(&tx, &projection)?;
        let signatures = changes
            .iter()
            .map(|c| ChangeSignature::sign(self.signer.as_ref(), c.hash()))
            .collect::<Result<Vec<_>>>()?;
        db::keep_signatures(&tx, id, &signatures)?;
        tx.commit()?;
        let mut loaded = LoadedDoc::new(doc);
        loaded.judged = Some((loaded.saved_heads.clone(), opened));
        self.cache.insert(id, loaded);
        tracing::info!(case.id = %id, enterprise = %enterprise.credit_code, "case opened");
        Ok(id)
    }

    /// Lists cases from the projections, newest first, without loading any document.
    pub fn cases(&self, query: &CaseQuery) -> Result<Vec<CaseSummary>> {
        projections::cases(&self.conn, query)
    }

    /// Lists findings from the projections.
    pub fn findings(&self, query: &FindingQuery) -> Result<Vec<FindingSummary>> {
        projections::findings(&self.conn, query)
    }

    /// Rectifications still open whose deadline is `on` or earlier (due that day, or
    /// overdue), earliest deadline first, major hazards first within a day.
    pub fn rectifications_due(&self, on: NaiveDate) -> Result<Vec<FindingSummary>> {
        projections::rectifications_due(&self.conn, on)
    }

    /// How often each checklist item was answered and found 不符合, by post, across
    /// every case in the store; most often found first.
    pub fn checklist_stats(&self, template_id: Option<&str>) -> Result<Vec<ItemStat>> {
        projections::checklist_stats(&self.conn, template_id)
    }

    /// Reads a whole case from its document.
    pub fn case(&mut self, id: CaseId) -> Result<Case> {
        document::read_case(&self.doc(id)?.doc)
    }

    /// Records a finding in a case and returns its id.
    pub fn add_finding(&mut self, case: CaseId, finding: &NewFinding) -> Result<FindingId> {
        if finding.description.trim().is_empty() {
            return Err(Error::invalid(
                "description",
                "describe the hazard; the description is empty",
            ));
        }
        if let Some(violation) = &finding.violation
            && violation.post.trim().is_empty()
        {
            return Err(Error::invalid(
                "violation",
                "a three-violations record needs the post (岗位)",
            ));
        }
        let id = FindingId::from_uuid(self.new_record_id());
        let recorded_by = self.identity.user_id.clone();
        let now = self.now();
        let projection = document::new_finding_projection(id, finding, &recorded_by, now);
        self.write(
            case,
            "add_finding",
            Touched::NewFinding(Box::new(projection)),
            |doc| document::add_finding(doc, id, finding, &recorded_by, now),
        )?;
        Ok(id)
    }

    /// Edits a finding's fields; concurrent edits of one field on other devices become
    /// conflicts, edits of the description merge as text.
    pub fn edit_finding(
        &mut self,
        case: CaseId,
        finding: FindingId,
        edit: &FindingEdit,
    ) -> Result<()> {
        if edit
            .description
            .as_ref()
            .is_some_and(|d| d.trim().is_empty())
        {
            return Err(Error::invalid(
                "description",
                "the description cannot be emptied; remove the finding instead",
            ));
        }
        if edit
            .violation
            .as_ref()
            .is_some_and(|v| v.post.trim().is_empty())
        {
            return Err(Error::invalid(
                "violation",
                "a three-violations record needs the post (岗位)",
            ));
        }
        self.write(case, "edit_finding", Touched::Finding(finding), |doc| {
            document::edit_finding(doc, finding, edit)
        })
    }

    /// Removes a finding from the case's lists; the record stays in the document as
    /// evidence, marked with who removed it and when.
    pub fn remove_finding(&mut self, case: CaseId, finding: FindingId) -> Result<()> {
        let by = self.identity.user_id.clone();
        let now = self.now();
        self.write(case, "remove_finding", Touched::Finding(finding), |doc| {
            document::remove_finding(doc, finding, &by, now)
        })
    }

    /// Orders rectification of a finding with measures, a deadline and a responsible person.
    pub fn order_rectification(
        &mut self,
        case: CaseId,
        finding: FindingId,
        order: &RectificationOrder,
    ) -> Result<()> {
        if order.measures.trim().is_empty() {
            return Err(Error::invalid(
                "measures",
                "state the rectification measures (整改措施)",
            ));
        }
        if order.responsible.trim().is_empty() {
            return Err(Error::invalid(
                "responsible",
                "name the person responsible for rectification",
            ));
        }
        let visit = self.case_opened_on(case)?;
        if order.deadline < visit {
            return Err(Error::invalid(
                "deadline",
                format!(
                    "the deadline {} is before the visit on {visit}",
                    order.deadline
                ),
            ));
        }
        self.write(
            case,
            "order_rectification",
            Touched::Finding(finding),
            |doc| document::order_rectification(doc, finding, order),
        )
    }

    /// Moves a finding's rectification where no step of its follow-up is needed: to 整改中
    /// or 逾期 (re-inspecting and closing are steps: `follow_up`).
    pub fn move_rectification(
        &mut self,
        case: CaseId,
        finding: FindingId,
        next: RectificationState,
    ) -> Result<()> {
        self.write(
            case,
            "move_rectification",
            Touched::Finding(finding),
            |doc| document::move_rectification(doc, finding, next),
        )
    }

    /// Every field of the case that devices wrote concurrently with different values.
    pub fn conflicts(&mut self, case: CaseId) -> Result<Vec<Conflict>> {
        document::conflicts(&self.doc(case)?.doc)
    }

    /// Resolves the conflict at `path` by keeping one of its values or writing a new one.
    pub fn resolve_conflict(
        &mut self,
        case: CaseId,
        path: &[String],
        resolution: &Resolution,
    ) -> Result<()> {
        let touched = match path {
            [findings, id, ..] if findings == "findings" => match id.parse() {
                Ok(id) => Touched::Finding(id),
                Err(_) => Touched::Case,
            },
            _ => Touched::Case,
        };
        self.write(case, "resolve_conflict", touched, |doc| {
            document::resolve_conflict(doc, path, resolution).map(drop)
        })
    }

    /// Records a review action by this store's user: an inspector submits the case
    /// (提交审核) or comments. Returning, approving and reopening are supervisors' actions on
    /// the server; they are refused here, since the server would refuse them and a refused
    /// change sets the device's copy of the case back.
    pub fn review(&mut self, case: CaseId, action: ReviewAction, text: &str) -> Result<()> {
        if !matches!(action, ReviewAction::Submit | ReviewAction::Comment) {
            return Err(Error::NotAllowed(format!(
                "{}由监管负责人在监管平台上进行 (supervisors {} cases on the server)",
                action.label(),
                action.code()
            )));
        }
        let by = self.identity.user_id.clone();
        let now = self.now();
        self.write(
            case,
            &format!("review:{}", action.code()),
            Touched::Case,
            |doc| document::review(doc, action, &by, now, text).map(drop),
        )
    }

    /// Records a step of a hazard's follow-up by this store's user, now: on site (现场处理
    /// 措施), or after the visit (延期, 复查 合格/不合格, 销号, 挂牌督办, 治理方案, 进展报告,
    /// 摘牌), which stays possible on an approved case. The rule book says who may take
    /// which step where the loop stands.
    pub fn follow_up(&mut self, case: CaseId, finding: FindingId, step: &HazardStep) -> Result<()> {
        let by = self.identity.user_id.clone();
        let now = self.now();
        self.write(
            case,
            &format!("follow_up:{}", step.action().code()),
            Touched::Finding(finding),
            |doc| document::follow_up(doc, finding, step, &by, now).map(drop),
        )
    }

    /// The checklist templates this store attaches.
    pub fn templates(&self) -> Vec<Template> {
        self.catalog.templates().cloned().collect()
    }

    /// Attaches a checklist template (its current version) to a case.
    pub fn attach_checklist(&mut self, case: CaseId, template_id: &str) -> Result<ChecklistId> {
        let catalog = self.catalog.clone();
        let template = catalog
            .get(template_id)
            .ok_or_else(|| Error::not_found("checklist template", template_id))?;
        let id = ChecklistId::from_uuid(self.new_record_id());
        let by = self.identity.user_id.clone();
        let now = self.now();
        self.write(case, "attach_checklist", Touched::Case, |doc| {
            document::attach_checklist(doc, id, template, &by, now)
        })?;
        Ok(id)
    }

    /// Answers an item of an attached checklist. A 不符合 answer creates a finding
    /// pre-filled from the item (level, basis, category, and for three-violation items
    /// the post and person), linked both ways; its id is returned. Answering 不符合 again
    /// keeps the finding already linked.
    pub fn answer_item(
        &mut self,
        case: CaseId,
        checklist: ChecklistId,
        item: &str,
        input: &AnswerInput,
    ) -> Result<Option<FindingId>> {
        let (kind, question) = document::attached_item(&self.doc(case)?.doc, checklist, item)?;
        let post = match input.post.as_deref().map(str::trim) {
            Some(post) if !post.is_empty() => {
                if kind == TemplateKind::ThreeViolations
                    && !question.posts.iter().any(|p| p == post)
                {
                    return Err(Error::invalid(
                        "post",
                        format!(
                            "item {item} applies to {}, not {post:?}",
                            question.posts.join("、")
                        ),
                    ));
                }
                post.to_owned()
            }
            _ if kind == TemplateKind::ThreeViolations => {
                question.posts.first().cloned().unwrap_or_default()
            }
            _ => String::new(),
        };
        let by = self.identity.user_id.clone();
        let now = self.now();
        let id = FindingId::from_uuid(self.new_record_id());
        self.write(case, "answer_item", Touched::Case, |doc| {
            let linked = document::answer_item(doc, checklist, item, input, &post, &by, now)?;
            if input.result != AnswerResult::NonCompliant || linked.is_some() {
                return Ok(linked);
            }
            let violation = (kind == TemplateKind::ThreeViolations)
                .then(|| question.category.parse::<ViolationKind>().ok())
                .flatten()
                .map(|kind| Violation {
                    kind,
                    post: post.clone(),
                    person: input.person.clone().unwrap_or_default(),
                });
            let finding = NewFinding {
                description: match input.note.trim() {
                    "" => format!("检查表不符合项：{}", question.text),
                    note => format!("检查表不符合项：{}。{note}", question.text),
                },
                level: Some(question.level),
                category: question.category.clone(),
                legal_basis: question.basis.clone(),
                place: String::new(),
                violation,
            };
            let obj = document::add_finding(doc, id, &finding, &by, now)?;
            document::put_source(doc, &obj, checklist, item)?;
            document::link_finding(doc, checklist, item, id)?;
            Ok(Some(id))
        })
    }

    /// Every change of the case: author, device, device time, what it did.
    pub fn history(&mut self, case: CaseId) -> Result<Vec<HistoryEntry>> {
        Ok(document::history(&mut self.doc(case)?.doc))
    }

    /// The heads of the case document (hex change hashes, sorted): two stores with the
    /// same heads hold the same document.
    pub fn heads(&mut self, case: CaseId) -> Result<Vec<String>> {
        Ok(crate::case_doc::sorted_heads(&mut self.doc(case)?.doc))
    }

    /// The case for another device (an on-site merge, `merge_case`): its changes, their
    /// signatures, and the certificates this device holds of their signers and its own
    /// (`signing::SignedCase`).
    pub fn export_case(&mut self, case: CaseId) -> Result<Vec<u8>> {
        let changes = self.doc(case)?.doc.get_changes(&[]);
        let vouching = self.vouching_for(&changes)?;
        Ok(SignedCase {
            changes: changes
                .iter()
                .flat_map(|c| c.raw_bytes().to_vec())
                .collect(),
            signatures: vouching.signatures,
            certificates: vouching.certificates,
            receipts: vouching.receipts,
        }
        .encode())
    }

    /// The case document's Automerge bytes alone, without signatures (for Automerge tools
    /// and peers that read documents only).
    pub fn export_document(&mut self, case: CaseId) -> Result<Vec<u8>> {
        Ok(self.doc(case)?.doc.save())
    }

    /// Merges a case file from another phone (`export_case`), creating the case if it is
    /// new here: the case's id and what its changes came to. The file came from another
    /// device, which may have written anything, so it is taken exactly as a peer session
    /// takes a message: its changes pass the wire's limits before anything of them is
    /// expanded, must make a whole, readable case on their own, and each new one is
    /// verified against its signer's certificate and judged with the rule book as its
    /// author's (`judge_handed_over`); what is refused or cannot be verified is left out
    /// and reported. Invalid bytes change nothing.
    pub fn merge_case(&mut self, bytes: &[u8]) -> Result<MergedCase> {
        let signed = SignedCase::decode(bytes)?;
        let limits = intake::Limits::default();
        let checked = intake::check(intake::carrying(signed.changes), &limits)
            .map_err(|e| Error::InvalidDocument(e.to_string()))?;
        // The case the changes make on their own, validated whole (its depth and size
        // first): which case it is, and that it is one.
        let mut incoming = AutoCommit::new();
        let (all, waiting) = intake::in_causal_order(&incoming, &checked.changes);
        if waiting > 0 {
            return Err(Error::InvalidDocument(format!(
                "{waiting} changes of the case depend on changes it does not hold"
            )));
        }
        intake::check_depth(&incoming, &all, &checked.decoded, limits.depth)
            .map_err(|e| Error::InvalidDocument(e.to_string()))?;
        rules::apply(&mut incoming, &all)?;
        let case = document::check_case(&incoming)?;
        let vouching = proofs::Vouching {
            signatures: signed.signatures,
            certificates: signed.certificates,
            receipts: signed.receipts,
        };
        let handed = self.judge_handed_over(case, checked, vouching)?;
        let received = self.keep_handed_over(case, handed)?;
        tracing::info!(case.id = %case, accepted = received.accepted, left_out = received.refused.len(), "case file merged");
        Ok(MergedCase { case, received })
    }

    /// Stores a case document that is new here, after checking it is a readable case.
    pub(crate) fn insert_case(
        &mut self,
        id: CaseId,
        mut doc: AutoCommit,
        signatures: &[ChangeSignature],
    ) -> Result<()> {
        // Bounds the document's depth and size before anything walks it.
        let judged = rules::CaseState::of(&doc)?;
        let projection = document::project_case(&doc)?;
        let tx = self.conn.transaction()?;
        db::insert_document(&tx, id, &doc.save())?;
        db::set_heads(&tx, id, &mut doc)?;
        projections::write_case_projection(&tx, &projection)?;
        db::keep_signatures(&tx, id, signatures)?;
        tx.commit()?;
        let mut loaded = LoadedDoc::new(doc.with_actor(self.actor.clone()));
        loaded.judged = Some((loaded.saved_heads.clone(), judged));
        self.cache.insert(id, loaded);
        tracing::info!(case.id = %id, "case received");
        Ok(())
    }

    /// Persists what was merged into a loaded document from elsewhere (changes, the
    /// signatures that came with them and the whole case's projections), or drops the
    /// in-memory document if that fails.
    pub(crate) fn persist_merged(
        &mut self,
        id: CaseId,
        signatures: &[ChangeSignature],
    ) -> Result<()> {
        self.persist_merged_with(id, signatures, |_| Ok(()))
    }

    /// `persist_merged`, with `also` written in the same transaction.
    pub(crate) fn persist_merged_with(
        &mut self,
        id: CaseId,
        signatures: &[ChangeSignature],
        also: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<()>,
    ) -> Result<()> {
        let loaded = self.cache.get_mut(id).expect("the caller loaded it");
        let result = document::project_case(&loaded.doc).and_then(|projection| {
            let bytes = loaded.doc.save_after(&loaded.saved_heads);
            let tx = self.conn.transaction()?;
            if !bytes.is_empty() {
                db::append_changes(&tx, id, &mut loaded.doc, &bytes)?;
            }
            projections::write_case_projection(&tx, &projection)?;
            db::keep_signatures(&tx, id, signatures)?;
            also(&tx)?;
            tx.commit()?;
            Ok(())
        });
        self.finish_write(id, result)
    }

    /// Folds a case's chunks into one snapshot now.
    pub fn compact(&mut self, case: CaseId) -> Result<()> {
        let snapshot = self.doc(case)?.doc.save();
        let tx = self.conn.transaction()?;
        db::write_snapshot(&tx, case, &snapshot)?;
        tx.commit()?;
        Ok(())
    }

    /// Applies `edit` to a case document as one change by this inspector, then persists
    /// the change and the projections it touched in one transaction. On any error the
    /// document is reloaded from storage, so memory never runs ahead of the file.
    pub(crate) fn write<T>(
        &mut self,
        case: CaseId,
        action: &str,
        touched: Touched,
        edit: impl FnOnce(&mut AutoCommit) -> Result<T>,
    ) -> Result<T> {
        let note = ChangeNote::new(&self.identity, action);
        let time = self.now().timestamp();
        let identity = self.identity.clone();
        let (author, trust) = self.judging()?;
        self.doc(case)?;
        let loaded = self.cache.get_mut(case).expect("loaded just above");
        let before = judged_state(loaded)?;
        let value = match edit(&mut loaded.doc).and_then(|v| {
            document::ensure_team_member(&mut loaded.doc, &identity)?;
            Ok(v)
        }) {
            Ok(value) => value,
            Err(e) => {
                loaded.doc.rollback();
                loaded.judged = Some((loaded.doc.get_heads(), before));
                return Err(e);
            }
        };
        let Some(hash) = document::commit(&mut loaded.doc, &note, time) else {
            loaded.judged = Some((loaded.doc.get_heads(), before));
            return Ok(value);
        };
        // The rule book judges the change before it is stored: the device never records
        // what the server would refuse. A refused change leaves memory with the document,
        // which is read again from storage (where it never arrived).
        let judged = loaded
            .doc
            .get_change_by_hash(&hash)
            .ok_or_else(|| Error::InvalidDocument("the change just made is missing".into()))
            .and_then(|change| {
                rules::check(&mut loaded.doc, &change)?;
                Ok(rules::Ops::of(&loaded.doc, &[change])?)
            })
            .and_then(|ops| {
                let after = before.after(&loaded.doc, &ops)?;
                rules::judge(&author, Some(&before), &after, &ops, &trust)?;
                Ok(after)
            });
        let after = match judged {
            Ok(after) => after,
            Err(e) => {
                self.cache.remove(case);
                return Err(e);
            }
        };
        loaded.judged = Some((loaded.doc.get_heads(), after));
        let signer = self.signer.clone();
        let result = (|| {
            let bytes = loaded.doc.save_after(&loaded.saved_heads);
            let tx = self.conn.transaction()?;
            db::append_changes(&tx, case, &mut loaded.doc, &bytes)?;
            db::keep_signatures(&tx, case, &[ChangeSignature::sign(signer.as_ref(), hash)?])?;
            match touched {
                Touched::Case => {
                    projections::write_case_projection(&tx, &document::project_case(&loaded.doc)?)?
                }
                Touched::Finding(id) => projections::write_finding_projection(
                    &tx,
                    case,
                    &document::project_finding(&loaded.doc, id)?,
                )?,
                Touched::NewFinding(projection) => {
                    projections::write_finding_projection(&tx, case, &projection)?
                }
            }
            tx.commit()?;
            Ok(())
        })();
        self.finish_write(case, result)?;
        Ok(value)
    }

    /// After a write: marks the document's heads durable, or on failure drops the
    /// in-memory document so that the next read comes from what storage holds.
    fn finish_write(&mut self, case: CaseId, result: Result<()>) -> Result<()> {
        match result {
            Ok(()) => {
                let loaded = self.cache.get_mut(case).expect("written just now");
                loaded.saved_heads = loaded.doc.get_heads();
                Ok(())
            }
            Err(e) => {
                tracing::warn!(case.id = %case, error = %e, "write failed; in-memory document dropped");
                self.cache.remove(case);
                Err(e)
            }
        }
    }

    fn case_opened_on(&self, case: CaseId) -> Result<NaiveDate> {
        let opened_at: String = self
            .conn
            .query_row(
                "SELECT opened_at FROM cases WHERE case_id = ?1",
                [case.to_string()],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| Error::not_found("case", case))?;
        DateTime::parse_from_rfc3339(&opened_at)
            .map(|t| crate::codes::day_in_china(&t))
            .map_err(|_| projections::corrupt_projection("opened_at", &opened_at))
    }

    /// The loaded document of a case, from memory or storage.
    pub(crate) fn doc(&mut self, case: CaseId) -> Result<&mut LoadedDoc> {
        self.doc_if_exists(case)?
            .ok_or_else(|| Error::not_found("case", case))
    }

    pub(crate) fn doc_if_exists(&mut self, case: CaseId) -> Result<Option<&mut LoadedDoc>> {
        if !self.cache.contains(case) {
            let Some(mut loaded) = db::load_document(&self.conn, case)? else {
                return Ok(None);
            };
            loaded.doc.set_actor(self.actor.clone());
            self.cache.insert(case, loaded);
        }
        Ok(self.cache.get_mut(case))
    }
}

/// The case as the rule book last judged it, if the document has not changed since;
/// otherwise read anew.
fn judged_state(loaded: &mut LoadedDoc) -> Result<rules::CaseState> {
    let heads = loaded.doc.get_heads();
    match loaded.judged.take() {
        Some((at, state)) if at == heads => Ok(state),
        _ => rules::CaseState::of_stored(&loaded.doc),
    }
}

fn enterprise_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Enterprise>> {
    let code: String = r.get(0)?;
    let name: String = r.get(1)?;
    let district: String = r.get(2)?;
    let industry: String = r.get(3)?;
    let risk: String = r.get(4)?;
    Ok((|| {
        Ok(Enterprise {
            credit_code: code
                .parse()
                .map_err(|_| projections::corrupt_projection("credit_code", &code))?,
            name,
            district: district
                .parse()
                .map_err(|_| projections::corrupt_projection("district", &district))?,
            industry: industry
                .parse()
                .map_err(|_| projections::corrupt_projection("industry", &industry))?,
            risk_grade: risk
                .parse()
                .map_err(|_| projections::corrupt_projection("risk_grade", &risk))?,
        })
    })())
}

/// Where the store keeps its own device key: a file beside the database, never inside it,
/// so that a backup of the database never carries the key.
fn key_path(store: &Path) -> PathBuf {
    let mut path = store.as_os_str().to_owned();
    path.push(".key");
    PathBuf::from(path)
}

/// The secret of a new device key, from the store's source of identifiers (random in an
/// app: four version-4 UUIDs, 488 random bits, hashed; seeded in a simulation).
fn key_seed(ids: &Ids) -> [u8; 32] {
    let mut hasher = sha2::Sha256::new();
    hasher.update(b"anjian device key\n");
    for _ in 0..4 {
        hasher.update(ids().as_bytes());
    }
    hasher.finalize().into()
}

/// The device's actor id, created on first open (from `ids`) and kept in the file.
fn device_actor(conn: &Connection, ids: &Ids) -> Result<ActorId> {
    let stored: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'actor_id'", [], |r| {
            r.get(0)
        })
        .optional()?;
    if let Some(hex) = stored {
        return ActorId::try_from(hex.as_str())
            .map_err(|_| Error::Corrupt(format!("actor id {hex:?}")));
    }
    let actor = ActorId::from(ids().as_bytes().as_slice());
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('actor_id', ?1)",
        [actor.to_hex_string()],
    )?;
    Ok(actor)
}

/// The device clock a store stamps records and changes with: the phone's own clock, with
/// its offset (what the inspector saw), unless set otherwise (`Store::set_clock`).
pub type Clock = Arc<dyn Fn() -> DateTime<FixedOffset> + Send + Sync>;

/// Where a store takes new identifiers from (random UUIDs, unless set otherwise).
pub type Ids = Arc<dyn Fn() -> uuid::Uuid + Send + Sync>;

/// Random version-4 UUIDs.
pub fn random_ids() -> Ids {
    Arc::new(uuid::Uuid::new_v4)
}

/// The phone's clock.
pub fn system_clock() -> Clock {
    Arc::new(|| Local::now().fixed_offset())
}

/// A small least-recently-used cache of loaded case documents.
#[derive(Default)]
struct DocCache {
    docs: HashMap<CaseId, LoadedDoc>,
    order: VecDeque<CaseId>,
}

impl DocCache {
    fn contains(&self, id: CaseId) -> bool {
        self.docs.contains_key(&id)
    }

    fn get_mut(&mut self, id: CaseId) -> Option<&mut LoadedDoc> {
        if let Some(pos) = self.order.iter().position(|c| *c == id) {
            self.order.remove(pos);
            self.order.push_back(id);
        }
        self.docs.get_mut(&id)
    }

    fn insert(&mut self, id: CaseId, doc: LoadedDoc) {
        self.remove(id);
        while self.order.len() >= CACHE_CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.docs.remove(&old);
            }
        }
        self.docs.insert(id, doc);
        self.order.push_back(id);
    }

    fn remove(&mut self, id: CaseId) {
        self.docs.remove(&id);
        self.order.retain(|c| *c != id);
    }
}
