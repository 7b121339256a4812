//! The XDP answer cache: replies the XDP program sends itself (`XDP_TX`) to questions user
//! space has already answered, as Katran forwards established flows in the kernel.
//!
//! ```text
//! frame ─▶ XDP: untagged IPv4 (no options, not a fragment) UDP to our address and port,
//!               DNS message of 17..=98 octets, (generation, its octets after the ID) in `answers`?
//!            ├─ yes ─▶ the reply: the query's ID, then the stored octets; MACs, addresses and
//!            │         ports swapped, lengths, TTL and checksums as `frame::reply` writes them;
//!            │         counted by type and rcode; XDP_TX
//!            └─ no ──▶ the AF_XDP redirect, as before: user space answers
//! ```
//!
//! - The key is the query's exact octets after its ID (flags, counts, question, EDNS), so a
//!   hit is a query the pure core has answered byte for byte the same way, and the stored
//!   reply is what it wrote (minus the ID). Case is part of the key: a reply echoes it.
//! - Only replies that depend on nothing but the query and the catalog are stored
//!   ([`replayable`]): authoritative (AA), with no choice among addresses made (no policy
//!   applied: one address, or none), and never with rate limiting on (spawn leaves the cache
//!   off then).
//! - Every catalog swap makes a new generation ([`AnswerCache::invalidate`]): the program
//!   reads the current one from a one-entry map and looks up only entries made under it, so
//!   a reply made from an old catalog is never sent after the swap has been published. A
//!   worker tags what it stores with the generation it read *before* it loaded the catalog.
//! - `answers` is an LRU hash: bounded, the least recently hit entries go first.
//! - Replies go out of the interface they came in on (`XDP_TX`). On a veth the peer needs an
//!   XDP program of its own for them to get anywhere (see l4lb's `fastpath::peer`), hence
//!   the cache is off unless asked for (`--xdp-answer-cache ENTRIES`).
//! - Queries answered here skip the latency histogram; they are counted by type and rcode
//!   in `dns_queries` and `dns_responses` (read from a per-CPU map at each report), and in
//!   `dns_xdp_cache_answers`.

mod program;
#[cfg(test)]
mod tests;

use dataplane_common::packet_io::xdp::bpf::{self, Asm, map_type};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

/// The longest DNS message (after its ID) a key holds.
pub const KEY_BYTES: usize = 96;
/// The longest reply (after its ID) a value holds.
pub const VALUE_BYTES: usize = 472;
/// generation (u32), length (u32), the octets.
const KEY_SIZE: usize = 8 + KEY_BYTES;
/// length (u16), counter slot (u16), checksum sum (u32), the octets.
const VALUE_SIZE: usize = 8 + VALUE_BYTES;
/// The shortest DNS message a key holds: a header, the root name, type and class.
const MIN_MESSAGE: usize = 12 + 1 + 4;

/// Label values of `dns_xdp_cache_replies`, indexed by [`ANSWERED`], [`STORED`], [`REFUSED`].
pub const EVENTS: [&str; 3] = ["answered", "stored", "refused"];
/// Sent by the program.
pub const ANSWERED: usize = 0;
/// Written to the map by user space.
pub const STORED: usize = 1;
/// Refused by the kernel.
pub const REFUSED: usize = 2;

/// What one worker stages between two flushes.
const STAGED: usize = 64;

/// The maps and the generation the program answers under.
#[derive(Debug)]
pub struct AnswerCache {
    answers: OwnedFd,
    generation: OwnedFd,
    counts: OwnedFd,
    slots: usize,
    cpus: usize,
    address: Ipv4Addr,
    port: u16,
    /// The generation in `generation`'s map, and the lock that orders its writes.
    published: Mutex<u32>,
    /// The same, for workers to read without a system call.
    current: AtomicU32,
}

