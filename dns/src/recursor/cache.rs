//! The shared answer cache: replies stored pre-encoded, served by copying and patching.
//!
//! An [`Entry`] is a whole reply (header, question, sections, no OPT) built once when an answer
//! arrives, plus the offset of every TTL field. Serving a hit copies the bytes, writes the
//! client's ID, flags and question (its case included) and the decremented TTLs: no parsing,
//! no allocation.
//!
//! The [`Cache`] is split into shards by a keyed hash; each shard is a small mutex held only to
//! look up or insert an `Arc<Entry>`, never while bytes are copied. Each shard is bounded and
//! evicts by CLOCK (second chance for entries hit since they were last considered). Entries stay
//! past their TTL for the serve-stale window (RFC 8767) and only then count as gone.
//!
//! It also keeps delegations (zone cuts with their servers) learned from referrals, so a
//! resolution starts at the closest known cut instead of the root.
//!
//! Nothing here reads a clock or does I/O: `now` comes from the caller.

use super::bailiwick;
use crate::wire::edns::Opt;
use crate::wire::header::{self, HeaderMut, QR, RA, RCODE_MASK, TC};
use crate::wire::message::Rr;
use crate::wire::name::Compressor;
use crate::wire::{Error, put};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The TTL given to stale answers (RFC 8767 section 4: "30 seconds is RECOMMENDED").
pub const STALE_TTL: u32 = 30;

/// How the cache bounds and caps what it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Entries kept, over all shards (answers; delegations are bounded the same way).
    pub capacity: usize,
    /// TTLs below this are raised to it.
    pub min_ttl: u32,
    /// TTLs above this are lowered to it.
    pub max_ttl: u32,
    /// The longest a negative answer is kept (RFC 2308 section 5 suggests 1 to 3 hours).
    pub negative_max_ttl: u32,
    /// How long past its TTL an answer may still be served when resolution fails (RFC 8767);
    /// zero turns serve-stale off.
    pub stale: Duration,
    /// Re-resolve popular names shortly before they expire.
    pub prefetch: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            capacity: 100_000,
            min_ttl: 0,
            max_ttl: 86_400,
            negative_max_ttl: 3_600,
            stale: Duration::from_secs(86_400),
            prefetch: true,
        }
    }
}

/// Hits before an entry counts as popular enough to prefetch.
const PREFETCH_HITS: u32 = 2;
/// Shards; a power of two.
const SHARDS: usize = 64;

/// One cached reply.
///
/// Invariant: `data[..wire_len]` is a well-formed reply to (`qname`, `qtype`, IN) whose
/// question name is `data[12..12 + qname_len]` and whose question ends at `question_end`; the
/// rest of `data` is the offset of every record's TTL field in it, as native-endian `u16`s.
/// One allocation for all of it (and the name read from the reply itself) keeps a hit to two
/// cache lines fetched from memory, this struct's and the reply's, when the cache is large.
#[derive(Debug)]
pub struct Entry {
    qtype: u16,
    qname_len: u16,
    wire_len: u16,
    question_end: u16,
    data: Box<[u8]>,
    ttl: u32,
    stored: Instant,
    rcode: u8,
    hits: AtomicU32,
    prefetching: AtomicBool,
    referenced: AtomicBool,
}

/// What a reply written from an entry says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    /// Its length.
    pub len: usize,
    /// Its rcode.
    pub rcode: u8,
    /// Whether it was cut to the question alone (TC).
    pub truncated: bool,
}

/// How fresh an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Within its TTL, with this many seconds left.
    Fresh(u32),
    /// Past its TTL, within the serve-stale window.
    Stale,
    /// Past both.
    Gone,
}

