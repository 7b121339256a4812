//! The health of one address, as the checkers see it.

use super::{Validate, ValidationError};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    /// Passing its checks.
    Up,
    /// Failing its checks: hand out no new traffic.
    Down,
}

/// The health of one address, stored under `health/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// The address checked.
    pub address: IpAddr,
    /// Its state.
    pub state: HealthState,
    /// Unix seconds when it entered this state.
    pub since: u64,
    /// The checker (node name) that decided it.
    pub by: String,
}

impl Validate for Health {
    fn validate(&self) -> Result<(), ValidationError> {
        if self.by.is_empty() {
            return Err(ValidationError::new("by", "must name the checker"));
        }
        Ok(())
    }
}
