//! The state control wants in the store, merged from every Service's translation. PURE.
//!
//! Two Services can want the same key. Record sets at one owner are merged (the union of
//! their data; the first Service's TTL and policy), which is what two headless Services
//! publishing the same pod's PTR need. A VIP (address, port, protocol) can serve one
//! Service only: the first by namespace and name keeps it, and the conflict is reported.

use crate::translate::Translation;
use dataplane_common::model::{
    Endpoint, RData, RecordSet, Service, Validate, ValidationError, Vip, encode, keys,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The endpoints of one Service, as stored under `endpoints/<namespace>/<service>`
/// (`{"v":1,"endpoints":[...]}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointList {
    /// The endpoints.
    pub endpoints: Vec<Endpoint>,
}

impl Validate for EndpointList {
    fn validate(&self) -> Result<(), ValidationError> {
        for (i, e) in self.endpoints.iter().enumerate() {
            e.validate()
                .map_err(|err| err.within(&format!("endpoints[{i}]")))?;
        }
        Ok(())
    }
}

/// The key of a Service.
pub fn service_key(namespace: &str, name: &str) -> String {
    format!("{}{namespace}/{name}", keys::SERVICES)
}

/// The key of a Service's endpoints.
pub fn endpoints_key(namespace: &str, service: &str) -> String {
    format!("{}{namespace}/{service}", keys::ENDPOINTS)
}

/// Whether a Service itself and its endpoints are written (under `services/` and
/// `endpoints/`): only a headless Service's, which the inspector probes endpoint by endpoint.
/// A Service with a VIP is wholly in its VIP (real servers, persistence), which the balancer
/// and the inspector read, and in its records; copies of it were two of a first sync's six
/// keys per Service, and every endpoint change wrote them too.
pub fn publishes_service(service: &Service) -> bool {
    service.is_headless()
}

/// Every key control wants, with its encoded value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// Key to value.
    pub objects: BTreeMap<String, Vec<u8>>,
}

impl Desired {
    /// How many keys.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

/// Merges `translations` (in the order given: callers pass them sorted by namespace and name)
/// into the desired state; returns it with the conflicts found.
pub fn desired<'a>(
    translations: impl IntoIterator<Item = &'a Translation>,
) -> (Desired, Vec<String>) {
    let mut records: BTreeMap<String, RecordSet> = BTreeMap::new();
    let mut vips: BTreeMap<String, (&Vip, String)> = BTreeMap::new();
    let mut objects = BTreeMap::new();
    let mut conflicts = Vec::new();
    let mut add_record = |set: RecordSet| {
        let Some(kind) = set.record_type() else {
            return;
        };
        let key = keys::record_set(&set.name, kind);
        match records.get_mut(&key) {
            Some(existing) => {
                for r in set.records {
                    if !existing.records.contains(&r) {
                        existing.records.push(r);
                    }
                }
            }
            None => {
                records.insert(key, set);
            }
        }
    };
    for t in translations {
        let (ns, name) = (&t.service.namespace, &t.service.name);
        if publishes_service(&t.service) {
            objects.insert(service_key(ns, name), encode(&t.service));
            objects.insert(
                endpoints_key(ns, name),
                encode(&EndpointList {
                    endpoints: t.endpoints.clone(),
                }),
            );
        }
        for set in &t.records {
            add_record(set.clone());
        }
        for vip in &t.vips {
            let key = keys::vip(vip.address, vip.port, vip.protocol);
            let owner = format!("{ns}/{name}");
            match vips.get(&key) {
                Some((_, first)) => conflicts.push(format!(
                    "VIP {key} is wanted by {first} and {owner}; {first} keeps it"
                )),
                None => {
                    vips.insert(key, (vip, owner));
                }
            }
        }
    }
    // CNAME sets hold exactly one record: a merge that broke that keeps the first target.
    for set in records.values_mut() {
        if set.records.len() > 1 && matches!(set.records[0], RData::Cname { .. }) {
            conflicts.push(format!(
                "{}: several CNAME targets; the first is kept",
                set.name
            ));
            set.records.truncate(1);
        }
    }
    objects.extend(records.into_iter().map(|(k, v)| (k, encode(&v))));
    objects.extend(vips.into_iter().map(|(k, (v, _))| (k, encode(v))));
    (Desired { objects }, conflicts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::testing::{named_endpoint, port, service, slice};
    use crate::translate::{self, Options};
    use dataplane_common::model::decode;

    fn translation(
        ns: &str,
        name: &str,
        ips: &[&str],
        slices: &[crate::kube::EndpointSlice],
    ) -> Translation {
        let svc = service(ns, name, ips, vec![port("http", "TCP", 80, None)]);
        let refs: Vec<_> = slices.iter().collect();
        translate::service(&svc, &refs, &Options::default()).unwrap()
    }

    #[test]
    fn every_object_gets_its_key_and_shared_owners_merge() {
        // The same pod, with the same hostname, behind two headless Services in one namespace
        // yields two PTR records at one owner.
        let pod = |svc: &str| {
            slice(
                "a",
                &format!("{svc}-1"),
                svc,
                "IPv4",
                &[],
                vec![named_endpoint("10.1.0.1", "p")],
            )
        };
        let one = translation("a", "one", &[], &[pod("one")]);
        let two = translation("a", "two", &[], &[pod("two")]);
        let web = translation("a", "web", &["10.96.0.10"], &[]);
        let (state, conflicts) = desired([&one, &two, &web]);
        assert!(conflicts.is_empty(), "{conflicts:?}");
        let keys: Vec<&str> = state.objects.keys().map(String::as_str).collect();
        for key in [
            "/dataplane/services/a/one",
            "/dataplane/endpoints/a/two",
            "/dataplane/records/web.a.svc.cluster.local./A",
            "/dataplane/vips/10.96.0.10/80/tcp",
        ] {
            assert!(keys.contains(&key), "{key} not in {keys:#?}");
        }
        assert!(
            !keys.contains(&"/dataplane/endpoints/a/web")
                && !keys.contains(&"/dataplane/services/a/web"),
            "a Service with a VIP is in its VIP and records only"
        );
        let ptr: RecordSet =
            decode(&state.objects["/dataplane/records/1.0.1.10.in-addr.arpa./PTR"]).unwrap();
        assert_eq!(ptr.records.len(), 2);
        let endpoints: EndpointList = decode(&state.objects["/dataplane/endpoints/a/one"]).unwrap();
        assert_eq!(endpoints.endpoints.len(), 1);
        let vip: Vip = decode(&state.objects["/dataplane/vips/10.96.0.10/80/tcp"]).unwrap();
        assert_eq!(vip.source, "kubernetes");
    }

    #[test]
    fn a_vip_wanted_twice_goes_to_the_first_service() {
        let first = translation("a", "first", &["10.96.0.10"], &[]);
        let second = translation("b", "second", &["10.96.0.10"], &[]);
        let (state, conflicts) = desired([&first, &second]);
        assert_eq!(conflicts.len(), 1);
        assert!(conflicts[0].contains("a/first keeps it"), "{conflicts:?}");
        let a: RecordSet =
            decode(&state.objects["/dataplane/records/10.0.96.10.in-addr.arpa./PTR"]).unwrap();
        assert_eq!(a.records.len(), 2, "both Services claim the reverse name");
    }
}