impl Entry {
    /// Encodes a reply to (`qname`, `qtype`) with `rcode` and these sections. The TTL is the
    /// smallest record TTL (for negative answers, the SOA's negative TTL, RFC 2308 section 5),
    /// capped as `settings` say; every record is written with it.
    ///
    /// # Errors
    /// [`Error::NoSpace`] when the reply exceeds 65535 octets.
    pub fn build(
        now: Instant,
        settings: &Settings,
        qname: &[u8],
        qtype: u16,
        rcode: u8,
        sections: [&[Rr]; 3],
    ) -> Result<Self, Error> {
        let negative = sections[0].is_empty() || rcode == header::rcode::NXDOMAIN;
        let mut ttl = u32::MAX;
        for r in sections[0] {
            ttl = ttl.min(r.ttl);
        }
        if negative {
            //= https://www.rfc-editor.org/rfc/rfc2308#section-5
            //# the TTL of this record is set from the minimum of the MINIMUM field of the SOA
            //# record and the TTL of the SOA itself
            let soa = sections[1].iter().find_map(Rr::soa_negative_ttl);
            ttl = ttl.min(soa.unwrap_or(0)).min(settings.negative_max_ttl);
        }
        let ttl = ttl.clamp(settings.min_ttl, settings.max_ttl.max(settings.min_ttl));

        let mut out = vec![0u8; usize::from(u16::MAX)];
        let mut pos = put(&mut out, header::LEN, qname)?;
        pos = put(&mut out, pos, &qtype.to_be_bytes())?;
        pos = put(&mut out, pos, &crate::wire::CLASS_IN.to_be_bytes())?;
        let question_end = pos;
        let mut comp = Compressor::new();
        comp.remember(&out, header::LEN);
        let mut ttl_at: Vec<u16> = Vec::new();
        let mut counts = [0u16; 3];
        for (s, section) in sections.iter().enumerate() {
            for r in *section {
                pos = comp.write(&mut out, pos, &r.owner)?;
                pos = put(&mut out, pos, &r.rtype.to_be_bytes())?;
                pos = put(&mut out, pos, &r.class.to_be_bytes())?;
                ttl_at.push(u16::try_from(pos).map_err(|_| Error::NoSpace)?);
                pos = put(&mut out, pos, &ttl.to_be_bytes())?;
                let rdlen = u16::try_from(r.rdata.len()).map_err(|_| Error::NoSpace)?;
                pos = put(&mut out, pos, &rdlen.to_be_bytes())?;
                pos = put(&mut out, pos, &r.rdata)?;
                counts[s] += 1;
            }
        }
        out.truncate(pos);
        let mut h = HeaderMut::new(&mut out)?;
        h.set_flags(QR | RA | u16::from(rcode) & RCODE_MASK);
        h.set_counts(1, counts[0], counts[1], counts[2]);
        for at in ttl_at {
            out.extend_from_slice(&at.to_ne_bytes());
        }
        let short = |n: usize| u16::try_from(n).map_err(|_| Error::NoSpace);
        Ok(Self {
            qtype,
            qname_len: short(qname.len())?,
            wire_len: short(pos)?,
            question_end: short(question_end)?,
            data: out.into(),
            ttl,
            stored: now,
            rcode,
            hits: AtomicU32::new(0),
            prefetching: AtomicBool::new(false),
            referenced: AtomicBool::new(false),
        })
    }

    /// The TTL it was stored with.
    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// Its rcode.
    pub fn rcode(&self) -> u8 {
        self.rcode
    }

    /// The encoded reply (ID 0, RD clear, no OPT).
    pub fn wire(&self) -> &[u8] {
        &self.data[..usize::from(self.wire_len)]
    }

    /// The question name, as given to [`Self::build`].
    fn qname(&self) -> &[u8] {
        &self.data[header::LEN..header::LEN + usize::from(self.qname_len)]
    }

    /// How fresh it is at `now`, given the serve-stale window `stale`.
    pub fn freshness(&self, now: Instant, stale: Duration) -> Freshness {
        let age = now.saturating_duration_since(self.stored);
        let ttl = Duration::from_secs(u64::from(self.ttl));
        if age < ttl {
            Freshness::Fresh(self.ttl - age.as_secs() as u32)
        } else if age < ttl + stale {
            Freshness::Stale
        } else {
            Freshness::Gone
        }
    }

