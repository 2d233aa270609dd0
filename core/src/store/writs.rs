//! Enforcement documents (执法文书) on the device: drawn up from the case, edited as a
//! draft, sealed with a number, signed, refused, issued and voided offline, each step a
//! change the rule book judges before it is recorded (docs/decisions/0004).

use chrono::Datelike;

use super::{Store, Touched};
use crate::codes::{CaseId, WritId, WritKind};
use crate::document;
use crate::error::{Error, Result};
use crate::model::{SignatureInput, SignatureRefusal, Writ, WritSeal};
use crate::pdf::PdfFont;

impl Store {
    /// Draws up a document of `kind` for the case, filled from it (enterprise, team,
    /// findings, deadlines, on-site measures, re-inspections); `replaces` names the
    /// document it corrects. Returns its id.
    pub fn create_writ(
        &mut self,
        case: CaseId,
        kind: WritKind,
        replaces: Option<WritId>,
    ) -> Result<WritId> {
        let id = WritId::from_uuid(self.new_id());
        let fields = crate::writs::fill(kind, &self.case(case)?);
        let by = self.identity.user_id.clone();
        let now = self.now();
        self.write(
            case,
            &format!("writ:create:{}", kind.code()),
            Touched::Case,
            |doc| document::create_writ(doc, id, kind, &fields, replaces, &by, now),
        )?;
        Ok(id)
    }

    /// The document `writ` of the case.
    pub fn writ(&mut self, case: CaseId, writ: WritId) -> Result<Writ> {
        self.case(case)?
            .writs
            .into_iter()
            .find(|w| w.id == writ)
            .ok_or_else(|| Error::not_found("writ", writ))
    }

    /// Writes one field of a draft.
    pub fn edit_writ(&mut self, case: CaseId, writ: WritId, key: &str, value: &str) -> Result<()> {
        let kind = self.writ(case, writ)?.kind;
        if !crate::writs::has_field(kind, key) {
            return Err(Error::invalid(
                "field",
                format!("{}没有“{key}”一栏 (no such field)", kind.label()),
            ));
        }
        self.write(case, "writ:edit", Touched::Case, |doc| {
            document::edit_writ(doc, writ, key, value)
        })
    }

    /// Seals a draft: gives it its number and freezes its content under a SHA-256. With
    /// no number block from the server on the device, the number is provisional (the
    /// printed copy says so, and the server gives the real one).
    pub fn seal_writ(&mut self, case: CaseId, writ: WritId) -> Result<WritSeal> {
        let kind = self.writ(case, writ)?.kind;
        let number = self.provisional_number(kind);
        let by = self.identity.user_id.clone();
        let now = self.now();
        self.write(case, "writ:seal", Touched::Case, |doc| {
            document::seal_writ(doc, case, writ, &number, true, &by, now).map(drop)
        })?;
        self.writ(case, writ)?
            .seal
            .ok_or_else(|| Error::InvalidDocument("the seal just written is missing".into()))
    }

    /// Records a signature on the sealed content; the signature image must be on the
    /// device (ingested as a photo).
    pub fn sign_writ(&mut self, case: CaseId, writ: WritId, input: &SignatureInput) -> Result<()> {
        if !self.has_blob(&input.image)? {
            return Err(Error::not_found("signature image", &input.image));
        }
        let by = self.identity.user_id.clone();
        let now = self.now();
        self.write(case, "writ:sign", Touched::Case, |doc| {
            document::sign_writ(doc, writ, input, &by, now)
        })
    }

    /// Records the enterprise's refusal to sign (拒签): the reason, the witness and an
    /// optional photo (on the device).
    pub fn refuse_writ(
        &mut self,
        case: CaseId,
        writ: WritId,
        reason: &str,
        witness: &str,
        photo: Option<&str>,
    ) -> Result<()> {
        if let Some(photo) = photo
            && !self.has_blob(photo)?
        {
            return Err(Error::not_found("photo", photo));
        }
        let refusal = SignatureRefusal {
            reason: reason.to_owned(),
            witness: witness.to_owned(),
            photo: photo.map(str::to_owned),
            by: self.identity.user_id.clone(),
            at: self.now(),
        };
        self.write(case, "writ:refuse", Touched::Case, |doc| {
            document::refuse_writ(doc, writ, &refusal)
        })
    }

    /// Issues the document once two inspectors and the enterprise signed (or its refusal
    /// is recorded).
    pub fn issue_writ(&mut self, case: CaseId, writ: WritId) -> Result<()> {
        let by = self.identity.user_id.clone();
        let now = self.now();
        self.write(case, "writ:issue", Touched::Case, |doc| {
            document::issue_writ(doc, writ, &by, now)
        })
    }

    /// Voids a sealed document with a reason (its number stays on record).
    pub fn void_writ(&mut self, case: CaseId, writ: WritId, reason: &str) -> Result<()> {
        let by = self.identity.user_id.clone();
        let now = self.now();
        self.write(case, "writ:void", Touched::Case, |doc| {
            document::void_writ(doc, writ, reason, &by, now)
        })
    }

    /// The document as a PDF (A4, for a portable printer and the enterprise's copy), set
    /// in `font`, with the signature images this device holds.
    pub fn render_writ(&mut self, case: CaseId, writ: WritId, font: &PdfFont) -> Result<Vec<u8>> {
        let full = self.case(case)?;
        let writ = full
            .writs
            .iter()
            .find(|w| w.id == writ)
            .ok_or_else(|| Error::not_found("writ", writ))?;
        crate::pdf::render(&full, writ, font, &|sha256| self.blob(sha256).ok())
    }

    /// A provisional number, unique to this device: （临时）责改〔2026〕3f9a0c21号.
    fn provisional_number(&self, kind: WritKind) -> String {
        let year = self.now().year();
        let unique = self.new_id().simple().to_string();
        format!(
            "（临时）{}〔{year}〕{}号",
            kind.abbreviation(),
            &unique[..8]
        )
    }
}
