//! Per-worker counters: plain arrays the worker writes and its caller reads (and sums across
//! workers at scrape time). No atomics: one worker owns them.

use crate::drop::DropReason;

/// Traffic of one VIP or one real server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counter {
    /// Packets forwarded.
    pub packets: u64,
    /// Bytes (whole frames) forwarded.
    pub bytes: u64,
    /// Sessions created.
    pub new_sessions: u64,
    /// Sessions live now.
    pub active_sessions: u64,
}

/// One worker's counters. `vips` and `real_servers` are indexed like the current snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    /// Per VIP.
    pub vips: Vec<Counter>,
    /// Per real server, in the snapshot's flat order.
    pub real_servers: Vec<Counter>,
    /// Drops by [`DropReason::index`].
    pub drops: [u64; DropReason::COUNT],
    /// Frames passed to the host.
    pub passed: u64,
    /// Frames transmitted.
    pub transmitted: u64,
    /// Sessions removed by the sweep or on lookup after expiring.
    pub expired: u64,
    /// Sessions evicted to make room.
    pub evicted: u64,
}

impl Counters {
    /// Zeroed counters for `vips` VIPs and `real_servers` real servers.
    pub fn new(vips: usize, real_servers: usize) -> Self {
        Self {
            vips: vec![Counter::default(); vips],
            real_servers: vec![Counter::default(); real_servers],
            drops: [0; DropReason::COUNT],
            passed: 0,
            transmitted: 0,
            expired: 0,
            evicted: 0,
        }
    }
}
