//! `one-persistent`: the same client gets the same address, and moves only when it must.
//!
//! The pick is rendezvous (highest random weight) hashing: every activated record scores
//! `hash(client key, set, record)` and the highest wins. Marking an address down moves only the
//! clients that had it; adding one moves only the clients it now wins. The hash has fixed keys,
//! so every process and every machine picks the same way (pinned by a golden test).
//!
//! The client key is the client address masked to a prefix, so a /24 can share a pick.
//! An optional bounded sticky table per worker remembers picks for the set's
//! `affinity_timeout`, so clients keep their address when new addresses join.

use crate::authority::RrSet;
use crate::authority::zone::mix64;
use std::net::IpAddr;
use std::time::Instant;

/// The key of `client` masked to its family's prefix length (lengths above the family's width
/// are clamped). Stable across processes.
pub fn client_key(client: IpAddr, v4_prefix: u8, v6_prefix: u8) -> u64 {
    match client {
        IpAddr::V4(a) => {
            let p = u32::from(v4_prefix.min(32));
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            mix64((4 << 32) | u64::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) => {
            let p = u32::from(v6_prefix.min(128));
            let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            let v = u128::from(a) & mask;
            mix64(mix64((v >> 64) as u64 ^ 6) ^ v as u64)
        }
    }
}

/// The position in `identities` of the rendezvous winner for `client` in the set `set_key`.
pub fn rendezvous(
    client: u64,
    set_key: u64,
    identities: impl Iterator<Item = u64>,
) -> Option<usize> {
    let base = mix64(client ^ set_key);
    let mut best: Option<(u64, usize)> = None;
    for (i, id) in identities.enumerate() {
        let score = mix64(base ^ id);
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, i));
        }
    }
    best.map(|(_, i)| i)
}

/// Slots probed per lookup in the sticky table.
const PROBE: usize = 4;

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Hash of client key and set; never 0 in a used slot.
    tag: u64,
    /// Identity of the first pick.
    home: u64,
    /// Identity of the pick in use.
    current: u64,
    /// `None`: empty.
    expires: Option<Instant>,
}

const EMPTY: Slot = Slot {
    tag: 0,
    home: 0,
    current: 0,
    expires: None,
};

/// Per-worker persistent picker: the client prefixes and the sticky table.
///
/// Invariant: `slots.len()` is 0 or a power of two and `mask == slots.len() - 1`.
#[derive(Debug)]
pub(crate) struct Persist {
    v4_prefix: u8,
    v6_prefix: u8,
    fail_back: bool,
    slots: Box<[Slot]>,
    mask: usize,
}

impl Persist {
    /// A picker with room for about `capacity` sticky entries (0: none).
    pub(crate) fn new(v4_prefix: u8, v6_prefix: u8, fail_back: bool, capacity: usize) -> Self {
        let len = if capacity == 0 {
            0
        } else {
            capacity.next_power_of_two()
        };
        debug_assert!(len == 0 || len.is_power_of_two());
        Self {
            v4_prefix,
            v6_prefix,
            fail_back,
            slots: vec![EMPTY; len].into(),
            mask: len.saturating_sub(1),
        }
    }

    /// The index (into `set.records()`) of `client`'s record among `active`, which MUST NOT be
    /// empty.
    pub(crate) fn pick(
        &mut self,
        now: Instant,
        client: IpAddr,
        set: &RrSet,
        active: &[u16],
    ) -> u16 {
        debug_assert!(!active.is_empty());
        let records = set.records();
        let id = |i: u16| records[usize::from(i)].identity();
        let ck = client_key(client, self.v4_prefix, self.v6_prefix);
        let top = rendezvous(ck, set.key(), active.iter().map(|&i| id(i)))
            .map_or(active[0], |p| active[p]);
        let Some(timeout) = set.affinity_timeout() else {
            return top;
        };
        if self.slots.is_empty() {
            return top;
        }
        let expires = now.checked_add(timeout);
        let find = |identity: u64| active.iter().copied().find(|&i| id(i) == identity);
        let tag = mix64(ck ^ set.key().rotate_left(29)) | 1;
        let base = tag as usize;
        let mut free = None;
        let mut oldest: Option<(Instant, usize)> = None;
        for k in 0..PROBE {
            let s = (base + k) & self.mask;
            let slot = &mut self.slots[s];
            match slot.expires {
                Some(e) if e > now => {
                    if slot.tag == tag {
                        let choice = match (find(slot.home), find(slot.current)) {
                            (Some(home), _) if self.fail_back => home,
                            (_, Some(current)) => current,
                            (Some(home), None) => home,
                            (None, None) => top,
                        };
                        slot.current = id(choice);
                        slot.expires = expires;
                        return choice;
                    }
                    if oldest.is_none_or(|(o, _)| e < o) {
                        oldest = Some((e, s));
                    }
                }
                _ => {
                    free.get_or_insert(s);
                }
            }
        }
        let victim = free.or(oldest.map(|(_, s)| s)).unwrap_or(base & self.mask);
        self.slots[victim] = Slot {
            tag,
            home: id(top),
            current: id(top),
            expires,
        };
        top
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authority::zone::fingerprint;

    /// Golden values: if these change, every deployed client moves. Don't update them casually.
    #[test]
    fn picks_are_pinned() {
        let ids: Vec<u64> = (1..=4u8).map(|i| fingerprint(&[10, 0, 5, i])).collect();
        let winners: Vec<usize> = (0..8u8)
            .map(|c| {
                let key = client_key(IpAddr::from([192, 0, 2, c]), 32, 128);
                rendezvous(key, fingerprint(b"set"), ids.iter().copied()).unwrap()
            })
            .collect();
        assert_eq!(winners, GOLDEN_WINNERS);
        assert_eq!(
            client_key(IpAddr::from([10, 0, 0, 1]), 32, 128),
            GOLDEN_KEY_V4
        );
        assert_eq!(
            client_key("2001:db8::1".parse().unwrap(), 32, 64),
            GOLDEN_KEY_V6
        );
    }

    const GOLDEN_WINNERS: [usize; 8] = [1, 2, 3, 1, 2, 2, 3, 2];
    const GOLDEN_KEY_V4: u64 = 16_222_055_366_996_457_530;
    const GOLDEN_KEY_V6: u64 = 7_937_985_044_722_065_893;

    #[test]
    fn prefixes_mask_clients() {
        let a = client_key(IpAddr::from([10, 1, 2, 3]), 24, 128);
        assert_eq!(a, client_key(IpAddr::from([10, 1, 2, 200]), 24, 128));
        assert_ne!(a, client_key(IpAddr::from([10, 1, 3, 3]), 24, 128));
        assert_eq!(
            client_key("2001:db8::1".parse().unwrap(), 32, 64),
            client_key("2001:db8::ffff".parse().unwrap(), 32, 64)
        );
        assert_eq!(
            client_key(IpAddr::from([1, 2, 3, 4]), 0, 0),
            client_key(IpAddr::from([9, 9, 9, 9]), 0, 0)
        );
    }
}
