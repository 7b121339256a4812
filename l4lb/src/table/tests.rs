//! The table against a `HashMap` oracle, its memory budget, eviction and the sweep.

use super::*;
use crate::flow::{Addr, TCP, UDP};
use dataplane_common::model::ForwardingMode;
use proptest::prelude::*;
use std::collections::HashMap;

fn client_tuple(k: u16) -> Tuple {
    Tuple {
        src: Addr::v4([10, 0, (k >> 8) as u8, k as u8]),
        dst: Addr::v4([192, 0, 2, 1]),
        src_port: 40_000 + (k % 7),
        dst_port: 80,
        proto: TCP,
    }
}

fn real_tuple(k: u16) -> Tuple {
    Tuple {
        src: Addr::v6([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]),
        dst: Addr::v6([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
        src_port: 8080,
        dst_port: 1024 + k,
        proto: UDP,
    }
}

fn session(k: u16, now: Tick) -> Session {
    Session {
        client: client_tuple(k),
        real: real_tuple(k),
        vip: 0,
        real_server: u32::from(k),
        created: now,
        last_seen: now,
        packets: 0,
        bytes: 0,
        state: State::Udp,
        mode: ForwardingMode::FullNat,
        ..Session::FREE
    }
}

fn table(capacity: u32) -> Table {
    Table::new(Config {
        capacity,
        seed: 0x1234_5678,
        timeouts: Timeouts {
            udp: 100,
            ..Timeouts::default()
        },
        min_idle_to_evict: 50,
    })
}

#[test]
fn memory_budget_for_ten_million_sessions() {
    let session = size_of::<Session>();
    assert!(session <= 128, "a session is {session} bytes");
    assert_eq!(session, 128);
    // 128 (session) + 4 (free stack) + 2 indexes × 2 slots × 8 bytes = 164 bytes.
    assert_eq!(Table::BYTES_PER_SESSION, 164);
    let total = 10_000_000 * Table::BYTES_PER_SESSION;
    assert!(total < 2 << 30, "{total} bytes for 10M sessions");
}

#[test]
fn duplicate_tuples_are_refused() {
    let mut t = table(8);
    t.insert(0, session(1, 0)).unwrap();
    assert_eq!(t.insert(0, session(1, 0)), Err(InsertError::Duplicate));
    let mut other = session(2, 0);
    other.real = real_tuple(1);
    assert_eq!(t.insert(0, other), Err(InsertError::Duplicate));
    t.check_invariants();
}

#[test]
fn full_table_evicts_the_oldest_idle_session_or_refuses() {
    let mut t = table(4);
    for k in 0..4 {
        t.insert(10 * u32::from(k), session(k, 10 * u32::from(k)))
            .unwrap();
    }
    // Everything was seen less than `min_idle_to_evict` (50) ago: refuse.
    assert_eq!(t.insert(49, session(9, 49)), Err(InsertError::Full));
    // At 50, session 0 has been idle for 50 and is the oldest: it goes.
    let inserted = t.insert(50, session(9, 50)).unwrap();
    assert_eq!(inserted.evicted.map(|s| s.client), Some(client_tuple(0)));
    assert_eq!(t.find_client(&client_tuple(0)), None);
    assert_eq!(t.find_client(&client_tuple(9)), Some(inserted.id));
    // Session 1 is refreshed, so session 2 is now the oldest.
    let id1 = t.find_client(&client_tuple(1)).unwrap();
    t.get_mut(id1).last_seen = 50;
    let inserted = t.insert(90, session(10, 90)).unwrap();
    assert_eq!(inserted.evicted.map(|s| s.client), Some(client_tuple(2)));
    t.check_invariants();
}

#[test]
fn sweep_visits_a_bounded_number_of_slots() {
    let mut t = table(16);
    for k in 0..16 {
        t.insert(0, session(k, 0)).unwrap();
    }
    let mut expired = Vec::new();
    assert_eq!(t.sweep(99, 16, |s| expired.push(s.client)), 0);
    assert_eq!(t.sweep(100, 5, |s| expired.push(s.client)), 5);
    assert_eq!(t.len(), 11);
    assert_eq!(t.sweep(100, 100, |s| expired.push(s.client)), 11);
    assert_eq!(expired.len(), 16);
    assert!(t.is_empty());
    t.check_invariants();
}

#[test]
fn sweep_with_keeps_what_it_is_told_to() {
    let mut t = table(8);
    for k in 0..8 {
        let mut s = session(k, 0);
        s.fast = k % 2 == 0;
        t.insert(0, s).unwrap();
    }
    let mut asked = Vec::new();
    let mut gone = 0;
    let n = t.sweep_with(
        1_000_000,
        8,
        |id, s| {
            asked.push(id);
            s.fast
        },
        |_| gone += 1,
    );
    assert_eq!((n, gone, t.len(), asked.len()), (4, 4, 4, 8));
    assert!(t.slots().iter().filter(|s| s.is_live()).all(|s| s.fast));
    t.check_invariants();
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u16),
    Lookup(u16),
    Remove(u16),
    Touch(u16),
    Advance(u8),
    Sweep(u8),
}

fn op() -> impl Strategy<Value = Op> {
    // A small key space, so that inserts collide, removes hit, and the table fills up.
    let k = 0u16..40;
    prop_oneof![
        4 => k.clone().prop_map(Op::Insert),
        3 => k.clone().prop_map(Op::Lookup),
        2 => k.clone().prop_map(Op::Remove),
        2 => k.prop_map(Op::Touch),
        1 => any::<u8>().prop_map(Op::Advance),
        1 => (1u8..40).prop_map(Op::Sweep),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random insert/lookup/remove/touch/expire sequences against a `HashMap` oracle that
    /// applies the documented policies (duplicates refused, sampled eviction when full,
    /// expiry by idle time).
    #[test]
    fn matches_a_hashmap_oracle(ops in proptest::collection::vec(op(), 1..300)) {
        const CAP: u32 = 24; // below EVICTION_SAMPLE: eviction picks the exact oldest
        let mut t = table(CAP);
        // client key -> last_seen
        let mut oracle: HashMap<u16, Tick> = HashMap::new();
        let mut now: Tick = 0;
        for op in ops {
            match op {
                Op::Insert(k) => {
                    let got = t.insert(now, session(k, now));
                    if oracle.contains_key(&k) {
                        prop_assert_eq!(got, Err(InsertError::Duplicate));
                    } else if oracle.len() as u32 == CAP {
                        let (&oldest, &seen) = oracle
                            .iter()
                            .max_by_key(|&(&key, &seen)| (now - seen, std::cmp::Reverse(key)))
                            .unwrap();
                        if now - seen >= 50 {
                            let got = got.unwrap();
                            let ev = got.evicted.unwrap();
                            // Ties on idle time may pick any of the tied sessions.
                            let ev_key = ev.real_server as u16;
                            prop_assert_eq!(now - oracle[&ev_key], now - oracle[&oldest]);
                            oracle.remove(&ev_key);
                            oracle.insert(k, now);
                        } else {
                            prop_assert_eq!(got, Err(InsertError::Full));
                        }
                    } else {
                        prop_assert!(got.unwrap().evicted.is_none());
                        oracle.insert(k, now);
                    }
                }
                Op::Lookup(k) => {
                    let by_client = t.find_client(&client_tuple(k));
                    let by_real = t.find_real(&real_tuple(k));
                    prop_assert_eq!(by_client, by_real);
                    prop_assert_eq!(by_client.is_some(), oracle.contains_key(&k));
                    if let Some(id) = by_client {
                        prop_assert_eq!(t.get(id).last_seen, oracle[&k]);
                    }
                }
                Op::Remove(k) => {
                    if let Some(id) = t.find_client(&client_tuple(k)) {
                        let s = t.remove(id);
                        prop_assert_eq!(s.client, client_tuple(k));
                        prop_assert!(oracle.remove(&k).is_some());
                    } else {
                        prop_assert!(!oracle.contains_key(&k));
                    }
                }
                Op::Touch(k) => {
                    if let Some(id) = t.find_client(&client_tuple(k)) {
                        t.get_mut(id).last_seen = now;
                        oracle.insert(k, now);
                    }
                }
                Op::Advance(d) => now += Tick::from(d),
                Op::Sweep(n) => {
                    let mut gone = Vec::new();
                    t.sweep(now, u32::from(n), |s| gone.push(s.real_server as u16));
                    for k in gone {
                        // Only sessions idle for their timeout (UDP: 100) are swept.
                        prop_assert!(now - oracle[&k] >= 100);
                        oracle.remove(&k);
                    }
                }
            }
            prop_assert_eq!(t.len() as usize, oracle.len());
        }
        t.sweep(now, CAP, |s| {
            oracle.remove(&(s.real_server as u16));
        });
        prop_assert!(oracle.values().all(|&seen| now - seen < 100));
        t.check_invariants();
    }
}
