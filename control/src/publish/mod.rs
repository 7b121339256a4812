//! Writing what control derived into the project store, and nothing else.
//!
//! [`DesiredState`] keeps the key-value state control wants under `/dataplane/`, merged from
//! every Service's [`crate::translate::Translation`] and updated one Service at a time
//! ([`desired()`] is the same merge from scratch, the reference it is tested against).
//! [`diff`] compares it with what the store holds ([`Current`]) and plans the writes:
//! transactions of as many writes as the store takes, up to [`MAX_TXN_OPS`], and at most
//! [`MAX_TXN_BYTES`], each write
//! guarded by the `mod_revision` it was planned against, the whole key space at a full
//! reconcile and the keys a change touched otherwise. [`Publisher`] is the thin async part that reads the
//! store and applies the plan, several transactions in flight.
//!
//! Ownership rule: control writes and deletes only keys it owns: `services/` and
//! `endpoints/`, and the `records/` and `vips/` whose stored `source` is `kubernetes`. A key
//! held by a `user` object is never written, even when a Service would want it.

mod apply;
pub mod desired;
pub mod diff;
pub mod state;
#[cfg(test)]
mod state_tests;

pub use apply::{Metrics, PlannedWrites, Publisher, Stats};
pub use desired::{Desired, EndpointList, desired};
pub use diff::{Current, MAX_TXN_BYTES, MAX_TXN_OPS, Plan, Stored, diff};
pub use state::{DesiredState, Dirty};