impl AnswerCache {
    /// Maps for up to `entries` replies to queries to `address`:`port`, counted in `slots`
    /// slots (type x rcode).
    ///
    /// # Errors
    /// When the kernel refuses the maps (not root, too large for the memory limits).
    pub fn create(entries: u32, address: Ipv4Addr, port: u16, slots: usize) -> io::Result<Self> {
        let answers = bpf::map_create(
            map_type::LRU_HASH,
            KEY_SIZE as u32,
            VALUE_SIZE as u32,
            entries.max(1),
            "dns_answers",
        )?;
        let generation = bpf::map_create(map_type::ARRAY, 4, 4, 1, "dns_answers_gen")?;
        let counts = bpf::map_create(
            map_type::PERCPU_ARRAY,
            4,
            (slots * 8) as u32,
            1,
            "dns_answers_cnt",
        )?;
        Ok(Self {
            answers,
            generation,
            counts,
            slots,
            cpus: possible_cpus()?,
            address,
            port,
            published: Mutex::new(0),
            current: AtomicU32::new(0),
        })
    }

    /// Appends the program for these maps, as the prologue of
    /// [`dataplane_common::packet_io::xdp::Program::attach_with`].
    pub fn emit(&self, a: &mut Asm) {
        program::emit(
            a,
            program::Maps {
                answers: self.answers.as_raw_fd(),
                generation: self.generation.as_raw_fd(),
                counts: self.counts.as_raw_fd(),
            },
            self.address,
            self.port,
            self.slots,
        );
    }

    /// The generation to tag replies with: read it BEFORE loading the catalog they come from.
    pub fn generation(&self) -> u32 {
        self.current.load(Ordering::Acquire)
    }

    /// Retires every stored reply: call after each catalog swap.
    ///
    /// # Errors
    /// When the kernel refuses the write; the old generation then stays in force, so call
    /// again.
    pub fn invalidate(&self) -> io::Result<()> {
        let mut published = self.published.lock().unwrap_or_else(|e| e.into_inner());
        let next = published.wrapping_add(1);
        // Workers tag with `next` from here on; the program still answers `published`, whose
        // replies came from the catalog just replaced, until the map says `next`.
        self.current.store(next, Ordering::Release);
        bpf::map_update(&self.generation, &0u32.to_ne_bytes(), &next.to_ne_bytes())?;
        *published = next;
        Ok(())
    }

    /// The replies sent by the program, per slot, summed over the CPUs (one system call).
    ///
    /// # Errors
    /// When the kernel refuses the read.
    pub fn counts(&self) -> io::Result<Vec<u64>> {
        let per_cpu = self.slots * 8;
        let mut raw = vec![0u8; per_cpu * self.cpus];
        bpf::map_lookup(&self.counts, &0u32.to_ne_bytes(), &mut raw)?;
        let mut out = vec![0u64; self.slots];
        for cpu in raw.chunks_exact(per_cpu) {
            for (o, c) in out.iter_mut().zip(cpu.chunks_exact(8)) {
                *o += u64::from_ne_bytes(c.try_into().expect("invariant: 8 octets"));
            }
        }
        Ok(out)
    }

    /// The stored reply for `query` under `generation`, if any.
    ///
    /// # Errors
    /// When the kernel refuses the read.
    #[cfg(test)]
    pub(crate) fn get(&self, generation: u32, query: &[u8]) -> io::Result<Option<Vec<u8>>> {
        let mut k = [0u8; KEY_SIZE];
        if !key(generation, query, &mut k) {
            return Ok(None);
        }
        let mut v = [0u8; VALUE_SIZE];
        if !bpf::map_lookup(&self.answers, &k, &mut v)? {
            return Ok(None);
        }
        let len = usize::from(u16::from_ne_bytes([v[0], v[1]]));
        Ok(Some(v[8..8 + len].to_vec()))
    }
}

/// Whether a reply may be stored: it says the same to every client until the catalog
/// changes. `reply` is the whole DNS message; `policy_applied` is whether a choice among
/// addresses was made for it.
pub fn replayable(reply: &[u8], policy_applied: bool) -> bool {
    const AA: u8 = 0x04;
    !policy_applied && reply.len() > 2 && reply[2] & AA != 0
}

/// One worker's staged entries, written to the map in one system call per batch.
#[derive(Debug)]
pub struct Staged {
    keys: Vec<u8>,
    values: Vec<u8>,
    count: u32,
    /// Entries written, since made.
    pub stored: u64,
    /// Entries the kernel refused (a transient error), since made.
    pub refused: u64,
}

