//! Answering: one query in, one reply written into the caller's buffer.
//!
//! [`Responder`] is per-worker state (round-robin counters, a bounded sticky table, an RNG seeded
//! by the caller). It reads a shared [`Catalog`](crate::authority::Catalog) snapshot, takes
//! `now` from the caller and never allocates on the answer, NXDOMAIN or NODATA paths. It does no
//! I/O: UDP and TCP framing, batching and counting belong to the caller.

mod options;
pub mod persist;
mod pick;
mod process;
mod writer;

pub use options::Options;
pub use process::{DropReason, Outcome, Responder, Transport};

#[cfg(test)]
mod reference_tests;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
