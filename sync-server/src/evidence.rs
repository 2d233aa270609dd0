//! Evidence packages: everything an independent party needs to check, without this code,
//! who wrote each record of a case and when the server received it (`anjian-evidence/1`,
//! one JSON file, docs/EVIDENCE.md). The package states no hash that a verifier has to
//! trust: it carries the bytes (changes, photos, keys) and the signatures, and the
//! verifier recomputes every hash from the bytes.
//!
//! The command line (`evidence export`) and the case page's download call the same
//! [`export`], so that both give the same bytes for the same stored case; the case page's
//! signature checks ([`check`]) read the same rows.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::db::{Conn, params};
use anjian_core::certificate::{Certificate, Receipt};
use anjian_core::signing::{ChangeSignature, PublicKey, Signer};
use anjian_core::{CaseId, case_doc};
use automerge::{AutoCommit, Change, ChangeHash};
use base64::Engine as _;
use serde::Serialize;

use crate::blob_store::BlobStore;
use crate::error::{AppError, AppResult};
use crate::storage::Storage;
use crate::users::SERVER_DEVICE_NAME;

/// The format name an evidence package starts with.
pub const FORMAT: &str = "anjian-evidence/1";

/// What precedes the package's canonical JSON in the bytes the server signs for it
/// (docs/EVIDENCE.md): the server's statement that the package is what it held for the
/// case, every change of it included, when it made the package.
pub const PACKAGE_CONTEXT: &[u8] = b"anjian evidence v1\n";

/// Whether a package carries the photos' bytes or only names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Photos {
    /// Only each photo's hash (as the case names it) and type.
    Hashes,
    /// Each photo's bytes as well, when the server holds them and they come to at most
    /// `limit` bytes in all (`None`: whatever they come to).
    Included {
        /// The most bytes of photos the package may carry, or `None`.
        limit: Option<u64>,
    },
}

/// The most bytes of photos a package made on the supervisors' pages carries (it is built
/// in memory, a third larger in base64): a larger one is exported on the server
/// (`anjian-sync-server evidence export --photos`).
pub const PAGE_PHOTO_BYTES: u64 = 256 << 20;

