//! One zone's data, indexed by owner name and pre-encoded for answering.
//!
//! Every owner, and every empty non-terminal between an owner and the apex, is a [`Node`] found
//! by its lower-case uncompressed wire name. Each record keeps TYPE, CLASS, TTL, RDLENGTH and
//! RDATA already encoded, so answering writes an owner (usually a pointer) and copies bytes.
//! Names inside RDATA are written uncompressed (RFC 2782 forbids compressing SRV targets; for
//! the others it is allowed, not required).

use crate::wire::{self, CLASS_IN};
use ahash::RandomState;
use dataplane_common::model::{AnswerPolicy, Name, RData, RecordSet, RecordType, Soa, Zone};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Fixed hasher seeds: index layout does not depend on process randomness (lookups only; the
/// keys come from operator-controlled zone data).
const INDEX_SEEDS: (u64, u64, u64, u64) = (
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
);

/// The map from lower-case wire names to node indexes.
pub(crate) type NameIndex = HashMap<Box<[u8]>, u32, RandomState>;

pub(crate) fn new_index() -> NameIndex {
    let (a, b, c, d) = INDEX_SEEDS;
    HashMap::with_hasher(RandomState::with_seeds(a, b, c, d))
}

/// A stable 64-bit hash (FNV-1a then a murmur3 finalizer): the same bytes give the same value in
/// every process and on every machine, which persistent picks rely on.
pub fn fingerprint(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix64(h)
}

/// The murmur3 64-bit finalizer: a bijective mix whose output bits all depend on every input bit.
pub fn mix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// One record, ready to be written after an owner name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// TYPE, CLASS, TTL, RDLENGTH and RDATA: everything else is read from these bytes, so a
    /// record costs one small allocation (a million-record zone is mostly records).
    wire: Box<[u8]>,
}

/// Where RDATA starts in [`Record::wire`].
const RDATA: usize = 10;

impl Record {
    /// TYPE, CLASS, TTL, RDLENGTH and RDATA.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }
    /// The address of an A or AAAA record.
    pub fn address(&self) -> Option<IpAddr> {
        let rdata = &self.wire[RDATA..];
        match (self.rtype(), rdata.len()) {
            (1, 4) => Some(IpAddr::from(<[u8; 4]>::try_from(rdata).ok()?)),
            (28, 16) => Some(IpAddr::from(<[u8; 16]>::try_from(rdata).ok()?)),
            _ => None,
        }
    }
    /// The lower-case wire name in the RDATA of CNAME, NS, PTR, MX and SRV records.
    pub fn target(&self) -> Option<&[u8]> {
        match self.rtype() {
            2 | 5 | 12 | 15 | 33 => self.wire.get(RDATA + self.target_offset()..),
            _ => None,
        }
    }
    /// Where [`Self::target`] starts inside the RDATA.
    pub fn target_offset(&self) -> usize {
        match self.rtype() {
            15 => 2,
            33 => 6,
            _ => 0,
        }
    }
    /// The record's TYPE.
    pub fn rtype(&self) -> u16 {
        u16::from_be_bytes([self.wire[0], self.wire[1]])
    }
    /// A stable hash of TYPE and RDATA: this record's identity for persistent picks.
    pub fn identity(&self) -> u64 {
        fingerprint(&self.wire[..2]) ^ fingerprint(&self.wire[RDATA..])
    }
}

/// All records of one type at one owner.
#[derive(Debug, Clone)]
pub struct RrSet {
    rtype: u16,
    ttl: u32,
    policy: AnswerPolicy,
    affinity_timeout: Option<Duration>,
    key: u64,
    records: Box<[Record]>,
}

impl RrSet {
    /// The TYPE.
    pub fn rtype(&self) -> u16 {
        self.rtype
    }
    /// The TTL of every record.
    pub fn ttl(&self) -> u32 {
        self.ttl
    }
    /// How several records are handed out.
    pub fn policy(&self) -> AnswerPolicy {
        self.policy
    }
    /// How long a client keeps its pick, when sticky picks are on.
    pub fn affinity_timeout(&self) -> Option<Duration> {
        self.affinity_timeout
    }
    /// A stable hash of owner and type, naming this set in per-worker tables.
    pub fn key(&self) -> u64 {
        self.key
    }
    /// The records; never empty.
    pub fn records(&self) -> &[Record] {
        &self.records
    }
}

