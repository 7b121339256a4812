//! An open-addressing index from a 64-bit hash to a session id: what the client and real
//! indexes are built on.
//!
//! Linear probing over `2 × capacity` slots (load factor ≤ 0.5), 8 bytes a slot: the low 32
//! bits of the hash (the home slot is derived from them by a multiply-shift, so any slot count
//! works) and the session id. Deletion shifts later entries back (no tombstones), so probe
//! lengths do not degrade under churn. The caller compares the full key through the slab.

/// An empty slot.
const EMPTY: u64 = u64::MAX;

#[derive(Debug)]
pub(super) struct Index {
    slots: Box<[u64]>,
}

#[inline]
fn pack(h32: u32, id: u32) -> u64 {
    u64::from(h32) << 32 | u64::from(id)
}

impl Index {
    /// An index for up to `capacity` entries.
    pub(super) fn new(capacity: u32) -> Self {
        let n = (capacity as usize * 2).max(8);
        Self {
            slots: vec![EMPTY; n].into_boxed_slice(),
        }
    }

    /// Bytes of memory per slot.
    pub(super) const SLOT_BYTES: usize = 8;

    #[inline]
    fn home(&self, h32: u32) -> usize {
        ((u64::from(h32) * self.slots.len() as u64) >> 32) as usize
    }

    #[inline]
    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() { 0 } else { i + 1 }
    }

    /// The id of the entry with this hash for which `eq` holds.
    #[inline]
    pub(super) fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let h32 = hash as u32;
        let mut i = self.home(h32);
        loop {
            let s = self.slots[i];
            if s == EMPTY {
                return None;
            }
            if (s >> 32) as u32 == h32 && eq(s as u32) {
                return Some(s as u32);
            }
            i = self.next(i);
        }
    }

    /// Adds `id` under `hash`. The caller MUST have checked that the key is absent and MUST
    /// keep at most `capacity` entries (an empty slot always ends a probe).
    #[inline]
    pub(super) fn insert(&mut self, hash: u64, id: u32) {
        let h32 = hash as u32;
        let mut i = self.home(h32);
        while self.slots[i] != EMPTY {
            i = self.next(i);
        }
        self.slots[i] = pack(h32, id);
    }

    /// Removes the entry `id` filed under `hash`; `false` if it is not there.
    pub(super) fn remove(&mut self, hash: u64, id: u32) -> bool {
        let want = pack(hash as u32, id);
        let mut i = self.home(hash as u32);
        loop {
            let s = self.slots[i];
            if s == EMPTY {
                return false;
            }
            if s == want {
                break;
            }
            i = self.next(i);
        }
        // Backward shift: move each later entry of the run into the hole if the hole lies on
        // its probe path (between its home and where it sits).
        let n = self.slots.len();
        let dist = |from: usize, to: usize| (to + n - from) % n;
        let mut hole = i;
        let mut j = i;
        loop {
            j = self.next(j);
            let s = self.slots[j];
            if s == EMPTY {
                break;
            }
            let home = self.home((s >> 32) as u32);
            if dist(home, j) >= dist(hole, j) {
                self.slots[hole] = s;
                hole = j;
            }
        }
        self.slots[hole] = EMPTY;
        true
    }

    /// Number of slots.
    #[cfg(test)]
    pub(super) fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// Every (hash low bits, id) entry, for invariant checks.
    #[cfg(test)]
    pub(super) fn entries(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.slots
            .iter()
            .filter(|&&s| s != EMPTY)
            .map(|&s| ((s >> 32) as u32, s as u32))
    }
}
