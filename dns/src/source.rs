//! Where the served data comes from: zone files (read once) and the store (followed).
//!
//! [`Inputs::assemble`] merges both into what [`crate::authority::Catalog::build`] takes:
//! zones with their record sets, and the addresses health checks mark down. A store record
//! set goes to the zone with the longest origin that contains it; one outside every zone is
//! counted and left out. A zone in both a file and the store keeps the file's SOA and serves
//! the records of both.
//!
//! A change to a few store record sets need not rebuild anything: [`Inputs::set_record`]
//! says which (owner, type) slots it touched, and [`Inputs::edit`] merges what every source
//! now puts in one slot, exactly as the build would, ready for
//! [`crate::authority::Catalog::patched`].

use crate::authority::Catalog;
use crate::authority::catalog::Edit;
use crate::authority::zone::merge_sets;
use dataplane_common::model::{
    AnswerPolicy, Health, HealthState, Name, RData, RecordSet, RecordType, Zone,
};
use dataplane_common::zonefile;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Why a zone file could not be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read zone file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid master file.
    #[error("zone file {path}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where and why.
        source: zonefile::Error,
    },
}

/// Reads and parses zone files, in order.
///
/// # Errors
/// The first file that cannot be read or parsed, with its line.
pub fn load_files(paths: &[PathBuf]) -> Result<zonefile::Loaded, LoadError> {
    let mut zones = Vec::new();
    for path in paths {
        zones.extend(load_file(path)?);
    }
    Ok(zones)
}

fn load_file(path: &Path) -> Result<zonefile::Loaded, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    zonefile::parse(&text, None).map_err(|source| LoadError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// Everything the catalog is built from.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Zones from files, with their records.
    pub files: Vec<(Zone, Vec<RecordSet>)>,
    /// Zones from the store, by key.
    pub zones: BTreeMap<String, Zone>,
    /// Record sets from the store, by key.
    pub records: BTreeMap<String, RecordSet>,
    /// Health from the store, by key.
    pub health: BTreeMap<String, Health>,
    /// The Kubernetes cluster domain; when it is served, `dns-version.<domain>` answers the
    /// schema version (Kubernetes DNS specification, section 2.2).
    pub cluster_domain: Option<Name>,
    /// Which sources fill each slot, for [`Inputs::edit`].
    pub slots: Slots,
}

/// One owner name and record type: what a node's record set is built from.
pub type Slot = (Name, RecordType);

/// The sources of each slot.
#[derive(Debug, Clone, Default)]
pub struct Slots {
    /// Store record sets by key.
    store: HashMap<Slot, BTreeSet<String>>,
    /// File record sets: (file zone, set) indexes into [`Inputs::files`].
    files: HashMap<Slot, Vec<(usize, usize)>>,
}

/// A change an edit cannot make: the catalog is rebuilt instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeedsRebuild;

fn slot(set: &RecordSet) -> Option<Slot> {
    set.record_type().map(|t| (set.name.clone(), t))
}

/// The Kubernetes DNS schema version served at `dns-version.<cluster domain>`.
pub const K8S_SCHEMA_VERSION: &str = "1.1.0";

/// The catalog's input, assembled.
#[derive(Debug, Default)]
pub struct Assembled {
    /// Zones with their records.
    pub zones: Vec<(Zone, Vec<RecordSet>)>,
    /// Addresses marked down.
    pub down: HashSet<IpAddr>,
    /// Store record sets that fall in no zone.
    pub outside: usize,
}

impl Inputs {
    /// Indexes every slot of the files and the store: after this, [`Inputs::set_record`]
    /// keeps the index.
    pub fn index(&mut self) {
        let mut slots = Slots::default();
        for (i, (_, sets)) in self.files.iter().enumerate() {
            for (j, set) in sets.iter().enumerate() {
                if let Some(s) = slot(set) {
                    slots.files.entry(s).or_default().push((i, j));
                }
            }
        }
        for (key, set) in &self.records {
            if let Some(s) = slot(set) {
                slots.store.entry(s).or_default().insert(key.clone());
            }
        }
        self.slots = slots;
    }

