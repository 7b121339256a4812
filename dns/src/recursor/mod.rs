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
//!
//! Nothing here opens a socket or reads a clock: `crate::io::upstream` sends the queries and
//! the workers serve cache hits through [`Front`].

pub mod acl;
pub mod bailiwick;
pub mod cache;
pub mod health;
pub mod reply;
pub mod resolve;

#[cfg(test)]
pub(crate) mod testing;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

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

/// What a worker needs to answer recursive queries from the cache: the shared cache and who
/// may ask. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct Front {
    /// The shared cache.
    pub cache: Arc<Cache>,
    /// Clients allowed.
    pub allow: Arc<Acl>,
}

impl Front {
    /// Whether `client` may ask for recursion.
    pub fn allows(&self, client: IpAddr) -> bool {
        self.allow.allows(client)
    }
}
