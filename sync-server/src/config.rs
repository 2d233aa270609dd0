//! Settings: embedded defaults, then a TOML file, then environment variables, then flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::error::{AppError, AppResult};

/// How the server runs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Folder of the database and blobs.
    pub data: PathBuf,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest WebSocket message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Whether the supervisors' session cookie is `Secure` (sent over HTTPS only; browsers
    /// also accept it from `http://localhost` and `http://127.0.0.1`). Turn off only to
    /// try the pages over plain HTTP from another machine.
    pub secure_cookies: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            data: PathBuf::from("data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_message_bytes: 64 * 1024 * 1024,
            secure_cookies: true,
        }
    }
}

impl Settings {
    /// Defaults, overridden by the file (if given) and then by `ANJIAN_DATA`,
    /// `ANJIAN_LISTEN`, `ANJIAN_MAX_MESSAGE_BYTES` and `ANJIAN_SECURE_COOKIES`.
    pub fn load(file: Option<&std::path::Path>) -> AppResult<Settings> {
        let mut settings = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| AppError::BadRequest(format!("config {}: {e}", path.display())))?;
                toml::from_str(&text)
                    .map_err(|e| AppError::BadRequest(format!("config {}: {e}", path.display())))?
            }
            None => Settings::default(),
        };
        if let Ok(data) = std::env::var("ANJIAN_DATA") {
            settings.data = PathBuf::from(data);
        }
        if let Ok(listen) = std::env::var("ANJIAN_LISTEN") {
            settings.listen = listen
                .parse()
                .map_err(|e| AppError::BadRequest(format!("ANJIAN_LISTEN {listen:?}: {e}")))?;
        }
        if let Ok(max) = std::env::var("ANJIAN_MAX_MESSAGE_BYTES") {
            settings.max_message_bytes = max.parse().map_err(|e| {
                AppError::BadRequest(format!("ANJIAN_MAX_MESSAGE_BYTES {max:?}: {e}"))
            })?;
        }
        if let Ok(secure) = std::env::var("ANJIAN_SECURE_COOKIES") {
            settings.secure_cookies = secure.parse().map_err(|e| {
                AppError::BadRequest(format!("ANJIAN_SECURE_COOKIES {secure:?}: {e}"))
            })?;
        }
        Ok(settings)
    }
}
