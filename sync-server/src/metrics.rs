//! Counters for `/metrics` (Prometheus text format).

use std::sync::atomic::{AtomicU64, Ordering};

/// What the server counts.
#[derive(Default)]
pub struct Metrics {
    /// HTTP requests received (sync connections' upgrades among them).
    pub requests: AtomicU64,
    /// Open sync connections.
    pub connections: AtomicU64,
    /// Frames received on sync connections.
    pub frames_received: AtomicU64,
    /// Frames sent on sync connections.
    pub frames_sent: AtomicU64,
    /// Changes accepted and committed.
    pub changes_accepted: AtomicU64,
    /// Changes refused by policy.
    pub changes_refused: AtomicU64,
    /// Bytes the sync states of every open connection hold (`Session::kept_bytes`).
    pub sync_state_bytes: AtomicU64,
    /// Whole documents sent from their stored bytes to peers that had nothing of them,
    /// without reading the documents into memory.
    pub documents_served_stored: AtomicU64,
    /// Tries to give a document sealed with a provisional number the server's number that
    /// failed (tried again after the case's next commit).
    pub numbers_not_given: AtomicU64,
    /// Frames held back because their account had spent its minute of the apply threads
    /// (`limits.apply_ms_per_user_per_minute`).
    pub apply_time_waits: AtomicU64,
}

impl Metrics {
    /// The counters in Prometheus text format, with `gauges` read from elsewhere
    /// (name, help, value).
    pub fn render(&self, gauges: &[(&str, &str, u64)]) -> String {
        let mut out = String::new();
        for (name, help, value) in gauges {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
            ));
        }
        for (name, help, kind, value) in [
            (
                "anjian_http_requests_total",
                "HTTP requests received.",
                "counter",
                &self.requests,
            ),
            (
                "anjian_sync_connections",
                "Open sync connections.",
                "gauge",
                &self.connections,
            ),
            (
                "anjian_sync_frames_received_total",
                "Frames received on sync connections.",
                "counter",
                &self.frames_received,
            ),
            (
                "anjian_sync_frames_sent_total",
                "Frames sent on sync connections.",
                "counter",
                &self.frames_sent,
            ),
            (
                "anjian_sync_state_bytes",
                "Bytes the sync states of open connections hold.",
                "gauge",
                &self.sync_state_bytes,
            ),
            (
                "anjian_changes_accepted_total",
                "Changes accepted and committed.",
                "counter",
                &self.changes_accepted,
            ),
            (
                "anjian_changes_refused_total",
                "Changes refused by policy.",
                "counter",
                &self.changes_refused,
            ),
            (
                "anjian_documents_served_stored_total",
                "Whole documents sent from their stored bytes to peers that had nothing of them.",
                "counter",
                &self.documents_served_stored,
            ),
            (
                "anjian_numbers_not_given_total",
                "Tries to give a document sealed with a provisional number the server's number that failed.",
                "counter",
                &self.numbers_not_given,
            ),
            (
                "anjian_sync_apply_time_waits_total",
                "Frames held back because their account had spent its minute of the apply threads.",
                "counter",
                &self.apply_time_waits,
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}\n",
                value.load(Ordering::Relaxed)
            ));
        }
        out
    }
}