    /// Writes the reply to `query` (whose question MUST be this entry's, in any case) into
    /// `out`: the client's ID, RD and CD and question bytes, each TTL decremented by the
    /// entry's age, or [`STALE_TTL`] when `stale`. Records stop at `limit`; when they do not
    /// fit, the question alone goes out with TC. `opt` is appended after `limit` when given
    /// (the caller reserves its space).
    pub fn write(
        &self,
        now: Instant,
        query: &[u8],
        out: &mut [u8],
        limit: usize,
        opt: Option<Opt>,
        stale: bool,
    ) -> Served {
        let echoed = match header::Header::new(query) {
            Ok(h) => h.flags() & (header::RD | header::CD),
            Err(_) => 0,
        };
        let id = query.get(..2).map_or([0, 0], |b| [b[0], b[1]]);
        let q = usize::from(self.question_end);
        let (wire, ttl_at) = self.data.split_at(usize::from(self.wire_len));
        let fits = wire.len() <= limit.min(out.len());
        let mut len = if fits { wire.len() } else { q };
        if len > out.len() || query.len() < q {
            return Served {
                len: 0,
                rcode: self.rcode,
                truncated: true,
            };
        }
        out[..len].copy_from_slice(&wire[..len]);
        out[..2].copy_from_slice(&id);
        // The client's question, case and all (RFC 4343 section 4; 0x20 clients check it).
        out[header::LEN..q].copy_from_slice(&query[header::LEN..q]);
        let mut flags = QR | RA | echoed | u16::from(self.rcode) & RCODE_MASK;
        if fits {
            let ttl = if stale {
                STALE_TTL
            } else {
                let age = now.saturating_duration_since(self.stored).as_secs();
                self.ttl
                    .saturating_sub(u32::try_from(age).unwrap_or(u32::MAX))
            };
            for at in ttl_at.chunks_exact(2) {
                let at = usize::from(u16::from_ne_bytes([at[0], at[1]]));
                out[at..at + 4].copy_from_slice(&ttl.to_be_bytes());
            }
        } else {
            flags |= TC;
            out[header::ANCOUNT..header::LEN].fill(0);
        }
        out[header::FLAGS..header::FLAGS + 2].copy_from_slice(&flags.to_be_bytes());
        if let Some(opt) = opt
            && let Ok(end) = opt.write(out, len)
        {
            len = end;
            let ar = u16::from_be_bytes([out[header::ARCOUNT], out[header::ARCOUNT + 1]]) + 1;
            out[header::ARCOUNT..header::LEN].copy_from_slice(&ar.to_be_bytes());
        }
        Served {
            len,
            rcode: self.rcode,
            truncated: !fits,
        }
    }
}

/// A zone cut and its name servers, learned from a referral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegation {
    /// The zone.
    pub zone: Box<[u8]>,
    /// Its servers: names and the addresses known for them (empty for glueless ones).
    pub servers: Vec<(Box<[u8]>, Vec<SocketAddr>)>,
    /// Seconds it may be kept.
    pub ttl: u32,
}

/// What a lookup found.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// A fresh entry; `prefetch` when it is popular and near its end, and this caller is the
    /// one to refresh it.
    Fresh {
        /// The entry.
        entry: Arc<Entry>,
        /// Refresh it now (in the background).
        prefetch: bool,
    },
    /// An entry past its TTL, servable only when resolution fails.
    Stale(Arc<Entry>),
    /// Nothing.
    Miss,
}

#[derive(Debug)]
struct Stored<T> {
    value: Arc<T>,
    expires: Instant,
}

/// The maps' keys are already keyed hashes: hashing them again (SipHash) buys nothing.
#[derive(Debug, Default, Clone, Copy)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type ByKey<V> = HashMap<u64, V, BuildHasherDefault<KeyHasher>>;

#[derive(Debug, Default)]
struct Shard {
    answers: ByKey<Arc<Entry>>,
    order: VecDeque<u64>,
    delegations: ByKey<Stored<Delegation>>,
    /// Answers removed to make room, ever.
    evicted: u64,
}

/// The cache every worker and the resolver share. See the module doc.
#[derive(Debug)]
pub struct Cache {
    settings: Settings,
    hasher: ahash::RandomState,
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
}

impl Cache {
    /// An empty cache; the hash is keyed with `seed` so clients cannot aim at one shard.
    pub fn new(settings: Settings, seed: u64) -> Self {
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect();
        let per_shard = settings.capacity.div_ceil(SHARDS).max(1);
        Self {
            settings,
            hasher: ahash::RandomState::with_seeds(seed, seed.rotate_left(17), 0x5EED, 7),
            shards,
            per_shard,
        }
    }

