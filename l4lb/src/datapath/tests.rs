//! The datapath driven with hand-built frames: round trips, DR, drops, ICMP, table-full,
//! drain, health, affinity and timeouts.

use super::*;
use crate::flow::{Addr, TCP, UDP};
use crate::packet::Mac;
use crate::packet::tcp::{FIN, RST};
use crate::table::Timeouts;
use crate::testing::{self, GATEWAY_MAC, LB_MAC};
use crate::vips::Link;
use dataplane_common::model::{self, Protocol, RealServer};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

const RS_MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0x10]);

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn vip(address: &str, port: u16, protocol: Protocol, reals: &[(&str, u32)]) -> model::Vip {
    model::Vip {
        address: ip(address),
        port,
        protocol,
        scheduler: model::Scheduler::Maglev,
        mode: ForwardingMode::FullNat,
        persistence: None,
        real_servers: reals
            .iter()
            .map(|&(a, weight)| {
                let a = sa(a);
                RealServer {
                    address: a.ip(),
                    port: a.port(),
                    weight,
                }
            })
            .collect(),
        source: "user".into(),
    }
}

fn link() -> Link {
    Link {
        mac: LB_MAC,
        gateway: GATEWAY_MAC,
    }
}

fn snapshot(vips: &[model::Vip], down: &[&str]) -> Arc<Vips> {
    Arc::new(
        Vips::builder(link())
            .vips(vips)
            .down(down.iter().map(|d| ip(d)))
            .local([ip("10.0.0.100"), ip("fd00::100")])
            .neighbour(ip("10.1.0.1"), RS_MAC)
            .maglev_size(251)
            .build(),
    )
}

fn config(capacity: u32) -> Config {
    Config {
        worker: 1,
        workers: 4,
        table: table::Config {
            capacity,
            seed: 99,
            timeouts: Timeouts::default(),
            min_idle_to_evict: 5_000,
        },
        persistence_capacity: 1024,
        flow_seed: 7,
        fast_path: None,
    }
}

fn datapath(vips: &[model::Vip]) -> Datapath {
    Datapath::new(config(1024), snapshot(vips, &[]))
}

fn parse(frame: &[u8]) -> Frame {
    packet::parse(frame).unwrap().unwrap()
}

fn macs(frame: &[u8]) -> (Mac, Mac) {
    let e = packet::Ethernet::new_checked(frame).unwrap();
    (e.src(), e.dst())
}

/// A frame built as the real server would answer `seen` (the tuple it received).
fn answer(seen: &Tuple, flags: Option<u8>, payload: &[u8]) -> Vec<u8> {
    let src = SocketAddr::new(seen.dst.ip(), seen.dst_port);
    let dst = SocketAddr::new(seen.src.ip(), seen.src_port);
    match flags {
        Some(fl) => testing::tcp_frame(src, dst, fl, payload),
        None => testing::udp_frame(src, dst, payload),
    }
}

