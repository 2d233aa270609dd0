//! Enforcement documents (执法文书) for the apps: drawn up from the case, edited as a
//! draft, sealed with a number, signed by two inspectors and the enterprise (or its
//! refusal recorded), issued and voided, offline (docs/decisions/0004).

use std::collections::HashMap;

use anjian_core as core;

use crate::enums::{SignerRole, WritKind, WritState};
use crate::error::AnjianError;
use crate::records::{self, case_id};
use crate::store::InspectorStore;

/// An enforcement document of a case.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Writ {
    /// Its id.
    pub id: String,
    /// Which document.
    pub kind: WritKind,
    /// Where it stands.
    pub state: WritState,
    /// User id of who drew it up.
    pub created_by: String,
    /// When (RFC 3339).
    pub created_at: String,
    /// The document it corrects, if any.
    pub replaces: Option<String>,
    /// Its content by field key (`writ_fields(kind)` gives the keys, labels and order).
    pub fields: HashMap<String, String>,
    /// The number, or `None` while a draft.
    pub number: Option<String>,
    /// Whether the number is provisional (print it as such).
    pub provisional: bool,
    /// The provisional number it was sealed with, once the server gave it its number.
    pub provisional_number: Option<String>,
    /// SHA-256 of the sealed content, once sealed.
    pub sha256: Option<String>,
    /// Signatures, in the order recorded.
    pub signatures: Vec<WritSignature>,
    /// The enterprise's refusal to sign (拒签), if recorded.
    pub refusal: Option<SignatureRefusal>,
    /// The reason it was voided (作废), if it was.
    pub voided: Option<String>,
    /// SHA-256 of the PDF handed to the enterprise, once printed (`print_writ`).
    pub pdf: Option<String>,
}

/// A signature on a sealed document.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct WritSignature {
    /// An inspector or the enterprise.
    pub role: SignerRole,
    /// The inspector's user id (empty for the enterprise).
    pub user: String,
    /// The signer's name.
    pub name: String,
    /// The inspector's 执法证号 (empty for the enterprise).
    pub certificate_no: String,
    /// SHA-256 of the signature image.
    pub image: String,
    /// When (RFC 3339).
    pub at: String,
}

/// The enterprise's refusal to sign.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SignatureRefusal {
    /// Why.
    pub reason: String,
    /// The witness.
    pub witness: String,
    /// SHA-256 of a photo of the refusal, if taken.
    pub photo: Option<String>,
}

/// A signature as the app captured it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SignatureInput {
    /// An inspector or the enterprise.
    pub role: SignerRole,
    /// The inspector's user id (a member of the case's team; empty for the enterprise).
    pub user: String,
    /// The signer's name.
    pub name: String,
    /// The inspector's 执法证号 (empty for the enterprise).
    pub certificate_no: String,
    /// SHA-256 of the signature image (strokes rendered to a PNG or JPEG and ingested
    /// with `ingest_photo` first).
    pub image: String,
}

/// One field of a kind of document.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct WritField {
    /// The key in `Writ.fields`.
    pub key: String,
    /// The label the form prints.
    pub label: String,
}

/// The fields of a kind of document, in the order the form prints them.
#[uniffi::export]
pub fn writ_fields(kind: WritKind) -> Vec<WritField> {
    core::writs::fields(kind.into())
        .iter()
        .map(|(key, label)| WritField {
            key: (*key).to_owned(),
            label: (*label).to_owned(),
        })
        .collect()
}

fn writ_id(text: &str) -> core::Result<core::WritId> {
    text.parse()
}

#[uniffi::export]
impl InspectorStore {
    /// Draws up a document of `kind`, filled from the case; `replaces` names the document
    /// it corrects (void that one with `void_writ`). Returns its id.
    pub fn create_writ(
        &self,
        case_id: String,
        kind: WritKind,
        replaces: Option<String>,
    ) -> Result<String, AnjianError> {
        self.core(|s| {
            let replaces = replaces.as_deref().map(writ_id).transpose()?;
            Ok(
                s.create_writ(records::case_id(&case_id)?, kind.into(), replaces)?
                    .to_string(),
            )
        })
    }

    /// The documents of a case, oldest first.
    pub fn writs(&self, case_id: String) -> Result<Vec<Writ>, AnjianError> {
        self.core(|s| {
            Ok(s.case(records::case_id(&case_id)?)?
                .writs
                .into_iter()
                .map(Into::into)
                .collect())
        })
    }

    /// How many document numbers this device can still issue this year, by kind (from
    /// the blocks the server allocated its current key at sync; with none left a document
    /// is sealed with a provisional number).
    pub fn numbers_left(&self) -> Result<Vec<NumbersLeft>, AnjianError> {
        self.core(|s| {
            Ok(s.numbers_left()?
                .into_iter()
                .map(|(kind, left)| NumbersLeft {
                    kind: kind.into(),
                    left,
                })
                .collect())
        })
    }

    /// Writes one field of a draft.
    pub fn edit_writ(
        &self,
        case_id: String,
        writ_id: String,
        key: String,
        value: String,
    ) -> Result<(), AnjianError> {
        self.core(|s| {
            s.edit_writ(
                case_id_of(&case_id)?,
                self::writ_id(&writ_id)?,
                &key,
                &value,
            )
        })
    }

