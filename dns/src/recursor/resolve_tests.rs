//! The state machine against a simulated hierarchy served by this project's authoritative core.

use super::*;
use crate::recursor::testing::{Net, addr, authority, wire};
use crate::wire::edns::RR_LEN;
use crate::wire::header::{HeaderMut, ID};
use dataplane_common::clock::Clock;

const ROOT_ZONE: &str = "$ORIGIN .\n$TTL 3600\n\
. SOA a.root. hm.root. 1 7200 900 1209600 300\n. NS a.root.\na.root. A 10.0.0.1\n\
test. NS ns.test.\nns.test. A 10.0.0.2\n";

const TEST_ZONE: &str = "$ORIGIN test.\n$TTL 3600\n\
@ SOA ns hm 1 7200 900 1209600 300\n@ NS ns\nns A 10.0.0.2\n\
example NS ns0.example\nexample NS ns1.example\nns0.example A 10.0.0.9\nns1.example A 10.0.0.3\n\
other NS ns.example.test.\n";

const EXAMPLE_ZONE: &str = "$ORIGIN example.test.\n$TTL 60\n\
@ SOA ns1 hm 1 7200 900 1209600 30\n@ NS ns0\n@ NS ns1\nns0 A 10.0.0.9\nns1 A 10.0.0.3\n\
ns A 10.0.0.4\nwww A 192.0.2.1\nalias CNAME web.other.test.\n\
loop1 CNAME loop2\nloop2 CNAME loop1\n";

const OTHER_ZONE: &str = "$ORIGIN other.test.\n$TTL 60\n\
@ SOA ns.example.test. hm 1 7200 900 1209600 30\n@ NS ns.example.test.\nweb A 192.0.2.2\n";

fn settings() -> Settings {
    Settings {
        root_hints: vec![addr("10.0.0.1")],
        timeout: Duration::from_millis(200),
        rounds: 1,
        ..Settings::default()
    }
}

/// 10.0.0.9 (ns0.example.test) is dead; 10.0.0.4 serves other.test, glueless.
fn hierarchy() -> Net {
    let mut net = Net::new();
    net.server("10.0.0.1", authority(&[ROOT_ZONE]));
    net.server("10.0.0.2", authority(&[TEST_ZONE]));
    net.server("10.0.0.3", authority(&[EXAMPLE_ZONE]));
    net.server("10.0.0.4", authority(&[OTHER_ZONE]));
    net
}

fn addrs(a: &Answer) -> Vec<String> {
    a.sections[0]
        .iter()
        .filter_map(Rr::address)
        .map(|ip| ip.to_string())
        .collect()
}

#[test]
fn follows_referrals_with_glue_past_a_dead_server() {
    let mut net = hierarchy();
    let a = net.recursive(&settings(), "www.example.test.", TYPE_A);
    assert_eq!(a.rcode, rcode::NOERROR);
    assert_eq!(addrs(&a), ["192.0.2.1"]);
    let asked: Vec<_> = net.log.iter().map(|(s, _, _)| s.ip().to_string()).collect();
    assert_eq!(
        asked,
        ["10.0.0.1", "10.0.0.2", "10.0.0.9", "10.0.0.3"],
        "dead ns0 skipped"
    );

    // The delegation is cached: the next name starts at example.test's servers.
    net.log.clear();
    let again = net.recursive(&settings(), "ns.example.test.", TYPE_A);
    assert_eq!(addrs(&again), ["10.0.0.4"]);
    assert_eq!(net.log[0].0.ip().to_string(), "10.0.0.9");
    assert!(
        net.log
            .iter()
            .all(|(s, _, _)| s.ip().to_string() != "10.0.0.1")
    );
}

#[test]
fn cname_across_zones_with_a_glueless_delegation() {
    let mut net = hierarchy();
    let a = net.recursive(&settings(), "alias.example.test.", TYPE_A);
    assert_eq!(a.rcode, rcode::NOERROR, "{a:?}");
    assert_eq!(a.sections[0][0].rtype, TYPE_CNAME);
    assert_eq!(addrs(&a), ["192.0.2.2"]);
    // other.test's server address was resolved on the way (a nested question).
    assert!(
        net.log
            .iter()
            .any(|(_, n, t)| n == "ns.example.test." && *t == TYPE_A)
    );
    assert!(
        net.log
            .iter()
            .any(|(s, n, _)| s.ip().to_string() == "10.0.0.4" && n == "web.other.test.")
    );
}

