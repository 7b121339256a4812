//! Test helpers: small builders for Services and EndpointSlices, and the exact bytes
//! kube-apiserver stores for them (`k8s\0` + `runtime.Unknown` + the protobuf object).
//!
//! Built with `cfg(test)` or the `testing` feature; nothing in control's own code uses them.

use super::decode::PROTOBUF_MAGIC;
use super::types::{
    Endpoint, EndpointConditions, EndpointPort, EndpointSlice, IntOrString, ObjectMeta, Service,
    ServicePort, ServiceSpec,
};
use k8s_pb::api::core::v1 as pb_core;
use k8s_pb::api::discovery::v1 as pb_discovery;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as pb_meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString as PbIntOrString;
use prost::Message;

/// A ClusterIP Service (`cluster_ips` empty: headless, `clusterIP: None`).
pub fn service(
    namespace: &str,
    name: &str,
    cluster_ips: &[&str],
    ports: Vec<ServicePort>,
) -> Service {
    let cluster_ips: Vec<String> = if cluster_ips.is_empty() {
        vec!["None".to_owned()]
    } else {
        cluster_ips.iter().map(|s| (*s).to_owned()).collect()
    };
    Service {
        metadata: meta(namespace, name, None),
        spec: ServiceSpec {
            kind: "ClusterIP".to_owned(),
            cluster_ip: cluster_ips[0].clone(),
            cluster_ips,
            ports,
            ..ServiceSpec::default()
        },
        load_balancer_ingress: Vec::new(),
    }
}

/// A Service port; `target` `None` leaves `targetPort` unset.
pub fn port(name: &str, protocol: &str, port: i32, target: Option<IntOrString>) -> ServicePort {
    ServicePort {
        name: name.to_owned(),
        protocol: protocol.to_owned(),
        port,
        target_port: target,
    }
}

/// An EndpointSlice of `service`, with `ports` as (name, port) pairs on TCP.
pub fn slice(
    namespace: &str,
    name: &str,
    service: &str,
    address_type: &str,
    ports: &[(&str, i32)],
    endpoints: Vec<Endpoint>,
) -> EndpointSlice {
    EndpointSlice {
        metadata: meta(namespace, name, Some(service)),
        address_type: address_type.to_owned(),
        endpoints,
        ports: ports
            .iter()
            .map(|(name, port)| EndpointPort {
                name: Some((*name).to_owned()),
                protocol: Some("TCP".to_owned()),
                port: Some(*port),
            })
            .collect(),
    }
}

/// A ready endpoint (`ready`) or a not-ready one that is not serving either.
pub fn endpoint(address: &str, ready: bool) -> Endpoint {
    Endpoint {
        addresses: vec![address.to_owned()],
        conditions: EndpointConditions {
            ready: Some(ready),
            serving: Some(ready),
            terminating: Some(false),
        },
        ..Endpoint::default()
    }
}

/// An endpoint that is shutting down but still serving its open connections.
pub fn terminating(address: &str) -> Endpoint {
    Endpoint {
        addresses: vec![address.to_owned()],
        conditions: EndpointConditions {
            ready: Some(false),
            serving: Some(true),
            terminating: Some(true),
        },
        ..Endpoint::default()
    }
}

/// A ready endpoint with a hostname.
pub fn named_endpoint(address: &str, hostname: &str) -> Endpoint {
    Endpoint {
        hostname: Some(hostname.to_owned()),
        ..endpoint(address, true)
    }
}

fn meta(namespace: &str, name: &str, service_name: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: name.to_owned(),
        namespace: namespace.to_owned(),
        service_name: service_name.map(str::to_owned),
    }
}

