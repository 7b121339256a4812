//! Weighted Maglev consistent hashing (Eisenbud et al., NSDI 2016, §3.4).
//!
//! Each backend walks its own permutation of the M table slots (offset and skip from its
//! identity hash, M prime so every skip generates the whole table) and claims its next free
//! slot in turn. Weights are met by credit: each round a backend earns its weight and claims
//! a slot per `max_weight` of credit, so table shares are proportional to weights. A lookup
//! is one modulo and one load.
//!
//! Build cost: M claims, each probing until a free slot. Probes total about M·ln M in the
//! worst case (the last free slots are found by the coupon collector), ≈ 12 M for M = 65 537,
//! each a bounds-checked load; in practice about a millisecond. It is not strictly O(M).

use super::{Backend, Scheduler};
use crate::flow;
use std::net::IpAddr;

const OFFSET_SEED: u64 = 0xbb67_ae85_84ca_a73b;
const SKIP_SEED: u64 = 0x3c6e_f372_fe94_f82b;
const EMPTY: u32 = u32::MAX;

/// The most backends a table addresses (entries are `u16`).
pub const MAX_BACKENDS: usize = 1 << 16;

/// A built Maglev lookup table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maglev {
    /// Backend index per slot; empty if no backend has a weight.
    table: Box<[u16]>,
}

/// Whether `n` is prime (trial division; tables are built off the hot path).
pub(crate) fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u32;
    while d.saturating_mul(d) <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

impl Maglev {
    /// The default table size: prime, ≥ 100 × a few hundred backends.
    pub const DEFAULT_SIZE: u32 = 65_537;

    /// Builds the table. `size` MUST be prime and SHOULD be well above 100 × the number of
    /// backends (the paper's bound for ≤ 1% imbalance); at most [`MAX_BACKENDS`] are used.
    pub fn new(backends: &[Backend], size: u32) -> Self {
        debug_assert!(
            is_prime(size),
            "invariant: the Maglev table size MUST be prime"
        );
        let m = size as usize;
        let mut live: Vec<usize> = (0..backends.len().min(MAX_BACKENDS))
            .filter(|&i| backends[i].weight > 0)
            .collect();
        if live.is_empty() || m < 2 {
            return Self {
                table: Box::new([]),
            };
        }
        // Claim order follows identity, not list order, so reordering the list changes nothing.
        live.sort_by_key(|&i| (backends[i].key, i));
        let max_weight = live.iter().map(|&i| backends[i].weight).max().unwrap_or(1);
        let (mut next, skip): (Vec<usize>, Vec<usize>) = live
            .iter()
            .map(|&i| {
                let k = backends[i].key;
                let offset = (flow::hash_u64(k, OFFSET_SEED) % m as u64) as usize;
                let skip = (flow::hash_u64(k, SKIP_SEED) % (m as u64 - 1)) as usize + 1;
                (offset, skip)
            })
            .unzip();
        let mut credit = vec![0u64; live.len()];
        let mut table = vec![EMPTY; m];
        let mut filled = 0;
        'fill: loop {
            for (j, &i) in live.iter().enumerate() {
                credit[j] += u64::from(backends[i].weight);
                if credit[j] < u64::from(max_weight) {
                    continue;
                }
                credit[j] -= u64::from(max_weight);
                loop {
                    let slot = next[j];
                    next[j] += skip[j];
                    if next[j] >= m {
                        next[j] -= m;
                    }
                    if table[slot] == EMPTY {
                        table[slot] = i as u32;
                        break;
                    }
                }
                filled += 1;
                if filled == m {
                    break 'fill;
                }
            }
        }
        Self {
            table: table.into_iter().map(|i| i as u16).collect(),
        }
    }

    /// The backend for `hash`, or `None` if no backend has a weight.
    #[inline]
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        if self.table.is_empty() {
            return None;
        }
        Some(usize::from(
            self.table[(hash % self.table.len() as u64) as usize],
        ))
    }

    /// The table: backend index per slot.
    pub fn table(&self) -> &[u16] {
        &self.table
    }
}

