//! The Service and its endpoints in model terms: names, types and addresses parsed, endpoint
//! conditions resolved, each address once.

use super::{DEFAULT_AFFINITY_TIMEOUT_SECS, MAX_AFFINITY_TIMEOUT_SECS, TranslateError};
use crate::kube;
use dataplane_common::model::{
    self, EndpointConditions, Name, Protocol, ServicePort, ServiceType, Validate,
};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

/// One endpoint with what its slice says about ports.
///
/// `address` MUST be the endpoint's first address: the EndpointSlice API says addresses are
/// fungible and consumers may use only the first, as kube-proxy does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// The address traffic and DNS use.
    pub address: IpAddr,
    /// Every address of the endpoint (the first is `address`).
    pub addresses: Vec<IpAddr>,
    /// Its hostname, when set and a valid DNS label.
    pub hostname: Option<String>,
    /// Its conditions, with unset ones resolved.
    pub conditions: EndpointConditions,
    /// The node it runs on.
    pub node: Option<String>,
    /// Its topology zone.
    pub zone: Option<String>,
    /// The ports of its slice.
    pub ports: Vec<kube::EndpointPort>,
}

impl Backend {
    /// The port this endpoint listens on for `port` of the Service.
    ///
    /// The slice's port of the same name and protocol decides (the EndpointSlice controller
    /// resolved named target ports into it). Without one, a numeric `targetPort` (or none,
    /// meaning the Service port) is used directly; a named one is unresolved (`None`).
    pub fn port_for(&self, port: &ServicePort) -> Option<u16> {
        let from_slice = self.ports.iter().find(|p| {
            p.name.as_deref().unwrap_or_default() == port.name
                && protocol(p.protocol.as_deref().unwrap_or_default()) == Some(port.protocol)
        });
        if let Some(p) = from_slice {
            return p
                .port
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n != 0);
        }
        match &port.target_port {
            None => Some(port.port),
            Some(target) => target.parse::<u16>().ok().filter(|n| *n != 0),
        }
    }

    /// The endpoint as the model stores it.
    pub fn to_model(&self) -> model::Endpoint {
        model::Endpoint {
            addresses: self.addresses.clone(),
            conditions: self.conditions,
            hostname: self.hostname.clone(),
            node: self.node.clone(),
            zone: self.zone.clone(),
        }
    }
}

/// `TCP` (also when empty), `UDP`, `SCTP`.
pub(super) fn protocol(s: &str) -> Option<Protocol> {
    match s {
        "" | "TCP" => Some(Protocol::Tcp),
        "UDP" => Some(Protocol::Udp),
        "SCTP" => Some(Protocol::Sctp),
        _ => None,
    }
}

