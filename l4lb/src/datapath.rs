//! One frame in, one [`Verdict`] out: the balancer's per-worker core. PURE.
//!
//! # Call order
//! One [`Datapath`] per worker thread, each owning its session table, port cursors,
//! affinity table and counters; nothing is shared on the packet path but the immutable
//! [`Vips`] snapshot.
//! 1. [`Datapath::handle_frame`] for every received frame, with a monotonic `now`. On
//!    [`Verdict::Tx`] the frame was rewritten in place and goes out; on [`Verdict::Pass`] it
//!    goes to the host stack unchanged; on [`Verdict::Drop`] it is dropped (and counted).
//! 2. [`Datapath::handle_timeout`] once per batch (or timer tick) with a slot budget, to
//!    sweep expired sessions.
//! 3. [`Datapath::set_vips`] whenever a new snapshot is published; sessions survive it.
//! 4. With the XDP fast path ([`Config::fast_path`]): after each batch and sweep,
//!    [`Datapath::take_fast_path_intents`], carried out in order by the I/O edge, which hands
//!    what it read back to [`Datapath::fast_path_report`] and [`Datapath::fast_path_removed`]
//!    ([`crate::fastpath`]).
//!
//! # What a frame goes through
//! - A client packet (client → VIP:port) hits the client index, or, for a VIP, creates a
//!   session: affinity or scheduler picks a real server; full-NAT also takes a local address
//!   and port. Full-NAT rewrites it to local → real server; DR only rewrites the MACs.
//! - A real server's reply (real server → local:port) hits the real index and is rewritten
//!   back to VIP → client.
//! - An ICMP error quoting a tracked flow is translated for the other side (see
//!   [`crate::packet::icmp`]).
//! - Anything else is passed to the host.
//!
//! Full-NAT replies must reach the worker that owns the session; [`crate::ports`] says how
//! local ports are partitioned so the NIC can steer them. A TCP segment that is not a SYN
//! creates no full-NAT session (the real server could not know its tuple); for DR it does,
//! so that flows survive a balancer restart as long as the Maglev table agrees.

use crate::counters::{Counter, Counters};
use crate::drop::DropReason;
use crate::flow::Tuple;
use crate::packet::frame::{Frame, Kind};
use crate::packet::rewrite;
use crate::packet::tcp::{ACK, SYN};
use crate::packet::{self, icmp};
use crate::persist::Persistence;
use crate::ports::{LocalPorts, Partition};
use crate::table::{self, Direction, InsertError, NONE, Session, SessionId, State, Table};
use crate::tick::{self, Tick};
use crate::vips::{Picker, Vips};
use dataplane_common::model::ForwardingMode;
use std::sync::Arc;

mod fast;
#[cfg(test)]
mod tests;

pub use fast::FastPathStats;

/// What to do with a frame after [`Datapath::handle_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it: it was rewritten in place.
    Tx,
    /// Drop it, for this reason (already counted).
    Drop(DropReason),
    /// Not ours: hand it to the host unchanged.
    Pass,
}

/// How a worker's datapath is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// This worker's index.
    pub worker: u16,
    /// How many workers share the local ports.
    pub workers: u16,
    /// The session table.
    pub table: table::Config,
    /// The affinity table's capacity.
    pub persistence_capacity: u32,
    /// The scheduler hash seed: the same on every balancer, so they all agree.
    pub flow_seed: u64,
    /// The XDP fast path, when the I/O edge has one ([`crate::fastpath`]).
    pub fast_path: Option<crate::fastpath::Config>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            worker: 0,
            workers: 1,
            table: table::Config::default(),
            persistence_capacity: 65_536,
            flow_seed: 0,
            fast_path: None,
        }
    }
}

/// One worker's balancer. See the module doc for the call order.
#[derive(Debug)]
pub struct Datapath {
    vips: Arc<Vips>,
    table: Table,
    /// Per VIP: a worker copy of a stateful picker, `None` to use the snapshot's.
    pickers: Vec<Option<Picker>>,
    persist: Persistence,
    ports: LocalPorts,
    counters: Counters,
    flow_seed: u64,
    fast: Option<fast::FastPath>,
}

/// Counts a session gone (expired, evicted, replaced).
fn account_gone(counters: &mut Counters, s: &Session) {
    if let Some(c) = counters.vips.get_mut(s.vip as usize) {
        c.active_sessions = c.active_sessions.saturating_sub(1);
    }
    if let Some(c) = counters.real_servers.get_mut(s.real_server as usize) {
        c.active_sessions = c.active_sessions.saturating_sub(1);
    }
}

#[inline]
fn count(counters: &mut Counters, vip: u32, real_server: u32, bytes: u64) {
    let add = |c: &mut Counter| {
        c.packets += 1;
        c.bytes += bytes;
    };
    if let Some(c) = counters.vips.get_mut(vip as usize) {
        add(c);
    }
    if let Some(c) = counters.real_servers.get_mut(real_server as usize) {
        add(c);
    }
    counters.transmitted += 1;
}

