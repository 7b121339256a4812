//! Client-IP affinity (`sessionAffinity: ClientIP`): a bounded table from (client address,
//! VIP) to the real server its last new session went to. PURE, no allocation after
//! construction.
//!
//! The table is 4-way set associative: a key hashes to one set of four entries; an insert
//! takes an entry of the same key, else an expired or empty one, else the least recently
//! used one of the set. So memory is fixed, and under pressure the affinity of the least
//! recently active clients is forgotten first (their next flow is simply scheduled afresh).
//!
//! An entry holds for the VIP's timeout after the last *new session* it steered (as
//! kube-proxy's iptables `recent` match does); packets of existing sessions do not refresh it.

use crate::flow::{self, Addr};
use crate::tick::{self, Tick};

const WAYS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    client: Addr,
    vip: u32,
    real_server: u32,
    last_used: Tick,
    live: bool,
}

const EMPTY: Entry = Entry {
    client: Addr([0; 16]),
    vip: 0,
    real_server: 0,
    last_used: 0,
    live: false,
};

/// The affinity table of one worker.
#[derive(Debug)]
pub struct Persistence {
    entries: Box<[Entry]>,
    sets: usize,
    seed: u64,
}

impl Persistence {
    /// A table of at least `capacity` entries (rounded up to whole sets of four).
    pub fn new(capacity: u32, seed: u64) -> Self {
        let sets = (capacity as usize).div_ceil(WAYS).max(1);
        Self {
            entries: vec![EMPTY; sets * WAYS].into_boxed_slice(),
            sets,
            seed,
        }
    }

    #[inline]
    fn set(&self, client: &Addr, vip: u32) -> std::ops::Range<usize> {
        let h = flow::hash_addr(client, self.seed ^ u64::from(vip));
        let s = (((h >> 32) * self.sets as u64) >> 32) as usize;
        s * WAYS..s * WAYS + WAYS
    }

    /// The real server `client` is held to on `vip` at `now`, if its entry is younger than
    /// `timeout` ticks.
    pub fn get(&self, now: Tick, client: &Addr, vip: u32, timeout: Tick) -> Option<u32> {
        self.entries[self.set(client, vip)]
            .iter()
            .find(|e| e.live && e.vip == vip && e.client == *client)
            .filter(|e| tick::since(now, e.last_used) < timeout)
            .map(|e| e.real_server)
    }

    /// Holds `client` to `real_server` on `vip` from `now`; `timeout` decides which entries
    /// are expired and may be reused first.
    pub fn put(&mut self, now: Tick, client: &Addr, vip: u32, real_server: u32, timeout: Tick) {
        let range = self.set(client, vip);
        let set = &mut self.entries[range];
        let slot = set
            .iter()
            .position(|e| e.live && e.vip == vip && e.client == *client)
            .or_else(|| {
                set.iter()
                    .position(|e| !e.live || tick::since(now, e.last_used) >= timeout)
            })
            .unwrap_or_else(|| {
                (0..WAYS)
                    .max_by_key(|&i| tick::since(now, set[i].last_used))
                    .unwrap_or(0)
            });
        set[slot] = Entry {
            client: *client,
            vip,
            real_server,
            last_used: now,
            live: true,
        };
    }

    /// Renumbers entries after a new snapshot: `map(vip, real_server)` gives the new indexes,
    /// or `None` to forget the entry.
    pub fn remap(&mut self, mut map: impl FnMut(u32, u32) -> Option<(u32, u32)>) {
        for e in self.entries.iter_mut().filter(|e| e.live) {
            match map(e.vip, e.real_server) {
                Some((vip, real_server)) => {
                    e.vip = vip;
                    e.real_server = real_server;
                }
                None => *e = EMPTY,
            }
        }
        // Renumbered VIPs hash to other sets; move entries so lookups find them.
        let moved: Vec<Entry> = self
            .entries
            .iter_mut()
            .filter(|e| e.live)
            .map(|e| std::mem::replace(e, EMPTY))
            .collect();
        for e in moved {
            let range = self.set(&e.client, e.vip);
            if let Some(slot) = self.entries[range.clone()].iter().position(|x| !x.live) {
                self.entries[range.start + slot] = e;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_for_the_timeout_then_expires() {
        let mut p = Persistence::new(64, 1);
        let c = Addr::v4([198, 51, 100, 1]);
        p.put(1_000, &c, 0, 7, 500);
        assert_eq!(p.get(1_499, &c, 0, 500), Some(7));
        assert_eq!(p.get(1_499, &c, 1, 500), None, "per VIP");
        assert_eq!(p.get(1_500, &c, 0, 500), None);
    }

    #[test]
    fn bounded_and_evicts_the_least_recently_used() {
        let mut p = Persistence::new(4, 1); // one set of four
        for i in 0..5u8 {
            p.put(
                u32::from(i),
                &Addr::v4([10, 0, 0, i]),
                0,
                u32::from(i),
                1_000,
            );
        }
        assert_eq!(p.get(5, &Addr::v4([10, 0, 0, 0]), 0, 1_000), None);
        for i in 1..5u8 {
            assert_eq!(
                p.get(5, &Addr::v4([10, 0, 0, i]), 0, 1_000),
                Some(u32::from(i))
            );
        }
    }
}
