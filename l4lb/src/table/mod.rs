//! The session table of one worker. PURE: no allocation after construction.
//!
//! A [`Table`] is a preallocated slab of [`Session`]s plus two indexes over it: the client
//! index (the tuple of a client's packet) and the real index (the tuple of a real server's
//! reply). Both are open-addressing hash tables with a seeded hash.
//!
//! Invariant: a session MUST be in both indexes or in neither; a slab slot is live exactly
//! when it is indexed. `insert` and `remove` are the only ways in and out, and they keep the
//! three in step (checked by `debug_assert!` on removal and by `check_invariants` in tests).
//! A session's `client` and `real` tuples MUST NOT change while it is live.
//!
//! When the table is full, [`Table::insert`] evicts the least recently seen of the next
//! [`EVICTION_SAMPLE`] slots after a rotating cursor if it has been idle for at least
//! `min_idle_to_evict` ticks; otherwise it refuses with [`InsertError::Full`] (the datapath
//! drops the packet and counts `table_full`). Sampling approximates "evict the oldest idle
//! session" in O(1) without a per-packet LRU list; on tables no larger than the sample it is
//! exact. A fresh flood of new flows therefore cannot push out established ones that are
//! still active.

mod client;
pub mod expiry;
mod index;
mod real;
pub mod session;
#[cfg(test)]
mod tests;

use self::client::ClientIndex;
pub use self::expiry::{Direction, State, Timeouts};
use self::index::Index;
use self::real::RealIndex;
use self::session::Slab;
pub use self::session::{NONE, Session, SessionId};
use crate::flow::Tuple;
use crate::tick::{self, Tick};

/// How many slots an eviction looks at.
pub const EVICTION_SAMPLE: u32 = 32;

/// How a table is sized and tuned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The most sessions it holds.
    pub capacity: u32,
    /// The hash seed; SHOULD be secret per process (chosen collisions then need it).
    pub seed: u64,
    /// Idle timeouts.
    pub timeouts: Timeouts,
    /// A session idle for less than this is never evicted to make room.
    pub min_idle_to_evict: Tick,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            capacity: 65_536,
            seed: 0,
            timeouts: Timeouts::default(),
            min_idle_to_evict: tick::ticks(std::time::Duration::from_secs(5)),
        }
    }
}

/// Why a session was not inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    /// Its client or real tuple is already in use.
    Duplicate,
    /// Full, and nothing idle long enough to evict.
    Full,
}

/// A session that went in, and the one evicted to make room, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    /// The new session.
    pub id: SessionId,
    /// The evicted session.
    pub evicted: Option<Session>,
}

/// One worker's sessions: slab, client index, real index. See the module doc.
#[derive(Debug)]
pub struct Table {
    slab: Slab,
    client: ClientIndex,
    real: RealIndex,
    seed: u64,
    timeouts: Timeouts,
    min_idle_to_evict: Tick,
    sweep_cursor: u32,
    evict_cursor: u32,
}

impl Table {
    /// Bytes of memory per session at full capacity: the slab slot, its free-stack entry and
    /// two index slots in each of the two indexes.
    pub const BYTES_PER_SESSION: usize =
        size_of::<Session>() + size_of::<u32>() + 2 * 2 * Index::SLOT_BYTES;

    /// A table with every slot allocated up front. `capacity` MUST be at least 1.
    pub fn new(config: Config) -> Self {
        assert!(config.capacity >= 1, "invariant: a table holds something");
        Self {
            slab: Slab::new(config.capacity),
            client: ClientIndex::new(config.capacity),
            real: RealIndex::new(config.capacity),
            seed: config.seed,
            timeouts: config.timeouts,
            min_idle_to_evict: config.min_idle_to_evict,
            sweep_cursor: 0,
            evict_cursor: 0,
        }
    }

    /// The most sessions it holds.
    pub fn capacity(&self) -> u32 {
        self.slab.capacity()
    }

    /// How many sessions it holds.
    pub fn len(&self) -> u32 {
        self.slab.len()
    }

