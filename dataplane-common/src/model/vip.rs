//! Virtual IPs and the real servers behind them.

use super::record::seconds_option;
use super::{Validate, ValidationError};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::Duration;

/// A transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP (accepted from Kubernetes; not balanced).
    Sctp,
}

impl Protocol {
    /// Lower-case name, as used in SRV owner labels (`_tcp`).
    pub fn as_lower(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }
}

/// How a VIP picks a real server for a new flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheduler {
    /// Weighted Maglev consistent hashing.
    #[default]
    Maglev,
    /// Weighted round robin.
    WeightedRoundRobin,
    /// Weighted least connections.
    WeightedLeastConnections,
    /// Hash of the client address.
    SourceHash,
}

/// How packets reach the real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardingMode {
    /// Source and destination rewritten; replies come back through the balancer.
    #[default]
    FullNat,
    /// Direct return: only the MAC is rewritten; real servers hold the VIP.
    Dr,
}

/// One real server behind a VIP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealServer {
    /// Its address.
    pub address: IpAddr,
    /// Its port.
    pub port: u16,
    /// Relative weight; 0 drains (existing sessions go on, no new ones).
    pub weight: u32,
}

/// The largest weight, so that weighted tables stay bounded.
pub const MAX_WEIGHT: u32 = 65_535;

impl Validate for RealServer {
    fn validate(&self) -> Result<(), ValidationError> {
        if self.port == 0 {
            return Err(ValidationError::new("port", "must be 1 to 65535"));
        }
        if self.weight > MAX_WEIGHT {
            return Err(ValidationError::new("weight", "must be 0 to 65535"));
        }
        Ok(())
    }
}

/// A virtual IP and port balanced over real servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vip {
    /// The virtual address.
    pub address: IpAddr,
    /// The virtual port.
    pub port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// How new flows pick a real server.
    #[serde(default)]
    pub scheduler: Scheduler,
    /// How packets are forwarded.
    #[serde(default)]
    pub mode: ForwardingMode,
    /// Client affinity lasts this long (`sessionAffinity: ClientIP`); `None` is off.
    #[serde(
        default,
        with = "seconds_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub persistence: Option<Duration>,
    /// The real servers.
    #[serde(default)]
    pub real_servers: Vec<RealServer>,
    /// Where it came from: `user`, or `kubernetes` for objects control derives.
    #[serde(default = "default_source")]
    pub source: String,
}

fn default_source() -> String {
    "user".to_owned()
}

impl Validate for Vip {
    fn validate(&self) -> Result<(), ValidationError> {
        if self.port == 0 {
            return Err(ValidationError::new("port", "must be 1 to 65535"));
        }
        if self.protocol == Protocol::Sctp {
            return Err(ValidationError::new(
                "protocol",
                "only TCP and UDP are balanced",
            ));
        }
        if self.address.is_unspecified() || self.address.is_multicast() {
            return Err(ValidationError::new("address", "must be a unicast address"));
        }
        for (i, rs) in self.real_servers.iter().enumerate() {
            rs.validate()
                .map_err(|e| e.within(&format!("real_servers[{i}]")))?;
            if rs.address.is_ipv4() != self.address.is_ipv4() && self.mode == ForwardingMode::Dr {
                return Err(ValidationError::new(
                    format!("real_servers[{i}].address"),
                    "DR needs the real server in the VIP's address family",
                ));
            }
        }
        if let Some(p) = self.persistence
            && (p.is_zero() || p > Duration::from_secs(86_400))
        {
            return Err(ValidationError::new(
                "persistence",
                "must be 1 to 86400 seconds",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vip_validation_names_nested_fields() {
        let vip: Vip = serde_json::from_str(
            r#"{"address":"10.96.0.10","port":53,"protocol":"UDP",
                "real_servers":[{"address":"10.1.0.1","port":53,"weight":1},
                                {"address":"10.1.0.2","port":53,"weight":70000}]}"#,
        )
        .unwrap();
        assert_eq!(vip.scheduler, Scheduler::Maglev);
        assert_eq!(vip.validate().unwrap_err().field, "real_servers[1].weight");
        let unknown =
            serde_json::from_str::<Vip>(r#"{"address":"1.1.1.1","port":1,"protocol":"TCP","x":1}"#);
        assert!(
            unknown
                .unwrap_err()
                .to_string()
                .contains("unknown field `x`")
        );
    }
}