fn round_trip(client: &str, vip_addr: &str, real: &str, protocol: Protocol) {
    let v = sa(vip_addr);
    let mut dp = datapath(&[vip(&v.ip().to_string(), v.port(), protocol, &[(real, 1)])]);
    let tcp = protocol == Protocol::Tcp;
    let payload = b"hello, real server";
    let mut frame = if tcp {
        testing::tcp_frame(sa(client), v, SYN, payload)
    } else {
        testing::udp_frame(sa(client), v, payload)
    };
    let original = frame.clone();
    assert_eq!(dp.handle_frame(1, &mut frame), Verdict::Tx);
    testing::verify_checksums(&frame).unwrap();
    let out = parse(&frame);
    let local = if v.is_ipv4() {
        "10.0.0.100"
    } else {
        "fd00::100"
    };
    assert_eq!(out.tuple.src.ip(), ip(local));
    assert_eq!(
        Partition::owner(out.tuple.src_port, 4),
        Some(1),
        "worker 1's port"
    );
    assert_eq!(
        SocketAddr::new(out.tuple.dst.ip(), out.tuple.dst_port),
        sa(real)
    );
    assert_eq!(out.tuple.proto, if tcp { TCP } else { UDP });
    assert_eq!(&frame[frame.len() - payload.len()..], payload);
    assert_eq!(frame.len(), original.len());
    let rs_mac = if v.is_ipv4() { RS_MAC } else { GATEWAY_MAC };
    assert_eq!(macs(&frame), (LB_MAC, rs_mac));

    // The reply comes back as VIP -> client.
    let mut reply = answer(&out.tuple, tcp.then_some(SYN | ACK), b"hi");
    assert_eq!(dp.handle_frame(2, &mut reply), Verdict::Tx);
    testing::verify_checksums(&reply).unwrap();
    let back = parse(&reply);
    assert_eq!(back.tuple, parse(&original).tuple.reversed());
    assert_eq!(macs(&reply), (LB_MAC, GATEWAY_MAC));

    // And the next client packet takes the same session.
    let mut next = if tcp {
        testing::tcp_frame(sa(client), v, ACK, b"more")
    } else {
        testing::udp_frame(sa(client), v, b"more")
    };
    assert_eq!(dp.handle_frame(3, &mut next), Verdict::Tx);
    assert_eq!(parse(&next).tuple, out.tuple);
    let c = dp.counters();
    assert_eq!(
        (
            c.vips[0].packets,
            c.vips[0].new_sessions,
            c.vips[0].active_sessions
        ),
        (3, 1, 1)
    );
    assert_eq!(c.real_servers[0].packets, 3);
    assert_eq!(c.transmitted, 3);
    if tcp {
        let id = dp.sessions().find_client(&parse(&original).tuple).unwrap();
        assert_eq!(dp.sessions().get(id).state, State::Established);
    }
}

#[test]
fn full_nat_round_trip_ipv4_tcp() {
    round_trip(
        "198.51.100.7:40000",
        "192.0.2.10:80",
        "10.1.0.1:8080",
        Protocol::Tcp,
    );
}

#[test]
fn full_nat_round_trip_ipv4_udp() {
    round_trip(
        "198.51.100.7:40000",
        "192.0.2.10:53",
        "10.1.0.1:5353",
        Protocol::Udp,
    );
}

#[test]
fn full_nat_round_trip_ipv6_tcp() {
    round_trip(
        "[2001:db8::7]:40000",
        "[2001:db8:1::10]:443",
        "[fd00:1::1]:8443",
        Protocol::Tcp,
    );
}

#[test]
fn full_nat_round_trip_ipv6_udp() {
    round_trip(
        "[2001:db8::7]:40000",
        "[2001:db8:1::10]:53",
        "[fd00:1::1]:5353",
        Protocol::Udp,
    );
}

#[test]
fn dr_only_changes_macs() {
    let mut v = vip("192.0.2.10", 80, Protocol::Tcp, &[("10.1.0.1:80", 1)]);
    v.mode = ForwardingMode::Dr;
    let mut dp = datapath(&[v]);
    let mut frame = testing::tcp_frame(sa("198.51.100.7:40000"), sa("192.0.2.10:80"), SYN, b"x");
    let before = frame.clone();
    assert_eq!(dp.handle_frame(1, &mut frame), Verdict::Tx);
    assert_eq!(macs(&frame), (LB_MAC, RS_MAC));
    assert_eq!(frame[12..], before[12..], "nothing but the MACs changed");
    // Mid-flow packets (no SYN) also open a DR session: Maglev agrees across restarts.
    let mut ack = testing::tcp_frame(sa("198.51.100.7:40001"), sa("192.0.2.10:80"), ACK, b"");
    assert_eq!(dp.handle_frame(2, &mut ack), Verdict::Tx);
    assert_eq!(dp.sessions().len(), 2);
}

