//! Following the Kubernetes etcd: Services and EndpointSlices, decoded and kept by name.
//!
//! Two [`Follower`]s, one per prefix (`<kube_prefix>/services/specs/` and
//! `<kube_prefix>/endpointslices/`), give every change once and in order, across etcd
//! restarts and compactions. [`Cluster`] is the decoded view they update: Services by
//! namespace and name, EndpointSlices grouped under the Service their
//! `kubernetes.io/service-name` label names. A value that does not decode is logged with its
//! key, counted by kind (encrypted apart from malformed) and skipped; the key keeps its last
//! good object.
//!
//! Not here: translating or publishing (see `translate` and `publish`).

use crate::kube::{self, DecodeError, EndpointSlice, Service};
use dataplane_common::store::{
    Batch, Event, EventKind, Follower, FollowerMetrics, Revision, Store,
};
use dataplane_common::telemetry::Telemetry;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tracing::{debug, warn};

/// A Service's namespace and name.
pub type ServiceKey = (String, String);

/// The maps of [`Cluster`] and [`Update`]: found by hash, since a first sync puts 200,000
/// objects in and B-tree searches on keys that share long prefixes cost more than hashing.
pub type Map<K, V> = HashMap<K, V, ahash::RandomState>;
/// A set of Services, as [`Map`].
pub type ServiceSet = HashSet<ServiceKey, ahash::RandomState>;

/// Which of the two prefixes an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `services/specs/`.
    Service,
    /// `endpointslices/`.
    EndpointSlice,
}

impl Resource {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Service => "service",
            Self::EndpointSlice => "endpointslice",
        }
    }
}

/// What the watch saw, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Services known.
    pub services: Gauge,
    /// EndpointSlices known.
    pub endpoint_slices: Gauge,
    /// Values that did not decode, by `resource` and `kind` (`malformed`, `encrypted`).
    pub decode_errors: Family<[(&'static str, &'static str); 2], Counter>,
    /// The Kubernetes etcd revision applied last.
    pub revision: Gauge,
    /// The followers' resumes, relists and retried errors.
    pub follower: FollowerMetrics,
}

impl Metrics {
    /// Metrics registered in `telemetry`, named `control_kube_*`.
    pub fn register(telemetry: &Telemetry) -> Self {
        let m = Self::default();
        telemetry.register(
            "control_kube_services",
            "Kubernetes Services known.",
            m.services.clone(),
        );
        telemetry.register(
            "control_kube_endpointslices",
            "Kubernetes EndpointSlices known.",
            m.endpoint_slices.clone(),
        );
        telemetry.register(
            "control_kube_decode_errors",
            "Kubernetes values that did not decode (skipped), by resource and kind.",
            m.decode_errors.clone(),
        );
        telemetry.register(
            "control_kube_applied_revision",
            "The Kubernetes etcd revision applied last.",
            m.revision.clone(),
        );
        telemetry.register(
            "control_kube_watch_resumes",
            "Kubernetes etcd watches resumed after a break.",
            m.follower.resumes.clone(),
        );
        telemetry.register(
            "control_kube_watch_relists",
            "Relists after the Kubernetes etcd compacted past the watch.",
            m.follower.relists.clone(),
        );
        telemetry.register(
            "control_kube_store_errors",
            "Kubernetes etcd calls that failed and were retried.",
            m.follower.errors.clone(),
        );
        m
    }
}

/// The decoded Services and EndpointSlices.
///
/// Invariant: a slice is in `slices` under the Service its label names, and `slice_owner`
/// maps it back to that Service, or it is in neither. A Service's slices are sorted by name.
///
/// A Service's slices are a sorted `Vec`, not a map: nearly every Service has one or a few.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    services: Map<ServiceKey, Service>,
    slices: Map<ServiceKey, Vec<(String, EndpointSlice)>>,
    slice_owner: Map<(String, String), String>,
}

impl Cluster {
    /// The Services by namespace and name.
    pub fn services(&self) -> &Map<ServiceKey, Service> {
        &self.services
    }