/// One name in the zone: its record sets (none for an empty non-terminal).
#[derive(Debug, Clone, Default)]
pub struct Node {
    rrsets: Vec<RrSet>,
    delegation: bool,
    /// Nodes one label below: an empty node without any is removed.
    children: u32,
}

impl Node {
    /// The set of `rtype`, if any.
    pub fn rrset(&self, rtype: u16) -> Option<&RrSet> {
        self.rrsets.iter().find(|s| s.rtype == rtype)
    }
    /// Every set, in the order they were loaded.
    pub fn rrsets(&self) -> &[RrSet] {
        &self.rrsets
    }
    /// Whether this is a zone cut: NS records below the apex (RFC 1034 section 4.2.1).
    pub fn is_delegation(&self) -> bool {
        self.delegation
    }
}

/// One zone, indexed for lookup.
///
/// Invariants: every node's name ends with the origin; every ancestor of a node up to the apex
/// is a node too (empty non-terminals included), which is what makes closest-encloser search
/// and wildcard blocking (RFC 4592 section 2.2.2) a matter of index lookups; a node below the
/// apex has record sets or nodes below it.
///
/// The nodes are spread over shards by a hash of their name, each shard shared until it is
/// written: [`ZoneData::replace`] on a clone copies only the shard of each name it touches, so
/// that one changed record set in a 100,000-name zone costs a few hundred nodes' copy, not a
/// rebuild, and the served copy is never written to.
#[derive(Debug, Clone)]
pub struct ZoneData {
    origin: Box<[u8]>,
    origin_text: Name,
    origin_labels: usize,
    shards: Box<[Arc<Shard>]>,
    route: RandomState,
    nodes: usize,
    negative_soa: Box<[u8]>,
    delegations: usize,
}

/// Some of a zone's nodes, by lower-case wire name.
type Shard = HashMap<Box<[u8]>, Node, RandomState>;

/// Seeds of the shard choice, unrelated to [`INDEX_SEEDS`] so that the names of one shard are
/// spread over its buckets.
const ROUTE_SEEDS: (u64, u64, u64, u64) = (
    0x4528_21e6_38d0_1377,
    0xbe54_66cf_34e9_0c6c,
    0xc0ac_29b7_c97c_50dd,
    0x3f84_d5b5_b547_0917,
);

/// Nodes per shard aimed at when a zone is built: small enough that copying one is cheap.
const NODES_PER_SHARD: usize = 64;
/// The most shards in a zone.
const MAX_SHARDS: usize = 1 << 16;

fn shard_count(nodes: usize) -> usize {
    (nodes / NODES_PER_SHARD)
        .next_power_of_two()
        .clamp(1, MAX_SHARDS)
}

fn new_shard() -> Shard {
    let (a, b, c, d) = INDEX_SEEDS;
    HashMap::with_hasher(RandomState::with_seeds(a, b, c, d))
}

/// The nodes of a zone while they are being written.
struct Nodes<'a> {
    shards: &'a mut [Arc<Shard>],
    route: &'a RandomState,
    origin_len: usize,
    count: &'a mut usize,
}

impl Nodes<'_> {
    fn shard(&self, name: &[u8]) -> usize {
        (self.route.hash_one(name) as usize) & (self.shards.len() - 1)
    }

    fn get_mut(&mut self, name: &[u8]) -> Option<&mut Node> {
        let i = self.shard(name);
        Arc::make_mut(&mut self.shards[i]).get_mut(name)
    }

    fn contains(&self, name: &[u8]) -> bool {
        self.shards[self.shard(name)].contains_key(name)
    }

    fn insert(&mut self, name: &[u8], node: Node) {
        let i = self.shard(name);
        Arc::make_mut(&mut self.shards[i]).insert(name.into(), node);
        *self.count += 1;
    }

    /// The node for `owner`, created with its missing ancestors (empty non-terminals) up to
    /// the apex, which exists.
    fn ensure(&mut self, owner: &[u8]) -> &mut Node {
        if !self.contains(owner) {
            self.insert(owner, Node::default());
            let mut pos = 1 + usize::from(owner[0]);
            loop {
                let parent = &owner[pos..];
                if let Some(node) = self.get_mut(parent) {
                    node.children += 1;
                    break;
                }
                debug_assert!(parent.len() > self.origin_len, "the apex always exists");
                self.insert(
                    parent,
                    Node {
                        children: 1,
                        ..Node::default()
                    },
                );
                pos += 1 + usize::from(owner[pos]);
            }
        }
        self.get_mut(owner).expect("invariant: just ensured")
    }

    /// Removes `owner` and then each ancestor left empty, up to (not including) the apex.
    fn prune(&mut self, owner: &[u8]) {
        let mut name = owner;
        while name.len() > self.origin_len {
            let i = self.shard(name);
            match self.shards[i].get(name) {
                Some(node) if node.rrsets.is_empty() && node.children == 0 => {}
                _ => return,
            }
            Arc::make_mut(&mut self.shards[i]).remove(name);
            *self.count -= 1;
            name = &name[1 + usize::from(name[0])..];
            if let Some(parent) = self.get_mut(name) {
                parent.children -= 1;
            }
        }
    }
}

