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
//! - [`zonefile`]: RFC 1035 master files into zones and record sets (dns serves them, dpctl
//!   imports them).
//!
//! Nothing here does packet work or protocol logic; that lives in the crate that owns it.

pub mod clock;
pub mod health;
pub mod model;
pub mod node;
pub mod snapshot;
pub mod store;
pub mod telemetry;
pub mod zonefile;
