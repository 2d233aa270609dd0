//! Photo evidence in the store: content-addressed blobs, photo metadata, attaching photos
//! to findings, rectifications and checklist answers, and garbage collection.

use std::io::Read;
use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Store, Touched};
use crate::codes::CaseId;
use crate::codes::GeoPoint;
use crate::document;
use crate::error::{Error, Result};
use crate::model::{GarbageReport, PendingBlob, PhotoRef, PhotoTarget};
use crate::photo::{self, PhotoError, PhotoInfo};

/// Hours a blob no case names is kept after it was stored, before garbage collection may
/// remove it.
pub const UNATTACHED_HOURS: i64 = 24;

impl Store {
    /// Verifies a photo, makes its thumbnail and stores both, content-addressed (the same
    /// photo ingested twice is stored once). The original is kept byte-exact.
    pub fn ingest_photo(&mut self, bytes: &[u8]) -> Result<PhotoInfo> {
        let ingested = photo::ingest(bytes, &self.photo_limits)?;
        let info = ingested.info;
        let now = Utc::now().to_rfc3339();
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO blobs (sha256, kind, mime, size, bytes, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            insert.execute(params![
                info.sha256,
                "original",
                info.mime,
                info.size as i64,
                bytes,
                now
            ])?;
            insert.execute(params![
                info.thumbnail_sha256,
                "thumbnail",
                "image/jpeg",
                ingested.thumbnail.len() as i64,
                ingested.thumbnail,
                now
            ])?;
            tx.prepare_cached(
                "INSERT OR IGNORE INTO photos (sha256, thumbnail, mime, size, width, height, orientation,
                                               captured_at, latitude, longitude)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                info.sha256,
                info.thumbnail_sha256,
                info.mime,
                info.size as i64,
                info.width,
                info.height,
                info.orientation,
                info.captured_at.map(|t| t.to_rfc3339()),
                info.gps.map(|g| g.latitude),
                info.gps.map(|g| g.longitude),
            ])?;
        }
        tx.commit()?;
        tracing::info!(photo = %info.sha256, bytes = info.size, "photo ingested");
        Ok(info)
    }

    /// Reads a photo file (refusing it before reading if it is over the size limit) and
    /// ingests it.
    pub fn ingest_photo_file(&mut self, path: impl AsRef<Path>) -> Result<PhotoInfo> {
        let path = path.as_ref();
        let unreadable = |e: std::io::Error| {
            Error::invalid("path", format!("{} cannot be read: {e}", path.display()))
        };
        let file = std::fs::File::open(path).map_err(unreadable)?;
        let size = file.metadata().map_err(unreadable)?.len();
        if size > self.photo_limits.max_bytes {
            return Err(PhotoError::TooLarge {
                size,
                limit: self.photo_limits.max_bytes,
            }
            .into());
        }
        let mut bytes = Vec::with_capacity(size as usize);
        file.take(self.photo_limits.max_bytes + 1)
            .read_to_end(&mut bytes)
            .map_err(unreadable)?;
        self.ingest_photo(&bytes)
    }

    /// What ingesting the photo with this hash learned.
    pub fn photo(&self, sha256: &str) -> Result<PhotoInfo> {
        self.conn
            .query_row(
                "SELECT sha256, thumbnail, mime, size, width, height, orientation, captured_at, latitude, longitude
                 FROM photos WHERE sha256 = ?1",
                [sha256],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, u32>(4)?,
                        r.get::<_, u32>(5)?,
                        r.get::<_, u8>(6)?,
                        r.get::<_, Option<String>>(7)?,
                        r.get::<_, Option<f64>>(8)?,
                        r.get::<_, Option<f64>>(9)?,
                    ))
                },
            )
            .optional()?
            .map(|(sha256, thumbnail_sha256, mime, size, width, height, orientation, captured, lat, lon)| {
                // What was read from the photo at ingest is evidence: a stored value that no
                // longer reads is damage to report, not a photo without it.
                let damaged = |what: &str| Error::Corrupt(format!("photo {sha256}: its stored {what}"));
                let captured_at = captured
                    .map(|c| DateTime::parse_from_rfc3339(&c).map_err(|_| damaged("capture time")))
                    .transpose()?;
                let gps = match (lat, lon) {
                    (Some(lat), Some(lon)) => {
                        Some(GeoPoint::new(lat, lon).map_err(|_| damaged("location"))?)
                    }
                    _ => None,
                };
                Ok(PhotoInfo {
                    sha256,
                    thumbnail_sha256,
                    mime: if mime == "image/png" { "image/png" } else { "image/jpeg" },
                    size: size as u64,
                    width,
                    height,
                    orientation,
                    captured_at,
                    gps,
                })
            })
            .unwrap_or_else(|| Err(Error::not_found("photo", sha256)))
    }

    /// Attaches an ingested photo to a finding, a rectification or a checklist answer,
    /// with a caption. The case records hashes and metadata, never the bytes. Attaching
    /// the same photo to the same place again changes nothing.
    pub fn attach_photo(
        &mut self,
        case: CaseId,
        target: &PhotoTarget,
        sha256: &str,
        caption: &str,
    ) -> Result<()> {
        let info = self.photo(sha256)?;
        let photo = PhotoRef {
            sha256: info.sha256,
            thumbnail: info.thumbnail_sha256,
            caption: caption.trim().to_owned(),
            mime: info.mime.to_owned(),
            size: info.size,
            width: info.width,
            height: info.height,
            captured_at: info.captured_at,
            gps: info.gps,
            added_by: self.identity.user_id.clone(),
            added_at: self.now(),
        };
        self.write(case, "attach_photo", Touched::Case, |doc| {
            let list = document::photo_list(doc, target)?;
            document::attach_photo(doc, &list, &photo).map(drop)
        })
    }

    /// Detaches a photo from one place. The blob stays as long as any case still
    /// references it, and is only removed by `collect_garbage`.
    pub fn detach_photo(&mut self, case: CaseId, target: &PhotoTarget, sha256: &str) -> Result<()> {
        self.write(case, "detach_photo", Touched::Case, |doc| {
            let list = document::photo_list(doc, target)?;
            document::detach_photo(doc, &list, sha256)
        })
    }

    /// A photo's thumbnail (JPEG), verified against its hash.
    pub fn photo_thumbnail(&self, sha256: &str) -> Result<Vec<u8>> {
        let thumbnail = self.photo(sha256)?.thumbnail_sha256;
        self.blob(&thumbnail)
    }

    /// A blob's bytes (an original byte-exact as ingested, or a thumbnail), verified
    /// against its hash.
    pub fn blob(&self, sha256: &str) -> Result<Vec<u8>> {
        let bytes: Vec<u8> = self
            .conn
            .query_row("SELECT bytes FROM blobs WHERE sha256 = ?1", [sha256], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| Error::not_found("blob", sha256))?;
        if photo::sha256_hex(&bytes) != sha256 {
            return Err(Error::BlobDamaged {
                sha256: sha256.to_owned(),
            });
        }
        Ok(bytes)
    }

    /// Blobs not yet acknowledged by the server: thumbnails first, then originals, oldest
    /// first within each.
    pub fn pending_uploads(&self) -> Result<Vec<PendingBlob>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT sha256, kind, size FROM blobs WHERE uploaded_at IS NULL
             ORDER BY kind = 'original', created_at, sha256",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(PendingBlob {
                sha256: r.get(0)?,
                kind: r.get(1)?,
                size: r.get::<_, i64>(2)? as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records that the server holds the whole blob.
    pub fn mark_uploaded(&mut self, sha256: &str) -> Result<()> {
        let changed = self.conn.execute(
            "UPDATE blobs SET uploaded_at = ?2 WHERE sha256 = ?1 AND uploaded_at IS NULL",
            params![sha256, Utc::now().to_rfc3339()],
        )?;
        if changed == 0 && !self.has_blob(sha256)? {
            return Err(Error::not_found("blob", sha256));
        }
        Ok(())
    }

    /// Keeps a blob fetched from the server, after checking it against its hash; it
    /// counts as uploaded (the server has it).
    pub fn store_fetched_blob(
        &mut self,
        sha256: &str,
        kind: &str,
        mime: &str,
        bytes: &[u8],
    ) -> Result<()> {
        if photo::sha256_hex(bytes) != sha256 {
            return Err(Error::BlobDamaged {
                sha256: sha256.to_owned(),
            });
        }
        let now = Utc::now().to_rfc3339();
        self.conn.execute(
            "INSERT OR IGNORE INTO blobs (sha256, kind, mime, size, bytes, created_at, uploaded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            params![sha256, kind, mime, bytes.len() as i64, bytes, now],
        )?;
        Ok(())
    }

    /// Whether sync uploads originals (thumbnails always go); an app can hold originals
    /// back until the phone is on Wi-Fi.
    pub fn set_upload_originals(&mut self, upload: bool) {
        self.upload_originals = upload;
    }

    /// Whether sync uploads originals.
    pub fn upload_originals(&self) -> bool {
        self.upload_originals
    }

    /// Whether this store holds the blob.
    pub fn has_blob(&self, sha256: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM blobs WHERE sha256 = ?1",
                [sha256],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Removes every blob no case references any more (photos detached everywhere, or
    /// ingested and never attached) and none has for `UNATTACHED_HOURS` since it was
    /// stored (a photo just taken is not attached yet while its caption is typed). A blob
    /// that a change the server refused names stays: the refused change is kept for the
    /// inspector to enter again, and the photo it attached may exist nowhere else. Only
    /// this call ever deletes evidence bytes.
    pub fn collect_garbage(&mut self) -> Result<GarbageReport> {
        let refused = self.named_by_refused_changes()?;
        let before = self.now() - chrono::Duration::hours(UNATTACHED_HOURS);
        let tx = self.conn.transaction()?;
        let unreferenced: Vec<(String, i64, String)> = tx
            .prepare(
                "SELECT sha256, size, created_at FROM blobs
                 WHERE sha256 NOT IN (SELECT sha256 FROM blob_refs)",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut report = GarbageReport { blobs: 0, bytes: 0 };
        for (sha256, size, stored) in unreferenced {
            // A time that does not read is kept as if recent: nothing is deleted on a guess.
            let recent = DateTime::parse_from_rfc3339(&stored).map_or(true, |at| at > before);
            if recent || refused.contains(&sha256) {
                continue;
            }
            tx.prepare_cached("DELETE FROM photos WHERE sha256 = ?1")?
                .execute([&sha256])?;
            tx.prepare_cached("DELETE FROM blobs WHERE sha256 = ?1")?
                .execute([&sha256])?;
            report.blobs += 1;
            report.bytes += size as u64;
        }
        tx.commit()?;
        tracing::info!(
            blobs = report.blobs,
            bytes = report.bytes,
            "garbage collected"
        );
        Ok(report)
    }

    /// Every text the changes the server refused write that could name a blob (a hex
    /// SHA-256): more than the photos they attach, never less.
    fn named_by_refused_changes(&self) -> Result<std::collections::HashSet<String>> {
        let mut stmt = self.conn.prepare("SELECT change FROM refusals")?;
        let mut rows = stmt.query([])?;
        let mut named = std::collections::HashSet::new();
        while let Some(row) = rows.next()? {
            let bytes: Vec<u8> = row.get(0)?;
            let change = automerge::Change::try_from(bytes.as_slice())
                .map_err(|e| Error::Corrupt(format!("a refused change: {e}")))?;
            for op in change.decode().operations {
                if let automerge::legacy::OpType::Put(automerge::ScalarValue::Str(text)) = op.action
                    && text.len() == 64
                    && text.bytes().all(|b| b.is_ascii_hexdigit())
                {
                    named.insert(text.to_string());
                }
            }
        }
        Ok(named)
    }
}
