//! Source hashing: every flow from one client address goes to the same backend.
//!
//! A Maglev table keyed on the client address instead of the whole tuple, so it is weighted
//! and a change of backends moves only the clients it must.

use super::{Backend, Maglev, Scheduler};
use crate::flow::{self, Addr};
use std::net::IpAddr;

/// Source-address hashing over one VIP's backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceHash {
    maglev: Maglev,
    seed: u64,
}

impl SourceHash {
    /// A scheduler over `backends` with a Maglev table of `size` (prime); `seed` MUST be the
    /// same on every balancer that should agree.
    pub fn new(backends: &[Backend], size: u32, seed: u64) -> Self {
        Self {
            maglev: Maglev::new(backends, size),
            seed,
        }
    }
}

impl Scheduler for SourceHash {
    #[inline]
    fn pick(&self, _flow_hash: u64, client: IpAddr) -> Option<usize> {
        self.maglev
            .lookup(flow::hash_addr(&Addr::from(client), self.seed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_one_backend_whatever_the_flow() {
        let b: Vec<Backend> = (0..5).map(|i| Backend { key: i, weight: 1 }).collect();
        let sh = SourceHash::new(&b, 251, 7);
        let client: IpAddr = "198.51.100.7".parse().unwrap();
        let first = sh.pick(0, client).unwrap();
        assert!((1..100).all(|h| sh.pick(h, client) == Some(first)));
        let spread: std::collections::HashSet<_> = (0..200u8)
            .map(|i| sh.pick(0, IpAddr::from([198, 51, 100, i])).unwrap())
            .collect();
        assert_eq!(spread.len(), 5);
    }
}
