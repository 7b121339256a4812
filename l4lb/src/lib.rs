//! The layer-4 load balancer: its datapath core, packet I/O, health checks and the server.
//!
//! The core is PURE (sans-IO): no sockets, no threads, no `async`, no reads of the OS clock
//! and no randomness it is not handed. Its input is an Ethernet frame in a buffer the caller
//! owns, the current time as a tick count ([`tick`]) and `&mut` per-worker state; its output
//! is a [`Verdict`] with the frame rewritten in place. Layers, bottom up:
//! - [`packet`]: zero-copy header accessors, checksums (RFC 1071/1624) and the NAT rewrites.
//! - [`flow`]: the 5-tuple both session tables are keyed on, and its seeded hash.
//! - [`table`]: the preallocated session slab, its two lookup indexes and expiry.
//! - [`sched`]: how a new flow picks a real server (Maglev, weighted round robin, weighted
//!   least connections, source hash).
//! - [`persist`]: client-IP affinity.
//! - [`ports`]: local (SNAT) ports, partitioned between workers so replies can be steered.
//! - [`counters`]: per-worker, per-VIP and per-real-server counters.
//! - [`vips`]: the immutable snapshot of VIPs, real servers, health and SNAT addresses.
//! - [`datapath`]: one frame in, one [`Verdict`] out.
//! - [`fastpath`]: established flows forwarded by the XDP program itself; the datapath asks
//!   for its map entries as intents.
//! - [`health::state`]: rise/fall hysteresis.
//!
//! Around it, and only there, the I/O:
//! - [`io`]: the batch interface ([`io::Rx`], [`io::Tx`]) and its backends (AF_XDP,
//!   AF_PACKET, in-memory).
//! - [`health`]: TCP/HTTP probes and the checker that writes health to the store.
//! - [`server`]: store-fed snapshots, one worker thread per link, `/metrics` counters.

pub mod counters;
pub mod datapath;
pub mod drop;
pub mod fastpath;
pub mod flow;
pub mod health;
pub mod io;
pub mod packet;
pub mod persist;
pub mod ports;
pub mod sched;
pub mod server;
pub mod table;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tick;
pub mod vips;

pub use datapath::{Config, Datapath, Verdict};
pub use drop::DropReason;
pub use vips::Vips;