impl Scheduler for Maglev {
    #[inline]
    fn pick(&self, flow_hash: u64, _client: IpAddr) -> Option<usize> {
        self.lookup(flow_hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn backends(n: u8, weight: impl Fn(u8) -> u32) -> Vec<Backend> {
        (0..n)
            .map(|i| {
                Backend::new(
                    IpAddr::V4(Ipv4Addr::new(10, 1, 0, i)),
                    8080,
                    weight(i),
                    true,
                )
            })
            .collect()
    }

    fn shares(m: &Maglev, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &i in m.table() {
            c[usize::from(i)] += 1;
        }
        c
    }

    #[test]
    fn default_size_is_prime() {
        assert!(is_prime(Maglev::DEFAULT_SIZE));
        assert!(is_prime(13) && !is_prime(65_535) && !is_prime(1));
    }

    #[test]
    fn equal_weights_spread_within_ten_percent() {
        for n in [3u8, 10, 50, 200] {
            let m = Maglev::new(&backends(n, |_| 1), Maglev::DEFAULT_SIZE);
            let fair = f64::from(Maglev::DEFAULT_SIZE) / f64::from(n);
            for (i, &c) in shares(&m, usize::from(n)).iter().enumerate() {
                let off = (c as f64 - fair).abs() / fair;
                assert!(off <= 0.10, "n={n} backend {i}: {c} slots vs {fair:.0}");
            }
        }
    }

    #[test]
    fn weights_are_respected_and_zero_gets_nothing() {
        let b = backends(4, |i| [1, 2, 4, 0][usize::from(i)]);
        let m = Maglev::new(&b, Maglev::DEFAULT_SIZE);
        let s = shares(&m, 4);
        let total = f64::from(Maglev::DEFAULT_SIZE);
        for (i, w) in [1.0, 2.0, 4.0].iter().enumerate() {
            let want = total * w / 7.0;
            assert!(
                (s[i] as f64 - want).abs() / want < 0.05,
                "backend {i}: {} vs {want:.0}",
                s[i]
            );
        }
        assert_eq!(s[3], 0);
    }

    #[test]
    fn no_weighted_backend_picks_nothing() {
        let m = Maglev::new(&backends(3, |_| 0), 13);
        assert_eq!(m.lookup(7), None);
        assert_eq!(Maglev::new(&[], 13).lookup(7), None);
    }

    #[test]
    fn disruption_of_removing_one_of_ten_is_about_one_tenth() {
        let all = backends(10, |_| 1);
        let before = Maglev::new(&all, Maglev::DEFAULT_SIZE);
        let removed = 3;
        let rest: Vec<Backend> = all
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != removed)
            .map(|(_, b)| *b)
            .collect();
        let after = Maglev::new(&rest, Maglev::DEFAULT_SIZE);
        let flows = 100_000u64;
        let mut moved = 0;
        for f in 0..flows {
            let h = flow::hash_u64(f, 42);
            let a = all[before.lookup(h).unwrap()].key;
            let b = rest[after.lookup(h).unwrap()].key;
            if a != b {
                moved += 1;
            }
        }
        let fraction = moved as f64 / flows as f64;
        assert!(
            fraction > 0.09,
            "{fraction}: at least the removed share moves"
        );
        assert!(fraction < 1.3 / 10.0, "{fraction} of flows moved");
    }

    #[test]
    fn list_order_does_not_change_the_table() {
        let b = backends(5, |i| u32::from(i) + 1);
        let mut r = b.clone();
        r.reverse();
        let (x, y) = (Maglev::new(&b, 251), Maglev::new(&r, 251));
        for h in 0..251u64 {
            assert_eq!(b[x.lookup(h).unwrap()], r[y.lookup(h).unwrap()]);
        }
    }

    /// Golden: the table for a fixed backend set must not drift between releases, or every
    /// balancer upgrade would move flows.
    #[test]
    fn golden_table() {
        let m = Maglev::new(&backends(3, |i| u32::from(i) + 1), 13);
        assert_eq!(m.table(), GOLDEN_13);
    }

    const GOLDEN_13: &[u16] = &[2, 1, 2, 2, 1, 0, 0, 1, 2, 2, 1, 2, 2];
}
