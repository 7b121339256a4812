//! Health checking shared by l4lb's checker and control's inspection.
//!
//! - [`state`] (PURE): rise/fall thresholds with hysteresis, per target.
//! - [`probe`]: one TCP connect or HTTP GET with a timeout (tokio).
//!
//! What is probed, how often and where the result is written belongs to the caller.

pub mod probe;
pub mod state;

pub use probe::{Probe, ProbeError};
pub use state::{Target, Thresholds};