impl Datapath {
    /// A worker's datapath, with its whole session table allocated now.
    pub fn new(config: Config, vips: Arc<Vips>) -> Self {
        let partition = Partition::new(config.worker, config.workers);
        Self {
            pickers: vips.vips().iter().map(|v| v.picker.worker_copy()).collect(),
            table: Table::new(config.table),
            persist: Persistence::new(config.persistence_capacity, config.table.seed),
            ports: LocalPorts::new(partition, vips.local().len()),
            counters: Counters::new(vips.vips().len(), vips.real_servers().len()),
            flow_seed: config.flow_seed,
            fast: config.fast_path.map(|c| fast::FastPath::new(c, 0)),
            vips,
        }
    }

    /// The counters, indexed like the current snapshot.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The session table (read-only: for inspection).
    pub fn sessions(&self) -> &Table {
        &self.table
    }

    /// The current snapshot.
    pub fn vips(&self) -> &Arc<Vips> {
        &self.vips
    }

    /// Handles one received frame at `now_ticks`, rewriting it in place for [`Verdict::Tx`].
    pub fn handle_frame(&mut self, now_ticks: u64, frame: &mut [u8]) -> Verdict {
        let now = tick::truncate(now_ticks);
        let f = match packet::parse(frame) {
            Ok(Some(f)) => f,
            Ok(None) => return self.pass(),
            Err(r) => return self.drop(r),
        };
        match f.kind {
            Kind::Tcp { flags } => self.handle_flow(now, frame, &f, Some(flags)),
            Kind::Udp => self.handle_flow(now, frame, &f, None),
            Kind::Icmp => self.handle_icmp(now, frame, &f),
            Kind::Fragment if self.vips.is_ours(&f.tuple.dst) => self.drop(DropReason::Fragment),
            Kind::Fragment | Kind::Other => self.pass(),
        }
    }

    /// Sweeps up to `max_slots` session slots for expired sessions at `now_ticks`; returns
    /// how many were removed.
    pub fn handle_timeout(&mut self, now_ticks: u64, max_slots: u32) -> u32 {
        let now = tick::truncate(now_ticks);
        let n = if self.fast.is_some() {
            self.fast_sweep(now, max_slots)
        } else {
            let counters = &mut self.counters;
            self.table
                .sweep(now, max_slots, |s| account_gone(counters, s))
        };
        self.counters.expired += u64::from(n);
        n
    }

    /// Switches to a new snapshot. Every session is kept and goes on to the real server it
    /// has, full-NAT sessions even if their VIP or real server left the snapshot. (A DR
    /// session whose real server left is kept but its packets are dropped as
    /// `no_real_server`: only the snapshot knows that server's MAC.) Counters of VIPs and real servers still present are carried over.
    /// Costs O(table capacity): call it off the per-packet path, not per batch.
    pub fn set_vips(&mut self, vips: Arc<Vips>) {
        let old = std::mem::replace(&mut self.vips, vips);
        let new = &self.vips;
        let vip_map: Vec<u32> = old
            .vips()
            .iter()
            .map(|v| new.find(&v.address, v.port, v.proto).unwrap_or(NONE))
            .collect();
        let real_map: Vec<u32> = old
            .real_servers()
            .iter()
            .map(|r| match vip_map[r.vip as usize] {
                NONE => NONE,
                v => new.find_real_server(v, &r.address, r.port).unwrap_or(NONE),
            })
            .collect();
        let map = |m: &[u32], i: u32| m.get(i as usize).copied().unwrap_or(NONE);
        let mut counters = Counters {
            vips: vec![Counter::default(); new.vips().len()],
            real_servers: vec![Counter::default(); new.real_servers().len()],
            ..self.counters.clone()
        };
        for (i, &n) in vip_map.iter().enumerate() {
            if let Some(c) = counters.vips.get_mut(n as usize) {
                *c = self.counters.vips[i];
            }
        }
        for (i, &n) in real_map.iter().enumerate() {
            if let Some(c) = counters.real_servers.get_mut(n as usize) {
                *c = self.counters.real_servers[i];
            }
        }
        self.counters = counters;
        let fast = &mut self.fast;
        self.table.for_each_mut(|s| {
            let before = *s;
            s.vip = map(&vip_map, s.vip);
            s.real_server = map(&real_map, s.real_server);
            if let Some(f) = fast.as_mut() {
                f.remapped(&old, new, &before, s);
            }
        });
        self.persist
            .remap(|v, r| match (map(&vip_map, v), map(&real_map, r)) {
                (NONE, _) | (_, NONE) => None,
                (v, r) => Some((v, r)),
            });
        self.pickers = new.vips().iter().map(|v| v.picker.worker_copy()).collect();
        self.ports = LocalPorts::new(self.ports.partition(), new.local().len());
    }