    /// Replaces the store record set at `key` (`None`: removes it); returns the slots whose
    /// content may have changed (the old set's and the new one's).
    pub fn set_record(&mut self, key: &str, set: Option<RecordSet>) -> Vec<Slot> {
        let old = match set {
            Some(set) => self.records.insert(key.to_owned(), set),
            None => self.records.remove(key),
        };
        let new = self.records.get(key);
        let mut touched = Vec::with_capacity(2);
        if let Some(s) = old.as_ref().and_then(slot) {
            if let Some(keys) = self.slots.store.get_mut(&s) {
                keys.remove(key);
                if keys.is_empty() {
                    self.slots.store.remove(&s);
                }
            }
            touched.push(s);
        }
        if let Some(s) = new.and_then(slot) {
            self.slots
                .store
                .entry(s.clone())
                .or_default()
                .insert(key.to_owned());
            if !touched.contains(&s) {
                touched.push(s);
            }
        }
        touched
    }

    /// What `catalog` should serve at `slot` now: `Ok(None)` when the name is in no zone
    /// (nothing to serve), [`NeedsRebuild`] for a zone's apex or the `dns-version` name,
    /// which other sources fill too.
    ///
    /// # Errors
    /// [`NeedsRebuild`] as said.
    pub fn edit(&self, catalog: &Catalog, slot: &Slot) -> Result<Option<Edit>, NeedsRebuild> {
        let (name, rtype) = slot;
        let mut owner = Vec::with_capacity(name.wire_len());
        crate::wire::name::encode(name, &mut owner);
        let Some(zone) = catalog.find_index(&owner) else {
            return Ok(None);
        };
        let data = &catalog.zones()[zone];
        if owner.len() == data.origin().len() {
            return Err(NeedsRebuild);
        }
        if let Some(domain) = &self.cluster_domain
            && domain.prepend("dns-version").is_ok_and(|n| n == *name)
        {
            return Err(NeedsRebuild);
        }
        // In the order a build adds them: the zone's files, then the store by key.
        let files = self
            .slots
            .files
            .get(slot)
            .into_iter()
            .flatten()
            .filter(|(i, _)| self.files[*i].0.origin == *data.origin_name())
            .map(|&(i, j)| &self.files[i].1[j]);
        let store = self
            .slots
            .store
            .get(slot)
            .into_iter()
            .flatten()
            .filter_map(|key| self.records.get(key));
        let set = merge_sets(&owner, *rtype, files.chain(store));
        Ok(Some((zone, owner.into(), rtype.code(), set)))
    }

    /// The addresses health checks mark down.
    pub fn down(&self) -> HashSet<IpAddr> {
        self.health
            .values()
            .filter(|h| h.state == HealthState::Down)
            .map(|h| h.address)
            .collect()
    }

    /// Merges files and store, keeping the inputs for the next rebuild.
    pub fn assemble(&self) -> Assembled {
        self.merge(self.files.clone())
    }

    /// Merges files and store, consuming the inputs: no copy of the zone files' records is
    /// made, which matters for a million-record zone served without a store.
    pub fn into_assembled(mut self) -> Assembled {
        let files = std::mem::take(&mut self.files);
        self.merge(files)
    }

