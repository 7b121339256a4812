//! The VIPs of a Service: every cluster IP, external IP and load-balancer ingress IP, on every
//! TCP and UDP port, balanced over the endpoints of the same address family.
//!
//! A real server is an endpoint on the port its slice resolved for the Service port
//! ([`Backend::port_for`]). Ready endpoints get weight 1. Terminating ones that still serve
//! get weight 0: the balancer drains them (open sessions go on, no new ones) rather than
//! cutting their connections. Endpoints neither ready nor serving are left out.
//! `sessionAffinity: ClientIP` becomes the VIP's persistence.
//!
//! Not here: NodePorts (a VIP on every node's address), SCTP (not balanced).

use super::{Backend, SOURCE};
use dataplane_common::model::{self, ForwardingMode, Protocol, RealServer, Scheduler, Vip};
use std::net::IpAddr;

/// The weight of a ready endpoint.
const READY_WEIGHT: u32 = 1;
/// The weight of a terminating endpoint that still serves: drained.
const DRAINING_WEIGHT: u32 = 0;

/// Every VIP of `service`, sorted by address, port and protocol.
pub(super) fn vips(
    service: &model::Service,
    backends: &[Backend],
    warnings: &mut Vec<String>,
) -> Vec<Vip> {
    let mut addresses: Vec<IpAddr> = service.cluster_ips.clone();
    for ip in &service.external_ips {
        if !addresses.contains(ip) {
            addresses.push(*ip);
        }
    }
    let mut out = Vec::new();
    for port in &service.ports {
        if port.protocol == Protocol::Sctp {
            warnings.push(format!(
                "port {}/SCTP: SCTP is not balanced; no VIP",
                port.port
            ));
            continue;
        }
        for &address in &addresses {
            out.push(Vip {
                address,
                port: port.port,
                protocol: port.protocol,
                scheduler: Scheduler::default(),
                mode: ForwardingMode::default(),
                persistence: service.session_affinity,
                real_servers: real_servers(address, port, backends, warnings),
                source: SOURCE.to_owned(),
            });
        }
    }
    out.sort_by_key(|v| (v.address, v.port, v.protocol));
    out
}

fn real_servers(
    vip: IpAddr,
    port: &model::ServicePort,
    backends: &[Backend],
    warnings: &mut Vec<String>,
) -> Vec<RealServer> {
    let mut out: Vec<RealServer> = Vec::new();
    for b in backends
        .iter()
        .filter(|b| b.address.is_ipv4() == vip.is_ipv4())
    {
        let c = b.conditions;
        let weight = if c.ready {
            READY_WEIGHT
        } else if c.serving && c.terminating {
            DRAINING_WEIGHT
        } else {
            continue;
        };
        let Some(target) = b.port_for(port) else {
            warnings.push(format!(
                "endpoint {}: target port `{}` of port {} is not resolved by its slice; not a real server",
                b.address,
                port.target_port.as_deref().unwrap_or_default(),
                port.port
            ));
            continue;
        };
        if !out
            .iter()
            .any(|r| r.address == b.address && r.port == target)
        {
            out.push(RealServer {
                address: b.address,
                port: target,
                weight,
            });
        }
    }
    out.sort_by_key(|r| (r.address, r.port));
    out
}