    /// Its settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn key(&self, tag: u16, name: &[u8]) -> u64 {
        // Lower-cased on the stack and hashed in one call: a byte at a time costs a multiply
        // each. Names are at most 255 octets; anything longer only shares a key.
        let mut lower = [0u8; 256];
        let n = name.len().min(lower.len());
        for (d, s) in lower.iter_mut().zip(&name[..n]) {
            *d = s.to_ascii_lowercase();
        }
        let mut h = self.hasher.build_hasher();
        h.write_u16(tag);
        h.write(&lower[..n]);
        h.finish()
    }

    fn shard(&self, key: u64) -> MutexGuard<'_, Shard> {
        let shard = &self.shards[(key as usize) & (SHARDS - 1)];
        // A panic while holding a shard lock leaves only a map behind: keep using it.
        shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Looks up (`qname`, `qtype`); `qname` in any case.
    pub fn get(&self, now: Instant, qname: &[u8], qtype: u16) -> Lookup {
        let key = self.key(qtype, qname);
        let entry = {
            let shard = self.shard(key);
            match shard.answers.get(&key) {
                Some(e) if e.qtype == qtype && e.qname().eq_ignore_ascii_case(qname) => {
                    Arc::clone(e)
                }
                _ => return Lookup::Miss,
            }
        };
        match entry.freshness(now, self.settings.stale) {
            Freshness::Fresh(left) => {
                // Written only when they change: a hot entry's line then stays shared between
                // the workers' caches instead of bouncing on every hit.
                if !entry.referenced.load(Ordering::Relaxed) {
                    entry.referenced.store(true, Ordering::Relaxed);
                }
                let mut hits = entry.hits.load(Ordering::Relaxed);
                if hits < PREFETCH_HITS {
                    hits = entry.hits.fetch_add(1, Ordering::Relaxed) + 1;
                }
                let prefetch = self.settings.prefetch
                    && hits >= PREFETCH_HITS
                    && entry.ttl >= 10
                    && left <= entry.ttl / 10
                    && !entry.prefetching.swap(true, Ordering::Relaxed);
                Lookup::Fresh { entry, prefetch }
            }
            Freshness::Stale => Lookup::Stale(entry),
            Freshness::Gone => Lookup::Miss,
        }
    }

    /// Stores `entry`, replacing any entry for the same question, evicting if the shard is full.
    pub fn insert(&self, now: Instant, entry: Entry) -> Arc<Entry> {
        let key = self.key(entry.qtype, entry.qname());
        let stale = self.settings.stale;
        let entry = Arc::new(entry);
        let mut shard = self.shard(key);
        if shard.answers.insert(key, Arc::clone(&entry)).is_none() {
            shard.order.push_back(key);
        }
        // CLOCK: a referenced, fresh entry gets a second chance; anything else goes.
        let mut spins = 0;
        while shard.answers.len() > self.per_shard {
            let Some(victim) = shard.order.pop_front() else {
                break;
            };
            let keep = spins < 2 * self.per_shard
                && victim != key
                && shard.answers.get(&victim).is_some_and(|e| {
                    e.referenced.swap(false, Ordering::Relaxed)
                        && !matches!(e.freshness(now, stale), Freshness::Gone)
                });
            spins += 1;
            if keep || victim == key {
                shard.order.push_back(victim);
            } else if shard.answers.remove(&victim).is_some() {
                shard.evicted += 1;
            }
        }
        entry
    }

    /// How many answers are stored.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.answers.len()))
            .sum()
    }

    /// How many answers were evicted to make room, ever.
    pub fn evictions(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.evicted))
            .sum()
    }

    /// Whether no answer is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores a delegation for its TTL (capped like answers).
    pub fn insert_delegation(&self, now: Instant, d: Delegation) {
        let key = self.key(0, &d.zone);
        let ttl = d
            .ttl
            .clamp(self.settings.min_ttl, self.settings.max_ttl.max(1));
        let expires = now + Duration::from_secs(u64::from(ttl));
        let mut shard = self.shard(key);
        if shard.delegations.len() >= self.per_shard {
            shard.delegations.retain(|_, s| s.expires > now);
            if shard.delegations.len() >= self.per_shard
                && let Some(&k) = shard.delegations.keys().next()
            {
                shard.delegations.remove(&k);
            }
        }
        shard.delegations.insert(
            key,
            Stored {
                value: Arc::new(d),
                expires,
            },
        );
    }

    /// The deepest unexpired delegation at or above `name`.
    pub fn closest_delegation(&self, now: Instant, name: &[u8]) -> Option<Arc<Delegation>> {
        let mut pos = 0;
        loop {
            let zone = &name[pos..];
            let key = self.key(0, zone);
            if let Some(s) = self.shard(key).delegations.get(&key)
                && s.expires > now
                && s.value.zone.eq_ignore_ascii_case(zone)
            {
                return Some(Arc::clone(&s.value));
            }
            let &l = name.get(pos)?;
            if l == 0 {
                return None;
            }
            pos += 1 + usize::from(l);
            debug_assert!(bailiwick::is_at_or_below(name, &name[pos..]));
        }
    }

    /// Lets the entry for (`qname`, `qtype`) be prefetched again (after a prefetch failed).
    pub fn prefetch_done(&self, qname: &[u8], qtype: u16) {
        let key = self.key(qtype, qname);
        if let Some(e) = self.shard(key).answers.get(&key) {
            e.prefetching.store(false, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
