//! The typed objects every part of dataplane agrees on, and how they are stored.
//!
//! Every stored object is JSON with a version field (`"v": 1`), written by [`encode`] and read
//! by [`decode`], which also runs the object's [`Validate`] so that nothing invalid leaves
//! the store as a typed value. A validation error names the field that is wrong and why.

mod health;
pub mod keys;
mod name;
mod record;
mod service;
mod vip;

pub use health::{Health, HealthState};
pub use name::{Name, NameError};
pub use record::{AnswerPolicy, MAX_TTL, RData, RecordSet, RecordType, Soa, Zone};
pub use service::{Endpoint, EndpointConditions, Service, ServicePort, ServiceType};
pub use vip::{ForwardingMode, MAX_WEIGHT, Protocol, RealServer, Scheduler, Vip};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The storage encoding version this build writes and reads.
pub const ENCODING_VERSION: u32 = 1;

/// A field that failed validation, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {reason}")]
pub struct ValidationError {
    /// The path of the bad field, e.g. `real_servers[2].weight`.
    pub field: String,
    /// Why it is wrong, in words an operator can act on.
    pub reason: String,
}

impl ValidationError {
    /// An error for `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error, nested under `parent` (`parent.field`).
    #[must_use]
    pub fn within(mut self, parent: &str) -> Self {
        self.field = if self.field.starts_with('[') {
            format!("{parent}{}", self.field)
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}

/// An object that can check itself.
pub trait Validate {
    /// Checks every field.
    ///
    /// # Errors
    /// The first field found wrong.
    fn validate(&self) -> Result<(), ValidationError>;
}

/// Why a stored value could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not JSON, or not the expected shape.
    #[error("malformed: {0}")]
    Malformed(#[from] serde_json::Error),
    /// Written by a build with another encoding version.
    #[error("encoding version {found} is not supported (this build reads {ENCODING_VERSION})")]
    Version {
        /// The version found in the value.
        found: u32,
    },
    /// Well-formed but invalid.
    #[error("invalid: {0}")]
    Invalid(#[from] ValidationError),
}

#[derive(Serialize)]
struct EnvelopeOut<'a, T> {
    v: u32,
    #[serde(flatten)]
    body: &'a T,
}

#[derive(Deserialize)]
struct EnvelopeIn<T> {
    /// Checked before the body is read; named here so it is not passed to the body.
    #[serde(rename = "v")]
    _version: u32,
    #[serde(flatten)]
    body: T,
}

#[derive(Deserialize)]
struct VersionOnly {
    v: u32,
}

/// Encodes `value` in the versioned storage encoding.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(&EnvelopeOut {
        v: ENCODING_VERSION,
        body: value,
    })
    .expect("invariant: model types always serialize")
}

/// Decodes and validates a stored value.
///
/// # Errors
/// [`DecodeError`] when the bytes are not a valid object of this version.
pub fn decode<T: DeserializeOwned + Validate>(bytes: &[u8]) -> Result<T, DecodeError> {
    let version: VersionOnly = serde_json::from_slice(bytes)?;
    if version.v != ENCODING_VERSION {
        return Err(DecodeError::Version { found: version.v });
    }
    let envelope: EnvelopeIn<T> = serde_json::from_slice(bytes)?;
    envelope.body.validate()?;
    Ok(envelope.body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn encoding_round_trips_and_checks_version() {
        let rs = RealServer {
            address: Ipv4Addr::new(10, 0, 0, 1).into(),
            port: 80,
            weight: 3,
        };
        let bytes = encode(&rs);
        assert!(std::str::from_utf8(&bytes).unwrap().contains("\"v\":1"));
        assert_eq!(decode::<RealServer>(&bytes).unwrap(), rs);

        let future = br#"{"v":9,"address":"10.0.0.1","port":80,"weight":1}"#;
        assert!(matches!(
            decode::<RealServer>(future),
            Err(DecodeError::Version { found: 9 })
        ));
        assert!(matches!(
            decode::<RealServer>(b"{not json"),
            Err(DecodeError::Malformed(_))
        ));
        let zero_port = br#"{"v":1,"address":"10.0.0.1","port":0,"weight":1}"#;
        let err = decode::<RealServer>(zero_port).unwrap_err();
        assert!(err.to_string().contains("`port`"), "{err}");
    }
}
