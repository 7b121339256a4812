//! The answer cache: its formats in user space, and its program run by the kernel
//! (`BPF_PROG_TEST_RUN`, root only) against the slow path: for every stored question the
//! program's reply frame is, byte for byte, what the pure core and `frame::reply` make.

use super::*;
use crate::io::frame::{self, tests::udp_frame};
use crate::respond::Transport;
use crate::respond::testing::{Harness, query};
use dataplane_common::packet_io::xdp::bpf::{action, op, reg};
use hickory_proto::rr::RecordType;
use std::net::SocketAddr;

const SERVER: &str = "192.0.2.1:53";
const CLIENT: &str = "192.0.2.7:40000";

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn server() -> (Ipv4Addr, u16) {
    let s: SocketAddr = SERVER.parse().unwrap();
    match s.ip() {
        std::net::IpAddr::V4(a) => (a, s.port()),
        std::net::IpAddr::V6(_) => unreachable!(),
    }
}

/// The wire form of a query with `id`.
fn wire(qname: &str, qtype: RecordType, payload: Option<u16>, id: u16) -> Vec<u8> {
    let mut q = query(qname, qtype, payload).to_vec().unwrap();
    q[..2].copy_from_slice(&id.to_be_bytes());
    q
}

/// The pure core's reply to `q` from `CLIENT`, and whether it may be replayed.
fn slow(h: &mut Harness, q: &[u8]) -> (Vec<u8>, bool) {
    h.client = CLIENT.parse().unwrap();
    let (outcome, reply) = h.raw(q, Transport::Udp);
    let reply: Vec<u8> = reply;
    let applied = match outcome {
        crate::respond::Outcome::Reply { policy, .. } => policy.is_some(),
        other => panic!("no reply: {other:?}"),
    };
    let ok = replayable(&reply, applied);
    (reply, ok)
}

/// The reply frame the slow path sends for the query frame `f` whose message got `reply`.
fn slow_frame(f: &[u8], reply: &[u8]) -> Vec<u8> {
    let q = frame::query(f, server().1).unwrap();
    let mut buf = f.to_vec();
    buf.resize(q.payload.start + reply.len(), 0);
    buf[q.payload.start..].copy_from_slice(reply);
    let end = frame::reply(&mut buf, &q, reply.len());
    buf.truncate(end);
    buf
}

/// The cache's program alone: what it does not answer, it passes.
fn load(cache: &AnswerCache) -> OwnedFd {
    let mut a = Asm::default();
    cache.emit(&mut a);
    a.i(op::MOV_K, reg::R0, 0, 0, action::PASS);
    a.i(op::EXIT, 0, 0, 0, 0);
    bpf::prog_load(&a.finish(), "dns_cache_test", bpf::ATTACH_XDP)
        .unwrap_or_else(|e| panic!("the verifier refuses the answer cache: {e}"))
}

fn run(prog: &OwnedFd, input: &[u8]) -> (u32, Vec<u8>) {
    let mut out = vec![0u8; 2048];
    let r = bpf::prog_test_run(prog, input, &mut out, 1).expect("test run");
    out.truncate(r.len);
    (r.retval, out)
}

fn cache() -> AnswerCache {
    let (a, port) = server();
    AnswerCache::create(64, a, port, crate::io::REPLAY_SLOTS).expect("maps")
}

fn client_frame(q: &[u8]) -> Vec<u8> {
    udp_frame(CLIENT.parse().unwrap(), SERVER.parse().unwrap(), q, false)
}

