//! The desired state kept up to date one Service at a time. PURE.
//!
//! [`super::desired()`] merges every translation from scratch: right, but O(cluster) per
//! change, which is what kept propagation near a second at 10,000 Services. [`DesiredState`]
//! holds what each Service contributes to each key and re-merges only the keys a changed
//! Service touches (its old keys and its new ones), with the same rules: record sets at one
//! owner are the union of their data in Service order (the first Service's TTL and policy,
//! one CNAME target), and a VIP goes to the first Service by namespace and name.
//!
//! Contributions are kept encoded, as they are written: a key one Service wants (nearly
//! all of them) is served from that one buffer, and only a key several Services share is
//! decoded to be merged.
//!
//! Keys are found by hash, not in a B-tree: a first sync sets 400,000 keys, and B-tree
//! searches among keys sharing their first 20-odd bytes were a third of control's CPU in it
//! (with the same searches in the publisher's maps). Key order, which only a full reconcile
//! needs, is made by a sort when it asks and kept until a key comes or goes.

use super::desired::{endpoints_key, publishes_service, service_key};
use crate::translate::Translation;
use dataplane_common::model::{Endpoint, RData, RecordSet, RecordType, decode, encode, keys};
use serde::Serialize;
use std::collections::{HashMap, HashSet, hash_map};
use std::sync::{Arc, OnceLock};

/// A Service's namespace and name; the order of this tuple is the merge order.
pub type Owner = Arc<(String, String)>;

/// One key: every Service's contribution, in Service order, and the merge when there are
/// several.
#[derive(Debug, Clone)]
struct Entry {
    parts: Vec<(Owner, Box<[u8]>)>,
    /// The merged value when it is not simply the one part's.
    merged: Option<Box<[u8]>>,
}

impl Entry {
    fn value(&self) -> &[u8] {
        match &self.merged {
            Some(merged) => merged,
            None => &self.parts[0].1,
        }
    }
}

/// What one Service's change did to the desired state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Keys whose desired value changed, was created or went away.
    pub keys: Vec<Arc<str>>,
    /// Conflicts found while merging those keys (two Services wanting one VIP, several
    /// CNAME targets).
    pub conflicts: Vec<String>,
}

/// Keys whose desired value changed since they were last published.
pub type Dirty = HashSet<Arc<str>, ahash::RandomState>;

/// The desired state, updated per Service.
#[derive(Debug, Clone, Default)]
pub struct DesiredState {
    entries: HashMap<Arc<str>, Entry, ahash::RandomState>,
    /// Every key in order, made by [`Self::sorted`] and dropped when a key comes or goes.
    sorted: OnceLock<Box<[Arc<str>]>>,
    /// The keys each Service contributes to, so that its old ones are found when it changes.
    services: HashMap<Owner, Box<[Arc<str>]>, ahash::RandomState>,
}

impl DesiredState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many keys are wanted.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value wanted at `key`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.entries.get(key).map(Entry::value)
    }

    /// Every wanted key with its value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.iter_after(None)
    }

    /// The wanted keys after `after` (all of them for `None`), in key order.
    pub fn iter_after<'a>(
        &'a self,
        after: Option<&str>,
    ) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let sorted = self.sorted();
        let from = after.map_or(0, |after| sorted.partition_point(|k| **k <= *after));
        sorted[from..].iter().map(|k| {
            let entry = self
                .entries
                .get(k)
                .expect("invariant: the sorted keys are the entries' keys");
            (&**k, entry.value())
        })
    }

    /// Every key in order, sorted once after the keys last changed.
    fn sorted(&self) -> &[Arc<str>] {
        self.sorted.get_or_init(|| {
            let mut keys: Box<[Arc<str>]> = self.entries.keys().cloned().collect();
            keys.sort_unstable();
            keys
        })
    }

    /// Replaces what the Service `namespace/name` contributes with `translation` (`None`:
    /// the Service is gone or cannot be translated); returns the keys whose value changed.
    pub fn set(
        &mut self,
        namespace: &str,
        name: &str,
        translation: Option<&Translation>,
    ) -> Changes {
        self.set_parts(
            namespace,
            name,
            translation.map(contributions).unwrap_or_default(),
        )
    }

    /// [`Self::set`] with the Service's [`contributions`] already made (they are most of its
    /// cost, and can be made on other threads).
    pub fn set_parts(&mut self, namespace: &str, name: &str, new_parts: Parts) -> Changes {
        let owner: Owner = Arc::new((namespace.to_owned(), name.to_owned()));
        let old_keys = self.services.remove(&owner).unwrap_or_default();

        // The old values of every key touched, to report only real changes.
        let mut touched: Vec<(Arc<str>, Option<Vec<u8>>)> = Vec::new();
        for key in old_keys.iter() {
            if let Some(entry) = self.entries.get_mut(key) {
                if !touched.iter().any(|(k, _)| k == key) {
                    touched.push((key.clone(), Some(entry.value().to_vec())));
                }
                entry.parts.retain(|(o, _)| *o != owner);
            }
        }
        let mut new_keys: Vec<Arc<str>> = Vec::with_capacity(new_parts.len());
        for (key, part) in new_parts {
            // One lookup per new key: a first sync inserts hundreds of thousands.
            let (key, entry) = match self.entries.entry(key.into()) {
                hash_map::Entry::Vacant(vacant) => {
                    let key = vacant.key().clone();
                    self.sorted.take();
                    touched.push((key.clone(), None));
                    let entry = vacant.insert(Entry {
                        parts: Vec::new(),
                        merged: None,
                    });
                    (key, entry)
                }
                hash_map::Entry::Occupied(occupied) => {
                    let key = occupied.key().clone();
                    if !touched.iter().any(|(k, _)| *k == key) {
                        touched.push((key.clone(), Some(occupied.get().value().to_vec())));
                    }
                    (key, occupied.into_mut())
                }
            };
            // After every earlier Service and after this one's earlier parts at this key.
            let at = entry.parts.partition_point(|(o, _)| *o <= owner);
            entry.parts.insert(at, (owner.clone(), part));
            if !new_keys.contains(&key) {
                new_keys.push(key);
            }
        }
        if !new_keys.is_empty() {
            self.services.insert(owner, new_keys.into());
        }

        let mut changes = Changes::default();
        for (key, old) in touched {
            let now = match self.entries.get_mut(&key) {
                Some(entry) if entry.parts.is_empty() => {
                    self.entries.remove(&key);
                    self.sorted.take();
                    None
                }
                Some(entry) => {
                    entry.merged = merge(&key, &entry.parts, &mut changes.conflicts);
                    Some(entry.value())
                }
                None => None,
            };
            if now != old.as_deref() {
                changes.keys.push(key);
            }
        }
        changes
    }
}

