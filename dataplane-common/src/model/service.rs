//! Kubernetes Services and their endpoints, as control derives them from the cluster.

use super::record::seconds_option;
use super::{Name, Protocol, Validate, ValidationError};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::Duration;

/// A Service's type (Kubernetes `spec.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ServiceType {
    /// A virtual IP inside the cluster.
    #[default]
    ClusterIP,
    /// A ClusterIP plus a port on every node.
    NodePort,
    /// A ClusterIP plus external load-balancer addresses.
    LoadBalancer,
    /// A DNS alias to an outside name; no VIP.
    ExternalName,
}

/// One port of a Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePort {
    /// The port's name (empty when the Service has a single unnamed port).
    #[serde(default)]
    pub name: String,
    /// TCP, UDP or SCTP.
    pub protocol: Protocol,
    /// The port on the cluster IP.
    pub port: u16,
    /// The endpoint port: a number, or a port name resolved per endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<String>,
}

/// A Kubernetes Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its type.
    #[serde(default)]
    pub kind: ServiceType,
    /// Cluster IPs; empty for a headless Service (`clusterIP: None`).
    #[serde(default)]
    pub cluster_ips: Vec<IpAddr>,
    /// Its ports.
    #[serde(default)]
    pub ports: Vec<ServicePort>,
    /// The alias target of an ExternalName Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_name: Option<Name>,
    /// `spec.externalIPs` plus load-balancer ingress IPs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_ips: Vec<IpAddr>,
    /// `sessionAffinity: ClientIP` timeout; `None` when affinity is off.
    #[serde(
        default,
        with = "seconds_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub session_affinity: Option<Duration>,
    /// `publishNotReadyAddresses`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub publish_not_ready: bool,
}

impl Service {
    /// Whether the Service has no cluster IP of its own.
    pub fn is_headless(&self) -> bool {
        self.cluster_ips.is_empty() && self.kind != ServiceType::ExternalName
    }
}

/// RFC 1123 label, as Kubernetes requires of namespaces and Service names.
fn check_dns_label(field: &str, value: &str) -> Result<(), ValidationError> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!("`{value}` is not an RFC 1123 label (a-z, 0-9, '-', at most 63)"),
        ))
    }
}

impl Validate for Service {
    fn validate(&self) -> Result<(), ValidationError> {
        check_dns_label("namespace", &self.namespace)?;
        check_dns_label("name", &self.name)?;
        for (i, p) in self.ports.iter().enumerate() {
            if p.port == 0 {
                return Err(ValidationError::new(
                    format!("ports[{i}].port"),
                    "must be 1 to 65535",
                ));
            }
        }
        if self.kind == ServiceType::ExternalName && self.external_name.is_none() {
            return Err(ValidationError::new(
                "external_name",
                "an ExternalName Service needs a target name",
            ));
        }
        Ok(())
    }
}

/// An endpoint's conditions (Kubernetes EndpointSlice `conditions`). The default is the
/// common case, ready and serving and not terminating, as Kubernetes reads absent conditions;
/// it is left out of the stored value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConditions {
    /// Ready to receive new traffic.
    pub ready: bool,
    /// Serving, even while terminating.
    pub serving: bool,
    /// Being shut down: drain, don't drop.
    pub terminating: bool,
}

impl Default for EndpointConditions {
    fn default() -> Self {
        Self {
            ready: true,
            serving: true,
            terminating: false,
        }
    }
}

impl EndpointConditions {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// One endpoint of a Service. Absent fields are left out of the stored value: a million
/// endpoints are a third of what a first sync writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
    /// Its conditions.
    #[serde(default, skip_serializing_if = "EndpointConditions::is_default")]
    pub conditions: EndpointConditions,
    /// The pod's hostname, for `<hostname>.<svc>.<ns>.svc.<zone>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The node it runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Its topology zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

impl Validate for Endpoint {
    fn validate(&self) -> Result<(), ValidationError> {
        if self.addresses.is_empty() {
            return Err(ValidationError::new(
                "addresses",
                "must hold at least one address",
            ));
        }
        if let Some(h) = &self.hostname {
            check_dns_label("hostname", h)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headless_and_validation() {
        let svc: Service = serde_json::from_str(
            r#"{"namespace":"default","name":"db","ports":[{"protocol":"TCP","port":5432}],
                "session_affinity":10800}"#,
        )
        .unwrap();
        assert!(svc.is_headless());
        assert_eq!(svc.session_affinity, Some(Duration::from_secs(10800)));
        svc.validate().unwrap();
        let bad = Service {
            name: "Bad_Name".into(),
            ..svc
        };
        assert_eq!(bad.validate().unwrap_err().field, "name");
    }

    #[test]
    fn defaults_are_left_out_and_read_back() {
        let ready = Endpoint {
            addresses: vec!["10.1.0.1".parse().unwrap()],
            conditions: EndpointConditions::default(),
            hostname: None,
            node: None,
            zone: None,
        };
        let json = serde_json::to_string(&ready).unwrap();
        assert_eq!(json, r#"{"addresses":["10.1.0.1"]}"#);
        assert_eq!(serde_json::from_str::<Endpoint>(&json).unwrap(), ready);
        let draining = Endpoint {
            conditions: EndpointConditions {
                ready: false,
                serving: true,
                terminating: true,
            },
            hostname: Some("web-0".into()),
            ..ready.clone()
        };
        let json = serde_json::to_string(&draining).unwrap();
        assert!(json.contains(r#""terminating":true"#), "{json}");
        assert_eq!(serde_json::from_str::<Endpoint>(&json).unwrap(), draining);
        // Values written before fields were left out still read.
        let old = r#"{"addresses":["10.1.0.1"],"conditions":{"ready":true,"serving":true,"terminating":false},"hostname":null,"node":null,"zone":null}"#;
        assert_eq!(serde_json::from_str::<Endpoint>(old).unwrap(), ready);
    }
}
