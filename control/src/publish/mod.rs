//! Writing what control derived into the project store, and nothing else.
//!
//! [`desired`] merges every Service's [`crate::translate::Translation`] into the key-value
//! state control wants under `/dataplane/` ([`Desired`]). [`diff`] compares it with what the
//! store holds ([`Current`]) and plans the writes: transactions of at most
//! [`MAX_TXN_OPS`] operations, each write guarded by the `mod_revision` it was planned
//! against. [`Publisher`] is the thin async part that reads the store and applies a plan.
//!
//! Ownership rule: control writes and deletes only keys it owns: `services/` and
//! `endpoints/`, and the `records/` and `vips/` whose stored `source` is `kubernetes`. A key
//! held by a `user` object is never written, even when a Service would want it.

mod apply;
pub mod desired;
pub mod diff;

pub use apply::{Metrics, Publisher, Stats};
pub use desired::{Desired, EndpointList, desired};
pub use diff::{Current, MAX_TXN_OPS, Plan, Stored, diff};
