//! The datapath with the fast path on, against a model of the XDP program and its map (the
//! rewrite of [`crate::fastpath::entry::apply`], counters in the values) standing in for the
//! kernel, and of the I/O edge carrying out the intents in order.

use super::super::*;
use crate::fastpath::entry::{self, off};
use crate::fastpath::{Intent, Key, Totals, Value};
use crate::flow::Addr;
use crate::packet::Mac;
use crate::packet::tcp::{FIN, RST};
use crate::table::Timeouts;
use crate::testing::{self, GATEWAY_MAC, LB_MAC};
use crate::vips::Link;
use dataplane_common::model::{self, Protocol, RealServer};
use std::collections::HashMap;
use std::net::SocketAddr;

const RS_MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0x10]);
const POLL: Tick = 1_000;
const CLIENT: &str = "198.51.100.7:40000";
const VIP: &str = "192.0.2.10:80";

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn snapshot(mode: ForwardingMode, protocol: Protocol, rs_mac: Mac) -> Arc<Vips> {
    let v = model::Vip {
        address: sa(VIP).ip(),
        port: 80,
        protocol,
        scheduler: model::Scheduler::Maglev,
        mode,
        persistence: None,
        real_servers: vec![RealServer {
            address: "10.1.0.1".parse().unwrap(),
            port: 8080,
            weight: 1,
        }],
        source: "user".into(),
    };
    let link = Link {
        mac: LB_MAC,
        gateway: GATEWAY_MAC,
    };
    Arc::new(
        Vips::builder(link)
            .vips(&[v])
            .local(["10.0.0.100".parse().unwrap()])
            .neighbour("10.1.0.1".parse().unwrap(), rs_mac)
            .maglev_size(251)
            .build(),
    )
}

fn datapath(mode: ForwardingMode, protocol: Protocol) -> Datapath {
    let config = Config {
        table: table::Config {
            capacity: 64,
            seed: 1,
            timeouts: Timeouts::default(),
            min_idle_to_evict: 5_000,
        },
        fast_path: Some(crate::fastpath::Config {
            poll: POLL,
            queue: 16,
        }),
        ..Config::default()
    };
    Datapath::new(config, snapshot(mode, protocol, RS_MAC))
}

/// The map, and the edge applying the intents to it.
#[derive(Default)]
struct Kernel {
    map: HashMap<Key, Value>,
    log: Vec<&'static str>,
}

impl Kernel {
    fn totals(&self, keys: [Option<Key>; 2]) -> Totals {
        keys.into_iter()
            .flatten()
            .filter_map(|k| self.map.get(&k))
            .fold(Totals::default(), |t, v| t.plus(v.totals()))
    }

    fn apply(&mut self, dp: &mut Datapath, now: u64) {
        let mut intents = Vec::new();
        loop {
            dp.take_fast_path_intents(&mut intents);
            if intents.is_empty() {
                return;
            }
            for i in intents.drain(..) {
                match i {
                    Intent::Install { client, real } => {
                        self.log.push("install");
                        for e in [Some(client), real].into_iter().flatten() {
                            assert!(self.map.insert(e.key, e.value).is_none(), "a fresh key");
                        }
                    }
                    Intent::Poll {
                        session,
                        client,
                        real,
                    } => {
                        let t = self.totals([Some(client), real]);
                        dp.fast_path_report(now, session, &client, t);
                    }
                    Intent::Remove {
                        client,
                        real,
                        vip,
                        real_server,
                        folded,
                    } => {
                        self.log.push("remove");
                        let t = self.totals([Some(client), real]);
                        self.map.remove(&client);
                        real.map(|k| self.map.remove(&k));
                        dp.fast_path_removed(vip, real_server, t.since(folded));
                    }
                }
            }
        }
    }

    /// What the program does with `frame`: `true` if it forwarded it (rewritten, counted).
    fn forward(&mut self, frame: &mut [u8]) -> bool {
        let Some(v) = entry::key_of_frame(frame).and_then(|k| self.map.get_mut(&k)) else {
            return false;
        };
        entry::apply(frame, v);
        let t = v.totals();
        v.0[off::PACKETS..off::PACKETS + 8].copy_from_slice(&(t.packets + 1).to_ne_bytes());
        let bytes = t.bytes + frame.len() as u64;
        v.0[off::BYTES..off::BYTES + 8].copy_from_slice(&bytes.to_ne_bytes());
        true
    }

    /// A frame through the kernel model, else through the datapath: whether the kernel took
    /// it, and the frame as sent.
    fn handle(&mut self, dp: &mut Datapath, now: u64, mut frame: Vec<u8>) -> (bool, Vec<u8>) {
        if self.forward(&mut frame) {
            return (true, frame);
        }
        assert_eq!(dp.handle_frame(now, &mut frame), Verdict::Tx);
        self.apply(dp, now);
        (false, frame)
    }
}

fn tcp(src: SocketAddr, dst: SocketAddr, flags: u8, payload: &[u8]) -> Vec<u8> {
    testing::tcp_frame(src, dst, flags, payload)
}

