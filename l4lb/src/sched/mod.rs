//! How a new flow picks a real server. PURE.
//!
//! Every scheduler is built from the VIP's real servers as [`Backend`]s, in the VIP's order,
//! and returns an index into that list. A backend with weight 0 gets no new flows: that is
//! how draining (weight 0 in the model) and health (down) are both expressed, and existing
//! sessions are untouched because they never ask the scheduler again.
//!
//! - [`Scheduler`] is stateless and shareable across workers: [`Maglev`], [`SourceHash`].
//! - [`StatefulScheduler`] keeps per-worker state: [`WeightedRoundRobin`] (smooth, as nginx)
//!   and [`LeastConnections`] (weighted, over the worker's own active sessions). Every
//!   [`Scheduler`] is also a [`StatefulScheduler`].

mod least_conn;
mod maglev;
mod source_hash;
mod weighted;

pub use least_conn::LeastConnections;
pub use maglev::{MAX_BACKENDS, Maglev};
pub use source_hash::SourceHash;
pub use weighted::WeightedRoundRobin;

use crate::flow::{self, Addr};
use std::net::IpAddr;

/// What a scheduler knows about one real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backend {
    /// A stable identity (a hash of address and port): Maglev places a backend by it, so the
    /// table does not depend on list order.
    pub key: u64,
    /// Share of new flows; 0 = none (down, draining, or not usable).
    pub weight: u32,
}

impl Backend {
    /// A real server at `address:port`; `up == false` makes its weight 0.
    pub fn new(address: IpAddr, port: u16, weight: u32, up: bool) -> Self {
        Self {
            key: flow::hash_addr(&Addr::from(address), u64::from(port) ^ KEY_SEED),
            weight: if up { weight } else { 0 },
        }
    }
}

const KEY_SEED: u64 = 0x6a09_e667_f3bc_c908;

/// A stateless scheduler: the same inputs always pick the same backend.
pub trait Scheduler {
    /// The backend for a new flow with scheduler hash `flow_hash` from `client`, or `None`
    /// if no backend has a weight.
    fn pick(&self, flow_hash: u64, client: IpAddr) -> Option<usize>;
}

/// A scheduler with per-worker state.
pub trait StatefulScheduler {
    /// The backend for a new flow; `active(i)` is backend `i`'s active session count.
    fn pick_mut(
        &mut self,
        flow_hash: u64,
        client: IpAddr,
        active: &dyn Fn(usize) -> u64,
    ) -> Option<usize>;
}

impl<S: Scheduler> StatefulScheduler for S {
    fn pick_mut(
        &mut self,
        flow_hash: u64,
        client: IpAddr,
        _active: &dyn Fn(usize) -> u64,
    ) -> Option<usize> {
        self.pick(flow_hash, client)
    }
}
