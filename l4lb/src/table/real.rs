//! The real index: the tuple of a real server's reply (real server → local address) to its
//! session.

use super::index::Index;
use super::session::{SessionId, Slab};
use crate::flow::Tuple;

/// Keys on a different seed than the client index, so that one tuple's collisions in one
/// index say nothing about the other.
const SEED_TWEAK: u64 = 0x5be0_cd19_137e_2179;

#[derive(Debug)]
pub(super) struct RealIndex(Index);

impl RealIndex {
    pub(super) fn new(capacity: u32) -> Self {
        Self(Index::new(capacity))
    }

    #[inline]
    pub(super) fn find(&self, seed: u64, slab: &Slab, t: &Tuple) -> Option<SessionId> {
        self.0
            .find(t.hash(seed ^ SEED_TWEAK), |id| {
                slab.get(SessionId(id)).real == *t
            })
            .map(SessionId)
    }

    #[inline]
    pub(super) fn insert(&mut self, seed: u64, t: &Tuple, id: SessionId) {
        self.0.insert(t.hash(seed ^ SEED_TWEAK), id.0);
    }

    #[inline]
    pub(super) fn remove(&mut self, seed: u64, t: &Tuple, id: SessionId) -> bool {
        self.0.remove(t.hash(seed ^ SEED_TWEAK), id.0)
    }

    #[cfg(test)]
    pub(super) fn index(&self) -> &Index {
        &self.0
    }
}
