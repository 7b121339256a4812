//! The in-kernel fast path for established flows (as Katran and Cilium do it): the XDP
//! program forwards the packets of flows whose session is in its `flows` map itself, and
//! only the rest reaches user space over `AF_XDP`.
//!
//! ```text
//! frame ─▶ XDP: untagged IPv4 (no options, not a fragment) TCP/UDP,
//!               TCP without SYN/FIN/RST, 5-tuple in `flows`?
//!            ├─ yes ─▶ rewrite (addresses, ports, MACs; checksums by precomputed delta),
//!            │         count packets/bytes in the entry, XDP_TX (the balancer is one-armed)
//!            └─ no ──▶ as before: to our AF_XDP socket if the destination is ours, else PASS
//! ```
//!
//! - The datapath stays pure. When a session becomes established (TCP: the handshake's last
//!   ACK went through user space; UDP: at once) it queues an [`Intent::Install`] of one entry
//!   per direction (client → VIP, and for full-NAT real server → SNAT address; DR replies
//!   never cross us); when a session ends it queues an [`Intent::Remove`]. The worker applies
//!   the queue after each batch ([`map::Flows::apply`]).
//! - SYN, FIN and RST segments always go to user space: the session table tracks the TCP
//!   state from them, and a SYN may reopen a closed session's tuple.
//! - Packets that go by in the kernel do not touch the session. Every session's entries are
//!   read once per [`Config::poll`] ([`Intent::Poll`]), and before an idle-looking session
//!   is expired: what they counted since the last read is folded into the session (its last
//!   seen time becomes the read's time) and into the per-VIP and per-real-server counters.
//!   So a fast-path session expires between its timeout and its timeout plus one poll
//!   interval after its last packet, and the counters lag by at most one poll interval.
//! - IPv6, VLAN-tagged frames, IPv4 with options, fragments and ICMP always take the slow
//!   path.
//! - `XDP_TX` out of the interface the frame came in on: the balancer is one-armed (clients
//!   and real servers behind the same link). On veth the peer needs an XDP program of its
//!   own for those frames to get anywhere ([`peer`]).

pub mod delta;
pub mod entry;
pub mod intent;
pub mod map;
pub mod peer;
pub mod program;
#[cfg(test)]
mod tests;

pub use entry::{Entry, Key, Totals, Value};
pub use intent::{Intent, Intents};
pub use map::{Applier, Flows};

use crate::tick::{self, Tick};
use std::time::Duration;

/// How a worker's datapath uses the fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// How often every session's entries are read.
    pub poll: Tick,
    /// Intents queued per worker before the queue grows.
    pub queue: usize,
}

impl Default for Config {
    /// Poll every second; 4096 intents.
    fn default() -> Self {
        Self {
            poll: tick::ticks(Duration::from_secs(1)),
            queue: 4096,
        }
    }
}