#[test]
fn malformed_frames_are_dropped_by_reason() {
    let mut dp = datapath(&[vip("192.0.2.10", 80, Protocol::Tcp, &[("10.1.0.1:80", 1)])]);
    let good = testing::tcp_frame(sa("198.51.100.7:40000"), sa("192.0.2.10:80"), SYN, b"");
    let cases: Vec<(Vec<u8>, DropReason)> = vec![
        (good[..10].to_vec(), DropReason::EthTruncated),
        (good[..30].to_vec(), DropReason::Ipv4Truncated),
        (
            {
                let mut f = good.clone();
                f[14] = 0x44; // IHL 4
                f
            },
            DropReason::Ipv4Malformed,
        ),
        (
            {
                let mut f = good.clone();
                f[14 + 20 + 12] = 0x30; // data offset 3
                f
            },
            DropReason::TcpMalformed,
        ),
        (
            {
                let mut f = good.clone();
                f[14 + 6] = 0x20; // MF: a fragment to a VIP
                f
            },
            DropReason::Fragment,
        ),
        (
            {
                let mut f = testing::udp_frame(sa("198.51.100.7:1"), sa("192.0.2.10:53"), b"abcd");
                f[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&100u16.to_be_bytes());
                f
            },
            DropReason::UdpMalformed,
        ),
        (
            {
                let mut f =
                    testing::udp_frame(sa("[2001:db8::7]:1"), sa("[2001:db8::1]:53"), b"ab");
                f[14 + 40 + 6..14 + 40 + 8].fill(0);
                f
            },
            DropReason::UdpZeroChecksum,
        ),
        (
            testing::tcp_frame(sa("198.51.100.7:40000"), sa("192.0.2.10:80"), ACK, b""),
            DropReason::NoSession,
        ),
    ];
    for (mut frame, reason) in cases {
        assert_eq!(
            dp.handle_frame(1, &mut frame),
            Verdict::Drop(reason),
            "{reason:?}"
        );
        assert_eq!(dp.counters().drops[reason.index()], 1);
    }
    // Not IP, not a VIP, not TCP/UDP: the host's business.
    let mut arp = good.clone();
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    assert_eq!(dp.handle_frame(1, &mut arp), Verdict::Pass);
    let mut other = testing::tcp_frame(sa("198.51.100.7:40000"), sa("192.0.2.99:80"), SYN, b"");
    assert_eq!(dp.handle_frame(1, &mut other), Verdict::Pass);
    let mut port = testing::tcp_frame(sa("198.51.100.7:40000"), sa("192.0.2.10:81"), SYN, b"");
    assert_eq!(dp.handle_frame(1, &mut port), Verdict::Pass);
    assert_eq!(dp.counters().passed, 3);
}

/// Opens a full-NAT TCP session and returns the tuple the real server saw.
fn open(dp: &mut Datapath, client: &str, vip_addr: &str, now: u64) -> Tuple {
    let mut f = testing::tcp_frame(sa(client), sa(vip_addr), SYN, b"");
    assert_eq!(dp.handle_frame(now, &mut f), Verdict::Tx);
    parse(&f).tuple
}

#[test]
fn icmp_frag_needed_from_the_real_side_reaches_the_client_translated() {
    let mut dp = datapath(&[vip(
        "192.0.2.10",
        80,
        Protocol::Tcp,
        &[("10.1.0.1:8080", 1)],
    )]);
    let seen = open(&mut dp, "198.51.100.7:40000", "192.0.2.10:80", 1);
    // A router between us and the real server cannot forward our 1500-byte packet.
    let mut sent = testing::tcp_frame(
        SocketAddr::new(seen.src.ip(), seen.src_port),
        SocketAddr::new(seen.dst.ip(), seen.dst_port),
        ACK,
        &[0u8; 64],
    );
    sent.drain(..14);
    let mut err = testing::icmp_error(
        ip("10.1.0.254"),
        seen.src.ip(),
        icmp::V4_DEST_UNREACHABLE,
        icmp::V4_FRAGMENTATION_NEEDED,
        1400,
        &sent,
        20 + 8, // RFC 792: header + 64 bits
    );
    assert_eq!(dp.handle_frame(2, &mut err), Verdict::Tx);
    testing::verify_checksums(&err).unwrap();
    let out = parse(&err);
    assert_eq!(
        (out.tuple.src.ip(), out.tuple.dst.ip()),
        (ip("192.0.2.10"), ip("198.51.100.7"))
    );
    let msg = &err[out.l4..out.end];
    let q = icmp::quote(msg, false).unwrap().unwrap();
    assert_eq!(
        q.tuple,
        Tuple {
            src: Addr::from(ip("198.51.100.7")),
            dst: Addr::from(ip("192.0.2.10")),
            src_port: 40000,
            dst_port: 80,
            proto: TCP,
        }
    );
    assert_eq!(
        u32::from_be_bytes(msg[4..8].try_into().unwrap()),
        1400,
        "MTU kept"
    );
    assert_eq!(macs(&err), (LB_MAC, GATEWAY_MAC));
}