#[test]
fn keys_and_values_hold_the_octets_after_the_id() {
    let q = wire("web.default.svc.cluster.local.", RecordType::A, None, 7);
    let mut k = [0u8; KEY_SIZE];
    assert!(key(3, &q, &mut k));
    assert_eq!(u32::from_ne_bytes(k[..4].try_into().unwrap()), 3);
    let len = u32::from_ne_bytes(k[4..8].try_into().unwrap()) as usize;
    assert_eq!(&k[8..8 + len], &q[2..]);
    assert!(k[8 + len..].iter().all(|&b| b == 0));
    // Queries differing only in their ID share a key.
    let mut k2 = [0u8; KEY_SIZE];
    assert!(key(
        3,
        &wire("web.default.svc.cluster.local.", RecordType::A, None, 9),
        &mut k2
    ));
    assert_eq!(k, k2);
    assert!(!key(3, &q[..MIN_MESSAGE - 1], &mut k));
    assert!(!key(3, &[0u8; KEY_BYTES + 3], &mut k));

    let mut v = [0u8; VALUE_SIZE];
    assert!(value(&q, 5, &mut v));
    assert_eq!(usize::from(u16::from_ne_bytes([v[0], v[1]])), q.len() - 2);
    assert_eq!(u16::from_ne_bytes([v[2], v[3]]), 5);
    assert!(!value(&[0u8; VALUE_BYTES + 3], 0, &mut v));
}

