//! The immutable snapshot the datapath reads: VIPs, their real servers with health and
//! scheduler tables, the local (SNAT) addresses and the link's MACs. PURE.
//!
//! Writers (the control watch, health checks) build a new [`Vips`] off the hot path and hand
//! it to every worker's [`Datapath::set_vips`](crate::Datapath::set_vips); the snapshot is
//! shared (`Arc`) and never changes. Neighbour resolution (ARP/NDP) is not done here: the
//! builder is told each real server's MAC, or falls back to the gateway's.

use crate::flow::{Addr, TCP, UDP};
use crate::packet::Mac;
use crate::sched::{
    Backend, LeastConnections, Maglev, Scheduler, SourceHash, StatefulScheduler, WeightedRoundRobin,
};
use crate::tick::{self, Tick};
use dataplane_common::model::{self, ForwardingMode, Protocol};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::ops::Range;

type Hasher = ahash::RandomState;

fn hasher() -> Hasher {
    // Fixed seeds: the keys are operator configuration, not attacker input.
    Hasher::with_seeds(1, 2, 3, 4)
}

/// The balancer's own link: its MAC and the next hop towards clients (and towards real
/// servers with no MAC of their own in the snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Link {
    /// Our MAC: the source of every frame we send.
    pub mac: Mac,
    /// The default next hop.
    pub gateway: Mac,
}

/// How a VIP picks real servers.
#[derive(Debug, Clone)]
pub(crate) enum Picker {
    Maglev(Maglev),
    SourceHash(SourceHash),
    RoundRobin(WeightedRoundRobin),
    LeastConn(LeastConnections),
}

impl Picker {
    /// A per-worker copy if the picker keeps state, `None` if it can be shared.
    pub(crate) fn worker_copy(&self) -> Option<Self> {
        match self {
            Self::Maglev(_) | Self::SourceHash(_) => None,
            Self::RoundRobin(_) | Self::LeastConn(_) => Some(self.clone()),
        }
    }

    #[inline]
    pub(crate) fn pick(&self, flow_hash: u64, client: IpAddr) -> Option<usize> {
        match self {
            Self::Maglev(m) => m.pick(flow_hash, client),
            Self::SourceHash(s) => s.pick(flow_hash, client),
            Self::RoundRobin(_) | Self::LeastConn(_) => None,
        }
    }

    #[inline]
    pub(crate) fn pick_mut(
        &mut self,
        flow_hash: u64,
        client: IpAddr,
        active: &dyn Fn(usize) -> u64,
    ) -> Option<usize> {
        match self {
            Self::Maglev(m) => m.pick(flow_hash, client),
            Self::SourceHash(s) => s.pick(flow_hash, client),
            Self::RoundRobin(r) => r.pick_mut(flow_hash, client, active),
            Self::LeastConn(l) => l.pick_mut(flow_hash, client, active),
        }
    }
}

/// One VIP in a snapshot.
#[derive(Debug, Clone)]
pub struct VipEntry {
    /// Its address.
    pub address: Addr,
    /// Its port.
    pub port: u16,
    /// [`TCP`] or [`UDP`].
    pub proto: u8,
    /// How packets are forwarded.
    pub mode: ForwardingMode,
    /// Client affinity timeout, in ticks.
    pub persistence: Option<Tick>,
    /// Its real servers: a range of [`Vips::real_servers`].
    pub real_servers: Range<u32>,
    pub(crate) picker: Picker,
}

/// One real server in a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RealEntry {
    /// Its address.
    pub address: Addr,
    /// Its port.
    pub port: u16,
    /// The index of its VIP.
    pub vip: u32,
    /// Whether it may take new flows: weight > 0, up, and in the VIP's address family.
    pub eligible: bool,
    /// Where frames for it go: its own MAC if known, else the gateway's.
    pub mac: Mac,
}

/// An immutable snapshot of everything the datapath balances. See the module doc.
#[derive(Debug, Clone)]
pub struct Vips {
    vips: Vec<VipEntry>,
    real_servers: Vec<RealEntry>,
    by_key: HashMap<(Addr, u16, u8), u32, Hasher>,
    ours: HashSet<Addr, Hasher>,
    local: Vec<Addr>,
    local_v4: Vec<u32>,
    local_v6: Vec<u32>,
    neighbours: HashMap<Addr, Mac, Hasher>,
    link: Link,
}

/// Builds a [`Vips`].
#[derive(Debug, Clone)]
pub struct VipsBuilder {
    vips: Vec<model::Vip>,
    down: HashSet<IpAddr>,
    local: Vec<IpAddr>,
    neighbours: HashMap<IpAddr, Mac>,
    link: Link,
    maglev_size: u32,
    flow_seed: u64,
}

impl VipsBuilder {
    /// The VIPs (SCTP ones are skipped: not balanced).
    #[must_use]
    pub fn vips(mut self, vips: &[model::Vip]) -> Self {
        self.vips = vips.to_vec();
        self
    }

    /// Addresses that health checks report down: their real servers get no new flows.
    #[must_use]
    pub fn down(mut self, down: impl IntoIterator<Item = IpAddr>) -> Self {
        self.down = down.into_iter().collect();
        self
    }

    /// The local (SNAT) addresses for full-NAT, either family.
    #[must_use]
    pub fn local(mut self, local: impl IntoIterator<Item = IpAddr>) -> Self {
        self.local = local.into_iter().collect();
        self
    }

    /// The MAC of an on-link real server.
    #[must_use]
    pub fn neighbour(mut self, address: IpAddr, mac: Mac) -> Self {
        self.neighbours.insert(address, mac);
        self
    }

