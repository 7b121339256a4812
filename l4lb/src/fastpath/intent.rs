//! What the pure datapath asks of the fast path's map, and the per-worker queue it asks in.
//!
//! The datapath never touches the map: it appends intents here while it handles frames and
//! sweeps, and the worker's I/O edge ([`super::map::Flows::apply`]) carries them out after
//! each batch, in order (a session's removal and a new session's install of the same key
//! must not swap), and reports back what it read.

use super::entry::{Entry, Key, Totals};
use crate::table::SessionId;

/// One thing to do to the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// Add a session's entries: its client direction and, for full-NAT, its reply direction.
    Install {
        /// The client's packets.
        client: Entry,
        /// The real server's replies (full-NAT only).
        real: Option<Entry>,
    },
    /// Read a session's counters and hand them to
    /// [`crate::Datapath::fast_path_report`].
    Poll {
        /// The session.
        session: SessionId,
        /// Its client entry's key (checked on report: the slot may have been reused).
        client: Key,
        /// Its reply entry's key.
        real: Option<Key>,
    },
    /// Remove a session's entries, and hand what they counted since `folded` to
    /// [`crate::Datapath::fast_path_removed`].
    Remove {
        /// The client entry.
        client: Key,
        /// The reply entry.
        real: Option<Key>,
        /// The session's VIP and real server (indexes of the current snapshot).
        vip: u32,
        /// See `vip`.
        real_server: u32,
        /// What the session already folded in of the entries' counters.
        folded: Totals,
    },
}

/// A worker's queue of intents. Preallocated; it only grows past its capacity when one batch
/// asks for more (never by dropping a removal: an entry left behind would forward a dead
/// session's tuple forever).
#[derive(Debug, Default)]
pub struct Intents {
    queue: Vec<Intent>,
}

impl Intents {
    /// A queue with room for `capacity` intents.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            queue: Vec::with_capacity(capacity),
        }
    }

    /// Appends one.
    #[inline]
    pub fn push(&mut self, intent: Intent) {
        self.queue.push(intent);
    }

    /// How many are queued.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Moves every queued intent to the end of `into`, in order, keeping both allocations.
    pub fn drain_into(&mut self, into: &mut Vec<Intent>) {
        into.append(&mut self.queue);
    }
}
