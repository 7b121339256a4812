//! Where the served data comes from: zone files (read once) and the store (followed).
//!
//! [`Inputs::assemble`] merges both into what [`crate::authority::Catalog::build`] takes:
//! zones with their record sets, and the addresses health checks mark down. A store record
//! set goes to the zone with the longest origin that contains it; one outside every zone is
//! counted and left out. A zone in both a file and the store keeps the file's SOA and serves
//! the records of both.

use dataplane_common::model::{AnswerPolicy, Health, HealthState, Name, RData, RecordSet, Zone};
use dataplane_common::zonefile;
use std::collections::{BTreeMap, HashMap, HashSet};
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
        let down = self
            .health
            .values()
            .filter(|h| h.state == HealthState::Down)
            .map(|h| h.address)
            .collect();
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
}