#[test]
fn icmpv6_packet_too_big_from_the_client_side_reaches_the_real_server() {
    let mut dp = datapath(&[vip(
        "2001:db8:1::10",
        443,
        Protocol::Tcp,
        &[("[fd00:1::1]:8443", 1)],
    )]);
    let seen = open(&mut dp, "[2001:db8::7]:40000", "[2001:db8:1::10]:443", 1);
    // Our reply VIP -> client was too big for a link near the client.
    let mut reply = testing::tcp_frame(
        sa("[2001:db8:1::10]:443"),
        sa("[2001:db8::7]:40000"),
        ACK,
        &[1u8; 100],
    );
    reply.drain(..14);
    let mut err = testing::icmp_error(
        ip("2001:db8::fe"),
        ip("2001:db8:1::10"),
        icmp::V6_PACKET_TOO_BIG,
        0,
        1280,
        &reply,
        reply.len(), // whole packet: the quoted TCP checksum must be fixed too
    );
    assert_eq!(dp.handle_frame(2, &mut err), Verdict::Tx);
    testing::verify_checksums(&err).unwrap();
    let out = parse(&err);
    assert_eq!((out.tuple.src, out.tuple.dst), (seen.src, seen.dst));
    let msg = &err[out.l4..out.end];
    let q = icmp::quote(msg, true).unwrap().unwrap();
    assert_eq!(q.tuple, seen.reversed(), "quotes what the real server sent");
    // The quoted segment's own checksum is right for its new addresses.
    let quoted = &msg[q.ip..];
    let inner = testing::ethernet(LB_MAC, LB_MAC, quoted);
    testing::verify_checksums(&inner).unwrap();
    // An error quoting nothing we track is the host's.
    let mut stray = testing::icmp_error(
        ip("2001:db8::fe"),
        ip("2001:db8:1::10"),
        2,
        0,
        1280,
        &{
            let mut r =
                testing::tcp_frame(sa("[2001:db8:1::10]:443"), sa("[2001:db8::8]:1"), ACK, b"");
            r.drain(..14);
            r
        },
        60,
    );
    assert_eq!(dp.handle_frame(3, &mut stray), Verdict::Pass);
}

#[test]
fn full_table_drops_until_a_session_is_idle_long_enough() {
    let mut dp = Datapath::new(
        config(2),
        snapshot(
            &[vip("192.0.2.10", 80, Protocol::Tcp, &[("10.1.0.1:80", 1)])],
            &[],
        ),
    );
    open(&mut dp, "198.51.100.1:1000", "192.0.2.10:80", 0);
    open(&mut dp, "198.51.100.2:1000", "192.0.2.10:80", 1_000);
    let mut third = testing::tcp_frame(sa("198.51.100.3:1000"), sa("192.0.2.10:80"), SYN, b"");
    assert_eq!(
        dp.handle_frame(4_999, &mut third.clone()),
        Verdict::Drop(DropReason::TableFull)
    );
    // At 5000 the first session has been idle for min_idle_to_evict: it makes room.
    assert_eq!(dp.handle_frame(5_000, &mut third), Verdict::Tx);
    let c = dp.counters();
    assert_eq!(
        (c.evicted, c.vips[0].active_sessions, c.vips[0].new_sessions),
        (1, 2, 3)
    );
    assert_eq!(c.drops[DropReason::TableFull.index()], 1);
}

fn real_of(dp: &Datapath, client: &str, vip_addr: &str) -> u32 {
    let t = Tuple {
        src: Addr::from(sa(client).ip()),
        dst: Addr::from(sa(vip_addr).ip()),
        src_port: sa(client).port(),
        dst_port: sa(vip_addr).port(),
        proto: TCP,
    };
    dp.sessions()
        .get(dp.sessions().find_client(&t).unwrap())
        .real_server
}

