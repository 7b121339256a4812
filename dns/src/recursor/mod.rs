//! Resolving names outside the served zones: forwarding to upstreams or iterating from the
//! root, with a cache shared by every worker.
//!
//! - [`resolve`]: one client question as a sans-IO state machine ("ask server X question Q",
//!   then feed it what came back).
//! - [`cache`]: pre-encoded replies served by copy and patch, sharded, bounded, with negative
//!   caching, prefetch and serve-stale; plus learned delegations.
//! - [`bailiwick`]: which referrals and glue a server may give.
//! - [`acl`]: which clients may ask for recursion.
//! - [`health`]: forward upstreams' recent failures, to try healthy ones first.
//! - [`reply`]: a client's reply written from a cache entry (or SERVFAIL).
//! - [`metrics`]: what recursion counts, in `/metrics`.
//!
//! Nothing here opens a socket or reads a clock: `crate::io::upstream` sends the queries and
//! the workers serve cache hits through [`Front`].

pub mod acl;
pub mod bailiwick;
pub mod cache;
pub mod health;
pub mod metrics;
pub mod reply;
pub mod resolve;

#[cfg(test)]
pub(crate) mod testing;

use cache::Lookup;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

pub use acl::Acl;
pub use cache::Cache;

/// Iterate from the root, or forward everything not in a forward zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Full iterative resolution from the root hints.
    Recursive,
    /// Every name goes to the upstreams of its forward zone; the root zone's are the default.
    Forward,
}

/// Names at or below `zone` go to `upstreams` (CoreDNS `forward`: the deepest zone wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardZone {
    /// The zone, lower-case uncompressed wire form.
    pub zone: Box<[u8]>,
    /// Recursive servers, tried in order (healthy ones first).
    pub upstreams: Vec<SocketAddr>,
}

/// Everything recursion needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Iterate or forward.
    pub mode: Mode,
    /// Forward zones (in both modes: a stub domain is forwarded even when iterating).
    pub forward: Vec<ForwardZone>,
    /// Clients allowed to ask for recursion; others get REFUSED.
    pub allow: Acl,
    /// How each resolution goes.
    pub resolve: resolve::Settings,
    /// The cache.
    pub cache: cache::Settings,
    /// Resolutions in progress at once, at most; misses beyond it wait.
    pub max_inflight: usize,
}

impl Settings {
    /// The deepest forward zone holding `qname`.
    pub fn forward_zone(&self, qname: &[u8]) -> Option<&ForwardZone> {
        self.forward
            .iter()
            .filter(|z| bailiwick::is_at_or_below(qname, &z.zone))
            .max_by_key(|z| z.zone.len())
    }
}

/// What a worker needs to answer recursive queries from the cache: the shared cache, who may
/// ask, and where lookups are counted.
///
/// Each UDP worker takes its own with [`Front::worker`]: its lookups go to counters of its own,
/// so a hit writes no counter another thread writes; that front MUST stay on its thread. A
/// clone counts with shared atomics instead (TCP connections clone one each).
#[derive(Debug)]
pub struct Front {
    cache: Arc<Cache>,
    allow: Arc<Acl>,
    lookups: Arc<metrics::Lookups>,
    tally: metrics::Tally,
}

impl Clone for Front {
    fn clone(&self) -> Self {
        Self {
            cache: Arc::clone(&self.cache),
            allow: Arc::clone(&self.allow),
            lookups: Arc::clone(&self.lookups),
            tally: self.lookups.shared(),
        }
    }
}

impl Front {
    /// A front on `cache` for the clients `allow` lets in, counting into `metrics`.
    pub fn new(cache: Arc<Cache>, allow: Arc<Acl>, metrics: &metrics::Metrics) -> Self {
        let lookups = Arc::clone(metrics.lookups());
        Self {
            cache,
            allow,
            tally: lookups.shared(),
            lookups,
        }
    }

    /// A front for one worker thread, with a counter shard of its own.
    pub fn worker(&self) -> Self {
        Self {
            tally: self.lookups.worker(),
            ..self.clone()
        }
    }

    /// The shared cache.
    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    /// Whether `client` may ask for recursion.
    pub fn allows(&self, client: IpAddr) -> bool {
        self.allow.allows(client)
    }

    /// Looks (`qname`, `qtype`) up in the cache and counts what was found.
    #[inline]
    pub fn lookup(&self, now: Instant, qname: &[u8], qtype: u16) -> Lookup {
        let found = self.cache.get(now, qname, qtype);
        let slot = match &found {
            Lookup::Fresh { .. } => metrics::HIT,
            Lookup::Stale(_) => metrics::EXPIRED,
            Lookup::Miss => metrics::MISS,
        };
        self.tally.inc(slot);
        found
    }
}
