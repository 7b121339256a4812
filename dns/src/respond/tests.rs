//! Wire behaviour of [`Responder`](super::Responder), checked by decoding every reply with
//! hickory-proto.

use super::testing::{Harness, four, query};
use super::{DropReason, Options, Outcome, Transport};
use dataplane_common::model::{AnswerPolicy, RData};
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{RData as HData, Record, RecordType};
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

const Q: &str = ".default.svc.cluster.local.";

fn fq(label: &str) -> String {
    format!("{label}{Q}")
}

fn addrs(records: &[Record]) -> Vec<IpAddr> {
    records.iter().filter_map(|r| r.data.ip_addr()).collect()
}

fn soa_ttl(m: &Message) -> u32 {
    assert_eq!(m.authorities.len(), 1, "{m:?}");
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(
        m.authorities[0].name.to_ascii(),
        "default.svc.cluster.local."
    );
    m.authorities[0].ttl
}

fn policy_addrs() -> Vec<IpAddr> {
    four()
        .into_iter()
        .map(|r| match r {
            RData::A { address } => IpAddr::V4(address),
            _ => unreachable!(),
        })
        .collect()
}

#[test]
fn a_single_is_authoritative_and_echoes_rd() {
    let mut h = Harness::new();
    let m = h.query(&fq("web"), RecordType::A);
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert_eq!(m.metadata.id, 0x1234);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(
        m.metadata.authoritative && m.metadata.recursion_desired && !m.metadata.recursion_available
    );
    assert_eq!(addrs(&m.answers), vec![IpAddr::from([10, 0, 1, 1])]);
    assert_eq!(m.answers[0].name.to_ascii(), fq("web"));
    assert_eq!(m.answers[0].ttl, 30);
    assert!(m.authorities.is_empty() && m.additionals.is_empty() && m.edns.is_none());
}

#[test]
fn a_multi_all_shuffles_every_address() {
    let mut h = Harness::new();
    let mut orders = HashSet::new();
    for _ in 0..50 {
        let m = h.query(&fq("multi"), RecordType::A);
        let got = addrs(&m.answers);
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            (1..=4)
                .map(|i| IpAddr::from([10, 0, 2, i]))
                .collect::<Vec<_>>()
        );
        orders.insert(got);
    }
    assert!(orders.len() > 5, "shuffled: {} orders", orders.len());
}

#[test]
fn round_robin_rotates() {
    let mut h = Harness::new();
    let mut counts: HashMap<IpAddr, usize> = HashMap::new();
    for _ in 0..8 {
        let (o, m) = h.send(&query(&fq("rr"), RecordType::A, None), Transport::Udp);
        assert!(matches!(
            o,
            Outcome::Reply {
                policy: Some(AnswerPolicy::OneRoundRobin),
                ..
            }
        ));
        let a = addrs(&m.answers);
        assert_eq!(a.len(), 1);
        *counts.entry(a[0]).or_default() += 1;
    }
    assert_eq!(counts.len(), 4);
    assert!(counts.values().all(|&c| c == 2), "{counts:?}");
}

fn persistent_pick(h: &mut Harness, client: SocketAddr, owner: &str) -> IpAddr {
    h.client = client;
    let m = h.query(&fq(owner), RecordType::A);
    let a = addrs(&m.answers);
    assert_eq!(a.len(), 1, "{m:?}");
    a[0]
}

fn client(i: u32) -> SocketAddr {
    SocketAddr::new(IpAddr::from((0x0a64_0000u32 + i * 7).to_be_bytes()), 40_000)
}

#[test]
fn persistent_same_client_same_address() {
    let mut h = Harness::new();
    let first = persistent_pick(&mut h, client(1), "sticky");
    for _ in 0..1000 {
        assert_eq!(persistent_pick(&mut h, client(1), "sticky"), first);
    }
    // Another worker (another seed) picks the same: the hash has fixed keys.
    let mut other = Harness::with(Options::default(), &HashSet::new());
    other.responder = super::Responder::new(99, Options::default());
    assert_eq!(persistent_pick(&mut other, client(1), "sticky"), first);
}

