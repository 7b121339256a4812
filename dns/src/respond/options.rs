//! How a [`Responder`](super::Responder) answers: payload sizes and answer-policy knobs.

use crate::wire::edns;
use serde::{Deserialize, Serialize};

/// Responder settings. Every field has a default, so a config names only what it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// The EDNS UDP payload size we advertise, and the most a UDP reply uses even when the
    /// client offers more (default 1232, avoiding IP fragmentation).
    pub udp_payload: u16,
    /// `one-persistent` treats IPv4 clients in the same prefix of this length as one client
    /// (default 32: each address on its own).
    pub client_prefix_v4: u8,
    /// As `client_prefix_v4`, for IPv6 (default 128).
    pub client_prefix_v6: u8,
    /// Slots in the per-worker sticky table, which keeps a client on its pick for the record
    /// set's `affinity_timeout` even when addresses join. 0 turns it off (pure rendezvous).
    pub sticky_entries: usize,
    /// With sticky picks: when a client's first pick comes back up after it moved away, move it
    /// back (default true). When false it stays where it moved until its entry expires.
    pub fail_back: bool,
    /// When every address of a set is marked down: answer with all of them (true, the default)
    /// rather than SERVFAIL.
    pub fail_open: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            udp_payload: edns::PAYLOAD,
            client_prefix_v4: 32,
            client_prefix_v6: 128,
            sticky_entries: 16_384,
            fail_back: true,
            fail_open: true,
        }
    }
}