    fn merge(&self, files: Vec<(Zone, Vec<RecordSet>)>) -> Assembled {
        let mut zones = files;
        let mut by_origin: HashMap<Name, usize> = zones
            .iter()
            .enumerate()
            .map(|(i, (z, _))| (z.origin.clone(), i))
            .collect();
        for zone in self.zones.values() {
            by_origin.entry(zone.origin.clone()).or_insert_with(|| {
                zones.push((zone.clone(), Vec::new()));
                zones.len() - 1
            });
        }
        let mut outside = 0;
        for set in self.records.values() {
            match enclosing_zone(&set.name, &by_origin) {
                Some(i) => zones[i].1.push(set.clone()),
                None => outside += 1,
            }
        }
        if let Some(domain) = &self.cluster_domain
            && let Some(&i) = by_origin.get(domain)
            && let Ok(name) = domain.prepend("dns-version")
        {
            let ttl = zones[i].0.ttl;
            zones[i].1.push(RecordSet {
                name,
                ttl,
                records: vec![RData::Txt {
                    strings: vec![K8S_SCHEMA_VERSION.to_owned()],
                }],
                policy: AnswerPolicy::All,
                affinity_timeout: None,
                source: "kubernetes".to_owned(),
            });
        }
        let down = self.down();
        Assembled {
            zones,
            down,
            outside,
        }
    }
}

