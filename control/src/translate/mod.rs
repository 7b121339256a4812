//! A Kubernetes Service and its EndpointSlices into dataplane's model objects. PURE.
//!
//! [`service`] reads one Service with its slices and returns everything dataplane derives from
//! it ([`Translation`]): the `model::Service` and its endpoints, the DNS record sets the
//! Kubernetes DNS specification requires ([`dns`]), and the VIPs the load balancer serves
//! ([`vip`]). Every object it returns has passed its model validation, and every one is marked
//! `source = "kubernetes"`.
//!
//! What is wrong with one part of a Service (an address that does not parse, a named target
//! port no slice resolves) drops that part and is reported in [`Translation::warnings`]; only
//! a Service that cannot be named or typed at all is an error ([`TranslateError`]).
//!
//! Not here: merging Services that share an owner name or a VIP (the desired state in
//! `publish` does that), reading or writing the store.

pub mod dns;
mod endpoints;
pub mod reverse;
pub mod vip;

#[cfg(test)]
mod tests;

use crate::kube;
use dataplane_common::model::{self, Name, RecordSet, Validate, Vip};

pub use endpoints::Backend;

/// The source tag of every object control derives.
pub const SOURCE: &str = "kubernetes";
/// The record TTL when none is configured.
pub const DEFAULT_TTL: u32 = 30;
/// `sessionAffinityConfig.clientIP.timeoutSeconds` when unset (Kubernetes' default: 3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT_SECS: u64 = 10_800;
/// The longest affinity Kubernetes allows (and `Vip::persistence` accepts): one day.
pub const MAX_AFFINITY_TIMEOUT_SECS: u64 = 86_400;

/// How names and records are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The cluster domain (`cluster.local.`).
    pub cluster_domain: Name,
    /// The TTL of every record.
    pub ttl: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            cluster_domain: "cluster.local."
                .parse()
                .expect("invariant: cluster.local. is a valid name"),
            ttl: DEFAULT_TTL,
        }
    }
}

/// Everything derived from one Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    /// The Service.
    pub service: model::Service,
    /// Its endpoints, from every slice, each address once.
    pub endpoints: Vec<model::Endpoint>,
    /// Its DNS record sets, sorted by owner and type.
    pub records: Vec<RecordSet>,
    /// Its VIPs, sorted by address, port and protocol.
    pub vips: Vec<Vip>,
    /// What was dropped and why, for the log.
    pub warnings: Vec<String>,
}

/// Why a Service could not be translated at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TranslateError {
    /// A field every derived object depends on is invalid.
    #[error("{namespace}/{name}: field `{field}`: {reason}")]
    Invalid {
        /// The Service's namespace.
        namespace: String,
        /// The Service's name.
        name: String,
        /// The Kubernetes field, e.g. `spec.ports[1].protocol`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Translates `svc` with the slices that belong to it (those labelled with its name).
///
/// # Errors
/// [`TranslateError::Invalid`] when the Service's name, type, cluster IPs or ports are invalid.
pub fn service(
    svc: &kube::Service,
    slices: &[&kube::EndpointSlice],
    options: &Options,
) -> Result<Translation, TranslateError> {
    let mut warnings = Vec::new();
    let service = endpoints::service(svc, &mut warnings)?;
    let backends = endpoints::backends(slices, &mut warnings);
    let endpoints = backends.iter().map(Backend::to_model).collect();
    let owner = dns::service_name(&service, &options.cluster_domain).map_err(|e| {
        TranslateError::Invalid {
            namespace: service.namespace.clone(),
            name: service.name.clone(),
            field: "metadata.name".into(),
            reason: format!("the DNS name would be invalid: {e}"),
        }
    })?;
    let mut records = dns::records(&service, &backends, &owner, options, &mut warnings);
    let mut vips = vip::vips(&service, &backends, &mut warnings);
    records.retain(|r| valid(r, &r.name.to_string(), &mut warnings));
    vips.retain(|v| valid(v, &format!("VIP {}:{}", v.address, v.port), &mut warnings));
    Ok(Translation {
        service,
        endpoints,
        records,
        vips,
        warnings,
    })
}

/// A guard: nothing invalid leaves translate, whatever a rule above got wrong.
fn valid(object: &impl Validate, what: &str, warnings: &mut Vec<String>) -> bool {
    match object.validate() {
        Ok(()) => true,
        Err(e) => {
            warnings.push(format!("dropped {what}: {e}"));
            false
        }
    }
}
