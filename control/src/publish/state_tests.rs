//! [`DesiredState`] against the full recomputation ([`desired()`]) as the oracle.

use super::desired::desired;
use super::state::DesiredState;
use crate::kube::testing::{
    endpoint, named_endpoint, port, protobuf_service, protobuf_slice, service, slice,
};
use crate::kube::{EndpointSlice, Service};
use crate::translate::{self, Options, Translation};
use crate::watch::{Cluster, Resource, ServiceKey};
use dataplane_common::store::{Event, EventKind, KeyValue};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const SVC: &str = "/registry/services/specs/";
const EPS: &str = "/registry/endpointslices/";

fn event(kind: EventKind, key: String, value: Vec<u8>) -> Event {
    Event {
        kind,
        kv: KeyValue {
            key,
            value,
            create_revision: 1,
            mod_revision: 1,
            version: 1,
            lease: 0,
        },
    }
}

/// The cluster and both desired states, changed together.
#[derive(Default)]
struct Harness {
    cluster: Cluster,
    state: DesiredState,
}

impl Harness {
    fn translation(&self, key: &ServiceKey) -> Option<Translation> {
        let svc = self.cluster.services().get(key)?;
        translate::service(svc, &self.cluster.slices_of(key), &Options::default()).ok()
    }

    /// Applies one Kubernetes event and checks the state against the oracle, and the
    /// reported changes against the values before and after.
    fn apply(&mut self, resource: Resource, event: &Event) {
        let prefix = match resource {
            Resource::Service => SVC,
            Resource::EndpointSlice => EPS,
        };
        let before = self.snapshot();
        let changed = self.cluster.apply(resource, prefix, event).unwrap();
        let mut reported = BTreeSet::new();
        for key in &changed {
            let t = self.translation(key);
            let changes = self.state.set(&key.0, &key.1, t.as_ref());
            reported.extend(changes.keys.iter().map(|k| k.to_string()));
        }
        let after = self.snapshot();
        // The reference merges in Service order.
        let mut services: Vec<&ServiceKey> = self.cluster.services().keys().collect();
        services.sort_unstable();
        let translations: Vec<Translation> = services
            .into_iter()
            .filter_map(|k| self.translation(k))
            .collect();
        let (oracle, _) = desired(&translations);
        assert_eq!(
            after, oracle.objects,
            "incremental state differs from the full recomputation"
        );
        let differing: BTreeSet<String> = before
            .keys()
            .chain(after.keys())
            .filter(|k| before.get(*k) != after.get(*k))
            .cloned()
            .collect();
        assert_eq!(reported, differing, "reported changes");
        assert_eq!(self.state.len(), after.len());
    }

    fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        self.state
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_vec()))
            .collect()
    }

    fn put_service(&mut self, svc: &Service) {
        let key = format!("{SVC}{}/{}", svc.metadata.namespace, svc.metadata.name);
        self.apply(
            Resource::Service,
            &event(EventKind::Put, key, protobuf_service(svc)),
        );
    }

    fn delete_service(&mut self, ns: &str, name: &str) {
        let key = format!("{SVC}{ns}/{name}");
        self.apply(
            Resource::Service,
            &event(EventKind::Delete, key, Vec::new()),
        );
    }

    fn put_slice(&mut self, s: &EndpointSlice) {
        let key = format!("{EPS}{}/{}", s.metadata.namespace, s.metadata.name);
        self.apply(
            Resource::EndpointSlice,
            &event(EventKind::Put, key, protobuf_slice(s)),
        );
    }

    fn delete_slice(&mut self, ns: &str, name: &str) {
        let key = format!("{EPS}{ns}/{name}");
        self.apply(
            Resource::EndpointSlice,
            &event(EventKind::Delete, key, Vec::new()),
        );
    }
}

#[test]
fn shared_keys_follow_their_owners() {
    let mut h = Harness::default();
    // Two Services on one cluster IP: one VIP (the first's), one PTR set with both names.
    h.put_service(&service(
        "b",
        "web",
        &["10.96.0.1"],
        vec![port("http", "TCP", 80, None)],
    ));
    h.put_service(&service(
        "a",
        "api",
        &["10.96.0.1"],
        vec![port("http", "TCP", 80, None)],
    ));
    let ptr = "/dataplane/records/1.0.96.10.in-addr.arpa./PTR";
    assert!(
        String::from_utf8_lossy(h.state.get(ptr).unwrap()).contains("api.a.svc"),
        "merged"
    );
    // The first Service leaves: the other keeps the VIP and the PTR alone.
    h.delete_service("a", "api");
    let vip = String::from_utf8_lossy(h.state.get("/dataplane/vips/10.96.0.1/80/tcp").unwrap())
        .into_owned();
    assert!(vip.contains("\"kubernetes\""), "{vip}");
    h.delete_service("b", "web");
    assert!(h.state.is_empty());
}