    /// Whether it holds no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The timeouts.
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// The session of a client packet with tuple `t`, expired or not.
    #[inline]
    pub fn find_client(&self, t: &Tuple) -> Option<SessionId> {
        self.client.find(self.seed, &self.slab, t)
    }

    /// The session of a real server's reply with tuple `t`, expired or not.
    #[inline]
    pub fn find_real(&self, t: &Tuple) -> Option<SessionId> {
        self.real.find(self.seed, &self.slab, t)
    }

    /// A live session.
    #[inline]
    pub fn get(&self, id: SessionId) -> &Session {
        self.slab.get(id)
    }

    /// A live session, to update its state and counters. Its `client` and `real` tuples
    /// MUST NOT be changed.
    #[inline]
    pub fn get_mut(&mut self, id: SessionId) -> &mut Session {
        self.slab.get_mut(id)
    }

    /// Every slot; free ones have [`State::Free`].
    pub fn slots(&self) -> &[Session] {
        self.slab.slots()
    }

    /// Calls `f` on every live session, which may change anything but its tuples and state.
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut Session)) {
        for s in self.slab.slots_mut() {
            if s.is_live() {
                f(s);
            }
        }
    }

    /// Adds a session, evicting one if full (see the module doc).
    ///
    /// # Errors
    /// [`InsertError::Duplicate`] if either tuple is in use; [`InsertError::Full`].
    pub fn insert(&mut self, now: Tick, s: Session) -> Result<Inserted, InsertError> {
        debug_assert!(s.is_live());
        if self.find_client(&s.client).is_some() || self.find_real(&s.real).is_some() {
            return Err(InsertError::Duplicate);
        }
        let mut evicted = None;
        if self.slab.len() == self.slab.capacity() {
            let victim = self.eviction_candidate(now).ok_or(InsertError::Full)?;
            evicted = Some(self.remove(victim));
        }
        let id = self
            .slab
            .alloc(s)
            .expect("invariant: a slot is free after the capacity check");
        self.client.insert(self.seed, &s.client, id);
        self.real.insert(self.seed, &s.real, id);
        Ok(Inserted { id, evicted })
    }

    /// Removes a live session from both indexes and the slab, and returns it.
    pub fn remove(&mut self, id: SessionId) -> Session {
        let s = *self.slab.get(id);
        let in_client = self.client.remove(self.seed, &s.client, id);
        let in_real = self.real.remove(self.seed, &s.real, id);
        debug_assert!(
            in_client && in_real,
            "invariant: a live session is in both indexes"
        );
        self.slab.free(id)
    }

    /// The least recently seen of the next [`EVICTION_SAMPLE`] slots, if idle long enough.
    fn eviction_candidate(&mut self, now: Tick) -> Option<SessionId> {
        let cap = self.capacity();
        let mut best: Option<(Tick, SessionId)> = None;
        for _ in 0..EVICTION_SAMPLE.min(cap) {
            let id = SessionId(self.evict_cursor);
            self.evict_cursor = (self.evict_cursor + 1) % cap;
            let s = self.slab.get(id);
            let idle = tick::since(now, s.last_seen);
            if s.is_live() && best.is_none_or(|(b, _)| idle > b) {
                best = Some((idle, id));
            }
        }
        best.filter(|&(idle, _)| idle >= self.min_idle_to_evict)
            .map(|(_, id)| id)
    }

    /// Checks the module invariant over the whole table (tests only: O(capacity)).
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        let live = self.slab.slots().iter().filter(|s| s.is_live()).count();
        assert_eq!(live as u32, self.len());
        assert_eq!(self.client.index().entries().count(), live);
        assert_eq!(self.real.index().entries().count(), live);
        for (i, s) in self.slab.slots().iter().enumerate() {
            if s.is_live() {
                let id = SessionId(i as u32);
                assert_eq!(self.find_client(&s.client), Some(id));
                assert_eq!(self.find_real(&s.real), Some(id));
            }
        }
        assert!(self.client.index().slot_count() >= 2 * self.capacity() as usize);
    }
}
