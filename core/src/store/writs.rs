//! Enforcement documents (执法文书) on the device: drawn up from the case, edited as a
//! draft, sealed with a number, signed, refused, issued and voided offline, each step a
//! change the rule book judges before it is recorded (docs/decisions/0004).

use chrono::Datelike;
use rusqlite::{OptionalExtension, params};

use super::{Store, Touched};
use crate::codes::{CaseId, WritId, WritKind};
use crate::document;
use crate::error::{Error, Result};
use crate::model::{SignatureInput, SignatureRefusal, Writ, WritSeal};
use crate::numbering::{PROVISIONAL_MARK, SignedBlock};
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
        let id = WritId::from_uuid(self.new_record_id());
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

    /// Seals a draft: gives it its number and freezes its content under a SHA-256. The
    /// number is the next of a block the server allocated this device's key for the
    /// kind and this year; with none left, it is provisional (the printed copy says so,
    /// and the server gives the real one when the document reaches it).
    ///
    /// The number is taken from its block before the seal is written: a seal the rule
    /// book refuses leaves a gap in the block, never a number issued twice.
    pub fn seal_writ(&mut self, case: CaseId, writ: WritId) -> Result<WritSeal> {
        let kind = self.writ(case, writ)?.kind;
        let (number, block) = match self.take_number(kind)? {
            Some((number, block)) => (number, Some(block)),
            None => (self.provisional_number(kind), None),
        };
        let by = self.identity.user_id.clone();
        let now = self.now();
        self.write(case, "writ:seal", Touched::Case, |doc| {
            document::seal_writ(doc, case, writ, &number, block.as_deref(), &by, now).map(drop)
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
        crate::pdf::render(&full, writ, font, &|sha256| match self.blob(sha256) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        })
    }

    /// Keeps the number blocks the server allocated (`POST /api/v1/number-blocks`) that
    /// a trusted server key signed for this device and its current key; the others are
    /// ignored. Returns how many were new.
    pub fn keep_number_blocks(&mut self, blocks: &[String]) -> Result<usize> {
        let (_, trust) = self.judging()?;
        let key = self.public_key().id();
        let actor = self.actor.to_hex_string();
        let mut kept = 0;
        for text in blocks {
            let Ok(signed) = SignedBlock::decode(text) else {
                continue;
            };
            let block = signed.block();
            if signed.verify(&trust.servers).is_err() || block.key != key || block.actor != actor {
                continue;
            }
            kept += self.conn.execute(
                "INSERT OR IGNORE INTO number_blocks (block, kind, year, first, last, next, key_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?4, ?6)",
                params![
                    text,
                    block.kind.code(),
                    block.year,
                    block.first,
                    block.last,
                    key.as_slice()
                ],
            )?;
        }
        Ok(kept)
    }

    /// How many numbers this device can still issue, by kind, for this year (from blocks
    /// bound to its current key).
    pub fn numbers_left(&self) -> Result<Vec<(WritKind, u32)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT kind, SUM(last - next + 1) FROM number_blocks
             WHERE key_id = ?1 AND year = ?2 AND next <= last GROUP BY kind",
        )?;
        let key = self.public_key().id();
        let left: Vec<(String, u32)> = stmt
            .query_map(params![key.as_slice(), self.now().year()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(WritKind::ALL
            .iter()
            .map(|kind| {
                let n = left
                    .iter()
                    .find(|(k, _)| k == kind.code())
                    .map_or(0, |(_, n)| *n);
                (*kind, n)
            })
            .collect())
    }

    /// Takes the next number of a block for `kind` and this year bound to this device's
    /// key (the earliest block first), committed before it is used.
    fn take_number(&mut self, kind: WritKind) -> Result<Option<(String, String)>> {
        let key = self.public_key().id();
        let year = self.now().year();
        let tx = self.conn.transaction()?;
        let next: Option<(String, u32)> = tx
            .query_row(
                "SELECT block, next FROM number_blocks
                 WHERE key_id = ?1 AND kind = ?2 AND year = ?3 AND next <= last
                 ORDER BY first LIMIT 1",
                params![key.as_slice(), kind.code(), year],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((text, n)) = next else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE number_blocks SET next = next + 1 WHERE block = ?1",
            [&text],
        )?;
        tx.commit()?;
        let block = SignedBlock::decode(&text)?;
        Ok(Some((block.block().number(n), text)))
    }

    /// Prints the issued document: its PDF (as `render_writ` makes it), kept as a blob
    /// that syncs like a photo, and recorded in the document as the copy handed to the
    /// enterprise. The first print is the copy of record: printing again renders the
    /// document as it reads now (with the server's number, say) without recording it.
    pub fn print_writ(
        &mut self,
        case: CaseId,
        writ: WritId,
        font: &PdfFont,
    ) -> Result<(String, Vec<u8>)> {
        let bytes = self.render_writ(case, writ, font)?;
        if let Some(printed) = self.writ(case, writ)?.printed {
            return Ok((printed.sha256, bytes));
        }
        let sha256 = crate::photo::sha256_hex(&bytes);
        let by = self.identity.user_id.clone();
        let now = self.now();
        self.conn.execute(
            "INSERT OR IGNORE INTO blobs (sha256, kind, mime, size, bytes, created_at)
             VALUES (?1, 'document', 'application/pdf', ?2, ?3, ?4)",
            params![sha256, bytes.len() as i64, bytes, now.to_rfc3339()],
        )?;
        self.write(case, "writ:print", Touched::Case, |doc| {
            document::print_writ(doc, writ, &sha256, &by, now)
        })?;
        Ok((sha256, bytes))
    }

    /// A provisional number, unique to this device: （临时）责改〔2026〕3f9a0c21号.
    fn provisional_number(&self, kind: WritKind) -> String {
        let year = self.now().year();
        let unique = self.new_id().simple().to_string();
        format!(
            "{PROVISIONAL_MARK}{}〔{year}〕{}号",
            kind.abbreviation(),
            &unique[..8]
        )
    }
}