    /// The slices of a Service, by slice name.
    pub fn slices_of(&self, key: &ServiceKey) -> Vec<&EndpointSlice> {
        self.slices
            .get(key)
            .map(|s| s.iter().map(|(_, slice)| slice).collect())
            .unwrap_or_default()
    }

    /// How many slices are known.
    pub fn slice_count(&self) -> usize {
        self.slice_owner.len()
    }

    /// Applies one event from the follower of `resource` whose prefix is `prefix`; returns
    /// the Services whose inputs changed (two when a slice moved from one to another).
    ///
    /// # Errors
    /// The [`DecodeError`] of a value that did not decode; the state is unchanged.
    pub fn apply(
        &mut self,
        resource: Resource,
        prefix: &str,
        event: &Event,
    ) -> Result<Vec<ServiceKey>, DecodeError> {
        let object = decode(resource, prefix, event)?;
        Ok(self.apply_decoded(prefix, event, object))
    }

    /// [`Self::apply`] with the event's object already [`decode`]d.
    fn apply_decoded(
        &mut self,
        prefix: &str,
        event: &Event,
        object: Option<Object>,
    ) -> Vec<ServiceKey> {
        let (Some(object), Some((namespace, name))) = (object, namespaced(prefix, event)) else {
            return Vec::new();
        };
        let (namespace, name) = (namespace.to_owned(), name.to_owned());
        match object {
            Object::Service(svc) => {
                self.services.insert((namespace.clone(), name.clone()), svc);
                vec![(namespace, name)]
            }
            Object::ServiceGone => {
                let key = (namespace, name);
                self.services
                    .remove(&key)
                    .map(|_| key)
                    .into_iter()
                    .collect()
            }
            Object::Slice(slice) => {
                let mut changed: Vec<ServiceKey> =
                    self.remove_slice(&namespace, &name).into_iter().collect();
                let Some(service) = slice.service_name().map(str::to_owned) else {
                    debug!(key = %event.kv.key, "EndpointSlice without a service-name label; ignored");
                    return changed;
                };
                self.slice_owner
                    .insert((namespace.clone(), name.clone()), service.clone());
                let slices = self
                    .slices
                    .entry((namespace.clone(), service.clone()))
                    .or_default();
                match slices.binary_search_by(|(n, _)| n.as_str().cmp(&name)) {
                    Ok(at) => slices[at].1 = slice,
                    Err(at) => slices.insert(at, (name, slice)),
                }
                let key = (namespace, service);
                if !changed.contains(&key) {
                    changed.push(key);
                }
                changed
            }
            Object::SliceGone => self.remove_slice(&namespace, &name).into_iter().collect(),
        }
    }

    fn remove_slice(&mut self, namespace: &str, name: &str) -> Option<ServiceKey> {
        let service = self
            .slice_owner
            .remove(&(namespace.to_owned(), name.to_owned()))?;
        let key = (namespace.to_owned(), service);
        if let Some(slices) = self.slices.get_mut(&key) {
            if let Ok(at) = slices.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
                slices.remove(at);
            }
            if slices.is_empty() {
                self.slices.remove(&key);
            }
        }
        Some(key)
    }
}

/// What an event says of its object, decoded.
#[derive(Debug)]
enum Object {
    Service(Service),
    ServiceGone,
    Slice(EndpointSlice),
    SliceGone,
}

/// The namespace and name of the object an event is about, if its key has them.
fn namespaced<'a>(prefix: &str, event: &'a Event) -> Option<(&'a str, &'a str)> {
    event
        .kv
        .key
        .strip_prefix(prefix)
        .and_then(|rest| rest.split_once('/'))
}