#[test]
fn the_loaded_sum_is_the_internet_checksum_sum() {
    for n in 0..40 {
        let octets: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
        let mut padded = octets.clone();
        if n % 2 == 1 {
            padded.push(0);
        }
        let be: u64 = padded
            .chunks(2)
            .map(|w| u64::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        let fold = |mut s: u64| {
            while s > 0xffff {
                s = (s & 0xffff) + (s >> 16);
            }
            s as u16
        };
        // The same sum, its octets swapped: RFC 1071 section 2(B).
        assert_eq!(fold(u64::from(loaded_sum(&octets))), fold(be).swap_bytes());
    }
}

#[test]
fn cpu_lists_are_read_to_their_highest_cpu() {
    assert_eq!(parse_cpu_list("0"), Some(1));
    assert_eq!(parse_cpu_list("0-1"), Some(2));
    assert_eq!(parse_cpu_list("0-3,8-11"), Some(12));
    assert_eq!(parse_cpu_list("x"), None);
}

#[test]
fn only_authoritative_replies_without_a_choice_are_replayable() {
    let mut h = Harness::new();
    let single = wire("web.default.svc.cluster.local.", RecordType::A, None, 1);
    assert!(slow(&mut h, &single).1);
    let missing = wire("nope.default.svc.cluster.local.", RecordType::A, None, 1);
    assert!(
        slow(&mut h, &missing).1,
        "NXDOMAIN is the same for everyone"
    );
    for chosen in ["rr", "sticky", "big"] {
        let q = wire(
            &format!("{chosen}.default.svc.cluster.local."),
            RecordType::A,
            None,
            1,
        );
        assert!(!slow(&mut h, &q).1, "{chosen}: an address was chosen");
    }
    let outside = wire("example.org.", RecordType::A, None, 1);
    assert!(!slow(&mut h, &outside).1, "REFUSED carries no AA");
}

#[test]
fn stored_replies_go_out_as_the_slow_path_sends_them() {
    if !is_root() {
        eprintln!("skipped: needs root (BPF_PROG_TEST_RUN)");
        return;
    }
    let mut h = Harness::new();
    let c = cache();
    let prog = load(&c);
    let questions: Vec<(&str, RecordType, Option<u16>)> = vec![
        ("web.default.svc.cluster.local.", RecordType::A, None),
        ("WeB.Default.svc.cluster.local.", RecordType::A, Some(1232)),
        ("nope.default.svc.cluster.local.", RecordType::A, None),
        (
            "web.default.svc.cluster.local.",
            RecordType::AAAA,
            Some(4096),
        ),
        (
            "_http._tcp.web.default.svc.cluster.local.",
            RecordType::SRV,
            None,
        ),
        ("alias.default.svc.cluster.local.", RecordType::A, None),
        ("a.wild.default.svc.cluster.local.", RecordType::A, None),
        ("x", RecordType::A, None),
    ];
    let mut staged = Staged::default();
    let mut expected_slots = vec![0u64; crate::io::REPLAY_SLOTS];
    for &(name, qtype, payload) in &questions {
        // Stored from a query with one ID, replayed to a query with another.
        let first = wire(name, qtype, payload, 0x1111);
        let (reply, ok) = slow(&mut h, &first);
        if !ok {
            continue;
        }
        assert!(staged.offer(c.generation(), &first, &reply, 3), "{name}");
    }
    staged.flush(&c);
    assert_eq!(staged.refused, 0);
    for &(name, qtype, payload) in &questions {
        let again = wire(name, qtype, payload, 0xbeef);
        let (reply, ok) = slow(&mut h, &again);
        let f = client_frame(&again);
        let (verdict, out) = run(&prog, &f);
        if !ok {
            assert_eq!(verdict, action::PASS as u32, "{name}: not stored");
            assert_eq!(out, f);
            continue;
        }
        assert_eq!(verdict, action::TX as u32, "{name} {qtype:?}");
        assert_eq!(out, slow_frame(&f, &reply), "{name} {qtype:?}");
        expected_slots[3] += 1;
        // A frame longer than its packet (link padding) is cut to the reply.
        let mut padded = f.clone();
        padded.resize(f.len() + 300, 0);
        assert_eq!(
            run(&prog, &padded),
            (action::TX as u32, out),
            "{name} padded"
        );
        expected_slots[3] += 1;
    }
    assert_eq!(c.counts().unwrap(), expected_slots);

    // Not answered: another case than stored, another port, a fragment, another address.
    let f = client_frame(&wire(
        "WEB.default.svc.cluster.local.",
        RecordType::A,
        None,
        5,
    ));
    assert_eq!(run(&prog, &f).0, action::PASS as u32);
    let q = wire("web.default.svc.cluster.local.", RecordType::A, None, 5);
    let other_port = udp_frame(
        CLIENT.parse().unwrap(),
        "192.0.2.1:54".parse().unwrap(),
        &q,
        false,
    );
    assert_eq!(run(&prog, &other_port).0, action::PASS as u32);
    let other_address = udp_frame(
        CLIENT.parse().unwrap(),
        "192.0.2.2:53".parse().unwrap(),
        &q,
        false,
    );
    assert_eq!(run(&prog, &other_address).0, action::PASS as u32);
    let mut fragment = client_frame(&q);
    fragment[14 + 6] |= 0x20;
    assert_eq!(run(&prog, &fragment).0, action::PASS as u32);
    let tagged = udp_frame(CLIENT.parse().unwrap(), SERVER.parse().unwrap(), &q, true);
    assert_eq!(run(&prog, &tagged).0, action::PASS as u32);
    let mut response = q.clone();
    response[2] |= 0x80;
    assert_eq!(run(&prog, &client_frame(&response)).0, action::PASS as u32);
    assert_eq!(run(&prog, &client_frame(&q)).0, action::TX as u32);

    // A new catalog: nothing stored before is sent again.
    c.invalidate().unwrap();
    assert_eq!(run(&prog, &client_frame(&q)).0, action::PASS as u32);
    assert!(c.get(c.generation(), &q).unwrap().is_none());
    let (reply, _) = slow(&mut h, &q);
    let mut staged = Staged::default();
    assert!(staged.offer(c.generation(), &q, &reply, 0));
    staged.flush(&c);
    assert_eq!(c.get(c.generation(), &q).unwrap().unwrap(), reply[2..]);
    assert_eq!(run(&prog, &client_frame(&q)).0, action::TX as u32);
}

#[test]
fn a_reply_stored_under_an_old_generation_is_never_sent() {
    if !is_root() {
        eprintln!("skipped: needs root (BPF_PROG_TEST_RUN)");
        return;
    }
    let mut h = Harness::new();
    let c = cache();
    let prog = load(&c);
    let q = wire("web.default.svc.cluster.local.", RecordType::A, None, 5);
    let (reply, _) = slow(&mut h, &q);
    // A worker read generation 0, then the catalog was swapped before it stored.
    let old = c.generation();
    c.invalidate().unwrap();
    let mut staged = Staged::default();
    assert!(staged.offer(old, &q, &reply, 0));
    staged.flush(&c);
    assert_eq!(run(&prog, &client_frame(&q)).0, action::PASS as u32);
}
