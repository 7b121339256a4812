//! The client index: the tuple of a client's packet (client → VIP) to its session.

use super::index::Index;
use super::session::{SessionId, Slab};
use crate::flow::Tuple;

#[derive(Debug)]
pub(super) struct ClientIndex(Index);

impl ClientIndex {
    pub(super) fn new(capacity: u32) -> Self {
        Self(Index::new(capacity))
    }

    #[inline]
    pub(super) fn find(&self, seed: u64, slab: &Slab, t: &Tuple) -> Option<SessionId> {
        self.0
            .find(t.hash(seed), |id| slab.get(SessionId(id)).client == *t)
            .map(SessionId)
    }

    #[inline]
    pub(super) fn insert(&mut self, seed: u64, t: &Tuple, id: SessionId) {
        self.0.insert(t.hash(seed), id.0);
    }

    #[inline]
    pub(super) fn remove(&mut self, seed: u64, t: &Tuple, id: SessionId) -> bool {
        self.0.remove(t.hash(seed), id.0)
    }

    #[cfg(test)]
    pub(super) fn index(&self) -> &Index {
        &self.0
    }
}