/// Decodes an event's value: the costly part of applying it, and one that needs no state,
/// so that a listing's pages are decoded on every core. `None`: the key names no
/// namespaced object, and the event is ignored.
fn decode(resource: Resource, prefix: &str, event: &Event) -> Result<Option<Object>, DecodeError> {
    if namespaced(prefix, event).is_none() {
        debug!(key = %event.kv.key, "not a namespaced object key; ignored");
        return Ok(None);
    }
    Ok(Some(match (resource, event.kind) {
        (Resource::Service, EventKind::Put) => {
            Object::Service(kube::decode::service(&event.kv.value)?)
        }
        (Resource::Service, EventKind::Delete) => Object::ServiceGone,
        (Resource::EndpointSlice, EventKind::Put) => {
            Object::Slice(kube::decode::endpoint_slice(&event.kv.value)?)
        }
        (Resource::EndpointSlice, EventKind::Delete) => Object::SliceGone,
    }))
}

/// What one step of the watch changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    /// Services whose Service object or slices changed.
    pub changed: ServiceSet,
    /// The Kubernetes etcd revision of the batch.
    pub revision: Revision,
    /// Whether the batch completed a (re)list (its earlier pages are not flagged: a relist is
    /// over, and what it may have hidden is to be reconciled, only once it is whole).
    pub relisted: bool,
}

/// Follows both prefixes and keeps the [`Cluster`] view.
#[derive(Debug)]
pub struct Watch {
    services: Follower,
    slices: Follower,
    service_prefix: String,
    slice_prefix: String,
    services_listed: bool,
    slices_listed: bool,
    cluster: Cluster,
    metrics: Metrics,
}

impl Watch {
    /// A watch of `kube` under `kube_prefix` (`/registry`); nothing is read until
    /// [`Watch::next`].
    pub fn new(kube: Arc<dyn Store>, kube_prefix: &str, metrics: Metrics) -> Self {
        let root = kube_prefix.trim_end_matches('/');
        let service_prefix = format!("{root}/services/specs/");
        let slice_prefix = format!("{root}/endpointslices/");
        Self {
            services: Follower::new(kube.clone(), &service_prefix, metrics.follower.clone()),
            slices: Follower::new(kube, &slice_prefix, metrics.follower.clone()),
            service_prefix,
            slice_prefix,
            services_listed: false,
            slices_listed: false,
            cluster: Cluster::default(),
            metrics,
        }
    }

    /// The decoded view.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Whether both prefixes have been listed once: before that the view is partial (a
    /// Service without its endpoints), and nothing should be published from it.
    pub fn is_synced(&self) -> bool {
        self.services_listed && self.slices_listed
    }

    /// Waits for the next changes from either prefix and applies them. Never fails: the
    /// followers retry the store, and undecodable values are counted and skipped.
    pub async fn next(&mut self) -> Update {
        let (resource, batch) = tokio::select! {
            batch = self.services.next() => (Resource::Service, batch),
            batch = self.slices.next() => (Resource::EndpointSlice, batch),
        };
        crate::cpu_bound(batch.events.len(), || self.apply(resource, &batch))
    }

