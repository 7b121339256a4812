//! Sessions and the preallocated slab that holds them.
//!
//! The slab is allocated once at start-up; creating or freeing a session takes an index
//! from or gives it back to a free stack, so the packet path never allocates.

use super::expiry::State;
use crate::fastpath::Totals;
use crate::flow::Tuple;
use crate::tick::Tick;
use dataplane_common::model::ForwardingMode;

/// Where a session lives in the slab; stable for the session's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub(crate) u32);

impl SessionId {
    /// The slab index.
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// "Not in this snapshot": the VIP or real server of a session that a new snapshot removed.
pub const NONE: u32 = u32::MAX;

/// One tracked flow: 128 bytes (see the `memory_budget_for_ten_million_sessions` test).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// The client's packets as they arrive: client → VIP. Keys the client index.
    pub client: Tuple,
    /// The real server's replies as they arrive: real server → local (SNAT) address for
    /// full-NAT; VIP → client for DR (whose replies bypass us). Keys the real index.
    pub real: Tuple,
    /// Index of the VIP in the current snapshot, or [`NONE`].
    pub vip: u32,
    /// Index of the real server in the current snapshot's flat list, or [`NONE`].
    pub real_server: u32,
    /// When it was created.
    pub created: Tick,
    /// When its last packet was seen.
    pub last_seen: Tick,
    /// Packets forwarded, both directions.
    pub packets: u64,
    /// Bytes (whole frames) forwarded, both directions.
    pub bytes: u64,
    /// Where its TCP (or UDP) state machine is; [`State::Free`] for a free slot.
    pub state: State,
    /// How it is forwarded.
    pub mode: ForwardingMode,
    /// Whether its entries are in the XDP fast path's map (asked for: see
    /// [`crate::fastpath`]).
    pub fast: bool,
    /// What the fast path's entries counted that `packets` and `bytes` already include.
    pub folded: Totals,
}

impl Session {
    /// A free slot.
    pub const FREE: Self = Self {
        client: Tuple {
            src: crate::flow::Addr([0; 16]),
            dst: crate::flow::Addr([0; 16]),
            src_port: 0,
            dst_port: 0,
            proto: 0,
        },
        real: Tuple {
            src: crate::flow::Addr([0; 16]),
            dst: crate::flow::Addr([0; 16]),
            src_port: 0,
            dst_port: 0,
            proto: 0,
        },
        vip: NONE,
        real_server: NONE,
        created: 0,
        last_seen: 0,
        packets: 0,
        bytes: 0,
        state: State::Free,
        mode: ForwardingMode::FullNat,
        fast: false,
        folded: Totals {
            packets: 0,
            bytes: 0,
        },
    };

    /// Whether the slot holds a session.
    #[inline]
    pub fn is_live(&self) -> bool {
        self.state != State::Free
    }
}

/// A fixed-capacity slab of sessions with a free stack.
#[derive(Debug)]
pub(crate) struct Slab {
    sessions: Box<[Session]>,
    /// Free slot indexes; popped from the end, so low indexes are used first.
    free: Vec<u32>,
}

impl Slab {
    /// A slab of `capacity` free slots. `capacity` MUST be below `u32::MAX`.
    pub(crate) fn new(capacity: u32) -> Self {
        assert!(capacity < u32::MAX, "invariant: session ids fit in u32");
        Self {
            sessions: vec![Session::FREE; capacity as usize].into_boxed_slice(),
            free: (0..capacity).rev().collect(),
        }
    }

    /// How many slots there are.
    pub(crate) fn capacity(&self) -> u32 {
        self.sessions.len() as u32
    }

    /// How many sessions are live.
    pub(crate) fn len(&self) -> u32 {
        self.capacity() - self.free.len() as u32
    }

    /// Stores `s` in a free slot, or `None` if there is none.
    pub(crate) fn alloc(&mut self, s: Session) -> Option<SessionId> {
        debug_assert!(s.is_live());
        let i = self.free.pop()?;
        self.sessions[i as usize] = s;
        Some(SessionId(i))
    }

    /// Frees a live slot and returns what it held.
    pub(crate) fn free(&mut self, id: SessionId) -> Session {
        let slot = &mut self.sessions[id.index()];
        debug_assert!(slot.is_live(), "invariant: only a live session is freed");
        let s = *slot;
        *slot = Session::FREE;
        self.free.push(id.0);
        s
    }

    #[inline]
    pub(crate) fn get(&self, id: SessionId) -> &Session {
        &self.sessions[id.index()]
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, id: SessionId) -> &mut Session {
        &mut self.sessions[id.index()]
    }

    /// Every slot, live or free.
    pub(crate) fn slots(&self) -> &[Session] {
        &self.sessions
    }

    /// Every slot, live or free, mutably.
    pub(crate) fn slots_mut(&mut self) -> &mut [Session] {
        &mut self.sessions
    }
}