    fn pass(&mut self) -> Verdict {
        self.counters.passed += 1;
        Verdict::Pass
    }

    fn drop(&mut self, reason: DropReason) -> Verdict {
        self.counters.drops[reason.index()] += 1;
        Verdict::Drop(reason)
    }

    fn expire(&mut self, id: SessionId) {
        let s = self.table.remove(id);
        self.counters.expired += 1;
        account_gone(&mut self.counters, &s);
        self.fast_gone(&s);
    }

    fn handle_flow(
        &mut self,
        now: Tick,
        frame: &mut [u8],
        f: &Frame,
        flags: Option<u8>,
    ) -> Verdict {
        let t = &f.tuple;
        if let Some(id) = self.table.find_client(t) {
            let s = self.table.get(id);
            // A new SYN on a closed session's tuple is a new connection (port reuse).
            let reopened =
                s.state == State::Closed && flags.is_some_and(|fl| fl & (SYN | ACK) == SYN);
            if !reopened && !self.table.timeouts().is_expired(s, now) {
                return self.forward(now, id, frame, f, flags);
            }
            self.expire(id);
        } else if let Some(id) = self.table.find_real(t) {
            if !self.table.timeouts().is_expired(self.table.get(id), now) {
                return self.reply(now, id, frame, f, flags);
            }
            self.expire(id);
        }
        match self.vips.find(&t.dst, t.dst_port, t.proto) {
            Some(vip) => self.open(now, vip, frame, f, flags),
            None => self.pass(),
        }
    }

    /// A new flow to VIP `vi`: pick, allocate, insert, forward.
    fn open(
        &mut self,
        now: Tick,
        vi: u32,
        frame: &mut [u8],
        f: &Frame,
        flags: Option<u8>,
    ) -> Verdict {
        let vips = Arc::clone(&self.vips);
        let vip = &vips.vips()[vi as usize];
        let t = f.tuple;
        let state = match flags {
            Some(fl) if vip.mode == ForwardingMode::FullNat && fl & (SYN | ACK) != SYN => {
                return self.drop(DropReason::NoSession);
            }
            Some(fl) => State::open_tcp(fl),
            None => State::Udp,
        };
        let held = vip.persistence.and_then(|timeout| {
            self.persist.get(now, &t.src, vi, timeout).filter(|&r| {
                vips.real_servers()
                    .get(r as usize)
                    .is_some_and(|r| r.eligible)
            })
        });
        let rs = match held {
            Some(rs) => rs,
            None => {
                let base = vip.real_servers.start;
                let hash = t.hash(self.flow_seed);
                let client = t.src.ip();
                let reals = &self.counters.real_servers;
                let active = |i: usize| {
                    reals
                        .get(base as usize + i)
                        .map_or(0, |c| c.active_sessions)
                };
                let picked = match &mut self.pickers[vi as usize] {
                    Some(p) => p.pick_mut(hash, client, &active),
                    None => vip.picker.pick(hash, client),
                };
                match picked {
                    Some(i) => base + i as u32,
                    None => return self.drop(DropReason::NoRealServer),
                }
            }
        };
        let real = vips.real_servers()[rs as usize];
        let real_tuple = match vip.mode {
            ForwardingMode::FullNat => {
                let locals = vips.local_for(&real.address);
                if locals.is_empty() {
                    return self.drop(DropReason::NoLocalAddress);
                }
                let table = &self.table;
                let reply = |local: &crate::flow::Addr, port: u16| Tuple {
                    src: real.address,
                    dst: *local,
                    src_port: real.port,
                    dst_port: port,
                    proto: t.proto,
                };
                let got = self.ports.allocate(
                    locals,
                    |i| vips.local()[i as usize],
                    |a, p| table.find_real(&reply(a, p)).is_none(),
                );
                match got {
                    Some((a, p)) => reply(&a, p),
                    None => return self.drop(DropReason::PortsExhausted),
                }
            }
            ForwardingMode::Dr => t.reversed(),
        };
        let session = Session {
            client: t,
            real: real_tuple,
            vip: vi,
            real_server: rs,
            created: now,
            last_seen: now,
            packets: 0,
            bytes: 0,
            state,
            mode: vip.mode,
            fast: false,
            folded: crate::fastpath::Totals::default(),
        };
        let inserted = match self.table.insert(now, session) {
            Ok(i) => i,
            Err(InsertError::Full) => return self.drop(DropReason::TableFull),
            Err(InsertError::Duplicate) => return self.drop(DropReason::PortsExhausted),
        };
        if let Some(evicted) = inserted.evicted {
            self.counters.evicted += 1;
            account_gone(&mut self.counters, &evicted);
            self.fast_gone(&evicted);
        }
        for c in [
            self.counters.vips.get_mut(vi as usize),
            self.counters.real_servers.get_mut(rs as usize),
        ]
        .into_iter()
        .flatten()
        {
            c.new_sessions += 1;
            c.active_sessions += 1;
        }
        if let Some(timeout) = vip.persistence {
            self.persist.put(now, &t.src, vi, rs, timeout);
        }
        self.forward(now, inserted.id, frame, f, flags)
    }