    fn apply(&mut self, resource: Resource, batch: &Batch) -> Update {
        let prefix = match resource {
            Resource::Service => {
                self.services_listed |= batch.complete;
                &self.service_prefix
            }
            Resource::EndpointSlice => {
                self.slices_listed |= batch.complete;
                &self.slice_prefix
            }
        };
        let mut update = Update {
            changed: ServiceSet::default(),
            revision: batch.revision,
            relisted: batch.relisted && batch.complete,
        };
        let decoded =
            crate::map_on_every_core(&batch.events, |event| decode(resource, prefix, event));
        for (event, object) in batch.events.iter().zip(decoded) {
            match object {
                Ok(object) => update
                    .changed
                    .extend(self.cluster.apply_decoded(prefix, event, object)),
                Err(e) => {
                    self.metrics
                        .decode_errors
                        .get_or_create(&[
                            ("resource", resource.as_str()),
                            ("kind", e.kind().as_str()),
                        ])
                        .inc();
                    warn!(key = %event.kv.key, revision = event.kv.mod_revision, error = %e, "skipping a Kubernetes value that does not decode");
                }
            }
        }
        self.metrics
            .services
            .set(i64::try_from(self.cluster.services.len()).unwrap_or(i64::MAX));
        self.metrics
            .endpoint_slices
            .set(i64::try_from(self.cluster.slice_count()).unwrap_or(i64::MAX));
        let revision = self.metrics.revision.get().max(batch.revision);
        self.metrics.revision.set(revision);
        update
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::testing;
    use dataplane_common::store::KeyValue;

    const SVC: &str = "/registry/services/specs/";
    const EPS: &str = "/registry/endpointslices/";

    fn put(key: &str, value: Vec<u8>) -> Event {
        Event {
            kind: EventKind::Put,
            kv: KeyValue {
                key: key.into(),
                value,
                create_revision: 1,
                mod_revision: 1,
                version: 1,
                lease: 0,
            },
        }
    }

    fn delete(key: &str) -> Event {
        Event {
            kind: EventKind::Delete,
            ..put(key, Vec::new())
        }
    }

    fn key(ns: &str, name: &str) -> ServiceKey {
        (ns.into(), name.into())
    }

    #[test]
    fn slices_group_under_their_service_and_follow_relabels_and_deletes() {
        let mut c = Cluster::default();
        let svc = testing::service("default", "web", &["10.96.0.10"], vec![]);
        let changed = c
            .apply(
                Resource::Service,
                SVC,
                &put(
                    "/registry/services/specs/default/web",
                    testing::protobuf_service(&svc),
                ),
            )
            .unwrap();
        assert_eq!(changed, [key("default", "web")]);
        let slice = testing::slice("default", "web-1", "web", "IPv4", &[], vec![]);
        let changed = c
            .apply(
                Resource::EndpointSlice,
                EPS,
                &put(
                    "/registry/endpointslices/default/web-1",
                    testing::protobuf_slice(&slice),
                ),
            )
            .unwrap();
        assert_eq!(changed, [key("default", "web")]);
        assert_eq!(c.slices_of(&key("default", "web")).len(), 1);

        let moved = testing::slice("default", "web-1", "api", "IPv4", &[], vec![]);
        let changed = c
            .apply(
                Resource::EndpointSlice,
                EPS,
                &put(
                    "/registry/endpointslices/default/web-1",
                    testing::protobuf_slice(&moved),
                ),
            )
            .unwrap();
        assert_eq!(changed, [key("default", "web"), key("default", "api")]);
        assert!(c.slices_of(&key("default", "web")).is_empty());
        assert_eq!(c.slices_of(&key("default", "api")).len(), 1);
        assert_eq!(c.slice_count(), 1);

        let changed = c
            .apply(
                Resource::EndpointSlice,
                EPS,
                &delete("/registry/endpointslices/default/web-1"),
            )
            .unwrap();
        assert_eq!(changed, [key("default", "api")]);
        assert_eq!(c.slice_count(), 0);
        let changed = c
            .apply(
                Resource::Service,
                SVC,
                &delete("/registry/services/specs/default/web"),
            )
            .unwrap();
        assert_eq!(changed, [key("default", "web")]);
        assert!(c.services().is_empty());
    }

    #[test]
    fn undecodable_values_leave_the_last_good_object() {
        let mut c = Cluster::default();
        let k = "/registry/services/specs/default/web";
        let svc = testing::service("default", "web", &["10.96.0.10"], vec![]);
        c.apply(
            Resource::Service,
            SVC,
            &put(k, testing::protobuf_service(&svc)),
        )
        .unwrap();
        let err = c
            .apply(
                Resource::Service,
                SVC,
                &put(k, b"k8s:enc:aescbc:v1:key1:xxxx".to_vec()),
            )
            .unwrap_err();
        assert_eq!(err.kind(), kube::DecodeErrorKind::Encrypted);
        let err = c
            .apply(Resource::Service, SVC, &put(k, b"junk".to_vec()))
            .unwrap_err();
        assert_eq!(err.kind(), kube::DecodeErrorKind::Malformed);
        assert_eq!(c.services()[&key("default", "web")], svc);
    }
}