/// A set being assembled from possibly several sources.
struct Pending {
    owner: Box<[u8]>,
    rtype: RecordType,
    ttl: u32,
    policy: AnswerPolicy,
    affinity_timeout: Option<Duration>,
    records: Vec<RData>,
}

impl ZoneData {
    /// Indexes `zone` and its record sets, merging sets with the same owner and type (records
    /// deduplicated, the first set's TTL and policy kept). Sets whose owner is outside the zone
    /// are skipped, their records added to `skipped`. NS names in `zone.ns` are served as the
    /// apex NS set.
    pub fn build(zone: &Zone, rrsets: Vec<RecordSet>, skipped: &mut usize) -> Self {
        let mut builder = Builder::new(zone);
        builder.add_apex_ns(zone);
        for set in rrsets {
            builder.add(set, skipped);
        }
        builder.finish(zone)
    }

    /// The apex as a lower-case wire name.
    pub fn origin(&self) -> &[u8] {
        &self.origin
    }
    /// The apex as a name.
    pub fn origin_name(&self) -> &Name {
        &self.origin_text
    }
    /// How many labels the apex has.
    pub fn origin_labels(&self) -> usize {
        self.origin_labels
    }
    /// The node at the lower-case wire `name`.
    #[inline]
    pub fn node(&self, name: &[u8]) -> Option<&Node> {
        let shard = (self.route.hash_one(name) as usize) & (self.shards.len() - 1);
        self.shards[shard].get(name)
    }
    /// The apex node.
    pub fn apex(&self) -> &Node {
        self.node(&self.origin)
            .expect("invariant: the apex is always a node")
    }
    /// The SOA record for negative answers, its TTL lowered to the SOA minimum (RFC 2308
    /// section 3), ready to follow the apex name.
    pub fn negative_soa(&self) -> &[u8] {
        &self.negative_soa
    }
    /// Whether any node below the apex is a zone cut.
    pub fn has_delegations(&self) -> bool {
        self.delegations > 0
    }
    /// How many nodes, empty non-terminals included.
    pub fn node_count(&self) -> usize {
        self.nodes
    }

    /// Every node with its name, in no particular order (for tests comparing zones).
    #[cfg(test)]
    pub(crate) fn nodes(&self) -> impl Iterator<Item = (&[u8], &Node)> {
        self.shards
            .iter()
            .flat_map(|s| s.iter().map(|(k, v)| (&**k, v)))
    }

    /// Every node's content in a comparable form: name to (zone cut, children, the sets by
    /// type with TTL, policy and record bytes). Two zones that answer alike dump alike.
    #[cfg(test)]
    #[allow(clippy::type_complexity)]
    pub(crate) fn dump(
        &self,
    ) -> std::collections::BTreeMap<Vec<u8>, (bool, u32, Vec<(u16, u32, AnswerPolicy, Vec<Vec<u8>>)>)>
    {
        self.nodes()
            .map(|(name, node)| {
                let mut sets: Vec<_> = node
                    .rrsets
                    .iter()
                    .map(|s| {
                        (
                            s.rtype,
                            s.ttl,
                            s.policy,
                            s.records.iter().map(|r| r.wire().to_vec()).collect(),
                        )
                    })
                    .collect();
                sets.sort_by_key(|s| s.0);
                (name.to_vec(), (node.delegation, node.children, sets))
            })
            .collect()
    }

