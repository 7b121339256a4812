//! What two or more of dns, l4lb and control share.
//!
//! - [`model`]: the typed objects (zones, records, services, VIPs, health) and their storage encoding.
//! - [`store`]: one [`store::Store`] trait over etcd and an embedded database, and
//!   [`store::Follower`], which turns a prefix into an exactly-once, in-order event stream.
//! - [`snapshot`]: immutable snapshots that writers swap in and readers load without a lock.
//! - [`telemetry`]: per-worker counters summed at scrape time, served on `/metrics`.
//! - [`clock`]: the only place that reads the OS clock.
//! - [`health`]: rise/fall hysteresis and TCP/HTTP probes (l4lb's checker, control's inspection).
//! - [`node`]: a node's registration in the store, under a lease.
//! - [`packet_io`]: the batch frame interface and its backends (AF_XDP, AF_PACKET, in-memory),
//!   for l4lb and dns's AF_XDP path.
//! - [`membership`]: SWIM gossip membership over UDP (foca), joined by every node.
//! - [`zonefile`]: RFC 1035 master files into zones and record sets (dns serves them, dpctl
//!   imports them).
//!
//! No protocol logic lives here (packet I/O moves frames; the crates that own a protocol
//! decide what to do with them).

pub mod clock;
pub mod health;
pub mod membership;
pub mod model;
pub mod node;
pub mod packet_io;
pub mod snapshot;
pub mod store;
pub mod telemetry;
pub mod zonefile;
