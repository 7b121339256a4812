//! The authoritative DNS server's pure core: bytes, a catalog snapshot and `now` in, a reply out.
//!
//! - [`wire`]: our own zero-copy reader and writer of DNS messages.
//! - [`authority`]: zones indexed for lookup, the immutable [`authority::Catalog`].
//! - [`respond`]: one query in, one reply written into the caller's buffer, with per-worker
//!   answer policies (shuffle, round robin, persistent picks).
//!
//! - [`rrl`]: response rate limiting per client prefix.
//! - [`recursor`]: names outside the zones: forwarding or iterating, and the shared cache.
//!
//! Those modules open no socket, spawn no task and read no clock: callers pass time, buffers
//! and the catalog. The edges live apart:
//!
//! - [`source`]: zone files and the store, assembled into the catalog's input.
//! - [`io`]: the UDP (`recvmmsg`/`sendmmsg`, io_uring) and TCP loops around the responder,
//!   and the upstream sockets of the resolver.
//! - [`server`]: wiring: sources to catalog snapshots, sockets to workers.

pub mod authority;
pub mod io;
pub mod recursor;
pub mod respond;
pub mod rrl;
pub mod server;
pub mod source;
pub mod wire;