/// The keys one Service wants, each with its encoded value.
pub type Parts = Vec<(String, Box<[u8]>)>;

/// The keys one translation wants, each with its encoded value, in the order
/// [`super::desired()`] adds them.
pub fn contributions(t: &Translation) -> Parts {
    let (ns, name) = (&t.service.namespace, &t.service.name);
    let mut out = Vec::with_capacity(2 + t.records.len() + t.vips.len());
    if publishes_service(&t.service) {
        out.push((service_key(ns, name), encode(&t.service).into()));
        out.push((
            endpoints_key(ns, name),
            encode(&EndpointListRef {
                endpoints: &t.endpoints,
            })
            .into(),
        ));
    }
    for set in &t.records {
        if let Some(kind) = set.record_type() {
            out.push((keys::record_set(&set.name, kind), encode(set).into()));
        }
    }
    for vip in &t.vips {
        out.push((
            keys::vip(vip.address, vip.port, vip.protocol),
            encode(vip).into(),
        ));
    }
    out
}

/// [`super::EndpointList`] as it is encoded, borrowing the translation's endpoints: a clone of
/// every Service's endpoints only to encode them was a tenth of a first sync's CPU.
#[derive(Serialize)]
struct EndpointListRef<'a> {
    endpoints: &'a [Endpoint],
}

/// The value of a key with several parts (or a CNAME set, which holds one target), or
/// `None` when it is the single part as it is.
fn merge(
    key: &str,
    parts: &[(Owner, Box<[u8]>)],
    conflicts: &mut Vec<String>,
) -> Option<Box<[u8]>> {
    let cname = key
        .strip_suffix(RecordType::Cname.as_str())
        .is_some_and(|k| k.ends_with('/'));
    if parts.len() == 1 && !cname {
        return None;
    }
    if key.starts_with(keys::RECORDS) {
        let mut sets = parts
            .iter()
            .filter_map(|(_, bytes)| decode::<RecordSet>(bytes).ok());
        let mut merged = sets.next()?;
        for set in sets {
            for r in set.records {
                if !merged.records.contains(&r) {
                    merged.records.push(r);
                }
            }
        }
        if merged.records.len() > 1 && matches!(merged.records[0], RData::Cname { .. }) {
            conflicts.push(format!(
                "{}: several CNAME targets; the first is kept",
                merged.name
            ));
            merged.records.truncate(1);
        }
        return Some(encode(&merged).into());
    }
    if key.starts_with(keys::VIPS) {
        let first = &parts[0].0;
        for (other, _) in &parts[1..] {
            let (f, o) = (
                format!("{}/{}", first.0, first.1),
                format!("{}/{}", other.0, other.1),
            );
            conflicts.push(format!("VIP {key} is wanted by {f} and {o}; {f} keeps it"));
        }
    }
    // Services and endpoints are one Service's own keys; a VIP is the first Service's.
    (parts.len() > 1).then(|| parts[0].1.clone())
}
