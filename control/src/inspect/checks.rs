//! The checks the store's objects call for, and their results. PURE.

use dataplane_common::model::{Endpoint, Name, Protocol, RData, RecordSet, Service, Vip};
use dataplane_common::node::{Registration, Role};
use dataplane_common::store::Revision;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

/// What one check does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A real server of a TCP VIP: TCP connect (or HTTP GET); sets the address's health.
    RealServer(SocketAddr),
    /// A TCP VIP itself: TCP connect through the balancer.
    Vip(SocketAddr),
    /// A DNS node answers `name` with addresses of its record set, and only those.
    Dns {
        /// The node's DNS listener.
        server: SocketAddr,
        /// The name asked (A).
        name: Name,
        /// The addresses the record set holds.
        allowed: BTreeSet<IpAddr>,
    },
    /// A node has applied the store's current revision of what it serves, and runs this
    /// build's version.
    Consistency {
        /// The node.
        node: String,
        /// What it does (which prefixes it serves, so which revision it must have applied).
        role: Role,
        /// Its registered applied revision.
        applied: Option<Revision>,
        /// Its version.
        version: String,
    },
}

impl Kind {
    /// `real_server`, `vip`, `dns`, `consistency`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::RealServer(_) => "real_server",
            Self::Vip(_) => "vip",
            Self::Dns { .. } => "dns",
            Self::Consistency { .. } => "consistency",
        }
    }
}

/// One check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Stable across rounds and nodes (what the schedule hashes).
    pub id: String,
    /// What it does.
    pub kind: Kind,
}

/// Every check for these objects: each real server of a TCP VIP and the VIP, each
/// endpoint of a headless Service (no VIP leads to it, yet dns hands its addresses out), each
/// DNS node × each known name, each node's consistency.
pub fn derive(
    vips: &[Vip],
    headless: &[(Service, Vec<Endpoint>)],
    nodes: &[Registration],
    known: &[RecordSet],
) -> Vec<Check> {
    let mut out = Vec::new();
    let mut servers = BTreeSet::new();
    for (service, endpoints) in headless {
        servers.extend(endpoint_targets(service, endpoints));
    }
    for v in vips.iter().filter(|v| v.protocol == Protocol::Tcp) {
        for rs in &v.real_servers {
            servers.insert(SocketAddr::new(rs.address, rs.port));
        }
        out.push(Check {
            id: format!("vip:{}", SocketAddr::new(v.address, v.port)),
            kind: Kind::Vip(SocketAddr::new(v.address, v.port)),
        });
    }
    out.extend(servers.into_iter().map(|s| Check {
        id: format!("real_server:{s}"),
        kind: Kind::RealServer(s),
    }));
    for n in nodes {
        if matches!(n.role, Role::Dns | Role::Up) {
            for server in n.addresses.service.iter().take(1) {
                for set in known {
                    let allowed: BTreeSet<IpAddr> = set
                        .records
                        .iter()
                        .filter_map(|r| match r {
                            RData::A { address } => Some(IpAddr::V4(*address)),
                            _ => None,
                        })
                        .collect();
                    if allowed.is_empty() {
                        continue;
                    }
                    out.push(Check {
                        id: format!("dns:{}:{}", n.name, set.name),
                        kind: Kind::Dns {
                            server: *server,
                            name: set.name.clone(),
                            allowed,
                        },
                    });
                }
            }
        }
        out.push(Check {
            id: format!("consistency:{}", n.name),
            kind: Kind::Consistency {
                node: n.name.clone(),
                role: n.role,
                applied: n.applied_revision,
                version: n.version.clone(),
            },
        });
    }
    out
}

/// What a headless Service's endpoints are probed on: each address of an endpoint that is
/// ready or serving, on each TCP port whose target is a number (or the port itself when it
/// has no target). A named target port is resolved per EndpointSlice, which the stored
/// endpoints do not carry: such ports are not probed.
pub fn endpoint_targets(service: &Service, endpoints: &[Endpoint]) -> Vec<SocketAddr> {
    if !service.is_headless() {
        return Vec::new();
    }
    let ports: Vec<u16> = service
        .ports
        .iter()
        .filter(|p| p.protocol == Protocol::Tcp)
        .filter_map(|p| match &p.target_port {
            None => Some(p.port),
            Some(t) => t.parse().ok(),
        })
        .collect();
    endpoints
        .iter()
        .filter(|e| e.conditions.ready || e.conditions.serving)
        .flat_map(|e| e.addresses.iter())
        .flat_map(|a| ports.iter().map(|p| SocketAddr::new(*a, *p)))
        .collect()
}

/// Whether a DNS answer is right: non-empty, and only addresses of the set.
pub fn dns_ok(answer: &[IpAddr], allowed: &BTreeSet<IpAddr>) -> bool {
    !answer.is_empty() && answer.iter().all(|a| allowed.contains(a))
}

/// The newest modification revision under each prefix a node may serve.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Newest {
    /// `/dataplane/zones/`.
    pub zones: Revision,
    /// `/dataplane/records/`.
    pub records: Revision,
    /// `/dataplane/vips/`.
    pub vips: Revision,
    /// `/dataplane/health/`.
    pub health: Revision,
}