/// The Service in model terms.
pub(super) fn service(
    svc: &kube::Service,
    warnings: &mut Vec<String>,
) -> Result<model::Service, TranslateError> {
    let invalid = |field: &str, reason: String| TranslateError::Invalid {
        namespace: svc.metadata.namespace.clone(),
        name: svc.metadata.name.clone(),
        field: field.to_owned(),
        reason,
    };
    let spec = &svc.spec;
    let kind = match spec.kind.as_str() {
        "" | "ClusterIP" => ServiceType::ClusterIP,
        "NodePort" => ServiceType::NodePort,
        "LoadBalancer" => ServiceType::LoadBalancer,
        "ExternalName" => ServiceType::ExternalName,
        other => return Err(invalid("spec.type", format!("unknown type `{other}`"))),
    };
    let mut cluster_ips = Vec::new();
    if kind != ServiceType::ExternalName {
        let listed: Vec<&str> = if spec.cluster_ips.is_empty() {
            vec![spec.cluster_ip.as_str()]
        } else {
            spec.cluster_ips.iter().map(String::as_str).collect()
        };
        for (i, ip) in listed.into_iter().enumerate() {
            if ip.is_empty() || ip == "None" {
                continue;
            }
            let ip: IpAddr = ip.parse().map_err(|_| {
                invalid(
                    &format!("spec.clusterIPs[{i}]"),
                    format!("`{ip}` is not an IP address"),
                )
            })?;
            cluster_ips.push(ip);
        }
    }
    let mut ports = Vec::with_capacity(spec.ports.len());
    for (i, p) in spec.ports.iter().enumerate() {
        let protocol = protocol(&p.protocol).ok_or_else(|| {
            invalid(
                &format!("spec.ports[{i}].protocol"),
                format!("unknown protocol `{}`", p.protocol),
            )
        })?;
        let port = u16::try_from(p.port)
            .ok()
            .filter(|n| *n != 0)
            .ok_or_else(|| {
                invalid(
                    &format!("spec.ports[{i}].port"),
                    format!("{} is not 1 to 65535", p.port),
                )
            })?;
        ports.push(ServicePort {
            name: p.name.clone(),
            protocol,
            port,
            target_port: p.target_port.as_ref().map(|t| match t {
                kube::IntOrString::Int(n) => n.to_string(),
                kube::IntOrString::String(s) => s.clone(),
            }),
        });
    }
    let external_name = if kind == ServiceType::ExternalName {
        let target = spec.external_name.trim_end_matches('.');
        let name: Name = target.parse().map_err(|e| {
            invalid(
                "spec.externalName",
                format!("`{target}` is not a DNS name: {e}"),
            )
        })?;
        Some(name)
    } else {
        None
    };
    let mut external_ips = Vec::new();
    let ingress = svc
        .load_balancer_ingress
        .iter()
        .map(|i| ("status.loadBalancer.ingress", i.ip.as_str()))
        .filter(|(_, ip)| !ip.is_empty());
    for (field, ip) in spec
        .external_ips
        .iter()
        .map(|ip| ("spec.externalIPs", ip.as_str()))
        .chain(ingress)
    {
        match ip.parse::<IpAddr>() {
            Ok(ip) if !external_ips.contains(&ip) => external_ips.push(ip),
            Ok(_) => {}
            Err(_) => warnings.push(format!("{field}: `{ip}` is not an IP address; skipped")),
        }
    }
    let session_affinity = (spec.session_affinity == "ClientIP").then(|| {
        let secs = spec
            .session_affinity_timeout
            .and_then(|t| u64::try_from(t).ok())
            .filter(|t| *t > 0)
            .unwrap_or(DEFAULT_AFFINITY_TIMEOUT_SECS)
            .min(MAX_AFFINITY_TIMEOUT_SECS);
        Duration::from_secs(secs)
    });
    let service = model::Service {
        namespace: svc.metadata.namespace.clone(),
        name: svc.metadata.name.clone(),
        kind,
        cluster_ips,
        ports,
        external_name,
        external_ips,
        session_affinity,
        publish_not_ready: spec.publish_not_ready_addresses,
    };
    service
        .validate()
        .map_err(|e| invalid(&e.field, e.reason))?;
    Ok(service)
}

/// The endpoints of `slices` (sorted by slice name first, so the result is stable), each
/// address once; FQDN slices are not used.
pub(super) fn backends(
    slices: &[&kube::EndpointSlice],
    warnings: &mut Vec<String>,
) -> Vec<Backend> {
    let mut slices = slices.to_vec();
    slices.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for slice in slices {
        let family = match slice.address_type.as_str() {
            "IPv4" => Some(true),
            "IPv6" => Some(false),
            _ => None,
        };
        let Some(v4) = family else {
            continue;
        };
        for e in &slice.endpoints {
            let addresses: Vec<IpAddr> = e
                .addresses
                .iter()
                .filter_map(|a| match a.parse::<IpAddr>() {
                    Ok(ip) if ip.is_ipv4() == v4 => Some(ip),
                    _ => {
                        warnings.push(format!(
                            "slice {}: `{a}` is not an {} address; skipped",
                            slice.metadata.name, slice.address_type
                        ));
                        None
                    }
                })
                .collect();
            let Some(&address) = addresses.first() else {
                continue;
            };
            if !seen.insert(address) {
                continue;
            }
            let hostname = e.hostname.clone().filter(|h| {
                let ok = is_dns_label(h);
                if !ok {
                    warnings.push(format!(
                        "endpoint {address}: hostname `{h}` is not a DNS label; ignored"
                    ));
                }
                ok
            });
            let ready = e.conditions.is_ready();
            out.push(Backend {
                address,
                addresses,
                hostname,
                conditions: EndpointConditions {
                    ready,
                    serving: e.conditions.is_serving(),
                    terminating: e.conditions.is_terminating(),
                },
                node: e.node_name.clone(),
                zone: e.zone.clone(),
                ports: slice.ports.clone(),
            });
        }
    }
    out
}

/// RFC 1123 label, lower case, as Kubernetes requires of hostnames.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}
