//! The DNS records of a Service, per the Kubernetes DNS specification
//! (<https://github.com/kubernetes/dns/blob/master/docs/specification.md>).
//!
//! Choices the specification leaves open:
//! - SRV priority 0 and weight 100 for every target.
//! - A headless SRV carries the endpoint's own port (the target port the slice resolved),
//!   since clients connect to the endpoint directly; a ClusterIP SRV carries the Service port.
//! - An endpoint without a hostname gets `<address with dashes>` as its system-assigned
//!   hostname (as CoreDNS does), and an A/AAAA record there so its SRV target resolves.
//! - The Service's own A/AAAA and SRV sets answer one persistent address per client when
//!   `sessionAffinity: ClientIP` (for `affinity_timeout`); everything else answers all.
//!
//! Not here: the `dns-version.<zone>` TXT record (2.2), which dns serves itself for the
//! cluster domain, and the deprecated `<a-b-c-d>.<ns>.pod.<zone>` records (2.6), which are
//! synthesized from the query name, not stored.

use super::{Backend, Options, SOURCE};
use crate::translate::reverse;
use dataplane_common::model::{
    self, AnswerPolicy, Name, NameError, RData, RecordSet, RecordType, ServiceType,
};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

/// SRV priority of every target (the specification does not prescribe one).
const SRV_PRIORITY: u16 = 0;
/// SRV weight of every target.
const SRV_WEIGHT: u16 = 100;

/// `<service>.<ns>.svc.<zone>.`
///
/// # Errors
/// When the result is not a valid name (too long).
pub fn service_name(service: &model::Service, zone: &Name) -> Result<Name, NameError> {
    zone.prepend("svc")?
        .prepend(&service.namespace)?
        .prepend(&service.name)
}

/// The endpoint's _hostname_ in the specification's sense: its `hostname`, else its address
/// with `.` or `:` turned into `-` (fully written out when `::` would make a label start or
/// end with `-`).
pub fn endpoint_label(backend: &Backend) -> String {
    if let Some(h) = &backend.hostname {
        return h.clone();
    }
    match backend.address {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => {
            let short = v6.to_string().replace(':', "-");
            if short.starts_with('-') || short.ends_with('-') {
                v6.segments()
                    .iter()
                    .map(|s| format!("{s:x}"))
                    .collect::<Vec<_>>()
                    .join("-")
            } else {
                short
            }
        }
    }
}

/// Record sets under construction, keyed by owner and type.
struct Sets {
    ttl: u32,
    affinity: Option<Duration>,
    sets: BTreeMap<(Name, RecordType), (Vec<RData>, bool)>,
}

impl Sets {
    fn new(ttl: u32, affinity: Option<Duration>) -> Self {
        Self {
            ttl,
            affinity,
            sets: BTreeMap::new(),
        }
    }

    /// Adds `data` at `name` (once); `sticky` sets take the Service's affinity policy.
    fn add(&mut self, name: Name, data: RData, sticky: bool) {
        let (records, is_sticky) = self
            .sets
            .entry((name, data.record_type()))
            .or_insert_with(|| (Vec::new(), sticky));
        *is_sticky |= sticky;
        if !records.contains(&data) {
            records.push(data);
        }
    }

    fn address(&mut self, name: &Name, ip: IpAddr, sticky: bool) {
        let data = match ip {
            IpAddr::V4(address) => RData::A { address },
            IpAddr::V6(address) => RData::Aaaa { address },
        };
        self.add(name.clone(), data, sticky);
    }

    fn into_record_sets(self) -> Vec<RecordSet> {
        self.sets
            .into_iter()
            .map(|((name, _), (mut records, sticky))| {
                records.sort_by_cached_key(sort_key);
                let (policy, affinity_timeout) = match self.affinity {
                    Some(t) if sticky => (AnswerPolicy::OnePersistent, Some(t)),
                    _ => (AnswerPolicy::All, None),
                };
                RecordSet {
                    name,
                    ttl: self.ttl,
                    records,
                    policy,
                    affinity_timeout,
                    source: SOURCE.to_owned(),
                }
            })
            .collect()
    }
}

/// A stable order for the data of one set, so that equal sets encode to equal bytes.
fn sort_key(data: &RData) -> String {
    match data {
        RData::A { address } => format!("{:03?}", address.octets()),
        RData::Aaaa { address } => format!("{:05?}", address.segments()),
        RData::Srv { port, target, .. } => format!("{target} {port:05}"),
        other => format!("{other:?}"),
    }
}