/// A frame as the real server sends it back on the tuple it `seen`.
fn from_real(seen: &[u8], flags: u8, payload: &[u8]) -> Vec<u8> {
    let t = packet::parse(seen).unwrap().unwrap().tuple;
    let (src, dst) = (
        SocketAddr::new(t.dst.ip(), t.dst_port),
        SocketAddr::new(t.src.ip(), t.src_port),
    );
    tcp(src, dst, flags, payload)
}

/// A full-NAT TCP handshake through user space; returns the SYN as the real server saw it.
fn handshake(k: &mut Kernel, dp: &mut Datapath) -> Vec<u8> {
    let (fast, syn) = k.handle(dp, 1, tcp(sa(CLIENT), sa(VIP), SYN, b""));
    assert!(!fast);
    let (fast, _) = k.handle(dp, 2, from_real(&syn, SYN | ACK, b""));
    assert!(!fast);
    assert!(
        k.map.is_empty(),
        "nothing installed before the handshake completes"
    );
    let (fast, _) = k.handle(dp, 3, tcp(sa(CLIENT), sa(VIP), ACK, b""));
    assert!(!fast);
    assert_eq!(k.map.len(), 2, "both directions once established");
    syn
}

#[test]
fn established_full_nat_flows_go_by_in_the_kernel_as_user_space_would_send_them() {
    let mut k = Kernel::default();
    let mut dp = datapath(ForwardingMode::FullNat, Protocol::Tcp);
    let mut reference = datapath(ForwardingMode::FullNat, Protocol::Tcp);
    reference.fast = None;
    let syn = handshake(&mut k, &mut dp);
    // The same handshake through a datapath without the fast path.
    let mut r_syn = tcp(sa(CLIENT), sa(VIP), SYN, b"");
    assert_eq!(reference.handle_frame(1, &mut r_syn), Verdict::Tx);
    assert_eq!(r_syn, syn);
    for f in [
        from_real(&syn, SYN | ACK, b""),
        tcp(sa(CLIENT), sa(VIP), ACK, b""),
    ] {
        assert_eq!(reference.handle_frame(2, &mut f.clone()), Verdict::Tx);
    }
    for i in 0..10u8 {
        let request = tcp(sa(CLIENT), sa(VIP), ACK | 0x08, &[i; 100]);
        let (fast, out) = k.handle(&mut dp, 10, request.clone());
        assert!(fast, "established: the kernel forwards");
        let mut want = request;
        assert_eq!(reference.handle_frame(10, &mut want), Verdict::Tx);
        assert_eq!(out, want);
        testing::verify_checksums(&out).unwrap();
        let answer = from_real(&syn, ACK, &[i; 200]);
        let (fast, out) = k.handle(&mut dp, 10, answer.clone());
        assert!(fast);
        let mut want = answer;
        assert_eq!(reference.handle_frame(10, &mut want), Verdict::Tx);
        assert_eq!(out, want);
    }
    // User space has not seen them yet; the poll folds them in.
    let c = dp.counters().vips[0];
    assert_eq!(c.packets, 3);
    dp.handle_timeout(u64::from(POLL) + 10, 64);
    k.apply(&mut dp, u64::from(POLL) + 10);
    let c = dp.counters().vips[0];
    assert_eq!(c.packets, 23);
    assert_eq!(dp.counters().real_servers[0].packets, 23);
    let stats = dp.fast_path_stats().unwrap();
    assert_eq!((stats.packets, stats.installs, stats.removals), (20, 1, 0));
    let fwd = 10 * (14 + 20 + 20 + 100) + 10 * (14 + 20 + 20 + 200);
    assert_eq!(stats.bytes, fwd as u64);
    let id = dp
        .sessions()
        .find_client(&parse_tuple(CLIENT, VIP))
        .unwrap();
    let s = dp.sessions().get(id);
    assert_eq!((s.packets, s.last_seen), (23, POLL + 10));
}

fn parse_tuple(src: &str, dst: &str) -> Tuple {
    let (s, d) = (sa(src), sa(dst));
    Tuple {
        src: Addr::from(s.ip()),
        dst: Addr::from(d.ip()),
        src_port: s.port(),
        dst_port: d.port(),
        proto: crate::flow::TCP,
    }
}

#[test]
fn fin_and_rst_go_to_user_space_and_close_the_session() {
    let mut k = Kernel::default();
    let mut dp = datapath(ForwardingMode::FullNat, Protocol::Tcp);
    let syn = handshake(&mut k, &mut dp);
    let (fast, _) = k.handle(&mut dp, 5, tcp(sa(CLIENT), sa(VIP), FIN | ACK, b""));
    assert!(!fast, "a FIN goes to user space");
    let id = dp
        .sessions()
        .find_client(&parse_tuple(CLIENT, VIP))
        .unwrap();
    assert_eq!(dp.sessions().get(id).state, State::ClientFin);
    let (fast, _) = k.handle(&mut dp, 6, from_real(&syn, RST, b""));
    assert!(!fast, "so does a RST");
    assert_eq!(dp.sessions().get(id).state, State::Closed);
    // A new SYN on the closed tuple: the old entries go before the new session's come.
    let (fast, _) = k.handle(&mut dp, 7, tcp(sa(CLIENT), sa(VIP), SYN, b""));
    assert!(!fast);
    assert_eq!(k.log, ["install", "remove"]);
    assert!(k.map.is_empty());
    assert_eq!(dp.counters().vips[0].active_sessions, 1);
}

