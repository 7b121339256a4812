//! The fields of Services and EndpointSlices that control reads, kept as Kubernetes spells
//! them (strings stay strings: parsing and judging them is `translate`'s job).
//!
//! The structs deserialize from the JSON storage encoding directly (camelCase, every field
//! optional, unknown fields ignored); [`super::decode`] fills them from protobuf too.

use serde::Deserialize;
use std::collections::BTreeMap;

/// `metadata`, reduced to what identifies an object and ties slices to Services.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ObjectMeta {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// The label [`super::SERVICE_NAME_LABEL`], the only one control reads. The other labels
    /// are not kept: a map per object was about 60 MB at 100,000 EndpointSlices.
    #[serde(rename = "labels", deserialize_with = "service_name_label")]
    pub service_name: Option<String>,
}

/// A `core.v1.Service`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Service {
    /// Its metadata.
    pub metadata: ObjectMeta,
    /// Its spec.
    pub spec: ServiceSpec,
    /// `status.loadBalancer.ingress`, flattened.
    #[serde(rename = "status", deserialize_with = "ingress_from_status")]
    pub load_balancer_ingress: Vec<LoadBalancerIngress>,
}

/// `spec` of a Service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServiceSpec {
    /// `type`: `ClusterIP` (the default when empty), `NodePort`, `LoadBalancer`, `ExternalName`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `clusterIP`: an address, `None` for a headless Service, or empty.
    #[serde(rename = "clusterIP")]
    pub cluster_ip: String,
    /// `clusterIPs` (dual-stack; the first equals `clusterIP`).
    #[serde(rename = "clusterIPs")]
    pub cluster_ips: Vec<String>,
    /// `ports`.
    pub ports: Vec<ServicePort>,
    /// `externalIPs`.
    #[serde(rename = "externalIPs")]
    pub external_ips: Vec<String>,
    /// `sessionAffinity`: `ClientIP` or `None`.
    pub session_affinity: String,
    /// `sessionAffinityConfig.clientIP.timeoutSeconds`.
    #[serde(
        rename = "sessionAffinityConfig",
        deserialize_with = "timeout_from_affinity_config"
    )]
    pub session_affinity_timeout: Option<i32>,
    /// `externalName`.
    pub external_name: String,
    /// `publishNotReadyAddresses`.
    pub publish_not_ready_addresses: bool,
}

/// One entry of `spec.ports`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServicePort {
    /// `name`; empty for the single unnamed port.
    pub name: String,
    /// `protocol`: `TCP` (the default when empty), `UDP` or `SCTP`.
    pub protocol: String,
    /// `port`.
    pub port: i32,
    /// `targetPort`; `None` means the same as `port`.
    pub target_port: Option<IntOrString>,
}

/// A port given by number or by a container port's name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    /// A number.
    Int(i32),
    /// A name.
    String(String),
}

/// One entry of `status.loadBalancer.ingress`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct LoadBalancerIngress {
    /// `ip`.
    pub ip: String,
    /// `hostname` (not used for VIPs).
    pub hostname: String,
}

/// A `discovery.v1.EndpointSlice`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EndpointSlice {
    /// Its metadata; the label [`super::SERVICE_NAME_LABEL`] names its Service.
    pub metadata: ObjectMeta,
    /// `addressType`: `IPv4`, `IPv6` or `FQDN`.
    pub address_type: String,
    /// `endpoints`.
    pub endpoints: Vec<Endpoint>,
    /// `ports`.
    pub ports: Vec<EndpointPort>,
}

impl EndpointSlice {
    /// The Service this slice belongs to, from its label.
    pub fn service_name(&self) -> Option<&str> {
        self.metadata.service_name.as_deref()
    }
}

/// One endpoint of a slice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Endpoint {
    /// `addresses`.
    pub addresses: Vec<String>,
    /// `conditions`.
    pub conditions: EndpointConditions,
    /// `hostname`.
    pub hostname: Option<String>,
    /// `nodeName`.
    pub node_name: Option<String>,
    /// `zone`.
    pub zone: Option<String>,
}

/// `conditions` of an endpoint; unset means unknown, which [`Self::is_ready`] and friends
/// interpret as the EndpointSlice API documents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct EndpointConditions {
    /// `ready`.
    pub ready: Option<bool>,
    /// `serving`.
    pub serving: Option<bool>,
    /// `terminating`.
    pub terminating: Option<bool>,
}

impl EndpointConditions {
    /// "A nil value should be interpreted as true" (discovery.v1 `ready`).
    pub fn is_ready(&self) -> bool {
        self.ready.unwrap_or(true)
    }

    /// Unset `serving` falls back to `ready` (discovery.v1 `serving`).
    pub fn is_serving(&self) -> bool {
        self.serving.unwrap_or_else(|| self.is_ready())
    }

    /// Unset `terminating` means not terminating.
    pub fn is_terminating(&self) -> bool {
        self.terminating.unwrap_or(false)
    }
}

/// One entry of a slice's `ports`: the port the endpoints listen on for the Service port of
/// the same name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct EndpointPort {
    /// `name`: the Service port's name (empty for an unnamed one).
    pub name: Option<String>,
    /// `protocol`.
    pub protocol: Option<String>,
    /// `port`.
    pub port: Option<i32>,
}

fn service_name_label<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let labels = Option::<BTreeMap<String, String>>::deserialize(d)?;
    Ok(labels.and_then(|mut l| l.remove(super::SERVICE_NAME_LABEL)))
}

fn ingress_from_status<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<LoadBalancerIngress>, D::Error> {
    #[derive(Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    struct Status {
        load_balancer: LoadBalancer,
    }
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct LoadBalancer {
        ingress: Vec<LoadBalancerIngress>,
    }
    Ok(Option::<Status>::deserialize(d)?
        .unwrap_or_default()
        .load_balancer
        .ingress)
}

fn timeout_from_affinity_config<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<i32>, D::Error> {
    #[derive(Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    struct Config {
        #[serde(rename = "clientIP")]
        client_ip: ClientIp,
    }
    #[derive(Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    struct ClientIp {
        timeout_seconds: Option<i32>,
    }
    Ok(Option::<Config>::deserialize(d)?.and_then(|c| c.client_ip.timeout_seconds))
}