#[test]
fn weight_zero_drains_and_down_gets_nothing_new() {
    let reals = [("10.1.0.1:80", 1), ("10.1.0.2:80", 1), ("10.1.0.3:80", 1)];
    let mut dp = datapath(&[vip("192.0.2.10", 80, Protocol::Tcp, &reals)]);
    // Open flows until one lands on each server.
    let mut on = [None, None, None];
    for p in 1000..1100u16 {
        let c = format!("198.51.100.7:{p}");
        open(&mut dp, &c, "192.0.2.10:80", 1);
        on[real_of(&dp, &c, "192.0.2.10:80") as usize].get_or_insert(c);
    }
    let on_first = on[0].clone().expect("some flow on server 0");
    // Drain server 0 and mark server 1 down.
    let drained = [("10.1.0.1:80", 0), ("10.1.0.2:80", 1), ("10.1.0.3:80", 1)];
    dp.set_vips(snapshot(
        &[vip("192.0.2.10", 80, Protocol::Tcp, &drained)],
        &["10.1.0.2"],
    ));
    assert_eq!(dp.sessions().len(), 100, "every session kept");
    let active_before = dp.counters().real_servers[0].active_sessions;
    assert!(active_before > 0);
    // The existing session on server 0 goes on.
    let mut f = testing::tcp_frame(sa(&on_first), sa("192.0.2.10:80"), ACK, b"data");
    assert_eq!(dp.handle_frame(2, &mut f), Verdict::Tx);
    assert_eq!(parse(&f).tuple.dst.ip(), ip("10.1.0.1"));
    // New flows avoid both.
    for p in 2000..2100u16 {
        let c = format!("198.51.100.8:{p}");
        open(&mut dp, &c, "192.0.2.10:80", 3);
        assert_eq!(real_of(&dp, &c, "192.0.2.10:80"), 2);
    }
    assert_eq!(dp.counters().real_servers[0].active_sessions, active_before);
}

#[test]
fn removed_vip_keeps_its_sessions() {
    let v = vip("192.0.2.10", 80, Protocol::Tcp, &[("10.1.0.1:80", 1)]);
    let mut dp = datapath(&[v]);
    let seen = open(&mut dp, "198.51.100.7:40000", "192.0.2.10:80", 1);
    dp.set_vips(snapshot(&[], &[]));
    let mut f = testing::tcp_frame(sa("198.51.100.7:40000"), sa("192.0.2.10:80"), ACK, b"");
    assert_eq!(dp.handle_frame(2, &mut f), Verdict::Tx);
    assert_eq!(parse(&f).tuple, seen);
    let mut new = testing::tcp_frame(sa("198.51.100.7:40001"), sa("192.0.2.10:80"), SYN, b"");
    assert_eq!(dp.handle_frame(2, &mut new), Verdict::Pass);
}

#[test]
fn persistence_holds_for_the_timeout_then_expires() {
    let reals: Vec<(String, u32)> = (1..=8).map(|i| (format!("10.1.0.{i}:80"), 1)).collect();
    let reals: Vec<(&str, u32)> = reals.iter().map(|(a, w)| (a.as_str(), *w)).collect();
    let mut v = vip("192.0.2.10", 80, Protocol::Tcp, &reals);
    v.persistence = Some(Duration::from_secs(10));
    let mut dp = datapath(&[v]);
    open(&mut dp, "198.51.100.7:1000", "192.0.2.10:80", 0);
    let first = real_of(&dp, "198.51.100.7:1000", "192.0.2.10:80");
    // Every new flow from the client within 10 s goes to the same server (each one also
    // refreshes the affinity, so step 1 s at a time).
    for p in 1001..1010u16 {
        let c = format!("198.51.100.7:{p}");
        open(&mut dp, &c, "192.0.2.10:80", u64::from(p - 1000) * 1_000);
        assert_eq!(real_of(&dp, &c, "192.0.2.10:80"), first);
    }
    // After 10 s without a new flow the scheduler decides again: some flow lands elsewhere.
    let later = 9_000 + 10_000;
    let moved = (2000..2050u16).any(|p| {
        let c = format!("198.51.100.7:{p}");
        open(&mut dp, &c, "192.0.2.10:80", later);
        real_of(&dp, &c, "192.0.2.10:80") != first
    });
    assert!(moved);
}

