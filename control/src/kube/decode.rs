//! A value from the Kubernetes etcd into [`Service`] or [`EndpointSlice`]. PURE.
//!
//! kube-apiserver writes one of three shapes (its `--storage-media-type` and encryption config
//! decide which):
//!
//! - protobuf, the default: the magic `k8s\0`, then a `runtime.Unknown` whose `typeMeta`
//!   names the kind and whose `raw` holds the object;
//! - JSON (`application/json`): the object itself, with `apiVersion` and `kind`;
//! - encrypted at rest: `k8s:enc:<provider>:v1:<key>:` and ciphertext. control holds no
//!   keys, so it reports [`DecodeError::Encrypted`]; that is a setup problem, not corruption.

use super::types::{
    Endpoint, EndpointConditions, EndpointPort, EndpointSlice, IntOrString, LoadBalancerIngress,
    ObjectMeta, Service, ServicePort, ServiceSpec,
};
use k8s_pb::api::core::v1 as pb_core;
use k8s_pb::api::discovery::v1 as pb_discovery;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as pb_meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString as PbIntOrString;
use prost::Message;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The prefix of the protobuf storage encoding (`k8s.io/apimachinery/.../protobuf`).
pub const PROTOBUF_MAGIC: &[u8] = b"k8s\0";
/// The prefix of a value encrypted at rest (`k8s.io/apiserver/.../encrypt/...`).
pub const ENCRYPTED_PREFIX: &[u8] = b"k8s:enc:";

/// Why a stored value is not a usable object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Encrypted at rest by kube-apiserver; control cannot read it.
    #[error("encrypted at rest by the `{provider}` provider; control cannot read encrypted values")]
    Encrypted {
        /// The provider named in the prefix (`aescbc`, `aesgcm`, `secretbox`, `kms`, ...).
        provider: String,
    },
    /// Not a value of the expected kind in any known encoding.
    #[error("malformed: {reason}")]
    Malformed {
        /// What is wrong, in words.
        reason: String,
    },
}

/// The class of a [`DecodeError`], for counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeErrorKind {
    /// [`DecodeError::Encrypted`].
    Encrypted,
    /// [`DecodeError::Malformed`].
    Malformed,
}

impl DecodeErrorKind {
    /// The label value (`encrypted`, `malformed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Encrypted => "encrypted",
            Self::Malformed => "malformed",
        }
    }
}

impl DecodeError {
    /// Its class.
    pub fn kind(&self) -> DecodeErrorKind {
        match self {
            Self::Encrypted { .. } => DecodeErrorKind::Encrypted,
            Self::Malformed { .. } => DecodeErrorKind::Malformed,
        }
    }

    fn malformed(reason: impl Into<String>) -> Self {
        Self::Malformed {
            reason: reason.into(),
        }
    }
}

/// The storage identity of a kind: what `typeMeta` (or the JSON) must say.
struct Kind {
    api_version: &'static str,
    kind: &'static str,
}

const SERVICE: Kind = Kind {
    api_version: "v1",
    kind: "Service",
};
const ENDPOINT_SLICE: Kind = Kind {
    api_version: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
};

/// Decodes a stored `core.v1.Service`.
///
/// # Errors
/// [`DecodeError::Encrypted`] for a value encrypted at rest, [`DecodeError::Malformed`] for
/// anything else that is not a v1 Service.
pub fn service(value: &[u8]) -> Result<Service, DecodeError> {
    match encoding(value)? {
        Encoding::Protobuf(raw) => {
            let raw = unwrap_envelope(raw, &SERVICE)?;
            let pb = pb_core::Service::decode(raw.as_slice())
                .map_err(|e| DecodeError::malformed(format!("Service protobuf: {e}")))?;
            Ok(service_from_pb(pb))
        }
        Encoding::Json => from_json(value, &SERVICE),
    }
}

/// Decodes a stored `discovery.v1.EndpointSlice`.
///
/// # Errors
/// As [`service`].
pub fn endpoint_slice(value: &[u8]) -> Result<EndpointSlice, DecodeError> {
    match encoding(value)? {
        Encoding::Protobuf(raw) => {
            let raw = unwrap_envelope(raw, &ENDPOINT_SLICE)?;
            let pb = pb_discovery::EndpointSlice::decode(raw.as_slice())
                .map_err(|e| DecodeError::malformed(format!("EndpointSlice protobuf: {e}")))?;
            Ok(slice_from_pb(pb))
        }
        Encoding::Json => from_json(value, &ENDPOINT_SLICE),
    }
}

enum Encoding<'a> {
    /// The bytes after the magic.
    Protobuf(&'a [u8]),
    Json,
}

fn encoding(value: &[u8]) -> Result<Encoding<'_>, DecodeError> {
    if let Some(rest) = value.strip_prefix(ENCRYPTED_PREFIX) {
        let provider = rest.split(|b| *b == b':').next().unwrap_or_default();
        return Err(DecodeError::Encrypted {
            provider: String::from_utf8_lossy(provider).into_owned(),
        });
    }
    if let Some(rest) = value.strip_prefix(PROTOBUF_MAGIC) {
        return Ok(Encoding::Protobuf(rest));
    }
    if value.trim_ascii_start().first() == Some(&b'{') {
        return Ok(Encoding::Json);
    }
    if value.is_empty() {
        return Err(DecodeError::malformed("empty value"));
    }
    Err(DecodeError::malformed(
        "neither the protobuf encoding (k8s\\0), JSON, nor an encrypted value (k8s:enc:)",
    ))
}