/// The evidence package of `case` as JSON bytes: every change of the case's document
/// with its device signature and the server's receipt, the authors' accounts, devices,
/// keys and certificates, the server's public key and its signed statement of the case's
/// heads, and the photos (see docs/EVIDENCE.md). The same stored case always gives the
/// same bytes. It reads the photos from the blob store: call it from a thread that may
/// block, inside the runtime (`spawn_blocking`).
pub fn export(
    storage: &Storage,
    blobs: &BlobStore,
    case: CaseId,
    photos: Photos,
) -> AppResult<Vec<u8>> {
    let mut doc = storage
        .load_document(case)?
        .ok_or_else(|| AppError::NotFound(format!("没有该案件 (no case {case})")))?;
    let gathered = gather(storage, case, &mut doc)?;
    let case_read = case_doc::read(&doc)?;
    let server = storage.server_key();
    let mut heads: Vec<ChangeHash> = doc.get_heads();
    heads.sort();

    if let Photos::Included { limit: Some(limit) } = photos {
        let total = photo_bytes(storage, &case_read)?;
        if total > limit {
            return Err(AppError::TooLarge(format!(
                "该案件的照片共 {total} 字节，超过网页导出的上限 {limit} 字节，请在服务器上用 evidence export --photos 导出 (the case's photos come to {total} bytes, over the {limit} a page exports)"
            )));
        }
    }
    let mut photo_entries: BTreeMap<String, PhotoEntry> = BTreeMap::new();
    for photo in case_read.photos() {
        for (sha256, kind, mime) in [
            (&photo.sha256, "original", photo.mime.as_str()),
            // Thumbnails are JPEG whatever the original is (core::photo).
            (&photo.thumbnail, "thumbnail", "image/jpeg"),
        ] {
            if photo_entries.contains_key(sha256) {
                continue;
            }
            let bytes = match photos {
                Photos::Hashes => None,
                Photos::Included { .. } => read_blob(blobs, sha256)?.map(|b| B64.encode(b)),
            };
            photo_entries.insert(
                sha256.clone(),
                PhotoEntry {
                    sha256: sha256.clone(),
                    kind,
                    mime: mime.to_owned(),
                    bytes,
                },
            );
        }
    }

    let package = Package {
        format: FORMAT,
        case: case.to_string(),
        server: KeyEntry {
            algorithm: server.public_key().algorithm().code(),
            public_key: hex::encode(server.public_key().bytes()),
            registered_at: None,
        },
        heads: heads.iter().map(ToString::to_string).collect(),
        changes: gathered
            .changes
            .iter()
            .map(|c| ChangeEntry {
                bytes: B64.encode(&c.bytes),
                signature: c.signature.as_ref().map(|(key, signature)| SignatureEntry {
                    key_id: hex::encode(key),
                    signature: hex::encode(signature),
                }),
                receipt: c.receipt.as_ref().map(|r| ReceiptEntry {
                    author: gathered.username(r.author),
                    relayed_by: r.relayed_by.map(|id| gathered.username(id)),
                    received_at: r.received_at.clone(),
                    issuer: r.issuer.as_deref().map(hex::encode),
                    signature: r.signature.as_deref().map(hex::encode),
                }),
            })
            .collect(),
        accounts: gathered
            .accounts
            .values()
            .map(|a| AccountEntry {
                username: a.username.clone(),
                name: a.name.clone(),
                role: a.role.clone(),
                district: a.district.clone(),
                department: a.department.clone(),
            })
            .collect(),
        devices: gathered
            .devices
            .values()
            .map(|d| DeviceEntry {
                actor: d.actor.clone(),
                account: gathered.username(d.user_id),
                name: d.name.clone(),
                created_at: d.created_at.clone(),
                revoked_at: d.revoked_at.clone(),
                keys: d
                    .keys
                    .iter()
                    .map(|k| KeyEntry {
                        algorithm: k.algorithm.code(),
                        public_key: hex::encode(k.key.bytes()),
                        registered_at: Some(k.registered_at.clone()),
                    })
                    .collect(),
                certificates: d.certificates.iter().map(|c| B64.encode(c)).collect(),
            })
            .collect(),
        photos: photo_entries.into_values().collect(),
    };
    let json =
        |e: serde_json::Error| AppError::Internal(format!("writing the evidence package: {e}"));
    let mut value = serde_json::to_value(&package).map_err(json)?;
    let signature = server
        .sign(&package_message(&value))
        .map_err(|e| AppError::Internal(format!("signing the evidence package: {e}")))?;
    value
        .as_object_mut()
        .expect("a package is a JSON object")
        .insert("signature".into(), hex::encode(signature).into());
    let mut bytes = serde_json::to_vec_pretty(&value).map_err(json)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// The bytes the server signs for a package (`package` is the package without its
/// top-level `signature` field):
/// [`PACKAGE_CONTEXT`] followed by the package's canonical JSON, in which every object's
/// keys are in ascending order and no whitespace separates anything (the package holds
/// strings, integers, `null` and lists and objects of them; strings are escaped as JSON
/// requires and no further, as RFC 8785 writes them).
pub fn package_message(package: &serde_json::Value) -> Vec<u8> {
    let mut message = PACKAGE_CONTEXT.to_vec();
    canonical(package, &mut message);
    message
}

fn canonical(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(Value::from(key.as_str()).to_string().as_bytes());
                out.push(b':');
                canonical(&map[key], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(item, out);
            }
            out.push(b']');
        }
        // Strings (escaped as RFC 8785 escapes them), integers, booleans and null.
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

/// How one check of a change came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The signature verifies against the key the server holds for it.
    Verified,
    /// There is no signature to check.
    Missing,
    /// There is a signature and it does not hold, for this reason.
    Failed(String),
}

/// One change of a case as the case page shows it: who wrote it, with which device and
/// key, whether its signatures verify, who relayed it and when the server received it.
#[derive(Debug, Clone)]
pub struct ChangeCheck {
    /// The change hash (hex).
    pub hash: String,
    /// The device that wrote it (actor id, hex).
    pub actor: String,
    /// The device's name, when the server knows the device.
    pub device: Option<String>,
    /// The author's account (username, name), from the server's receipt.
    pub author: Option<(String, String)>,
    /// The id of the key that signed it (hex).
    pub key_id: Option<String>,
    /// Whether that key is the server's own: the server wrote the change for a
    /// supervisor, under the supervisor's server-side device.
    pub server_signed: bool,
    /// The change's signature: against the key the device registered, or, for a change
    /// the server signed, against the server's key certified for the device.
    pub signature: Verdict,
    /// The server's signature of its receipt.
    pub receipt: Verdict,
    /// The account that relayed it, when another device carried it to the server.
    pub relayed_by: Option<String>,
    /// When the server received it (RFC 3339, server time).
    pub received_at: Option<String>,
}

