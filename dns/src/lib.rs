//! The authoritative DNS server's pure core: bytes, a catalog snapshot and `now` in, a reply out.
//!
//! - [`wire`]: our own zero-copy reader and writer of DNS messages.
//! - [`zonefile`]: RFC 1035 master files into model zones and record sets.
//! - [`authority`]: zones indexed for lookup, the immutable [`authority::Catalog`].
//! - [`respond`]: one query in, one reply written into the caller's buffer, with per-worker
//!   answer policies (shuffle, round robin, persistent picks).
//!
//! Nothing here opens a socket, spawns a task or reads a clock: callers pass time, buffers and
//! the catalog, and own the I/O.

pub mod authority;
pub mod respond;
pub mod wire;
pub mod zonefile;
