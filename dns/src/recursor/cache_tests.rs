use super::*;
use crate::wire::header::{ANCOUNT, ARCOUNT, Header};
use crate::wire::message::{Message, TYPE_A, TYPE_CNAME, TYPE_SOA};
use dataplane_common::clock::{Clock, ManualClock};

fn rr(owner: &[u8], rtype: u16, ttl: u32, rdata: &[u8]) -> Rr {
    Rr {
        owner: owner.into(),
        rtype,
        class: 1,
        ttl,
        rdata: rdata.into(),
    }
}

const WWW: &[u8] = b"\x03www\x07example\x00";

fn query(name: &[u8], id: u16) -> Vec<u8> {
    let mut q = vec![0u8; 512];
    let len = crate::wire::message::write_query(&mut q, id, header::RD, name, TYPE_A, 0).unwrap();
    q.truncate(len);
    q
}

fn soa(ttl: u32, minimum: u32) -> Rr {
    let mut rdata = b"\x02ns\x07example\x00\x02hm\x07example\x00".to_vec();
    for v in [1u32, 2, 3, 4, minimum] {
        rdata.extend_from_slice(&v.to_be_bytes());
    }
    rr(b"\x07example\x00", TYPE_SOA, ttl, &rdata)
}

#[test]
fn a_hit_copies_the_reply_with_the_clients_id_case_and_decremented_ttls() {
    let clock = ManualClock::new();
    let cache = Cache::new(Settings::default(), 1);
    let answer = [
        rr(WWW, TYPE_CNAME, 300, b"\x03web\x07example\x00"),
        rr(b"\x03web\x07example\x00", TYPE_A, 60, &[192, 0, 2, 1]),
    ];
    let e = Entry::build(
        clock.now(),
        cache.settings(),
        WWW,
        TYPE_A,
        0,
        [&answer, &[], &[]],
    )
    .unwrap();
    assert_eq!(e.ttl(), 60, "the smallest TTL");
    cache.insert(clock.now(), e);
    clock.advance(Duration::from_secs(10));
    let Lookup::Fresh { entry, prefetch } =
        cache.get(clock.now(), b"\x03WWW\x07Example\x00", TYPE_A)
    else {
        panic!("a hit")
    };
    assert!(!prefetch);
    let q = query(b"\x03WwW\x07eXample\x00", 0xBEEF);
    let mut out = [0u8; 512];
    let served = entry.write(clock.now(), &q, &mut out, 512, None, false);
    assert!(!served.truncated);
    let m = Message::parse(&out[..served.len]).unwrap();
    assert_eq!(m.id, 0xBEEF);
    assert_eq!(m.flags, QR | RA | header::RD);
    assert_eq!(
        &out[12..12 + 13],
        b"\x03WwW\x07eXample\x00",
        "the client's case"
    );
    assert_eq!(m.answer.len(), 2);
    assert!(m.answer.iter().all(|r| r.ttl == 50), "{:?}", m.answer);
    assert_eq!(m.answer[1].address(), Some([192, 0, 2, 1].into()));
}

#[test]
fn ttls_expire_then_stale_then_gone() {
    let clock = ManualClock::new();
    let settings = Settings {
        stale: Duration::from_secs(100),
        ..Settings::default()
    };
    let cache = Cache::new(settings, 2);
    let answer = [rr(WWW, TYPE_A, 30, &[192, 0, 2, 1])];
    let e = Entry::build(
        clock.now(),
        cache.settings(),
        WWW,
        TYPE_A,
        0,
        [&answer, &[], &[]],
    )
    .unwrap();
    cache.insert(clock.now(), e);
    clock.advance(Duration::from_secs(29));
    assert!(matches!(
        cache.get(clock.now(), WWW, TYPE_A),
        Lookup::Fresh { .. }
    ));
    clock.advance(Duration::from_secs(1));
    let Lookup::Stale(e) = cache.get(clock.now(), WWW, TYPE_A) else {
        panic!("stale at its TTL")
    };
    let mut out = [0u8; 512];
    let served = e.write(clock.now(), &query(WWW, 1), &mut out, 512, None, true);
    let m = Message::parse(&out[..served.len]).unwrap();
    assert_eq!(
        m.answer[0].ttl, STALE_TTL,
        "RFC 8767: stale answers carry 30 s"
    );
    clock.advance(Duration::from_secs(100));
    assert!(matches!(cache.get(clock.now(), WWW, TYPE_A), Lookup::Miss));
}

#[test]
fn negative_answers_live_for_the_soa_minimum_capped() {
    let clock = ManualClock::new();
    let settings = Settings {
        negative_max_ttl: 100,
        ..Settings::default()
    };
    let nx = Entry::build(
        clock.now(),
        &settings,
        WWW,
        TYPE_A,
        3,
        [&[], &[soa(3600, 60)], &[]],
    )
    .unwrap();
    assert_eq!(nx.ttl(), 60, "min(SOA TTL, MINIMUM)");
    assert_eq!(nx.rcode(), 3);
    let capped = Entry::build(
        clock.now(),
        &settings,
        WWW,
        TYPE_A,
        0,
        [&[], &[soa(900, 900)], &[]],
    )
    .unwrap();
    assert_eq!(capped.ttl(), 100, "negative_max_ttl");
    let floor = Settings {
        min_ttl: 5,
        max_ttl: 10,
        ..Settings::default()
    };
    let a = [rr(WWW, TYPE_A, 1, &[1, 2, 3, 4])];
    assert_eq!(
        Entry::build(clock.now(), &floor, WWW, TYPE_A, 0, [&a, &[], &[]])
            .unwrap()
            .ttl(),
        5
    );
    let a = [rr(WWW, TYPE_A, 99, &[1, 2, 3, 4])];
    assert_eq!(
        Entry::build(clock.now(), &floor, WWW, TYPE_A, 0, [&a, &[], &[]])
            .unwrap()
            .ttl(),
        10
    );
}