#[test]
fn nxdomain_and_nodata_carry_the_soa() {
    let mut net = hierarchy();
    let nx = net.recursive(&settings(), "nope.example.test.", TYPE_A);
    assert_eq!(nx.rcode, rcode::NXDOMAIN);
    assert_eq!(nx.sections[1][0].rtype, TYPE_SOA);
    let nodata = net.recursive(&settings(), "www.example.test.", TYPE_AAAA);
    assert_eq!(nodata.rcode, rcode::NOERROR);
    assert!(nodata.sections[0].is_empty());
    assert_eq!(nodata.sections[1][0].soa_negative_ttl(), Some(30));
}

#[test]
fn cname_loops_and_dead_hierarchies_are_servfail_within_budget() {
    let mut net = hierarchy();
    let looped = net.recursive(&settings(), "loop1.example.test.", TYPE_A);
    assert!(looped.failed());
    net.kill("10.0.0.1");
    let mut fresh = Net::new();
    fresh.server("10.0.0.2", authority(&[TEST_ZONE]));
    let dead = fresh.recursive(&settings(), "www.example.test.", TYPE_A);
    assert!(dead.failed());
    let tight = Settings {
        budget: Budget {
            queries: 2,
            ..Budget::default()
        },
        ..settings()
    };
    let mut net = hierarchy();
    let over = net.recursive(&tight, "www.example.test.", TYPE_A);
    assert!(over.failed());
    assert_eq!(net.log.len(), 2, "no query past the budget");
    assert_eq!(net.stats.exhausted, Some(Limit::Queries));
}

#[test]
fn a_lame_server_is_skipped() {
    let mut net = hierarchy();
    // ns0 answers now, but REFUSED: it does not serve example.test.
    net.server("10.0.0.9", authority(&[OTHER_ZONE]));
    let a = net.recursive(&settings(), "www.example.test.", TYPE_A);
    assert_eq!(addrs(&a), ["192.0.2.1"]);
    assert!(net.verdicts.contains(&Verdict::Lame));
}

#[test]
fn spoofed_replies_are_ignored() {
    let mut net = hierarchy();
    let mut n = 0;
    net.spoof = Some(Box::new(move |q: &[u8]| {
        n += 1;
        let mut forged = q.to_vec();
        forged[2] |= 0x80; // QR
        match n % 3 {
            // Wrong ID from the right server.
            0 => {
                let id = u16::from_be_bytes([q[ID], q[ID + 1]]) ^ 0x5555;
                HeaderMut::new(&mut forged).unwrap().set_id(id);
                (addr("10.0.0.2"), forged)
            }
            // Right ID, wrong source.
            1 => (addr("10.6.6.6"), forged),
            // Right ID and source, another question.
            _ => {
                let at = forged.len() - 4 - RR_LEN;
                forged[at - 2] ^= 0x20; // a different letter, not just case
                (addr("10.0.0.1"), forged)
            }
        }
    }));
    let a = net.recursive(&settings(), "www.example.test.", TYPE_A);
    assert_eq!(addrs(&a), ["192.0.2.1"], "the real replies still win");
    let ignored = net
        .verdicts
        .iter()
        .filter(|v| **v == Verdict::Ignored)
        .count();
    assert!(ignored >= 3, "{:?}", net.verdicts);
    assert!(
        net.cache
            .closest_delegation(net.clock.now(), &wire("www.example.test."))
            .is_some()
    );
}

#[test]
fn out_of_bailiwick_answers_are_not_believed() {
    let mut net = hierarchy();
    // example.test's server also claims web.other.test (not its zone) at an attacker's address.
    let mut real = authority(&[EXAMPLE_ZONE]);
    let clock = net.clock.clone();
    net.server(
        "10.0.0.3",
        Box::new(move |q| {
            let reply = real(q)?;
            let mut m = Message::parse(&reply).ok()?;
            if *m.qname != *wire("alias.example.test.") {
                return Some(reply);
            }
            m.answer.push(Rr {
                owner: wire("web.other.test.").into(),
                rtype: TYPE_A,
                class: 1,
                ttl: 60,
                rdata: [6, 6, 6, 6].into(),
            });
            let e = Entry::build(
                clock.now(),
                &crate::recursor::cache::Settings::default(),
                &m.qname,
                m.qtype,
                0,
                [&m.answer, &[], &[]],
            )
            .ok()?;
            let mut reply = e.wire().to_vec();
            reply[..2].copy_from_slice(&m.id.to_be_bytes());
            Some(reply)
        }),
    );
    let a = net.recursive(&settings(), "alias.example.test.", TYPE_A);
    assert_eq!(addrs(&a), ["192.0.2.2"], "{a:?}");
    assert_eq!(net.stats.rejected_answers, 1, "{:?}", net.stats);
}