impl Newest {
    /// The revision a node of `role` must have applied: the newest of what it follows
    /// (dns: zones, records, health; lb: VIPs, health). None for control, which serves no
    /// snapshot.
    pub fn wanted(&self, role: Role) -> Option<Revision> {
        match role {
            Role::Dns | Role::Up => Some(self.zones.max(self.records).max(self.health)),
            Role::Lb => Some(self.vips.max(self.health)),
            Role::Control => None,
        }
    }
}

/// Whether a node is consistent: it has applied at least `wanted` (the newest revision of
/// what it serves; None when it serves no snapshot) and runs `version`. Returns the reason
/// when not.
pub fn consistency(
    applied: Option<Revision>,
    node_version: &str,
    wanted: Option<Revision>,
    version: &str,
) -> Result<(), String> {
    match (applied, wanted) {
        (_, None) => {}
        (None, Some(_)) => return Err("has not registered an applied revision".to_owned()),
        (Some(a), Some(wanted)) if a < wanted => {
            return Err(format!(
                "applied revision {a} is behind the store's {wanted}"
            ));
        }
        (Some(_), Some(_)) => {}
    }
    if node_version != version {
        return Err(format!(
            "runs {node_version}, this inspector {version} (drift)"
        ));
    }
    Ok(())
}

/// One check's latest result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckResult {
    /// The check's id.
    pub id: String,
    /// `real_server`, `vip`, `dns`, `consistency`.
    pub kind: String,
    /// Whether it passed.
    pub ok: bool,
    /// Why not (empty when it passed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// One inspector's latest round, stored at `inspect/<node>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The inspector.
    pub by: String,
    /// The live members it scheduled over.
    pub members: Vec<String>,
    /// Its checks' results, by id.
    pub results: Vec<CheckResult>,
}

impl dataplane_common::model::Validate for Report {
    fn validate(&self) -> Result<(), dataplane_common::model::ValidationError> {
        if self.by.is_empty() {
            return Err(dataplane_common::model::ValidationError::new(
                "by",
                "must name the inspector",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consistency_and_dns_verdicts() {
        assert!(consistency(Some(10), "0.1.0", Some(10), "0.1.0").is_ok());
        assert!(
            consistency(Some(9), "0.1.0", Some(10), "0.1.0")
                .unwrap_err()
                .contains("behind")
        );
        assert!(
            consistency(Some(10), "0.0.9", Some(10), "0.1.0")
                .unwrap_err()
                .contains("drift")
        );
        assert!(consistency(None, "0.1.0", Some(1), "0.1.0").is_err());
        assert!(consistency(None, "0.1.0", None, "0.1.0").is_ok(), "control");
        let newest = Newest {
            zones: 3,
            records: 7,
            vips: 9,
            health: 5,
        };
        assert_eq!(newest.wanted(Role::Dns), Some(7), "VIPs are not dns's");
        assert_eq!(newest.wanted(Role::Lb), Some(9), "records are not lb's");
        assert_eq!(newest.wanted(Role::Control), None);
        let allowed: BTreeSet<IpAddr> = ["192.0.2.1".parse().unwrap()].into();
        assert!(dns_ok(&["192.0.2.1".parse().unwrap()], &allowed));
        assert!(!dns_ok(&[], &allowed));
        assert!(!dns_ok(&["192.0.2.2".parse().unwrap()], &allowed));
    }

    #[test]
    fn headless_endpoints_are_probed_on_their_numeric_tcp_target_ports() {
        use dataplane_common::model::{EndpointConditions, ServicePort, ServiceType};
        let port = |name: &str, protocol, port, target: Option<&str>| ServicePort {
            name: name.into(),
            protocol,
            port,
            target_port: target.map(str::to_owned),
        };
        let endpoint = |a: &str, ready: bool| Endpoint {
            addresses: vec![a.parse().unwrap()],
            conditions: EndpointConditions {
                ready,
                serving: ready,
                terminating: !ready,
            },
            hostname: None,
            node: None,
            zone: None,
        };
        let mut service = Service {
            namespace: "ns".into(),
            name: "db".into(),
            kind: ServiceType::ClusterIP,
            cluster_ips: Vec::new(),
            ports: vec![
                port("sql", Protocol::Tcp, 5432, Some("15432")),
                port("web", Protocol::Tcp, 80, None),
                port("named", Protocol::Tcp, 81, Some("http")),
                port("dns", Protocol::Udp, 53, None),
            ],
            external_name: None,
            external_ips: Vec::new(),
            session_affinity: None,
            publish_not_ready: false,
        };
        let endpoints = vec![endpoint("10.1.0.1", true), endpoint("10.1.0.2", false)];
        let checks = derive(&[], &[(service.clone(), endpoints.clone())], &[], &[]);
        let ids: Vec<&str> = checks.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            ["real_server:10.1.0.1:80", "real_server:10.1.0.1:15432"],
            "ready endpoints only; numeric TCP targets only"
        );
        // A Service with a cluster IP is probed through its VIP's real servers instead.
        service.cluster_ips = vec!["10.96.0.10".parse().unwrap()];
        assert!(derive(&[], &[(service, endpoints)], &[], &[]).is_empty());
    }
}