/// Checks every change of `doc` as a verifier of its evidence package would: each
/// change's signature ([`verify_change`]) and each receipt against the server's key.
pub fn check(storage: &Storage, case: CaseId, doc: &mut AutoCommit) -> AppResult<Vec<ChangeCheck>> {
    let gathered = gather(storage, case, doc)?;
    let server = storage.server_key().public_key();
    Ok(gathered
        .changes
        .iter()
        .map(|c| {
            let device = gathered.devices.get(&c.actor);
            let signature = verify_change(c, &gathered, &server);
            let receipt = match &c.receipt {
                Some(ReceiptRow {
                    issuer: Some(issuer),
                    signature: Some(signature),
                    received_at,
                    ..
                }) => match issuer.as_slice().try_into() {
                    Ok(issuer) => Receipt {
                        hash: c.hash,
                        actor: c.actor.clone(),
                        received_at: received_at.clone(),
                        issuer,
                        signature: signature.clone(),
                    }
                    .verify(&server)
                    .map_or_else(|e| Verdict::Failed(e.to_string()), |()| Verdict::Verified),
                    Err(_) => Verdict::Failed("the receipt names no server key".into()),
                },
                _ => Verdict::Missing,
            };
            ChangeCheck {
                hash: c.hash.to_string(),
                actor: c.actor.clone(),
                device: device.map(|d| d.name.clone()),
                author: c.receipt.as_ref().and_then(|r| {
                    gathered
                        .accounts
                        .get(&r.author)
                        .map(|a| (a.username.clone(), a.name.clone()))
                }),
                key_id: c.signature.as_ref().map(|(key, _)| hex::encode(key)),
                server_signed: c
                    .signature
                    .as_ref()
                    .is_some_and(|(key, _)| key.as_slice() == server.id().as_slice()),
                signature,
                receipt,
                relayed_by: c
                    .receipt
                    .as_ref()
                    .and_then(|r| r.relayed_by)
                    .map(|id| gathered.username(id)),
                received_at: c.receipt.as_ref().map(|r| r.received_at.clone()),
            }
        })
        .collect())
}

/// The one check of a change's signature (docs/EVIDENCE.md, check 6). A device's change
/// verifies against a key the device registered. A change signed with the server's own
/// key verifies against that key only when the server wrote it for a supervisor
/// ([`server_may_sign`]); the same signature on any other device's change fails.
fn verify_change(change: &GatheredChange, gathered: &Gathered, server: &PublicKey) -> Verdict {
    let Some((key_id, signature)) = &change.signature else {
        return Verdict::Missing;
    };
    let Some(signature) = ChangeSignature::from_stored(change.hash, key_id, signature) else {
        return Verdict::Failed("the stored signature is not 8 + 64 bytes".into());
    };
    let device = gathered.devices.get(&change.actor);
    // The server's key first: a device that registered the server's public key as its own
    // does not make the server's signature its own.
    let key = if signature.key == server.id() {
        if let Err(reason) = server_may_sign(change, device, gathered, server) {
            return Verdict::Failed(reason);
        }
        server
    } else {
        match device.and_then(|d| d.keys.iter().find(|k| k.key.id() == signature.key)) {
            Some(key) => &key.key,
            None => {
                return Verdict::Failed("the key is not one the writing device registered".into());
            }
        }
    };
    signature
        .verify(key)
        .map_or_else(|e| Verdict::Failed(e.to_string()), |()| Verdict::Verified)
}

