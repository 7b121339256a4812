//! Every zone served, plus the addresses marked down: one immutable value that workers share.
//!
//! A name's zone is the one whose apex is its longest suffix (RFC 1034 section 4.3.2 step 2).
//! Health changes make a new catalog with [`Catalog::with_down`], which shares the zones.

use super::zone::{NameIndex, RrSet, ZoneData, new_index};
use crate::wire::name::{MAX_LABELS, label_starts};
use dataplane_common::model::{RecordSet, Zone};
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

#[derive(Debug, Clone)]
struct Zones {
    list: Vec<ZoneData>,
    by_origin: NameIndex,
    min_labels: usize,
    max_labels: usize,
    skipped: usize,
}

/// One edit for [`Catalog::patched`]: zone index (from [`Catalog::find_index`]), lower-case
/// wire owner, type, and the owner's new set of that type (`None`: it has none any more).
pub type Edit = (usize, Box<[u8]>, u16, Option<RrSet>);

/// All zones and the down-set.
#[derive(Debug, Clone)]
pub struct Catalog {
    zones: Arc<Zones>,
    down: Arc<HashSet<IpAddr>>,
}

impl Catalog {
    /// Builds the catalog. Zones with the same origin (from two sources) are merged: the first
    /// zone's SOA is kept and record sets with the same owner and type are merged. Records whose
    /// owner lies outside their zone are skipped and counted ([`Self::skipped`]).
    pub fn build(zones: Vec<(Zone, Vec<RecordSet>)>, down: &HashSet<IpAddr>) -> Self {
        let mut merged: Vec<(Zone, Vec<RecordSet>)> = Vec::with_capacity(zones.len());
        for (zone, sets) in zones {
            match merged.iter_mut().find(|(z, _)| z.origin == zone.origin) {
                Some((z, existing)) => {
                    for ns in zone.ns {
                        if !z.ns.contains(&ns) {
                            z.ns.push(ns);
                        }
                    }
                    existing.extend(sets);
                }
                None => merged.push((zone, sets)),
            }
        }
        let mut skipped = 0;
        let mut by_origin = new_index();
        let mut list = Vec::with_capacity(merged.len());
        let (mut min_labels, mut max_labels) = (usize::MAX, 0);
        for (zone, sets) in merged {
            let data = ZoneData::build(&zone, sets, &mut skipped);
            min_labels = min_labels.min(data.origin_labels());
            max_labels = max_labels.max(data.origin_labels());
            by_origin.insert(data.origin().into(), list.len() as u32);
            list.push(data);
        }
        Self {
            zones: Arc::new(Zones {
                list,
                by_origin,
                min_labels,
                max_labels,
                skipped,
            }),
            down: Arc::new(down.clone()),
        }
    }

    /// The same zones with another down-set.
    #[must_use]
    pub fn with_down(&self, down: &HashSet<IpAddr>) -> Self {
        Self {
            zones: Arc::clone(&self.zones),
            down: Arc::new(down.clone()),
        }
    }

    /// The same catalog with `edits` applied to its zones. The zones share every node the
    /// edits leave alone with this catalog, which is not changed. Returns `None` when an edit
    /// is at a zone's apex or outside it (those take a rebuild).
    pub fn patched(&self, edits: Vec<Edit>) -> Option<Self> {
        let mut zones = Zones::clone(&self.zones);
        for (zone, owner, rtype, set) in edits {
            if !zones.list.get_mut(zone)?.replace(&owner, rtype, set) {
                return None;
            }
        }
        Some(Self {
            zones: Arc::new(zones),
            down: Arc::clone(&self.down),
        })
    }

    /// The zone whose apex is the longest suffix of the lower-case wire `qname`.
    pub fn find(&self, qname: &[u8]) -> Option<&ZoneData> {
        self.find_index(qname).map(|i| &self.zones.list[i])
    }

    /// The index in [`Self::zones`] of the zone [`Self::find`] finds.
    pub fn find_index(&self, qname: &[u8]) -> Option<usize> {
        let z = &self.zones;
        if z.list.is_empty() {
            return None;
        }
        let mut starts = [0u8; MAX_LABELS];
        let n = label_starts(qname, &mut starts);
        for k in 0..=n {
            let labels = n - k;
            if labels > z.max_labels {
                continue;
            }
            if labels < z.min_labels {
                break;
            }
            let suffix = if k == n {
                &qname[qname.len() - 1..]
            } else {
                &qname[usize::from(starts[k])..]
            };
            if let Some(&i) = z.by_origin.get(suffix) {
                return Some(i as usize);
            }
        }
        None
    }

    /// Whether `address` is marked down.
    #[inline]
    pub fn is_down(&self, address: IpAddr) -> bool {
        !self.down.is_empty() && self.down.contains(&address)
    }

    /// Whether any address is marked down.
    pub fn has_down(&self) -> bool {
        !self.down.is_empty()
    }

    /// The zones.
    pub fn zones(&self) -> &[ZoneData] {
        &self.zones.list
    }

    /// How many records were skipped because their owner was outside their zone.
    pub fn skipped(&self) -> usize {
        self.zones.skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authority::testing::{set, zone};
    use dataplane_common::model::RData;

    #[test]
    fn longest_suffix_wins_and_duplicates_merge() {
        let a = |o| RData::A {
            address: [10, 0, 0, o].into(),
        };
        let catalog = Catalog::build(
            vec![
                (
                    zone("cluster.local."),
                    vec![set("x.cluster.local.", 5, vec![a(1)])],
                ),
                (zone("svc.cluster.local."), vec![]),
                (
                    zone("cluster.local."),
                    vec![
                        set("x.cluster.local.", 5, vec![a(2)]),
                        set("y.org.", 5, vec![a(3)]),
                    ],
                ),
            ],
            &HashSet::new(),
        );
        assert_eq!(catalog.zones().len(), 2);
        assert_eq!(catalog.skipped(), 1);
        let find = |q: &[u8]| catalog.find(q).map(|z| z.origin_name().to_string());
        assert_eq!(
            find(b"\x03web\x03svc\x07cluster\x05local\x00").as_deref(),
            Some("svc.cluster.local.")
        );
        assert_eq!(
            find(b"\x01x\x07cluster\x05local\x00").as_deref(),
            Some("cluster.local.")
        );
        assert_eq!(find(b"\x05local\x00"), None);
        assert_eq!(find(b"\x00"), None);
        let z = catalog.find(b"\x01x\x07cluster\x05local\x00").unwrap();
        let x = z.node(b"\x01x\x07cluster\x05local\x00").unwrap();
        assert_eq!(x.rrset(1).unwrap().records().len(), 2);
        let down: HashSet<IpAddr> = [IpAddr::from([10, 0, 0, 1])].into();
        let c2 = catalog.with_down(&down);
        assert!(c2.is_down([10, 0, 0, 1].into()) && !catalog.is_down([10, 0, 0, 1].into()));
    }
}