#[test]
fn sessions_expire_by_state_timeout() {
    let mut dp = datapath(&[
        vip("192.0.2.10", 53, Protocol::Udp, &[("10.1.0.1:53", 1)]),
        vip("192.0.2.10", 80, Protocol::Tcp, &[("10.1.0.1:80", 1)]),
    ]);
    let udp_t = Timeouts::default().udp;
    let mut q = testing::udp_frame(sa("198.51.100.7:5000"), sa("192.0.2.10:53"), b"q");
    assert_eq!(dp.handle_frame(0, &mut q.clone()), Verdict::Tx);
    let syn = open(&mut dp, "198.51.100.7:6000", "192.0.2.10:80", 0);
    // A half-open TCP session goes after the opening timeout; UDP lasts longer.
    let opening = Timeouts::default().opening;
    assert_eq!(dp.handle_timeout(u64::from(opening) - 1, 1024), 0);
    assert_eq!(dp.handle_timeout(u64::from(opening), 1024), 1);
    assert!(dp.sessions().find_real(&syn.reversed()).is_none());
    assert_eq!(dp.counters().vips[1].active_sessions, 0);
    // A UDP packet just before its timeout keeps it alive.
    assert_eq!(
        dp.handle_frame(u64::from(udp_t) - 1, &mut q.clone()),
        Verdict::Tx
    );
    assert_eq!(dp.handle_timeout(u64::from(udp_t) + 10, 1024), 0);
    // A lookup after the timeout finds it expired and opens a new one (new local port).
    let later = 2 * u64::from(udp_t);
    assert_eq!(dp.handle_frame(later, &mut q), Verdict::Tx);
    let c = dp.counters();
    assert_eq!(
        (c.vips[0].new_sessions, c.vips[0].active_sessions, c.expired),
        (2, 1, 2)
    );
}

#[test]
fn closed_tcp_session_is_reopened_by_a_new_syn() {
    let mut dp = datapath(&[vip("192.0.2.10", 80, Protocol::Tcp, &[("10.1.0.1:80", 1)])]);
    let seen = open(&mut dp, "198.51.100.7:40000", "192.0.2.10:80", 1);
    let mut rst = answer(&seen, Some(RST | ACK), b"");
    assert_eq!(dp.handle_frame(2, &mut rst), Verdict::Tx);
    let mut fin = testing::tcp_frame(
        sa("198.51.100.7:40000"),
        sa("192.0.2.10:80"),
        FIN | ACK,
        b"",
    );
    assert_eq!(dp.handle_frame(3, &mut fin), Verdict::Tx);
    let again = open(&mut dp, "198.51.100.7:40000", "192.0.2.10:80", 4);
    assert_ne!(
        again.src_port, seen.src_port,
        "a fresh session, fresh local port"
    );
    assert_eq!(dp.counters().vips[0].new_sessions, 2);
}

#[test]
fn round_robin_and_least_connections_spread_new_flows() {
    let reals = [("10.1.0.1:80", 3), ("10.1.0.2:80", 1)];
    let mut rr = vip("192.0.2.10", 80, Protocol::Tcp, &reals);
    rr.scheduler = model::Scheduler::WeightedRoundRobin;
    let mut lc = vip("192.0.2.11", 80, Protocol::Tcp, &reals);
    lc.scheduler = model::Scheduler::WeightedLeastConnections;
    let mut sh = vip("192.0.2.12", 80, Protocol::Tcp, &reals);
    sh.scheduler = model::Scheduler::SourceHash;
    let mut dp = datapath(&[rr, lc, sh]);
    for p in 0..40u16 {
        for v in ["192.0.2.10:80", "192.0.2.11:80", "192.0.2.12:80"] {
            open(&mut dp, &format!("198.51.100.7:{}", 1000 + p), v, 1);
        }
    }
    let c = dp.counters();
    let new = |i: usize| c.real_servers[i].new_sessions;
    assert_eq!((new(0), new(1)), (30, 10), "round robin 3:1");
    assert_eq!((new(2), new(3)), (30, 10), "least connections 3:1");
    assert_eq!(new(4).min(new(5)), 0, "one client, one server");
}
