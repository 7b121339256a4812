//! Health checks of real servers.
//!
//! - [`state`] (PURE): rise/fall thresholds with hysteresis, per target.
//! - [`probe`]: one TCP connect or HTTP GET with a timeout (tokio).
//! - [`checker`]: probes every real server address on an interval and writes
//!   [`model::Health`](dataplane_common::model::Health) to the store when a target's state
//!   changes, so that every consumer (the balancer's snapshot, DNS answers) acts on it.
//!
//! Health is per address (the store's key is `health/<address>`): an address is up when
//! every TCP port it serves answers.

pub mod checker;
/// One probe (moved to `dataplane-common`; shared with control's inspection).
pub use dataplane_common::health::probe;
/// Hysteresis (moved to `dataplane-common`; shared with control's inspection).
pub use dataplane_common::health::state;

pub use checker::{Checker, Settings, Targets};
pub use probe::{Probe, ProbeError};
pub use state::{Target, Thresholds};