#[test]
fn too_big_for_the_client_is_truncated_and_opt_is_appended() {
    let clock = ManualClock::new();
    let settings = Settings::default();
    let answer: Vec<Rr> = (0..40)
        .map(|i| rr(WWW, TYPE_A, 60, &[10, 0, 0, i]))
        .collect();
    let e = Entry::build(clock.now(), &settings, WWW, TYPE_A, 0, [&answer, &[], &[]]).unwrap();
    let q = query(WWW, 9);
    let mut out = [0u8; 4096];
    let small = e.write(clock.now(), &q, &mut out, 512, None, false);
    assert!(small.truncated);
    let h = Header::new(&out[..small.len]).unwrap();
    assert!(h.flags() & TC != 0 && h.ancount() == 0);
    let opt = Opt {
        udp_payload: 1232,
        ext_rcode: 0,
        version: 0,
        dnssec_ok: false,
    };
    let big = e.write(clock.now(), &q, &mut out, 1232, Some(opt), false);
    assert!(!big.truncated);
    assert_eq!(u16::from_be_bytes([out[ANCOUNT], out[ANCOUNT + 1]]), 40);
    assert_eq!(u16::from_be_bytes([out[ARCOUNT], out[ARCOUNT + 1]]), 1);
}

#[test]
fn the_cache_stays_bounded_and_keeps_hit_entries() {
    let clock = ManualClock::new();
    let settings = Settings {
        capacity: 1024,
        ..Settings::default()
    };
    let cache = Cache::new(settings, 3);
    let name = |i: u32| {
        let mut n = vec![10u8];
        n.extend_from_slice(format!("n{i:09}").as_bytes());
        n.push(0);
        n
    };
    let put = |i: u32| {
        let a = [rr(&name(i), TYPE_A, 600, &[1, 1, 1, 1])];
        let e = Entry::build(
            clock.now(),
            cache.settings(),
            &name(i),
            TYPE_A,
            0,
            [&a, &[], &[]],
        )
        .unwrap();
        cache.insert(clock.now(), e);
    };
    put(0);
    for i in 1..5_000 {
        // Keep entry 0 referenced: CLOCK gives it second chances.
        assert!(matches!(
            cache.get(clock.now(), &name(0), TYPE_A),
            Lookup::Fresh { .. }
        ));
        put(i);
    }
    assert!(cache.len() <= 1024 + SHARDS, "{}", cache.len());
    assert_eq!(cache.evictions(), 5_000 - cache.len() as u64);
    assert!(matches!(
        cache.get(clock.now(), &name(0), TYPE_A),
        Lookup::Fresh { .. }
    ));
}

#[test]
fn popular_names_are_prefetched_once_near_expiry() {
    let clock = ManualClock::new();
    let cache = Cache::new(Settings::default(), 4);
    let a = [rr(WWW, TYPE_A, 100, &[1, 1, 1, 1])];
    let e = Entry::build(
        clock.now(),
        cache.settings(),
        WWW,
        TYPE_A,
        0,
        [&a, &[], &[]],
    )
    .unwrap();
    cache.insert(clock.now(), e);
    let prefetch = |c: &Cache| {
        matches!(
            c.get(clock.now(), WWW, TYPE_A),
            Lookup::Fresh { prefetch: true, .. }
        )
    };
    assert!(!prefetch(&cache));
    clock.advance(Duration::from_secs(91));
    assert!(prefetch(&cache), "popular and within the last 10%");
    assert!(!prefetch(&cache), "only one caller refreshes it");
    cache.prefetch_done(WWW, TYPE_A);
    assert!(prefetch(&cache));
}

#[test]
fn delegations_are_found_by_closest_enclosing_zone() {
    let clock = ManualClock::new();
    let cache = Cache::new(Settings::default(), 5);
    let addr: SocketAddr = "192.0.2.53:53".parse().unwrap();
    cache.insert_delegation(
        clock.now(),
        Delegation {
            zone: b"\x07example\x00".as_slice().into(),
            servers: vec![(b"\x02ns\x07example\x00".as_slice().into(), vec![addr])],
            ttl: 60,
        },
    );
    let d = cache
        .closest_delegation(clock.now(), b"\x01a\x03www\x07example\x00")
        .unwrap();
    assert_eq!(&*d.zone, b"\x07example\x00");
    assert!(
        cache
            .closest_delegation(clock.now(), b"\x03org\x00")
            .is_none()
    );
    clock.advance(Duration::from_secs(61));
    assert!(cache.closest_delegation(clock.now(), WWW).is_none());
}