#[test]
fn persistent_spread_is_even_and_down_moves_only_its_clients() {
    let mut h = Harness::new();
    let picks: Vec<IpAddr> = (0..10_000)
        .map(|i| persistent_pick(&mut h, client(i), "sticky"))
        .collect();
    let mut counts: HashMap<IpAddr, usize> = HashMap::new();
    for p in &picks {
        *counts.entry(*p).or_default() += 1;
    }
    assert_eq!(counts.len(), 4);
    for (a, c) in &counts {
        assert!((2125..=2875).contains(c), "{a}: {c} of 10000");
    }

    let gone = policy_addrs()[2];
    let down: HashSet<IpAddr> = [gone].into();
    let mut h2 = Harness::with(Options::default(), &down);
    for (i, before) in picks.iter().enumerate() {
        let after = persistent_pick(&mut h2, client(i as u32), "sticky");
        if *before == gone {
            assert_ne!(after, gone);
        } else {
            assert_eq!(
                after, *before,
                "client {i} moved although its address stayed up"
            );
        }
    }
}

#[test]
fn persistent_prefix_groups_clients() {
    let options = Options {
        client_prefix_v4: 24,
        ..Options::default()
    };
    let mut h = Harness::with(options, &HashSet::new());
    for net in 0..20u8 {
        let base = persistent_pick(&mut h, SocketAddr::from(([10, 7, net, 1], 1)), "sticky");
        for host in 2..40u8 {
            assert_eq!(
                persistent_pick(&mut h, SocketAddr::from(([10, 7, net, host], 1)), "sticky"),
                base
            );
        }
    }
}

#[test]
fn sticky_table_keeps_a_client_when_addresses_join_and_fails_back() {
    // All four down but one: every client lands on the survivor, then others come back.
    let survivor = policy_addrs()[0];
    let down: HashSet<IpAddr> = policy_addrs()[1..].iter().copied().collect();
    let mut h = Harness::with(Options::default(), &down);
    let c = client(3);
    assert_eq!(persistent_pick(&mut h, c, "affine"), survivor);
    // The others come back: with the sticky entry the client stays on the survivor ...
    h.catalog = h.catalog.with_down(&HashSet::new());
    for _ in 0..10 {
        assert_eq!(persistent_pick(&mut h, c, "affine"), survivor);
    }
    // ... until the entry expires: then it gets the plain rendezvous pick.
    h.now += Duration::from_secs(61);
    let fresh = persistent_pick(&mut h, c, "affine");
    let no_sticky = Options {
        sticky_entries: 0,
        ..Options::default()
    };
    let mut plain = Harness::with(no_sticky, &HashSet::new());
    assert_eq!(fresh, persistent_pick(&mut plain, c, "affine"));
}

#[test]
fn sticky_fail_back_is_an_option() {
    for fail_back in [true, false] {
        let options = Options {
            fail_back,
            ..Options::default()
        };
        let mut h = Harness::with(options, &HashSet::new());
        let c = client(5);
        let home = persistent_pick(&mut h, c, "affine");
        h.catalog = h.catalog.with_down(&[home].into());
        let moved = persistent_pick(&mut h, c, "affine");
        assert_ne!(moved, home);
        h.catalog = h.catalog.with_down(&HashSet::new());
        let back = persistent_pick(&mut h, c, "affine");
        assert_eq!(
            back,
            if fail_back { home } else { moved },
            "fail_back={fail_back}"
        );
    }
}

#[test]
fn all_down_fails_open_or_servfails() {
    let down: HashSet<IpAddr> = policy_addrs().into_iter().collect();
    let mut h = Harness::with(Options::default(), &down);
    let m = h.query(&fq("sticky"), RecordType::A);
    assert_eq!(addrs(&m.answers).len(), 1, "fail open still answers");
    let closed = Options {
        fail_open: false,
        ..Options::default()
    };
    let mut h = Harness::with(closed, &down);
    let m = h.query(&fq("sticky"), RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(m.answers.is_empty());
}

#[test]
fn aaaa_nodata_carries_soa_with_negative_ttl() {
    let mut h = Harness::new();
    let m = h.query(&fq("web"), RecordType::AAAA);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative && m.answers.is_empty());
    assert_eq!(soa_ttl(&m), 10, "min(SOA TTL 30, minimum 10)");
}