    /// Gives the node `owner` (a lower-case wire name below the apex and inside the zone) the
    /// set `set` of type `rtype` in place of the one it has; `None` removes it. Empty
    /// non-terminals are created and removed as needed; only the shards of the names touched
    /// are copied. Returns `false`, changing nothing, for the apex or a name outside the zone
    /// (those take a rebuild).
    pub fn replace(&mut self, owner: &[u8], rtype: u16, set: Option<RrSet>) -> bool {
        if owner.len() <= self.origin.len() || !self.contains(owner) {
            return false;
        }
        debug_assert!(set.as_ref().is_none_or(|s| s.rtype == rtype));
        let mut nodes = Nodes {
            shards: &mut self.shards,
            route: &self.route,
            origin_len: self.origin.len(),
            count: &mut self.nodes,
        };
        let was_cut;
        let is_cut;
        match set {
            Some(set) => {
                let node = nodes.ensure(owner);
                was_cut = node.delegation;
                match node.rrsets.iter_mut().find(|s| s.rtype == rtype) {
                    Some(old) => *old = set,
                    None => node.rrsets.push(set),
                }
                node.delegation = node.rrset(RecordType::Ns.code()).is_some();
                is_cut = node.delegation;
            }
            None => {
                let Some(node) = nodes.get_mut(owner) else {
                    return true;
                };
                was_cut = node.delegation;
                node.rrsets.retain(|s| s.rtype != rtype);
                node.delegation = node.rrset(RecordType::Ns.code()).is_some();
                is_cut = node.delegation;
                nodes.prune(owner);
            }
        }
        self.delegations = self.delegations + usize::from(is_cut) - usize::from(was_cut);
        true
    }
    /// Whether the lower-case wire `name` is the apex or below it.
    pub fn contains(&self, name: &[u8]) -> bool {
        let o = self.origin.len();
        if name.len() < o || !name[name.len() - o..].eq_ignore_ascii_case(&self.origin) {
            return false;
        }
        if name.len() == o {
            return true;
        }
        // The suffix must start on a label boundary.
        let mut pos = 0;
        while pos < name.len() - o {
            pos += 1 + usize::from(name[pos]);
        }
        pos == name.len() - o
    }
}

struct Builder {
    origin: Box<[u8]>,
    origin_name: Name,
    pending: Vec<Pending>,
    by_key: HashMap<(Box<[u8]>, RecordType), usize, RandomState>,
}

impl Builder {
    fn new(zone: &Zone) -> Self {
        let mut origin = Vec::new();
        wire::name::encode(&zone.origin, &mut origin);
        let (a, b, c, d) = INDEX_SEEDS;
        Self {
            origin: origin.into(),
            origin_name: zone.origin.clone(),
            pending: Vec::new(),
            by_key: HashMap::with_hasher(RandomState::with_seeds(a, b, c, d)),
        }
    }

    fn add_apex_ns(&mut self, zone: &Zone) {
        if zone.ns.is_empty() {
            return;
        }
        let set = RecordSet {
            name: zone.origin.clone(),
            ttl: zone.ttl,
            records: zone
                .ns
                .iter()
                .map(|h| RData::Ns { host: h.clone() })
                .collect(),
            policy: AnswerPolicy::All,
            affinity_timeout: None,
            source: "user".to_owned(),
        };
        self.add(set, &mut 0);
    }

    fn add(&mut self, set: RecordSet, skipped: &mut usize) {
        let Some(rtype) = set.record_type() else {
            return;
        };
        if !set.name.is_within(&self.origin_name) {
            *skipped += set.records.len();
            return;
        }
        let mut owner = Vec::with_capacity(set.name.wire_len());
        wire::name::encode(&set.name, &mut owner);
        let owner: Box<[u8]> = owner.into();
        match self.by_key.get(&(owner.clone(), rtype)) {
            Some(&i) => {
                let p = &mut self.pending[i];
                for r in set.records {
                    if r.record_type() == rtype && !p.records.contains(&r) {
                        p.records.push(r);
                    }
                }
            }
            None => {
                self.by_key
                    .insert((owner.clone(), rtype), self.pending.len());
                // Each record once (RFC 2181 section 5), as when sets are merged.
                let mut records: Vec<RData> = Vec::with_capacity(set.records.len());
                for r in set.records {
                    if r.record_type() == rtype && !records.contains(&r) {
                        records.push(r);
                    }
                }
                self.pending.push(Pending {
                    owner,
                    rtype,
                    ttl: set.ttl,
                    policy: set.policy,
                    affinity_timeout: set.affinity_timeout,
                    records,
                });
            }
        }
    }