#[test]
fn qname_minimisation_asks_one_label_at_a_time() {
    let mut net = hierarchy();
    let s = Settings {
        qname_minimisation: true,
        ..settings()
    };
    let a = net.recursive(&s, "www.example.test.", TYPE_A);
    assert_eq!(addrs(&a), ["192.0.2.1"]);
    let root_asked: Vec<_> = net
        .log
        .iter()
        .filter(|(s, _, _)| s.ip().to_string() == "10.0.0.1")
        .map(|(_, n, t)| (n.clone(), *t))
        .collect();
    assert_eq!(
        root_asked,
        [("test.".to_owned(), TYPE_A)],
        "the root never sees www"
    );
    assert!(
        net.log
            .iter()
            .any(|(s, n, _)| s.ip().to_string() == "10.0.0.2" && n == "example.test.")
    );
}

#[test]
fn forward_mode_fails_over_to_the_next_upstream() {
    let mut net = hierarchy();
    let r = Resolution::forward(
        net.clock.now(),
        settings(),
        vec![addr("10.0.0.8"), addr("10.0.0.3")],
        &wire("www.example.test."),
        TYPE_A,
    );
    let a = net.drive(r);
    assert_eq!(addrs(&a), ["192.0.2.1"]);
    assert_eq!(net.log.len(), 2);
}

/// `m` encoded again (every record with the smallest TTL), as its server would send it.
fn reencode(now: Instant, m: &Message) -> Option<Vec<u8>> {
    let e = Entry::build(
        now,
        &crate::recursor::cache::Settings::default(),
        &m.qname,
        m.qtype,
        m.rcode() as u8,
        [&m.answer, &m.authority, &m.additional],
    )
    .ok()?;
    let mut reply = e.wire().to_vec();
    reply[..2].copy_from_slice(&m.id.to_be_bytes());
    Some(reply)
}

#[test]
fn stray_glue_and_upward_referrals_are_refused_and_counted() {
    let mut net = hierarchy();
    let clock = net.clock.clone();
    // test.'s server slips in an address for a root server with its referral.
    let mut tld = authority(&[TEST_ZONE]);
    net.server(
        "10.0.0.2",
        Box::new(move |q| {
            let mut m = Message::parse(&tld(q)?).ok()?;
            m.additional.push(Rr {
                owner: wire("a.root.").into(),
                rtype: TYPE_A,
                class: 1,
                ttl: 60,
                rdata: [6, 6, 6, 6].into(),
            });
            reencode(clock.now(), &m)
        }),
    );
    // example.test.'s server refers back up to test., at an attacker's server.
    let clock = net.clock.clone();
    net.server(
        "10.0.0.3",
        Box::new(move |q| {
            let mut m = Message::parse(q).ok()?;
            m.authority.push(Rr {
                owner: wire("test.").into(),
                rtype: TYPE_NS,
                class: 1,
                ttl: 60,
                rdata: wire("ns.evil.").into(),
            });
            m.additional.push(Rr {
                owner: wire("ns.evil.").into(),
                rtype: TYPE_A,
                class: 1,
                ttl: 60,
                rdata: [6, 6, 6, 7].into(),
            });
            reencode(clock.now(), &m)
        }),
    );
    let a = net.recursive(&settings(), "www.example.test.", TYPE_A);
    assert!(a.failed(), "{a:?}");
    assert_eq!(net.stats.rejected_glue, 1, "{:?}", net.stats);
    assert!(net.stats.rejected_referrals >= 1, "{:?}", net.stats);
    assert!(
        !net.log
            .iter()
            .any(|(s, _, _)| s.ip().to_string().starts_with("6.6.6")),
        "{:?}",
        net.log
    );
}
