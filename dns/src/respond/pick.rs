//! Which records of a set a client gets: activation (health) then the set's answer policy.
//!
//! Picks are indexes into the set, held in a fixed array: nothing allocates per query.

use super::options::Options;
use super::persist::Persist;
use crate::authority::zone::mix64;
use crate::authority::{Catalog, RrSet};
use dataplane_common::model::AnswerPolicy;
use std::net::IpAddr;
use std::time::Instant;

/// The most records of one set considered for an answer (a 65535-octet TCP reply holds at most
/// about 4000 A records; more than this many is not a useful answer). Records past it are never
/// handed out.
pub(crate) const MAX_PICKS: usize = 1024;
/// Round-robin counters per worker; sets share a counter when their keys collide.
const ROUND_ROBIN_SLOTS: usize = 256;

/// Indexes into a set's records.
pub(crate) struct Picks {
    idx: [u16; MAX_PICKS],
    len: usize,
}

impl Picks {
    pub(crate) const fn new() -> Self {
        Self {
            idx: [0; MAX_PICKS],
            len: 0,
        }
    }
    pub(crate) fn as_slice(&self) -> &[u16] {
        &self.idx[..self.len]
    }
    fn push(&mut self, i: u16) {
        self.idx[self.len] = i;
        self.len += 1;
    }
    fn only(&mut self, i: u16) {
        self.idx[0] = i;
        self.len = 1;
    }
}

/// Per-worker picking state.
#[derive(Debug)]
pub(crate) struct Picker {
    rng: u64,
    round_robin: [u32; ROUND_ROBIN_SLOTS],
    persist: Persist,
    fail_open: bool,
}

impl Picker {
    pub(crate) fn new(seed: u64, options: &Options) -> Self {
        Self {
            rng: seed,
            round_robin: [0; ROUND_ROBIN_SLOTS],
            persist: Persist::new(
                options.client_prefix_v4,
                options.client_prefix_v6,
                options.fail_back,
                options.sticky_entries,
            ),
            fail_open: options.fail_open,
        }
    }

    /// splitmix64.
    fn next_u64(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.rng)
    }

    /// A uniform value below `bound` (Lemire's multiply-shift; the bias is negligible here).
    fn below(&mut self, bound: usize) -> usize {
        ((u128::from(self.next_u64()) * bound as u128) >> 64) as usize
    }

    /// Fills `picks` with what `client` gets from `set`. Returns false when every address is
    /// down and fail-open is off: the caller answers SERVFAIL.
    pub(crate) fn pick(
        &mut self,
        catalog: &Catalog,
        set: &RrSet,
        client: IpAddr,
        now: Instant,
        picks: &mut Picks,
    ) -> bool {
        picks.len = 0;
        let records = &set.records()[..set.records().len().min(MAX_PICKS)];
        if catalog.has_down() {
            for (i, r) in records.iter().enumerate() {
                if !r.address().is_some_and(|a| catalog.is_down(a)) {
                    picks.push(i as u16);
                }
            }
        }
        if picks.len == 0 {
            if catalog.has_down() && !self.fail_open {
                return false;
            }
            for i in 0..records.len() {
                picks.push(i as u16);
            }
        }
        // A persistent set still goes to the picker with one address left: that pick is what a
        // sticky client keeps when the others come back.
        if picks.len == 1 && set.policy() != AnswerPolicy::OnePersistent {
            return true;
        }
        match set.policy() {
            AnswerPolicy::All => {
                // Fisher-Yates over the indexes.
                for i in (1..picks.len).rev() {
                    let j = self.below(i + 1);
                    picks.idx.swap(i, j);
                }
            }
            AnswerPolicy::OnePersistent => {
                let i = self.persist.pick(now, client, set, picks.as_slice());
                picks.only(i);
            }
            AnswerPolicy::OneRoundRobin => {
                let c = &mut self.round_robin[set.key() as usize % ROUND_ROBIN_SLOTS];
                let i = picks.idx[*c as usize % picks.len];
                *c = c.wrapping_add(1);
                picks.only(i);
            }
        }
        true
    }
}