    fn finish(self, zone: &Zone) -> ZoneData {
        let origin_len = self.origin.len();
        let (a, b, c, d) = ROUTE_SEEDS;
        let route = RandomState::with_seeds(a, b, c, d);
        let mut shards: Box<[Arc<Shard>]> = (0..shard_count(self.pending.len() + 1))
            .map(|_| Arc::new(new_shard()))
            .collect();
        let mut count = 0;
        let mut nodes = Nodes {
            shards: &mut shards,
            route: &route,
            origin_len,
            count: &mut count,
        };
        nodes.insert(&self.origin, Node::default());
        let soa_rdata = soa_rdata(&zone.soa);
        nodes
            .get_mut(&self.origin)
            .expect("invariant: the apex was just inserted")
            .rrsets
            .push(RrSet {
                rtype: RecordType::Soa.code(),
                ttl: zone.ttl,
                policy: AnswerPolicy::All,
                affinity_timeout: None,
                key: set_key(&self.origin, RecordType::Soa.code()),
                records: Box::new([record(
                    RecordType::Soa.code(),
                    zone.ttl,
                    &soa_rdata,
                    None,
                    None,
                )]),
            });
        let negative_ttl = zone.ttl.min(zone.soa.minimum);
        let negative_soa =
            record(RecordType::Soa.code(), negative_ttl, &soa_rdata, None, None).wire;

        let mut delegations = 0;
        for p in self.pending {
            let set = p.encode();
            let node = nodes.ensure(&p.owner);
            if p.rtype == RecordType::Ns && p.owner.len() != origin_len {
                node.delegation = true;
            }
            node.rrsets.push(set);
        }
        for shard in shards.iter() {
            delegations += shard.values().filter(|n| n.delegation).count();
        }
        let mut origin_labels = [0u8; wire::name::MAX_LABELS];
        let origin_labels = wire::name::label_starts(&self.origin, &mut origin_labels);
        ZoneData {
            origin: self.origin,
            origin_text: self.origin_name,
            origin_labels,
            shards,
            route,
            nodes: count,
            negative_soa,
            delegations,
        }
    }
}

impl Pending {
    /// A set as it would be built from `sets` at `owner` (lower-case wire) for `rtype`: the
    /// first set's TTL and policy, the records of that type from every set, each once.
    fn merge<'a>(
        owner: &[u8],
        rtype: RecordType,
        sets: impl IntoIterator<Item = &'a RecordSet>,
    ) -> Option<Self> {
        let mut merged: Option<Self> = None;
        for set in sets {
            let p = merged.get_or_insert_with(|| Self {
                owner: owner.into(),
                rtype,
                ttl: set.ttl,
                policy: set.policy,
                affinity_timeout: set.affinity_timeout,
                records: Vec::new(),
            });
            for r in &set.records {
                if r.record_type() == rtype && !p.records.contains(r) {
                    p.records.push(r.clone());
                }
            }
        }
        merged.filter(|p| !p.records.is_empty())
    }

    fn encode(&self) -> RrSet {
        let code = self.rtype.code();
        let mut records = Vec::with_capacity(self.records.len());
        let mut rdata = Vec::new();
        for r in &self.records {
            rdata.clear();
            let (address, target) = encode_rdata(r, &mut rdata);
            records.push(record(code, self.ttl, &rdata, address, target));
        }
        RrSet {
            rtype: code,
            ttl: self.ttl,
            policy: self.policy,
            affinity_timeout: self.affinity_timeout,
            key: set_key(&self.owner, code),
            records: records.into(),
        }
    }
}

/// The set `sets` make together at `owner` (lower-case wire) for `rtype`, merged as a build
/// merges them (the first set's TTL and policy; the records of that type, each once); `None`
/// when they hold no record of that type.
pub fn merge_sets<'a>(
    owner: &[u8],
    rtype: RecordType,
    sets: impl IntoIterator<Item = &'a RecordSet>,
) -> Option<RrSet> {
    Pending::merge(owner, rtype, sets).map(|p| p.encode())
}

fn set_key(owner: &[u8], rtype: u16) -> u64 {
    mix64(fingerprint(owner) ^ u64::from(rtype))
}

fn record(
    rtype: u16,
    ttl: u32,
    rdata: &[u8],
    address: Option<IpAddr>,
    target: Option<Box<[u8]>>,
) -> Record {
    let mut wire = Vec::with_capacity(10 + rdata.len());
    wire.extend_from_slice(&rtype.to_be_bytes());
    wire.extend_from_slice(&CLASS_IN.to_be_bytes());
    wire.extend_from_slice(&ttl.to_be_bytes());
    wire.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    wire.extend_from_slice(rdata);
    debug_assert!(
        address.is_none_or(|a| Record {
            wire: wire.clone().into()
        }
        .address()
            == Some(a)),
        "the address MUST be readable back from the wire"
    );
    debug_assert!(
        target.as_deref().is_none_or(|t| Record {
            wire: wire.clone().into()
        }
        .target()
            == Some(t)),
        "the target MUST be readable back from the wire"
    );
    Record { wire: wire.into() }
}