    /// The Maglev table size (prime; default [`Maglev::DEFAULT_SIZE`]).
    #[must_use]
    pub fn maglev_size(mut self, size: u32) -> Self {
        self.maglev_size = size;
        self
    }

    /// The seed source hashing uses; MUST be the same on every balancer.
    #[must_use]
    pub fn flow_seed(mut self, seed: u64) -> Self {
        self.flow_seed = seed;
        self
    }

    /// The snapshot.
    pub fn build(self) -> Vips {
        let mut neighbours = HashMap::with_hasher(hasher());
        for (&ip, &mac) in &self.neighbours {
            neighbours.insert(Addr::from(ip), mac);
        }
        let mut out = Vips {
            vips: Vec::new(),
            real_servers: Vec::new(),
            by_key: HashMap::with_hasher(hasher()),
            ours: HashSet::with_hasher(hasher()),
            local: Vec::new(),
            local_v4: Vec::new(),
            local_v6: Vec::new(),
            neighbours,
            link: self.link,
        };
        for ip in &self.local {
            let a = Addr::from(*ip);
            if out.local.contains(&a) {
                continue;
            }
            let i = out.local.len() as u32;
            if a.is_ipv4() {
                out.local_v4.push(i);
            } else {
                out.local_v6.push(i);
            }
            out.local.push(a);
            out.ours.insert(a);
        }
        for v in &self.vips {
            let proto = match v.protocol {
                Protocol::Tcp => TCP,
                Protocol::Udp => UDP,
                Protocol::Sctp => continue,
            };
            let address = Addr::from(v.address);
            let key = (address, v.port, proto);
            if out.by_key.contains_key(&key) {
                continue;
            }
            let vi = out.vips.len() as u32;
            let first = out.real_servers.len() as u32;
            let mut backends = Vec::with_capacity(v.real_servers.len());
            for rs in v.real_servers.iter().take(crate::sched::MAX_BACKENDS) {
                let ra = Addr::from(rs.address);
                let eligible = rs.weight > 0
                    && !self.down.contains(&rs.address)
                    && ra.is_ipv4() == address.is_ipv4();
                backends.push(Backend::new(rs.address, rs.port, rs.weight, eligible));
                out.real_servers.push(RealEntry {
                    address: ra,
                    port: rs.port,
                    vip: vi,
                    eligible,
                    mac: out
                        .neighbours
                        .get(&ra)
                        .copied()
                        .unwrap_or(self.link.gateway),
                });
            }
            let picker = match v.scheduler {
                model::Scheduler::Maglev => {
                    Picker::Maglev(Maglev::new(&backends, self.maglev_size))
                }
                model::Scheduler::SourceHash => {
                    Picker::SourceHash(SourceHash::new(&backends, self.maglev_size, self.flow_seed))
                }
                model::Scheduler::WeightedRoundRobin => {
                    Picker::RoundRobin(WeightedRoundRobin::new(&backends))
                }
                model::Scheduler::WeightedLeastConnections => {
                    Picker::LeastConn(LeastConnections::new(&backends))
                }
            };
            out.vips.push(VipEntry {
                address,
                port: v.port,
                proto,
                mode: v.mode,
                persistence: v.persistence.map(tick::ticks),
                real_servers: first..out.real_servers.len() as u32,
                picker,
            });
            out.by_key.insert(key, vi);
            out.ours.insert(address);
        }
        out
    }
}

impl Vips {
    /// A builder with our link's MACs.
    pub fn builder(link: Link) -> VipsBuilder {
        VipsBuilder {
            vips: Vec::new(),
            down: HashSet::new(),
            local: Vec::new(),
            neighbours: HashMap::new(),
            link,
            maglev_size: Maglev::DEFAULT_SIZE,
            flow_seed: 0,
        }
    }

    /// An empty snapshot.
    pub fn empty(link: Link) -> Self {
        Self::builder(link).build()
    }

    /// The VIPs.
    pub fn vips(&self) -> &[VipEntry] {
        &self.vips
    }

    /// All real servers, VIP by VIP.
    pub fn real_servers(&self) -> &[RealEntry] {
        &self.real_servers
    }

    /// The link.
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// The VIP at `address:port` for `proto`.
    #[inline]
    pub fn find(&self, address: &Addr, port: u16, proto: u8) -> Option<u32> {
        if self.by_key.is_empty() {
            return None;
        }
        self.by_key.get(&(*address, port, proto)).copied()
    }

    /// The real server `address:port` of VIP `vip`.
    pub fn find_real_server(&self, vip: u32, address: &Addr, port: u16) -> Option<u32> {
        let range = self.vips.get(vip as usize)?.real_servers.clone();
        range.into_iter().find(|&i| {
            let r = &self.real_servers[i as usize];
            r.address == *address && r.port == port
        })
    }

    /// Whether `address` is a VIP or local address.
    #[inline]
    pub fn is_ours(&self, address: &Addr) -> bool {
        self.ours.contains(address)
    }

    /// The local addresses.
    pub fn local(&self) -> &[Addr] {
        &self.local
    }

    /// Indexes of the local addresses in `address`'s family.
    pub fn local_for(&self, address: &Addr) -> &[u32] {
        if address.is_ipv4() {
            &self.local_v4
        } else {
            &self.local_v6
        }
    }

    /// Where frames for real server `index` (or, if it left the snapshot, for `address`)
    /// go.
    #[inline]
    pub fn real_mac(&self, index: u32, address: &Addr) -> Mac {
        match self.real_servers.get(index as usize) {
            Some(r) => r.mac,
            None => self
                .neighbours
                .get(address)
                .copied()
                .unwrap_or(self.link.gateway),
        }
    }
}