/// The index of the zone with the longest origin containing `name`.
fn enclosing_zone(name: &Name, by_origin: &HashMap<Name, usize>) -> Option<usize> {
    let text = name.as_str();
    let mut start = 0;
    loop {
        let suffix = &text[start..];
        let candidate: Option<Name> = if suffix.is_empty() {
            Some(Name::root())
        } else {
            suffix.parse().ok()
        };
        if let Some(i) = candidate.and_then(|c| by_origin.get(&c).copied()) {
            return Some(i);
        }
        if suffix.is_empty() || suffix == "." {
            return None;
        }
        start += suffix.find('.').map_or(suffix.len(), |dot| dot + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane_common::model::Soa;
    use proptest::prelude::*;

    fn zone(origin: &str) -> Zone {
        let n = |s: &str| s.parse::<Name>().unwrap();
        Zone {
            origin: n(origin),
            ttl: 30,
            soa: Soa {
                mname: n("ns.x."),
                rname: n("h.x."),
                serial: 1,
                refresh: 1,
                retry: 1,
                expire: 1,
                minimum: 5,
            },
            ns: vec![],
        }
    }

    fn a(name: &str) -> RecordSet {
        RecordSet {
            name: name.parse().unwrap(),
            ttl: 30,
            records: vec![RData::A {
                address: "10.0.0.1".parse().unwrap(),
            }],
            policy: Default::default(),
            affinity_timeout: None,
            source: "user".into(),
        }
    }

    #[test]
    fn records_go_to_the_longest_enclosing_zone() {
        let mut inputs = Inputs {
            files: vec![(zone("example.test."), vec![a("www.example.test.")])],
            ..Inputs::default()
        };
        inputs.zones.insert("z1".into(), zone("cluster.local."));
        inputs.zones.insert("z2".into(), zone("svc.cluster.local."));
        inputs.zones.insert("z3".into(), zone("example.test."));
        inputs
            .records
            .insert("r1".into(), a("web.ns.svc.cluster.local."));
        inputs.records.insert("r2".into(), a("pod.cluster.local."));
        inputs.records.insert("r3".into(), a("api.example.test."));
        inputs.records.insert("r4".into(), a("elsewhere.org."));
        inputs.health.insert(
            "h".into(),
            Health {
                address: "10.0.0.9".parse().unwrap(),
                state: HealthState::Down,
                since: 0,
                by: "t".into(),
            },
        );
        inputs.cluster_domain = Some("cluster.local.".parse().unwrap());
        let out = inputs.assemble();
        let find = |o: &str| {
            out.zones
                .iter()
                .find(|(z, _)| z.origin.as_str() == o)
                .unwrap()
        };
        assert_eq!(
            out.zones.len(),
            3,
            "the store's example.test merges into the file's"
        );
        assert_eq!(find("svc.cluster.local.").1.len(), 1);
        let cluster = &find("cluster.local.").1;
        assert_eq!(cluster.len(), 2);
        assert!(
            cluster
                .iter()
                .any(|r| r.name.as_str() == "dns-version.cluster.local."
                    && r.records
                        == [RData::Txt {
                            strings: vec!["1.1.0".into()]
                        }])
        );
        assert_eq!(find("example.test.").1.len(), 2);
        assert_eq!(out.outside, 1);
        assert!(out.down.contains(&"10.0.0.9".parse::<IpAddr>().unwrap()));
    }

    /// The catalog a full build gives for `inputs`, dumped zone by zone.
    #[allow(clippy::type_complexity)]
    fn dump(
        c: &Catalog,
    ) -> Vec<(
        String,
        BTreeMap<Vec<u8>, (bool, u32, Vec<(u16, u32, AnswerPolicy, Vec<Vec<u8>>)>)>,
        bool,
    )> {
        let mut zones: Vec<_> = c
            .zones()
            .iter()
            .map(|z| (z.origin_name().to_string(), z.dump(), z.has_delegations()))
            .collect();
        zones.sort_by(|a, b| a.0.cmp(&b.0));
        zones
    }

    const OWNERS: [&str; 7] = [
        "a.example.test.",
        "b.a.example.test.",
        "c.b.a.example.test.",
        "x.sub.example.test.",
        "sub.example.test.",
        "dns-version.example.test.",
        "elsewhere.org.",
    ];

    fn record(kind: usize, v: u8) -> RData {
        match kind {
            0 => RData::A {
                address: [10, 0, 0, v].into(),
            },
            1 => RData::Txt {
                strings: vec![format!("t{v}")],
            },
            _ => RData::Ns {
                host: format!("ns{v}.elsewhere.org.").parse().unwrap(),
            },
        }
    }

    fn with_records(set: RecordSet, records: Vec<RData>) -> RecordSet {
        RecordSet { records, ..set }
    }

    fn store_set(owner: usize, kind: usize, ttl: u32, values: &[u8]) -> RecordSet {
        let set = RecordSet {
            ttl,
            ..a(OWNERS[owner])
        };
        with_records(set, values.iter().map(|v| record(kind, *v)).collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Any sequence of store record changes, patched into the served catalog, serves
        /// exactly what a rebuild from the same inputs serves.
        #[test]
        fn patches_equal_rebuilds(
            steps in prop::collection::vec(
                (0..6usize, 0..3usize, 0..2usize, 1..4u32, prop::collection::vec(0..4u8, 0..3)),
                1..25,
            ),
        ) {
            let file_sets = vec![
                a("a.example.test."),
                with_records(a("b.a.example.test."), vec![record(0, 9), record(0, 1)]),
            ];
            let mut inputs = Inputs {
                files: vec![(zone("example.test."), file_sets)],
                cluster_domain: Some("example.test.".parse().unwrap()),
                ..Inputs::default()
            };
            inputs.zones.insert("z1".into(), zone("example.test."));
            inputs.zones.insert("z2".into(), zone("sub.example.test."));
            inputs.index();
            let mut served = Catalog::build(inputs.assemble().zones, &HashSet::new());
            for (owner, kind, variant, ttl, values) in steps {
                // Two keys per slot, so that two store sets merge at one owner.
                let key = format!("k{owner}/{kind}/{variant}");
                let set = (!values.is_empty()).then(|| store_set(owner, kind, ttl, &values));
                let mut edits = Vec::new();
                let mut rebuild = false;
                for slot in inputs.set_record(&key, set) {
                    match inputs.edit(&served, &slot) {
                        Ok(edit) => edits.extend(edit),
                        Err(NeedsRebuild) => rebuild = true,
                    }
                }
                let fresh = Catalog::build(inputs.assemble().zones, &HashSet::new());
                if !rebuild {
                    let patched = served.patched(edits).expect("no apex edits");
                    prop_assert_eq!(dump(&patched), dump(&fresh));
                }
                served = fresh;
            }
        }
    }
}