fn soa_rdata(soa: &Soa) -> Vec<u8> {
    let mut out = Vec::new();
    wire::name::encode(&soa.mname, &mut out);
    wire::name::encode(&soa.rname, &mut out);
    for v in [soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out
}

fn name_wire(name: &Name) -> Box<[u8]> {
    let mut v = Vec::with_capacity(name.wire_len());
    wire::name::encode(name, &mut v);
    v.into()
}

/// Appends the RDATA of `r` (RFC 1035 section 3.3, RFC 3596, RFC 2782) to `out`.
fn encode_rdata(r: &RData, out: &mut Vec<u8>) -> (Option<IpAddr>, Option<Box<[u8]>>) {
    match r {
        RData::A { address } => {
            out.extend_from_slice(&address.octets());
            (Some(IpAddr::V4(*address)), None)
        }
        RData::Aaaa { address } => {
            out.extend_from_slice(&address.octets());
            (Some(IpAddr::V6(*address)), None)
        }
        RData::Cname { target } | RData::Ptr { target } | RData::Ns { host: target } => {
            let t = name_wire(target);
            out.extend_from_slice(&t);
            (None, Some(t))
        }
        RData::Mx {
            preference,
            exchange,
        } => {
            out.extend_from_slice(&preference.to_be_bytes());
            let t = name_wire(exchange);
            out.extend_from_slice(&t);
            (None, Some(t))
        }
        RData::Srv {
            priority,
            weight,
            port,
            target,
        } => {
            for v in [priority, weight, port] {
                out.extend_from_slice(&v.to_be_bytes());
            }
            let t = name_wire(target);
            out.extend_from_slice(&t);
            (None, Some(t))
        }
        RData::Txt { strings } => {
            //= https://www.rfc-editor.org/rfc/rfc1035#section-3.3.14
            //# TXT-DATA        One or more <character-string>s.
            if strings.is_empty() {
                out.push(0);
            }
            for s in strings {
                let bytes = s.as_bytes();
                if bytes.is_empty() {
                    out.push(0);
                }
                for chunk in bytes.chunks(255) {
                    out.push(chunk.len() as u8);
                    out.extend_from_slice(chunk);
                }
            }
            (None, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authority::testing::{n, set, zone};

    #[test]
    fn empty_non_terminals_are_nodes_and_sets_merge() {
        let z = zone("example.");
        let a1 = set(
            "a.b.c.example.",
            60,
            vec![RData::A {
                address: [10, 0, 0, 1].into(),
            }],
        );
        let a2 = set(
            "a.b.c.example.",
            60,
            vec![
                RData::A {
                    address: [10, 0, 0, 1].into(),
                },
                RData::A {
                    address: [10, 0, 0, 2].into(),
                },
            ],
        );
        let outside = set(
            "x.other.",
            60,
            vec![RData::A {
                address: [1, 1, 1, 1].into(),
            }],
        );
        let mut skipped = 0;
        let data = ZoneData::build(&z, vec![a1, a2, outside], &mut skipped);
        assert_eq!(skipped, 1);
        assert_eq!(data.node_count(), 4);
        let b = name_wire(&n("b.c.example."));
        assert!(data.node(&b).unwrap().rrsets().is_empty());
        let a = data.node(&name_wire(&n("a.b.c.example."))).unwrap();
        assert_eq!(a.rrset(1).unwrap().records().len(), 2);
        assert_eq!(
            a.rrset(1).unwrap().records()[1].wire(),
            b"\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x0a\x00\x00\x02"
        );
        assert!(data.apex().rrset(2).is_some(), "zone.ns is served");
        assert!(data.contains(&b));
        assert!(!data.contains(b"\x08xexample\x00"));
    }

    #[test]
    fn fingerprint_is_stable() {
        // Pinned: persistent picks depend on this value never changing.
        assert_eq!(fingerprint(b""), mix64(0xcbf2_9ce4_8422_2325));
        assert_eq!(fingerprint(b"abc"), fingerprint(b"abc"));
        assert_ne!(fingerprint(b"abc"), fingerprint(b"abd"));
    }
}
