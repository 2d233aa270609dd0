//! The network between the phones and the server: every frame in flight with the virtual
//! time it arrives; the seed decides which are dropped, duplicated, delayed past later
//! ones or cut short, and which phones are cut off.

use std::collections::{BTreeMap, BTreeSet};

use anjian_core::sync::CatalogPage;
use rand::Rng;
use rand::rngs::StdRng;

use crate::server::ConnId;

/// Where a frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To {
    Server,
    Phone(usize),
}

/// What travels.
pub enum Payload {
    /// `GET /api/v1/catalog?since=`.
    Catalog(i64),
    /// Its answer.
    Page(CatalogPage),
    /// A sync connection opens.
    Open,
    /// A WebSocket frame.
    Frame(Vec<u8>),
    /// The connection closes.
    Close,
}

/// One frame in flight.
pub struct Packet {
    pub at: u64,
    seq: u64,
    pub to: To,
    /// The phone at the other end.
    pub from: usize,
    pub conn: ConnId,
    pub payload: Payload,
}

/// Frames in flight, and the phones cut off.
#[derive(Default)]
pub struct Net {
    flight: Vec<Packet>,
    cut_off: BTreeSet<usize>,
    seq: u64,
    /// When the last frame of each connection and direction arrives: frames keep their
    /// order unless a fault delays one past the next.
    last: BTreeMap<(ConnId, bool), u64>,
}

impl Net {
    /// Sends a frame; with `faults`, it may be dropped, duplicated, delayed or cut.
    #[expect(clippy::too_many_arguments, reason = "one frame's every attribute")]
    pub fn send(
        &mut self,
        rng: &mut StdRng,
        now: u64,
        to: To,
        phone: usize,
        conn: ConnId,
        payload: Payload,
        faults: bool,
    ) {
        if faults && self.cut_off.contains(&phone) {
            return;
        }
        let mut payload = payload;
        let mut copies = 1;
        if faults {
            let roll = rng.random_range(0..100);
            match roll {
                0..=3 => return,
                4..=6 => copies = 2,
                7..=8 => {
                    if let Payload::Frame(bytes) = &mut payload
                        && bytes.len() > 1
                    {
                        let keep = rng.random_range(0..bytes.len());
                        bytes.truncate(keep);
                    }
                }
                _ => {}
            }
        }
        for copy in 0..copies {
            let last = self.last.entry((conn, to == To::Server)).or_default();
            let at = if faults && rng.random_bool(0.05) {
                now + rng.random_range(500..5_000)
            } else {
                let at = (now + rng.random_range(1..50)).max(*last);
                *last = at;
                at
            };
            self.seq += 1;
            let payload = if copy + 1 == copies {
                std::mem::replace(&mut payload, Payload::Close)
            } else {
                payload.duplicate()
            };
            self.flight.push(Packet {
                at,
                seq: self.seq,
                to,
                from: phone,
                conn,
                payload,
            });
        }
    }

    /// The next frame to arrive.
    pub fn next(&mut self) -> Option<Packet> {
        let index = self
            .flight
            .iter()
            .enumerate()
            .min_by_key(|(_, p)| (p.at, p.seq))
            .map(|(i, _)| i)?;
        Some(self.flight.swap_remove(index))
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.flight.is_empty()
    }

    /// Cuts a phone off, or brings it back; `true` if it is now cut off.
    pub fn toggle(&mut self, phone: usize) -> bool {
        if !self.cut_off.remove(&phone) {
            self.cut_off.insert(phone);
            return true;
        }
        false
    }

    /// Every phone back.
    pub fn heal(&mut self) {
        self.cut_off.clear();
    }

    /// The server crashed: what was on its way to it is lost, and so is every connection.
    pub fn drop_server_bound(&mut self) {
        self.flight.retain(|p| p.to != To::Server);
    }
}

impl Payload {
    fn duplicate(&self) -> Payload {
        match self {
            Payload::Catalog(since) => Payload::Catalog(*since),
            Payload::Page(page) => Payload::Page(page.clone()),
            Payload::Open => Payload::Open,
            Payload::Frame(bytes) => Payload::Frame(bytes.clone()),
            Payload::Close => Payload::Close,
        }
    }
}
