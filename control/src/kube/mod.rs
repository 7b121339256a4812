//! Kubernetes objects as kube-apiserver stores them in its etcd. PURE: bytes in, values out.
//!
//! [`types`] holds the few fields of `core.v1.Service` and `discovery.v1.EndpointSlice` that
//! control reads, as plain structs; [`decode`] turns a stored value (protobuf or JSON) into
//! them. The generated `k8s-pb` types are used in [`decode`] and nowhere else, so the rest of
//! control speaks these structs whatever the storage encoding.
//!
//! Nothing here talks to etcd or interprets the objects: that is `watch` and `translate`.

pub mod decode;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod types;

pub use decode::{DecodeError, DecodeErrorKind};
pub use types::{
    Endpoint, EndpointConditions, EndpointPort, EndpointSlice, IntOrString, LoadBalancerIngress,
    ObjectMeta, Service, ServicePort, ServiceSpec,
};

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