impl Default for Staged {
    fn default() -> Self {
        Self {
            keys: Vec::with_capacity(STAGED * KEY_SIZE),
            values: Vec::with_capacity(STAGED * VALUE_SIZE),
            count: 0,
            stored: 0,
            refused: 0,
        }
    }
}

impl Staged {
    /// Stages the reply `reply` (a whole DNS message) to `query` (the same), counted in
    /// `slot`, made from a catalog read under `generation`; the caller checked
    /// [`replayable`]. Too long a query or reply is left out. Returns whether it was staged.
    pub fn offer(&mut self, generation: u32, query: &[u8], reply: &[u8], slot: u16) -> bool {
        if self.count as usize == STAGED {
            return false;
        }
        let mut k = [0u8; KEY_SIZE];
        let mut v = [0u8; VALUE_SIZE];
        if !key(generation, query, &mut k) || !value(reply, slot, &mut v) {
            return false;
        }
        self.keys.extend_from_slice(&k);
        self.values.extend_from_slice(&v);
        self.count += 1;
        true
    }

    /// Writes what is staged (one `BPF_MAP_UPDATE_BATCH`).
    pub fn flush(&mut self, cache: &AnswerCache) {
        if self.count == 0 {
            return;
        }
        match bpf::map_update_batch(&cache.answers, &self.keys, &self.values, self.count) {
            Ok(done) => self.stored += u64::from(done),
            Err((done, e)) => {
                self.stored += u64::from(done);
                self.refused += u64::from(self.count - done);
                tracing::debug!(error = %e, "XDP answer cache refused entries");
            }
        }
        self.keys.clear();
        self.values.clear();
        self.count = 0;
    }
}

/// The key of `query` (a whole DNS message) under `generation`; false when it is too short
/// or too long to be one.
fn key(generation: u32, query: &[u8], out: &mut [u8; KEY_SIZE]) -> bool {
    if !(MIN_MESSAGE..=KEY_BYTES + 2).contains(&query.len()) {
        return false;
    }
    let rest = &query[2..];
    out.fill(0);
    out[..4].copy_from_slice(&generation.to_ne_bytes());
    out[4..8].copy_from_slice(&(rest.len() as u32).to_ne_bytes());
    out[8..8 + rest.len()].copy_from_slice(rest);
    true
}

/// The value for `reply` (a whole DNS message); false when it is too long for one.
fn value(reply: &[u8], slot: u16, out: &mut [u8; VALUE_SIZE]) -> bool {
    if !(12..=VALUE_BYTES + 2).contains(&reply.len()) {
        return false;
    }
    let rest = &reply[2..];
    out.fill(0);
    out[..2].copy_from_slice(&(rest.len() as u16).to_ne_bytes());
    out[2..4].copy_from_slice(&slot.to_ne_bytes());
    out[4..8].copy_from_slice(&loaded_sum(rest).to_ne_bytes());
    out[8..8 + rest.len()].copy_from_slice(rest);
    true
}

/// The one's-complement sum of `octets` as the program adds them: 16-bit words loaded in the
/// host's (little-endian) order, a last odd octet padded with zero. RFC 1071's sum does not
/// depend on the order the words are loaded in, so the program adds the headers the same way
/// and stores the folded result without swapping. Folded to 17 bits at most.
fn loaded_sum(octets: &[u8]) -> u32 {
    let mut sum: u64 = 0;
    let mut words = octets.chunks_exact(2);
    for w in &mut words {
        sum += u64::from(u16::from_le_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(*last);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u32
}

/// How many CPUs the kernel may ever bring up: per-CPU maps hold one value for each.
fn possible_cpus() -> io::Result<usize> {
    let s = std::fs::read_to_string("/sys/devices/system/cpu/possible")?;
    parse_cpu_list(s.trim()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("cannot read the possible CPUs from `{}`", s.trim()),
        )
    })
}

/// The highest CPU in a list such as `0-3,8-11`, plus one.
fn parse_cpu_list(s: &str) -> Option<usize> {
    let mut max = None;
    for part in s.split(',') {
        let last = part.rsplit('-').next()?;
        let n: usize = last.parse().ok()?;
        max = Some(max.map_or(n, |m: usize| m.max(n)));
    }
    max.map(|m| m + 1)
}