#[test]
fn nxdomain_carries_soa_in_authority() {
    let mut h = Harness::new();
    let m = h.query(&fq("nope"), RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authoritative && m.answers.is_empty());
    assert_eq!(soa_ttl(&m), 10);
    match &m.authorities[0].data {
        HData::SOA(soa) => {
            assert_eq!(soa.minimum, 10);
            assert_eq!(soa.mname.to_ascii(), fq("ns1"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn srv_answers() {
    let mut h = Harness::new();
    let m = h.query(&fq("_http._tcp.web"), RecordType::SRV);
    assert_eq!(m.answers.len(), 1);
    match &m.answers[0].data {
        HData::SRV(srv) => {
            assert_eq!((srv.priority, srv.weight, srv.port), (0, 50, 80));
            assert_eq!(srv.target.to_ascii(), fq("web"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn cname_chain_is_followed_in_zone() {
    let mut h = Harness::new();
    let m = h.query(&fq("alias"), RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let kinds: Vec<_> = m
        .answers
        .iter()
        .map(|r| (r.name.to_ascii(), r.record_type()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (fq("alias"), RecordType::CNAME),
            (fq("alias2"), RecordType::CNAME),
            (fq("web"), RecordType::A),
        ]
    );
    // A chain that ends in NODATA carries the SOA.
    let m = h.query(&fq("alias"), RecordType::AAAA);
    assert_eq!(m.answers.len(), 2);
    assert_eq!(soa_ttl(&m), 10);
}

#[test]
fn wildcard_synthesizes_and_empty_non_terminal_blocks() {
    let mut h = Harness::new();
    let m = h.query(&fq("anything.wild"), RecordType::A);
    assert_eq!(addrs(&m.answers), vec![IpAddr::from([10, 0, 3, 1])]);
    assert_eq!(m.answers[0].name.to_ascii(), fq("anything.wild"));
    let m = h.query(&fq("a.b.wild"), RecordType::A);
    assert_eq!(addrs(&m.answers), vec![IpAddr::from([10, 0, 3, 1])]);
    // `ent.wild` exists (it has a child), so the wildcard does not apply to it.
    let m = h.query(&fq("ent.wild"), RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    // ... nor below it: its closest encloser is `ent.wild`, which has no `*` child.
    let m = h.query(&fq("y.ent.wild"), RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
}

#[test]
fn delegation_is_a_referral_with_glue() {
    let mut h = Harness::new();
    let m = h.query(&fq("www.sub"), RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(!m.metadata.authoritative);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities.len(), 1);
    assert_eq!(m.authorities[0].name.to_ascii(), fq("sub"));
    assert_eq!(m.authorities[0].record_type(), RecordType::NS);
    assert_eq!(m.additionals.len(), 1);
    assert_eq!(m.additionals[0].name.to_ascii(), fq("ns.sub"));
    assert_eq!(addrs(&m.additionals), vec![IpAddr::from([10, 0, 9, 9])]);
}

#[test]
fn any_gets_one_rrset() {
    let mut h = Harness::new();
    let m = h.query("default.svc.cluster.local.", RecordType::ANY);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].record_type(), RecordType::SOA);
}

#[test]
fn edns_is_echoed_and_badvers_answered() {
    let mut h = Harness::new();
    let (_, m) = h.send(
        &query(&fq("web"), RecordType::A, Some(4096)),
        Transport::Udp,
    );
    let edns = m.edns.as_ref().expect("OPT echoed");
    assert_eq!(edns.max_payload(), 1232);
    assert_eq!(edns.version(), 0);
    assert_eq!(m.answers.len(), 1);

    let mut q = query(&fq("web"), RecordType::A, Some(4096));
    q.edns.as_mut().unwrap().set_version(1);
    let (o, m) = h.send(&q, Transport::Udp);
    assert!(matches!(o, Outcome::Reply { rcode: 16, .. }));
    assert_eq!(
        u16::from(m.metadata.response_code),
        16,
        "BADVERS via the OPT extended rcode"
    );
    assert!(m.answers.is_empty() && m.edns.is_some());
}

#[test]
fn too_big_for_udp_is_truncated_and_tcp_is_not() {
    let mut h = Harness::new();
    let (o, m) = h.send(&query(&fq("big"), RecordType::A, None), Transport::Udp);
    assert!(matches!(o, Outcome::Reply { truncated: true, len, .. } if len <= 512));
    assert!(m.metadata.truncation && m.answers.is_empty());
    assert_eq!(m.queries.len(), 1);
    // 100 A records need 1612 octets: more than the 1232 we allow even with a 4096 offer.
    let (o, m) = h.send(
        &query(&fq("big"), RecordType::A, Some(4096)),
        Transport::Udp,
    );
    assert!(matches!(
        o,
        Outcome::Reply {
            truncated: true,
            ..
        }
    ));
    assert!(m.edns.is_some(), "OPT kept in a truncated reply");
    let (o, m) = h.send(&query(&fq("big"), RecordType::A, None), Transport::Tcp);
    assert!(matches!(
        o,
        Outcome::Reply {
            truncated: false,
            ..
        }
    ));
    assert_eq!(m.answers.len(), 100);
}

#[test]
fn question_case_is_echoed() {
    let mut h = Harness::new();
    let q = query("WeB.DeFault.svc.CLUSTER.local.", RecordType::A, None);
    let wire = q.to_vec().unwrap();
    let (_, reply) = h.raw(&wire, Transport::Udp);
    let qend = 12 + "WeB.DeFault.svc.CLUSTER.local.".len() + 1 + 4;
    assert_eq!(&reply[12..qend], &wire[12..qend]);
    let m = Message::from_vec(&reply).unwrap();
    assert_eq!(
        m.queries[0].name.to_ascii(),
        "WeB.DeFault.svc.CLUSTER.local."
    );
    assert_eq!(addrs(&m.answers), vec![IpAddr::from([10, 0, 1, 1])]);
    // The answer's owner is a pointer to the question.
    assert_eq!(&reply[qend..qend + 2], &[0xC0, 0x0C]);
}

#[test]
fn names_outside_every_zone_are_refused() {
    let mut h = Harness::new();
    let m = h.query("www.example.org.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(!m.metadata.authoritative);
    assert_eq!(m.queries.len(), 1);
    let mut q = query(&fq("web"), RecordType::A, None);
    q.queries[0].query_class = hickory_proto::rr::DNSClass::CH;
    assert_eq!(
        h.send(&q, Transport::Udp).1.metadata.response_code,
        ResponseCode::Refused
    );
}

#[test]
fn garbage_after_a_header_is_formerr() {
    let mut h = Harness::new();
    let garbage = [0xAB, 0xCD, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0x3F, 1, 2];
    let (o, bytes) = h.raw(&garbage, Transport::Udp);
    assert!(matches!(o, Outcome::Reply { rcode: 1, .. }));
    let m = Message::from_vec(&bytes).unwrap();
    assert_eq!(m.metadata.id, 0xABCD);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    let mut two = query(&fq("web"), RecordType::A, None);
    two.queries.push(two.queries[0].clone());
    assert_eq!(
        h.send(&two, Transport::Udp).1.metadata.response_code,
        ResponseCode::FormErr
    );
}

#[test]
fn responses_and_runts_are_dropped() {
    let mut h = Harness::new();
    let mut q = query(&fq("web"), RecordType::A, None);
    q.metadata.message_type = MessageType::Response;
    let (o, _) = h.raw(&q.to_vec().unwrap(), Transport::Udp);
    assert_eq!(o, Outcome::Drop(DropReason::IsResponse));
    assert_eq!(
        h.raw(&[0; 11], Transport::Udp).0,
        Outcome::Drop(DropReason::TooShort)
    );
    assert_eq!(DropReason::ALL.map(DropReason::index), [0, 1, 2]);
}

#[test]
fn other_opcodes_are_not_implemented() {
    let mut h = Harness::new();
    let mut q = query(&fq("web"), RecordType::A, None);
    q.metadata.op_code = OpCode::Notify;
    let (o, m) = h.send(&q, Transport::Udp);
    assert!(matches!(o, Outcome::Reply { rcode: 4, .. }));
    assert_eq!(m.metadata.response_code, ResponseCode::NotImp);
    assert_eq!(m.metadata.op_code, OpCode::Notify);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_and_replies_decode(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut h = Harness::new();
        for transport in [Transport::Udp, Transport::Tcp] {
            if let (Outcome::Reply { .. }, reply) = h.raw(&bytes, transport) {
                prop_assert!(Message::from_vec(&reply).is_ok(), "{:02x?} -> {:02x?}", bytes, reply);
            }
        }
    }

    #[test]
    fn mutated_queries_never_panic_and_replies_decode(
        which in 0usize..8,
        flips in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..6),
        cut in any::<u16>(),
    ) {
        let names = ["web", "multi", "alias", "x.wild", "www.sub", "nope", "big", "sticky"];
        let mut wire = query(&fq(names[which]), RecordType::A, Some(1232)).to_vec().unwrap();
        for (at, v) in flips {
            let i = usize::from(at) % wire.len();
            wire[i] ^= v;
        }
        wire.truncate(usize::from(cut) % (wire.len() + 1));
        let mut h = Harness::new();
        if let (Outcome::Reply { .. }, reply) = h.raw(&wire, Transport::Udp) {
            prop_assert!(Message::from_vec(&reply).is_ok(), "{:02x?} -> {:02x?}", wire, reply);
        }
    }
}
