//! The one error type of the core, with messages a person can act on.

use std::path::PathBuf;

/// Everything that can go wrong in the core. Every variant leaves the store unchanged.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input failed validation; `field` names it, `message` says what is wrong.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The field that was wrong (`credit_code`, `deadline`, …).
        field: &'static str,
        /// What was wrong and what would be right.
        message: String,
    },
    /// A referenced record does not exist in this store.
    #[error("{what} {id} not found in this store")]
    NotFound {
        /// What kind of record (`enterprise`, `case`, `finding`).
        what: &'static str,
        /// The id that was asked for.
        id: String,
    },
    /// The operation is not allowed in the record's current state.
    #[error("not allowed: {0}")]
    NotAllowed(String),
    /// The file exists but is not an Anjian store.
    #[error("{path} is not an Anjian store ({reason}); choose another file")]
    NotAStore {
        /// The file that was opened.
        path: PathBuf,
        /// Why it was not recognised.
        reason: String,
    },
    /// The file was written by a newer version of the app.
    #[error(
        "{path} was written by a newer version of Anjian (store version {found}, this app knows up to {supported}); update the app"
    )]
    NewerStore {
        /// The file that was opened.
        path: PathBuf,
        /// The store version found in the file.
        found: i64,
        /// The newest store version this build knows.
        supported: i64,
    },
    /// The database file is damaged.
    #[error("the store file is damaged ({0}); restore it from a backup, or sync into a new store")]
    Corrupt(String),
    /// Bytes given to merge (or found in storage) are not a valid case document.
    #[error("not a valid case document: {0}")]
    InvalidDocument(String),
    /// The case document was written by a newer version of the app.
    #[error("case document uses schema {found}, this app knows up to {supported}; update the app")]
    NewerDocument {
        /// The document's schema version.
        found: i64,
        /// The newest schema this build knows.
        supported: i64,
    },
    /// A photo was refused: empty, too large, not an image, damaged, a decompression
    /// bomb, or with impossible EXIF data.
    #[error("photo refused: {0}")]
    Photo(#[from] PhotoError),
    /// A stored blob no longer matches its hash.
    #[error(
        "blob {sha256} is damaged in storage (its bytes no longer match the hash); fetch it again"
    )]
    BlobDamaged {
        /// The blob's hash.
        sha256: String,
    },
    /// The server could not be reached, or the connection broke; sync again later.
    #[error("network error: {0}; sync again when the connection is back")]
    Network(String),
    /// The server refused the credentials or the token.
    #[error("not signed in: {0}")]
    Auth(String),
    /// The server broke the sync protocol.
    #[error("sync failed: {0}")]
    Sync(String),
    /// Any other storage failure (disk full, I/O error, locked file).
    #[error("storage error: {0}")]
    Storage(rusqlite::Error),
}

/// The core's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A validation error on `field`.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid {
            field,
            message: message.into(),
        }
    }

    /// A missing record.
    pub fn not_found(what: &'static str, id: impl ToString) -> Self {
        Error::NotFound {
            what,
            id: id.to_string(),
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(error: rusqlite::Error) -> Self {
        use rusqlite::ffi::ErrorCode;
        match error.sqlite_error_code() {
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                Error::Corrupt(error.to_string())
            }
            _ => Error::Storage(error),
        }
    }
}

impl From<automerge::AutomergeError> for Error {
    fn from(error: automerge::AutomergeError) -> Self {
        Error::InvalidDocument(error.to_string())
    }
}

/// Why a photo was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PhotoError {
    /// Zero bytes.
    #[error("the photo is empty (0 bytes)")]
    Empty,
    /// Over the size limit.
    #[error("the photo is {size} bytes, the limit is {limit} bytes")]
    TooLarge {
        /// The photo's size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Not an image at all.
    #[error("the file is not an image")]
    NotAnImage,
    /// An image format the core does not accept.
    #[error("{0} images are not accepted; convert to JPEG first")]
    Unsupported(String),
    /// Declares more pixels than allowed (e.g. a decompression bomb).
    #[error(
        "the image declares {width} x {height} pixels, more than allowed ({limit} pixels, {edge} per edge)"
    )]
    TooManyPixels {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The pixel limit.
        limit: u64,
        /// The edge limit.
        edge: u32,
    },
    /// The image data is damaged or truncated.
    #[error("the image is damaged or incomplete: {0}")]
    Damaged(String),
    /// The EXIF block is garbage or holds impossible values.
    #[error(
        "the photo's EXIF data is invalid ({field}: {message}); take the photo again with the camera"
    )]
    InvalidExif {
        /// The EXIF field (or `exif` for the whole block).
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}