/// Whether the server's key may have signed `change`: the server signs only what it writes
/// itself for a supervisor (`sync::document::change_in`), under the supervisor's
/// server-side device, which holds the server's certificate binding the server's key to
/// that device as that supervisor's; and the receipt names the same account.
fn server_may_sign(
    change: &GatheredChange,
    device: Option<&DeviceRow>,
    gathered: &Gathered,
    server: &PublicKey,
) -> Result<(), String> {
    let Some(device) = device.filter(|d| d.name == SERVER_DEVICE_NAME) else {
        return Err(format!(
            "the server's key signs only changes of a supervisor's server-side device, and {} is not one",
            change.actor
        ));
    };
    let Some(receipt) = &change.receipt else {
        return Err("a change the server signed has no receipt naming its account".into());
    };
    if receipt.author != device.user_id {
        return Err("the receipt names another account than the server-side device's".into());
    }
    let username = gathered.accounts.get(&device.user_id).map(|a| &a.username);
    let certified = device
        .certificates
        .iter()
        .filter_map(|bytes| Certificate::decode(bytes).ok())
        .any(|c| {
            let fields = c.fields();
            c.issued_by(server).is_ok()
                && fields.actor == change.actor
                && fields.key == *server
                && Some(&fields.user) == username
        });
    if certified {
        Ok(())
    } else {
        Err("the server never certified its key for this server-side device".into())
    }
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A change with what the server holds about it.
struct GatheredChange {
    hash: ChangeHash,
    actor: String,
    bytes: Vec<u8>,
    /// Key id and signature, as received.
    signature: Option<(Vec<u8>, Vec<u8>)>,
    receipt: Option<ReceiptRow>,
}

struct ReceiptRow {
    author: i64,
    relayed_by: Option<i64>,
    received_at: String,
    issuer: Option<Vec<u8>>,
    signature: Option<Vec<u8>>,
}

struct DeviceRow {
    actor: String,
    user_id: i64,
    name: String,
    created_at: String,
    revoked_at: Option<String>,
    keys: Vec<KeyRow>,
    certificates: Vec<Vec<u8>>,
}

struct KeyRow {
    algorithm: anjian_core::signing::KeyAlgorithm,
    key: PublicKey,
    registered_at: String,
}

struct AccountRow {
    username: String,
    name: String,
    role: String,
    district: String,
    department: String,
}

/// Everything the server holds about the changes of one document, read in one go.
struct Gathered {
    changes: Vec<GatheredChange>,
    /// By actor id.
    devices: BTreeMap<String, DeviceRow>,
    /// By account id.
    accounts: BTreeMap<i64, AccountRow>,
}

impl Gathered {
    fn username(&self, id: i64) -> String {
        self.accounts
            .get(&id)
            .map_or_else(|| format!("#{id}"), |a| a.username.clone())
    }
}

fn gather(storage: &Storage, case: CaseId, doc: &mut AutoCommit) -> AppResult<Gathered> {
    let changes: Vec<Change> = doc.get_changes(&[]);
    storage.read(|conn| {
        // The case's receipts in one statement (a case of many changes read them one by
        // one), by change.
        let mut rows: HashMap<String, _> = conn
            .query_map(
                "SELECT change_hash, user_id, relayed_by, received_at, key_id, signature, receipt_issuer, receipt_signature
                 FROM receipts WHERE case_id = ?1",
                params![case.to_string()],
                |r| {
                    Ok((
                        r.get::<String>(0)?,
                        (
                            ReceiptRow {
                                author: r.get(1)?,
                                relayed_by: r.get(2)?,
                                received_at: r.get(3)?,
                                issuer: r.get(6)?,
                                signature: r.get(7)?,
                            },
                            r.get::<Option<Vec<u8>>>(4)?,
                            r.get::<Option<Vec<u8>>>(5)?,
                        ),
                    ))
                },
            )?
            .into_iter()
            .collect();
        let mut gathered = Vec::with_capacity(changes.len());
        let mut actors = BTreeSet::new();
        let mut account_ids = BTreeSet::new();
        for change in &changes {
            let hash = change.hash();
            let row = rows.remove(&hash.to_string());
            let (receipt, signature) = match row {
                Some((receipt, Some(key), Some(signature))) => (Some(receipt), Some((key, signature))),
                Some((receipt, _, _)) => (Some(receipt), None),
                None => (None, None),
            };
            if let Some(r) = &receipt {
                account_ids.insert(r.author);
                account_ids.extend(r.relayed_by);
            }
            let actor = change.actor_id().to_hex_string();
            actors.insert(actor.clone());
            gathered.push(GatheredChange {
                hash,
                actor,
                bytes: change.raw_bytes().to_vec(),
                signature,
                receipt,
            });
        }
        let devices = devices(conn, &actors)?;
        account_ids.extend(devices.values().map(|d| d.user_id));
        Ok(Gathered {
            changes: gathered,
            accounts: accounts(conn, &account_ids)?,
            devices,
        })
    })
}

fn devices(
    conn: &mut dyn Conn,
    actors: &BTreeSet<String>,
) -> AppResult<BTreeMap<String, DeviceRow>> {
    let mut found = BTreeMap::new();
    for actor in actors {
        let Some((user_id, name, created_at, revoked_at)) = conn.query_opt(
            "SELECT user_id, name, created_at, revoked_at FROM devices WHERE actor_id = ?1",
            params![actor],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?
        else {
            continue;
        };
        let keys = conn.query_map(
            "SELECT algorithm, public_key, registered_at FROM device_keys WHERE actor_id = ?1
             ORDER BY registered_at, key_id",
            params![actor],
            |r| {
                let algorithm = r.get::<String>(0)?.parse()?;
                let key = PublicKey::new(algorithm, r.get(1)?)
                    .map_err(|e| AppError::Internal(format!("a stored device key: {e}")))?;
                Ok(KeyRow {
                    algorithm,
                    key,
                    registered_at: r.get(2)?,
                })
            },
        )?;
        let certificates = conn.query_map(
            "SELECT bytes FROM certificates WHERE actor_id = ?1 ORDER BY id",
            params![actor],
            |r| r.get::<Vec<u8>>(0),
        )?;
        found.insert(
            actor.clone(),
            DeviceRow {
                actor: actor.clone(),
                user_id,
                name,
                created_at,
                revoked_at,
                keys,
                certificates,
            },
        );
    }
    Ok(found)
}

fn accounts(conn: &mut dyn Conn, ids: &BTreeSet<i64>) -> AppResult<BTreeMap<i64, AccountRow>> {
    let mut found = BTreeMap::new();
    for id in ids {
        if let Some(account) = conn.query_opt(
            "SELECT username, name, role, district, department FROM users WHERE id = ?1",
            params![id],
            |r| {
                Ok(AccountRow {
                    username: r.get(0)?,
                    name: r.get(1)?,
                    role: r.get(2)?,
                    district: r.get(3)?,
                    department: r.get(4)?,
                })
            },
        )? {
            found.insert(*id, account);
        }
    }
    Ok(found)
}

/// The bytes of the photos (originals and thumbnails) of `case` the server holds.
fn photo_bytes(storage: &Storage, case: &anjian_core::Case) -> AppResult<u64> {
    let named: std::collections::BTreeSet<&str> = case
        .photos()
        .flat_map(|p| [p.sha256.as_str(), p.thumbnail.as_str()])
        .collect();
    storage.read(|conn| {
        let mut total = 0u64;
        for sha256 in named {
            let size: Option<i64> = conn.query_opt(
                "SELECT size FROM blobs WHERE sha256 = ?1",
                crate::db::params![sha256],
                |r| r.get(0),
            )?;
            total += size.unwrap_or(0).max(0) as u64;
        }
        Ok(total)
    })
}

/// A photo's bytes, if the server holds them.
fn read_blob(blobs: &BlobStore, sha256: &str) -> AppResult<Option<Vec<u8>>> {
    // The hash comes from a case document: only a well-formed one names a file.
    if sha256.len() != 64
        || !sha256
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Ok(None);
    }
    blobs.read_blocking(sha256)
}

// The package as JSON: field names in camelCase, fields in the order docs/EVIDENCE.md
// gives them. Binary values are hex when short (keys, signatures, ids) and base64 when
// long (changes, certificates, photos).

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Package {
    format: &'static str,
    case: String,
    server: KeyEntry,
    heads: Vec<String>,
    changes: Vec<ChangeEntry>,
    accounts: Vec<AccountEntry>,
    devices: Vec<DeviceEntry>,
    photos: Vec<PhotoEntry>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyEntry {
    algorithm: &'static str,
    public_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    registered_at: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChangeEntry {
    bytes: String,
    signature: Option<SignatureEntry>,
    receipt: Option<ReceiptEntry>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SignatureEntry {
    key_id: String,
    signature: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReceiptEntry {
    author: String,
    relayed_by: Option<String>,
    received_at: String,
    issuer: Option<String>,
    signature: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AccountEntry {
    username: String,
    name: String,
    role: String,
    district: String,
    department: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeviceEntry {
    actor: String,
    account: String,
    name: String,
    created_at: String,
    revoked_at: Option<String>,
    keys: Vec<KeyEntry>,
    certificates: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PhotoEntry {
    sha256: String,
    kind: &'static str,
    mime: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<String>,
}