    /// Seals a draft: numbers it and freezes its content; returns the number.
    pub fn seal_writ(&self, case_id: String, writ_id: String) -> Result<String, AnjianError> {
        self.core(|s| {
            Ok(
                s.seal_writ(case_id_of(&case_id)?, self::writ_id(&writ_id)?)?
                    .number,
            )
        })
    }

    /// Records a signature on the sealed content.
    pub fn sign_writ(
        &self,
        case_id: String,
        writ_id: String,
        signature: SignatureInput,
    ) -> Result<(), AnjianError> {
        self.core(|s| {
            s.sign_writ(
                case_id_of(&case_id)?,
                self::writ_id(&writ_id)?,
                &core::SignatureInput {
                    role: signature.role.into(),
                    user: signature.user,
                    name: signature.name,
                    certificate_no: signature.certificate_no,
                    image: signature.image,
                },
            )
        })
    }

    /// Records the enterprise's refusal to sign (拒签), with the reason, a witness and an
    /// optional photo.
    pub fn refuse_writ(
        &self,
        case_id: String,
        writ_id: String,
        reason: String,
        witness: String,
        photo: Option<String>,
    ) -> Result<(), AnjianError> {
        self.core(|s| {
            s.refuse_writ(
                case_id_of(&case_id)?,
                self::writ_id(&writ_id)?,
                &reason,
                &witness,
                photo.as_deref(),
            )
        })
    }

    /// Issues the document (two inspectors and the enterprise signed, or its refusal).
    pub fn issue_writ(&self, case_id: String, writ_id: String) -> Result<(), AnjianError> {
        self.core(|s| s.issue_writ(case_id_of(&case_id)?, self::writ_id(&writ_id)?))
    }

    /// The document as a PDF (A4, for a portable printer and the enterprise's copy), set
    /// in face `face` of the font file at `font_file` (the app bundles Noto Serif SC:
    /// face 0 of its OTF, or face 2 of the Noto Serif CJK collection).
    pub fn render_writ(
        &self,
        case_id: String,
        writ_id: String,
        font_file: String,
        face: u32,
    ) -> Result<Vec<u8>, AnjianError> {
        let font = font(&font_file, face)?;
        self.core(|s| s.render_writ(case_id_of(&case_id)?, self::writ_id(&writ_id)?, &font))
    }

    /// Prints the issued document: its PDF, as `render_writ` makes it, kept on the device
    /// as a blob that syncs like a photo and recorded in the document as the copy handed
    /// to the enterprise (the first print is the copy of record).
    pub fn print_writ(
        &self,
        case_id: String,
        writ_id: String,
        font_file: String,
        face: u32,
    ) -> Result<PrintedWrit, AnjianError> {
        let font = font(&font_file, face)?;
        let (sha256, pdf) =
            self.core(|s| s.print_writ(case_id_of(&case_id)?, self::writ_id(&writ_id)?, &font))?;
        Ok(PrintedWrit { sha256, pdf })
    }

    /// Voids a sealed document with a reason.
    pub fn void_writ(
        &self,
        case_id: String,
        writ_id: String,
        reason: String,
    ) -> Result<(), AnjianError> {
        self.core(|s| s.void_writ(case_id_of(&case_id)?, self::writ_id(&writ_id)?, &reason))
    }
}

/// Document numbers left on the device for one kind.
#[derive(Debug, Clone, uniffi::Record)]
pub struct NumbersLeft {
    /// The kind of document.
    pub kind: WritKind,
    /// Numbers left this year.
    pub left: u32,
}

/// The PDF of an issued document, as printed and kept.
#[derive(Debug, Clone, uniffi::Record)]
pub struct PrintedWrit {
    /// SHA-256 (hex) of the PDF: the blob the case names.
    pub sha256: String,
    /// The PDF's bytes, for the printer.
    pub pdf: Vec<u8>,
}

fn font(font_file: &str, face: u32) -> Result<core::pdf::PdfFont, AnjianError> {
    let bytes = std::fs::read(font_file).map_err(|e| AnjianError::Storage {
        reason: format!("字体文件无法读取 (cannot read the font {font_file}: {e})"),
    })?;
    Ok(core::pdf::PdfFont::load(bytes, face)?)
}

fn case_id_of(text: &str) -> core::Result<core::CaseId> {
    case_id(text)
}

impl From<core::Writ> for Writ {
    fn from(w: core::Writ) -> Self {
        let state = w.state().into();
        let number = w.number().map(str::to_owned);
        let provisional = w.provisional();
        let provisional_number = w
            .numbered
            .as_ref()
            .and(w.seal.as_ref())
            .map(|s| s.number.clone());
        Writ {
            id: w.id.to_string(),
            kind: w.kind.into(),
            state,
            created_by: w.created_by,
            created_at: w.created_at.to_rfc3339(),
            replaces: w.replaces.map(|r| r.to_string()),
            fields: w.fields.into_iter().collect(),
            number,
            provisional,
            provisional_number,
            sha256: w.seal.map(|s| s.sha256),
            pdf: w.printed.map(|p| p.sha256),
            signatures: w
                .signatures
                .into_iter()
                .map(|s| WritSignature {
                    role: s.role.into(),
                    user: s.user,
                    name: s.name,
                    certificate_no: s.certificate_no,
                    image: s.image,
                    at: s.at.to_rfc3339(),
                })
                .collect(),
            refusal: w.refusal.map(|r| SignatureRefusal {
                reason: r.reason,
                witness: r.witness,
                photo: r.photo,
            }),
            voided: w.voided.map(|v| v.reason),
        }
    }
}