/// Checks the `runtime.Unknown` envelope and returns the object's bytes.
fn unwrap_envelope(bytes: &[u8], want: &Kind) -> Result<Vec<u8>, DecodeError> {
    let unknown = Unknown::decode(bytes)
        .map_err(|e| DecodeError::malformed(format!("runtime.Unknown envelope: {e}")))?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    if kind != want.kind || api_version != want.api_version {
        return Err(DecodeError::malformed(format!(
            "expected {}/{}, found `{api_version}`/`{kind}`",
            want.api_version, want.kind
        )));
    }
    if let Some(encoding) = unknown.content_encoding.filter(|e| !e.is_empty()) {
        return Err(DecodeError::malformed(format!(
            "content encoding `{encoding}` is not supported"
        )));
    }
    Ok(unknown.raw.unwrap_or_default())
}

fn from_json<T: DeserializeOwned>(value: &[u8], want: &Kind) -> Result<T, DecodeError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct TypeMeta {
        #[serde(default)]
        api_version: String,
        #[serde(default)]
        kind: String,
    }
    let meta: TypeMeta =
        serde_json::from_slice(value).map_err(|e| DecodeError::malformed(format!("JSON: {e}")))?;
    if meta.kind != want.kind || meta.api_version != want.api_version {
        return Err(DecodeError::malformed(format!(
            "expected {}/{}, found `{}`/`{}`",
            want.api_version, want.kind, meta.api_version, meta.kind
        )));
    }
    serde_json::from_slice(value)
        .map_err(|e| DecodeError::malformed(format!("JSON {}: {e}", want.kind)))
}

fn meta_from_pb(meta: Option<pb_meta::ObjectMeta>) -> ObjectMeta {
    let mut meta = meta.unwrap_or_default();
    ObjectMeta {
        name: meta.name.unwrap_or_default(),
        namespace: meta.namespace.unwrap_or_default(),
        service_name: meta.labels.remove(super::SERVICE_NAME_LABEL),
    }
}

fn service_from_pb(pb: pb_core::Service) -> Service {
    let spec = pb.spec.unwrap_or_default();
    let ingress = pb
        .status
        .and_then(|s| s.load_balancer)
        .map(|lb| lb.ingress)
        .unwrap_or_default();
    Service {
        metadata: meta_from_pb(pb.metadata),
        spec: ServiceSpec {
            kind: spec.r#type.unwrap_or_default(),
            cluster_ip: spec.cluster_ip.unwrap_or_default(),
            cluster_ips: compact(spec.cluster_ips),
            ports: convert(spec.ports, port_from_pb),
            external_ips: compact(spec.external_ips),
            session_affinity: spec.session_affinity.unwrap_or_default(),
            session_affinity_timeout: spec
                .session_affinity_config
                .and_then(|c| c.client_ip)
                .and_then(|c| c.timeout_seconds),
            external_name: spec.external_name.unwrap_or_default(),
            publish_not_ready_addresses: spec.publish_not_ready_addresses.unwrap_or(false),
        },
        load_balancer_ingress: convert(ingress, |i| LoadBalancerIngress {
            ip: i.ip.unwrap_or_default(),
            hostname: i.hostname.unwrap_or_default(),
        }),
    }
}

fn port_from_pb(p: pb_core::ServicePort) -> ServicePort {
    ServicePort {
        name: p.name.unwrap_or_default(),
        protocol: p.protocol.unwrap_or_default(),
        port: p.port.unwrap_or_default(),
        target_port: p.target_port.and_then(int_or_string_from_pb),
    }
}

/// `intstr.IntOrString`: `type` 0 is an int, 1 a string (k8s.io/apimachinery/pkg/util/intstr).
fn int_or_string_from_pb(v: PbIntOrString) -> Option<IntOrString> {
    match v.r#type {
        Some(1) => v.str_val.map(IntOrString::String),
        _ => v.int_val.map(IntOrString::Int),
    }
}

fn slice_from_pb(pb: pb_discovery::EndpointSlice) -> EndpointSlice {
    EndpointSlice {
        metadata: meta_from_pb(pb.metadata),
        address_type: pb.address_type.unwrap_or_default(),
        endpoints: convert(pb.endpoints, |e| {
            let c = e.conditions.unwrap_or_default();
            Endpoint {
                addresses: compact(e.addresses),
                conditions: EndpointConditions {
                    ready: c.ready,
                    serving: c.serving,
                    terminating: c.terminating,
                },
                hostname: e.hostname,
                node_name: e.node_name,
                zone: e.zone,
            }
        }),
        ports: convert(pb.ports, |p| EndpointPort {
            name: p.name,
            protocol: p.protocol,
            port: p.port,
        }),
    }
}

/// `items` converted into a `Vec` of its own length. A plain `map().collect()` reuses the
/// protobuf `Vec`'s allocation in place: a slice's ten endpoints then keep the room of
/// sixteen protobuf endpoints (about 8 KiB), for as long as the slice is known.
fn convert<T, U>(items: Vec<T>, f: impl FnMut(T) -> U) -> Vec<U> {
    let mut out = Vec::with_capacity(items.len());
    out.extend(items.into_iter().map(f));
    out
}

/// A repeated field as decoded has the spare room its growth left: trimmed, as it is kept.
fn compact<T>(mut items: Vec<T>) -> Vec<T> {
    items.shrink_to_fit();
    items
}

#[cfg(test)]
mod tests;