/// Every record set of `service`, whose name is `owner`.
pub(super) fn records(
    service: &model::Service,
    backends: &[Backend],
    owner: &Name,
    options: &Options,
    warnings: &mut Vec<String>,
) -> Vec<RecordSet> {
    let mut sets = Sets::new(options.ttl, service.session_affinity);
    if service.kind == ServiceType::ExternalName {
        //= https://github.com/kubernetes/dns/blob/master/docs/specification.md#25---records-for-external-name-services
        //# a `CNAME` record named `<service>.<ns>.svc.<zone>` pointing to `<extname>` must
        //# exist.
        if let Some(target) = &service.external_name {
            sets.add(
                owner.clone(),
                RData::Cname {
                    target: target.clone(),
                },
                false,
            );
        }
        return sets.into_record_sets();
    }
    if service.is_headless() {
        headless(service, backends, owner, &mut sets, warnings);
    } else {
        cluster_ip(service, owner, &mut sets, warnings);
    }
    sets.into_record_sets()
}

fn cluster_ip(service: &model::Service, owner: &Name, sets: &mut Sets, warnings: &mut Vec<String>) {
    for ip in &service.cluster_ips {
        //= https://github.com/kubernetes/dns/blob/master/docs/specification.md#231---a-record
        //# `<service>.<ns>.svc.<zone>. <ttl> IN A <cluster-ip>`
        sets.address(owner, *ip, true);
        //= https://github.com/kubernetes/dns/blob/master/docs/specification.md#233---ptr-record
        //# `<d>.<c>.<b>.<a>.in-addr.arpa. <ttl> IN PTR <service>.<ns>.svc.<zone>.`
        sets.add(
            reverse::name(*ip),
            RData::Ptr {
                target: owner.clone(),
            },
            false,
        );
    }
    //= https://github.com/kubernetes/dns/blob/master/docs/specification.md#232---srv-records
    //# For each port in the Service with name `<port>` and number
    //# `<port-number>` using protocol `<proto>`, an `SRV` record of the following
    //# form must exist.
    for port in &service.ports {
        if let Some(srv_owner) = srv_owner(port, owner, warnings) {
            sets.add(
                srv_owner,
                RData::Srv {
                    priority: SRV_PRIORITY,
                    weight: SRV_WEIGHT,
                    port: port.port,
                    target: owner.clone(),
                },
                true,
            );
        }
    }
}

fn headless(
    service: &model::Service,
    backends: &[Backend],
    owner: &Name,
    sets: &mut Sets,
    warnings: &mut Vec<String>,
) {
    //= https://github.com/kubernetes/dns/blob/master/docs/specification.md#241---a-records
    //# There must be an `A` record for each _ready_ endpoint of the headless Service
    //# with IP address `<endpoint-ip>` as shown below.
    let published = backends
        .iter()
        .filter(|b| service.publish_not_ready || b.conditions.ready);
    for backend in published {
        sets.address(owner, backend.address, true);
        let label = endpoint_label(backend);
        let host = match owner.prepend(&label) {
            Ok(host) => host,
            Err(e) => {
                warnings.push(format!(
                    "endpoint {}: `{label}` makes no valid name: {e}",
                    backend.address
                ));
                continue;
            }
        };
        //# There must also be an `A` record of the following form for each _ready_
        //# endpoint with _hostname_ of `<hostname>` and IP address `<endpoint-ip>`.
        sets.address(&host, backend.address, false);
        //= https://github.com/kubernetes/dns/blob/master/docs/specification.md#242---srv-records
        //# For each combination of _ready_ endpoint with _hostname_ of `<hostname>`, and
        //# port in the Service with name `<port>` and number `<port-number>` using
        //# protocol `<proto>`, an `SRV` record of the following form must exist.
        for port in &service.ports {
            let Some(srv_owner) = srv_owner(port, owner, warnings) else {
                continue;
            };
            let Some(target_port) = backend.port_for(port) else {
                warnings.push(format!(
                    "endpoint {}: no port for `{}`; no SRV record",
                    backend.address, port.name
                ));
                continue;
            };
            sets.add(
                srv_owner,
                RData::Srv {
                    priority: SRV_PRIORITY,
                    weight: SRV_WEIGHT,
                    port: target_port,
                    target: host.clone(),
                },
                true,
            );
        }
        //= https://github.com/kubernetes/dns/blob/master/docs/specification.md#243---ptr-records
        //# Given a _ready_ endpoint with _hostname_ of `<hostname>` and IP address
        //# `<a>.<b>.<c>.<d>`, a `PTR` record of the following form must exist.
        // Only for an explicit hostname: a dashed address names nothing the pod chose.
        if backend.hostname.is_some() {
            sets.add(
                reverse::name(backend.address),
                RData::Ptr { target: host },
                false,
            );
        }
    }
}

/// `_<port>._<proto>.<owner>`, or `None` for an unnamed port.
fn srv_owner(port: &model::ServicePort, owner: &Name, warnings: &mut Vec<String>) -> Option<Name> {
    //# Unnamed ports do not have an `SRV` record.
    if port.name.is_empty() {
        return None;
    }
    let name = owner
        .prepend(&format!("_{}", port.protocol.as_lower()))
        .and_then(|n| n.prepend(&format!("_{}", port.name)));
    match name {
        Ok(name) => Some(name),
        Err(e) => {
            warnings.push(format!("port `{}`: no SRV record: {e}", port.name));
            None
        }
    }
}