#[test]
fn idle_sessions_expire_but_kernel_traffic_keeps_them() {
    let mut k = Kernel::default();
    let mut dp = datapath(ForwardingMode::FullNat, Protocol::Udp);
    let udp = |p: &[u8]| testing::udp_frame(sa(CLIENT), sa(VIP), p);
    let (fast, _) = k.handle(&mut dp, 0, udp(b"first"));
    assert!(!fast);
    assert_eq!(k.map.len(), 2, "UDP: at once");
    let timeout = u64::from(Timeouts::default().udp);
    // Packets only in the kernel, past the timeout: the polls keep the session alive.
    let mut now = 0;
    while now < 3 * timeout {
        now += u64::from(POLL) / 2;
        assert!(k.handle(&mut dp, now, udp(b"more")).0);
        dp.handle_timeout(now, 64);
        k.apply(&mut dp, now);
    }
    assert_eq!(dp.sessions().len(), 1);
    assert_eq!(k.log, ["install"]);
    // Then silence: it expires after its timeout (give or take a poll), entries and all.
    let last = now;
    while dp.sessions().len() == 1 {
        now += 100;
        dp.handle_timeout(now, 64);
        k.apply(&mut dp, now);
    }
    assert!(
        now >= last + timeout && now <= last + timeout + 2 * u64::from(POLL),
        "{now}"
    );
    assert!(k.map.is_empty());
    assert_eq!(k.log, ["install", "remove"]);
    let c = dp.counters().vips[0];
    assert_eq!(
        (c.active_sessions, c.packets),
        (0, 1 + 2 * 3 * timeout / u64::from(POLL))
    );
}

#[test]
fn dr_installs_the_client_direction_only_and_follows_the_real_servers_mac() {
    let mut k = Kernel::default();
    let mut dp = datapath(ForwardingMode::Dr, Protocol::Tcp);
    assert!(!k.handle(&mut dp, 1, tcp(sa(CLIENT), sa(VIP), SYN, b"")).0);
    assert!(k.map.is_empty());
    assert!(!k.handle(&mut dp, 2, tcp(sa(CLIENT), sa(VIP), ACK, b"")).0);
    assert_eq!(k.map.len(), 1);
    let data = tcp(sa(CLIENT), sa(VIP), ACK, b"data");
    let (fast, out) = k.handle(&mut dp, 3, data.clone());
    assert!(fast);
    assert_eq!((&out[0..6], &out[6..12]), (&RS_MAC.0[..], &LB_MAC.0[..]));
    assert_eq!(&out[12..], &data[12..]);
    // The real server's MAC changes: the entry goes, the next packet installs the new one.
    let moved = Mac([0x02, 0, 0, 0, 0, 0x77]);
    dp.set_vips(snapshot(ForwardingMode::Dr, Protocol::Tcp, moved));
    k.apply(&mut dp, 4);
    assert!(k.map.is_empty());
    assert!(!k.handle(&mut dp, 5, data.clone()).0);
    let (fast, out) = k.handle(&mut dp, 6, data);
    assert!(fast);
    assert_eq!(&out[0..6], &moved.0[..]);
    assert_eq!(k.log, ["install", "remove", "install"]);
    // The same snapshot again changes nothing.
    dp.set_vips(snapshot(ForwardingMode::Dr, Protocol::Tcp, moved));
    k.apply(&mut dp, 7);
    assert_eq!(k.map.len(), 1);
}

#[test]
fn ipv6_stays_in_user_space() {
    let mut k = Kernel::default();
    let mut dp = datapath(ForwardingMode::FullNat, Protocol::Udp);
    let v6 = Arc::new(
        Vips::builder(Link {
            mac: LB_MAC,
            gateway: GATEWAY_MAC,
        })
        .vips(&[model::Vip {
            address: "2001:db8::10".parse().unwrap(),
            port: 53,
            protocol: Protocol::Udp,
            scheduler: model::Scheduler::Maglev,
            mode: ForwardingMode::FullNat,
            persistence: None,
            real_servers: vec![RealServer {
                address: "fd00::1".parse().unwrap(),
                port: 53,
                weight: 1,
            }],
            source: "user".into(),
        }])
        .local(["fd00::100".parse().unwrap()])
        .build(),
    );
    dp.set_vips(v6);
    for now in 0..3 {
        let f = testing::udp_frame(sa("[2001:db8::7]:5000"), sa("[2001:db8::10]:53"), b"q");
        assert!(!k.handle(&mut dp, now, f).0);
    }
    assert!(k.map.is_empty());
    assert_eq!(dp.fast_path_stats().unwrap().installs, 0);
}