    /// A client packet of a live session: towards the real server.
    fn forward(
        &mut self,
        now: Tick,
        id: SessionId,
        frame: &mut [u8],
        f: &Frame,
        flags: Option<u8>,
    ) -> Verdict {
        let bytes = frame.len() as u64;
        let s = self.table.get_mut(id);
        s.last_seen = now;
        s.packets += 1;
        s.bytes += bytes;
        if let Some(fl) = flags {
            s.state = s.state.on_tcp(Direction::FromClient, fl);
        }
        let (vip, rs, mode, real) = (s.vip, s.real_server, s.mode, s.real);
        let link = *self.vips.link();
        match mode {
            ForwardingMode::FullNat => {
                rewrite::full_nat(frame, f, &real.reversed());
                rewrite::set_macs(frame, link.mac, self.vips.real_mac(rs, &real.src));
            }
            ForwardingMode::Dr => match self.vips.real_servers().get(rs as usize) {
                Some(r) => rewrite::set_macs(frame, link.mac, r.mac),
                // The session does not record a DR real server's address, only its index.
                None => return self.drop(DropReason::NoRealServer),
            },
        }
        count(&mut self.counters, vip, rs, bytes);
        self.fast_install(id);
        Verdict::Tx
    }

    /// A real server's reply of a live session: back to the client.
    fn reply(
        &mut self,
        now: Tick,
        id: SessionId,
        frame: &mut [u8],
        f: &Frame,
        flags: Option<u8>,
    ) -> Verdict {
        let bytes = frame.len() as u64;
        let s = self.table.get_mut(id);
        if s.mode == ForwardingMode::Dr {
            // A DR reply crossing us on its way to the client is not ours to change.
            return self.pass();
        }
        s.last_seen = now;
        s.packets += 1;
        s.bytes += bytes;
        if let Some(fl) = flags {
            s.state = s.state.on_tcp(Direction::FromReal, fl);
        }
        let (vip, rs, client) = (s.vip, s.real_server, s.client);
        rewrite::full_nat(frame, f, &client.reversed());
        let link = *self.vips.link();
        rewrite::set_macs(frame, link.mac, link.gateway);
        count(&mut self.counters, vip, rs, bytes);
        self.fast_install(id);
        Verdict::Tx
    }

    /// An ICMP error: if it quotes a tracked flow, translate it for the other side.
    fn handle_icmp(&mut self, now: Tick, frame: &mut [u8], f: &Frame) -> Verdict {
        let q = match icmp::quote(&frame[f.l4..f.end], f.is_ipv6()) {
            Ok(Some(q)) => q,
            Ok(None) => return self.pass(),
            Err(r) => return self.drop(r),
        };
        // The quote is a packet we sent; its reverse is a packet we received.
        let key = q.tuple.reversed();
        let bytes = frame.len() as u64;
        let link = *self.vips.link();
        let live = |table: &Table, id: SessionId| {
            let s = *table.get(id);
            (!table.timeouts().is_expired(&s, now)).then_some(s)
        };
        if let Some(s) = self
            .table
            .find_client(&key)
            .and_then(|id| live(&self.table, id))
        {
            // From the client's side, about our reply to it: on to the real server.
            if s.mode == ForwardingMode::FullNat {
                rewrite::icmp_nat(frame, f, &q, (&s.real.dst, &s.real.src), &s.real);
            }
            let mac = match s.mode {
                ForwardingMode::FullNat => self.vips.real_mac(s.real_server, &s.real.src),
                ForwardingMode::Dr => self.vips.real_mac(s.real_server, &s.client.dst),
            };
            rewrite::set_macs(frame, link.mac, mac);
            count(&mut self.counters, s.vip, s.real_server, bytes);
            return Verdict::Tx;
        }
        if let Some(s) = self
            .table
            .find_real(&key)
            .and_then(|id| live(&self.table, id))
            && s.mode == ForwardingMode::FullNat
        {
            // From the real server's side, about our packet to it: back to the client, from
            // the VIP (the client knows no other address of ours).
            rewrite::icmp_nat(frame, f, &q, (&s.client.dst, &s.client.src), &s.client);
            rewrite::set_macs(frame, link.mac, link.gateway);
            count(&mut self.counters, s.vip, s.real_server, bytes);
            return Verdict::Tx;
        }
        self.pass()
    }
}
