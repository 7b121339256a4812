//! Inspection: checks spread across the live nodes, whose results set the health state in
//! the store (which dns activation and l4lb act on) and are published for the API.
//!
//! - [`schedule`] PURE: which node runs which check (rendezvous hash of the check over the
//!   live members; a dead member's checks move, nobody else's do).
//! - [`checks`] PURE: the checks the store's objects call for: real servers of VIPs (TCP
//!   connect or HTTP GET), VIPs themselves, DNS nodes answering known names, and each
//!   node's applied revision against the store's.
//! - [`verdict`] PURE: rise/fall hysteresis per address
//!   ([`dataplane_common::health::Target`]) into [`Health`](dataplane_common::model::Health)
//!   objects to write.
//! - [`dns`]: a DNS query over UDP and the addresses of its answer (a minimal RFC 1035
//!   codec, no dependency on the dns crate).
//! - [`run`]: the loop (probes are [`dataplane_common::health::Probe`]s).
//!
//! What it does not do: probe UDP real servers, or check config drift beyond the version
//! and applied revision each node registers.

pub mod checks;
pub mod dns;
pub mod run;
pub mod schedule;
pub mod verdict;

/// Where each inspector publishes its latest results (`/dataplane/inspect/<node>`).
pub const RESULTS: &str = "/dataplane/inspect/";