/// The bytes kube-apiserver stores for `service`.
pub fn protobuf_service(service: &Service) -> Vec<u8> {
    let spec = &service.spec;
    let pb = pb_core::Service {
        metadata: Some(meta_to_pb(&service.metadata)),
        spec: Some(pb_core::ServiceSpec {
            ports: spec.ports.iter().map(port_to_pb).collect(),
            cluster_ip: non_empty(&spec.cluster_ip),
            cluster_ips: spec.cluster_ips.clone(),
            r#type: non_empty(&spec.kind),
            external_ips: spec.external_ips.clone(),
            session_affinity: non_empty(&spec.session_affinity),
            external_name: non_empty(&spec.external_name),
            publish_not_ready_addresses: Some(spec.publish_not_ready_addresses),
            session_affinity_config: spec.session_affinity_timeout.map(|t| {
                pb_core::SessionAffinityConfig {
                    client_ip: Some(pb_core::ClientIpConfig {
                        timeout_seconds: Some(t),
                    }),
                }
            }),
            ..pb_core::ServiceSpec::default()
        }),
        status: Some(pb_core::ServiceStatus {
            load_balancer: Some(pb_core::LoadBalancerStatus {
                ingress: service
                    .load_balancer_ingress
                    .iter()
                    .map(|i| pb_core::LoadBalancerIngress {
                        ip: non_empty(&i.ip),
                        hostname: non_empty(&i.hostname),
                        ..pb_core::LoadBalancerIngress::default()
                    })
                    .collect(),
            }),
            conditions: Vec::new(),
        }),
    };
    envelope("v1", "Service", pb.encode_to_vec())
}

/// The bytes kube-apiserver stores for `slice`.
pub fn protobuf_slice(slice: &EndpointSlice) -> Vec<u8> {
    let pb = pb_discovery::EndpointSlice {
        metadata: Some(meta_to_pb(&slice.metadata)),
        address_type: non_empty(&slice.address_type),
        endpoints: slice
            .endpoints
            .iter()
            .map(|e| pb_discovery::Endpoint {
                addresses: e.addresses.clone(),
                conditions: Some(pb_discovery::EndpointConditions {
                    ready: e.conditions.ready,
                    serving: e.conditions.serving,
                    terminating: e.conditions.terminating,
                }),
                hostname: e.hostname.clone(),
                node_name: e.node_name.clone(),
                zone: e.zone.clone(),
                ..pb_discovery::Endpoint::default()
            })
            .collect(),
        ports: slice
            .ports
            .iter()
            .map(|p| pb_discovery::EndpointPort {
                name: p.name.clone(),
                protocol: p.protocol.clone(),
                port: p.port,
                app_protocol: None,
            })
            .collect(),
    };
    envelope("discovery.k8s.io/v1", "EndpointSlice", pb.encode_to_vec())
}

/// `k8s\0` + `runtime.Unknown{typeMeta, raw}`, as the apiserver's protobuf serializer writes.
pub fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.to_owned()),
            kind: Some(kind.to_owned()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = PROTOBUF_MAGIC.to_vec();
    unknown
        .encode(&mut out)
        .expect("invariant: a Vec grows as needed");
    out
}

fn meta_to_pb(meta: &ObjectMeta) -> pb_meta::ObjectMeta {
    pb_meta::ObjectMeta {
        name: non_empty(&meta.name),
        namespace: non_empty(&meta.namespace),
        labels: meta
            .service_name
            .iter()
            .map(|s| (super::SERVICE_NAME_LABEL.to_owned(), s.clone()))
            .collect(),
        ..pb_meta::ObjectMeta::default()
    }
}

fn port_to_pb(p: &ServicePort) -> pb_core::ServicePort {
    pb_core::ServicePort {
        name: non_empty(&p.name),
        protocol: non_empty(&p.protocol),
        port: Some(p.port),
        target_port: p.target_port.as_ref().map(|t| match t {
            IntOrString::Int(i) => PbIntOrString {
                r#type: Some(0),
                int_val: Some(*i),
                str_val: None,
            },
            IntOrString::String(s) => PbIntOrString {
                r#type: Some(1),
                int_val: None,
                str_val: Some(s.clone()),
            },
        }),
        ..pb_core::ServicePort::default()
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}