#[derive(Debug, Clone)]
enum Step {
    PutService {
        ns: usize,
        name: usize,
        kind: usize,
        ip: usize,
        affinity: bool,
    },
    DeleteService {
        ns: usize,
        name: usize,
    },
    PutSlice {
        ns: usize,
        slice: usize,
        service: usize,
        endpoints: Vec<(usize, Option<usize>, bool)>,
    },
    DeleteSlice {
        ns: usize,
        slice: usize,
    },
}

const NAMESPACES: [&str; 2] = ["a", "b"];
const NAMES: [&str; 3] = ["web", "api", "db"];
const CLUSTER_IPS: [&str; 3] = ["10.96.0.1", "10.96.0.2", "fd00::1"];
const POD_IPS: [&str; 4] = ["10.1.0.1", "10.1.0.2", "10.1.0.3", "fd00:1::1"];
const HOSTNAMES: [&str; 2] = ["p0", "p1"];

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..2usize, 0..3usize, 0..3usize, 0..3usize, any::<bool>()).prop_map(
            |(ns, name, kind, ip, affinity)| Step::PutService { ns, name, kind, ip, affinity }
        ),
        1 => (0..2usize, 0..3usize).prop_map(|(ns, name)| Step::DeleteService { ns, name }),
        4 => (
            0..2usize,
            0..4usize,
            0..3usize,
            prop::collection::vec((0..4usize, prop::option::of(0..2usize), any::<bool>()), 0..4),
        )
            .prop_map(|(ns, slice, service, endpoints)| Step::PutSlice {
                ns,
                slice,
                service,
                endpoints
            }),
        1 => (0..2usize, 0..4usize).prop_map(|(ns, slice)| Step::DeleteSlice { ns, slice }),
    ]
}

fn run(h: &mut Harness, step: &Step) {
    match step {
        Step::PutService {
            ns,
            name,
            kind,
            ip,
            affinity,
        } => {
            let ports = vec![port("http", "TCP", 80, None), port("", "UDP", 53, None)];
            let mut svc = match kind {
                0 => service(NAMESPACES[*ns], NAMES[*name], &[CLUSTER_IPS[*ip]], ports),
                1 => service(NAMESPACES[*ns], NAMES[*name], &[], ports),
                _ => {
                    let mut s = service(NAMESPACES[*ns], NAMES[*name], &[], Vec::new());
                    s.spec.kind = "ExternalName".into();
                    s.spec.cluster_ip = String::new();
                    s.spec.cluster_ips = Vec::new();
                    s.spec.external_name = format!("target{ip}.example.");
                    s
                }
            };
            if *affinity {
                svc.spec.session_affinity = "ClientIP".into();
            }
            h.put_service(&svc);
        }
        Step::DeleteService { ns, name } => h.delete_service(NAMESPACES[*ns], NAMES[*name]),
        Step::PutSlice {
            ns,
            slice: n,
            service,
            endpoints,
        } => {
            let eps = endpoints
                .iter()
                .map(|(ip, host, ready)| match host {
                    Some(host) if *ready => named_endpoint(POD_IPS[*ip], HOSTNAMES[*host]),
                    _ => endpoint(POD_IPS[*ip], *ready),
                })
                .collect();
            let family = if endpoints
                .iter()
                .any(|(ip, _, _)| POD_IPS[*ip].contains(':'))
            {
                "IPv6"
            } else {
                "IPv4"
            };
            let s = slice(
                NAMESPACES[*ns],
                &format!("s{n}"),
                NAMES[*service],
                family,
                &[("http", 8080)],
                eps,
            );
            h.put_slice(&s);
        }
        Step::DeleteSlice { ns, slice } => h.delete_slice(NAMESPACES[*ns], &format!("s{slice}")),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Any sequence of Service and EndpointSlice changes, applied one Service at a time,
    /// leaves exactly the state a recomputation from scratch gives, and reports exactly
    /// the keys whose value changed.
    #[test]
    fn incremental_state_equals_the_full_recomputation(
        steps in prop::collection::vec(step(), 1..30),
    ) {
        let mut h = Harness::default();
        for s in &steps {
            run(&mut h, s);
        }
    }
}
