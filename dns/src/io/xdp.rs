//! UDP over `AF_XDP`: kernel bypass for queries. Our XDP program
//! ([`dataplane_common::packet_io::xdp::Program`] with a [`Filter::Udp`]) hands UDP datagrams
//! to the served address and port to one `AF_XDP` socket per receive queue, and everything
//! else (ARP, ICMP, TCP, other ports, fragments, IPv4 options) to the kernel.
//!
//! One worker per queue (`--workers N` ↔ queues `0..N`), each with its own socket: it waits
//! for a batch, loads the catalog once, and for each frame finds the query ([`super::frame`]),
//! copies it aside (the answer is written where the query was), answers with the same
//! [`super::Answerer`] as the socket backends, and turns the frame into the reply in place
//! ([`Duplex::serve`]): no allocation, copy of the reply or system call per query; one
//! `sendto` kick per batch in copy mode, none in zero-copy mode unless the driver asks.
//!
//! A kernel UDP socket is bound on the same address too: it reserves the port, and it serves
//! what the program leaves to the kernel (fragmented queries, IPv4 options), so those still
//! get answers, the slow way. TCP is the kernel's, as with every backend.

pub mod cache;

use super::frame::{self, Drop};
use super::upstream::Handoff;
use super::{Answerer, Metrics, Worker, mmsg};
use crate::authority::Catalog;
use crate::respond::Responder;
use crate::rrl::Limiter;
use cache::{AnswerCache, Staged};
use dataplane_common::clock::{Clock, SystemClock};
use dataplane_common::packet_io::xdp::{self as xsk, Attach, Duplex, Filter, Program};
use dataplane_common::packet_io::{LinkStats, af_packet};
use dataplane_common::snapshot::Snapshot;
use dataplane_common::telemetry::sharded::CountersWriter;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Frames per batch.
pub const BATCH: usize = 64;
/// The largest query copied aside; larger ones are dropped ([`Drop::TooLarge`]).
const QUERY_BUF: usize = 2048;
/// How often an idle worker wakes to see whether it should stop.
const STOP_POLL: Duration = Duration::from_millis(200);
/// Busy batches between two reads of the socket's kernel counters (and the answer cache's).
const STATS_EVERY: u32 = 4096;
/// The longest a busy worker goes without reading them: the answer cache's replies reach
/// the query counters at most this late, however few queries reach user space.
const STATS_AT_LEAST: Duration = Duration::from_secs(1);

/// Label values of `dns_xdp_frames_dropped`: [`Drop::NAMES`], then what the link counted.
pub(crate) const DROPS: [&str; Drop::NAMES.len() + 2] = {
    let mut all = [""; Drop::NAMES.len() + 2];
    let mut i = 0;
    while i < Drop::NAMES.len() {
        all[i] = Drop::NAMES[i];
        i += 1;
    }
    all[KERNEL] = "kernel";
    all[TRUNCATED] = "truncated";
    all
};
const KERNEL: usize = Drop::NAMES.len();
const TRUNCATED: usize = KERNEL + 1;

/// An interface name (at most 15 bytes, as `IFNAMSIZ`), kept inline so that
/// [`super::Backend`] stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Interface {
    name: [u8; 16],
    len: u8,
}

impl Interface {
    /// The interface called `name`.
    ///
    /// # Errors
    /// When `name` is empty, longer than 15 bytes, or holds `/`, whitespace or NUL.
    pub fn new(name: &str) -> Result<Self, String> {
        let ok = !name.is_empty()
            && name.len() < 16
            && !name
                .bytes()
                .any(|b| b == b'/' || b == 0 || b.is_ascii_whitespace());
        if !ok {
            return Err(format!("`{name}` is not an interface name"));
        }
        let mut out = [0u8; 16];
        out[..name.len()].copy_from_slice(name.as_bytes());
        Ok(Self {
            name: out,
            len: name.len() as u8,
        })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.name[..usize::from(self.len)])
            .expect("invariant: made from a str")
    }
}

impl TryFrom<String> for Interface {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::new(&s)
    }
}

impl fmt::Debug for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One worker's link: its socket, the served port and the largest IP packet to send.
struct Link {
    xsk: Duplex,
    port: u16,
    mtu: usize,
    drops: CountersWriter,
    /// The socket's counters when last added to `drops`.
    seen: LinkStats,
    /// The XDP answer cache, when on.
    replay: Option<Replay>,
    /// Keeps the program attached while the worker runs; the last worker to stop detaches it.
    _program: Arc<Program>,
}

/// One worker's side of the XDP answer cache.
struct Replay {
    cache: Arc<AnswerCache>,
    staged: Staged,
    /// Whether this worker adds the program's counts to the metrics (one worker does).
    counts: bool,
    /// The program's counts when last added.
    seen: Vec<u64>,
    /// `dns_xdp_cache_replies`, and what `staged` had counted when last added.
    events: CountersWriter,
    reported: (u64, u64),
}

impl Link {
    /// Adds what the kernel and the ring counted since the last call to the drop counters
    /// (one `getsockopt`), and what the answer cache's program answered to the query and
    /// response counters (one `bpf`).
    fn report(&mut self, answerer: &Answerer) {
        if let Some(r) = self.replay.as_mut() {
            let (stored, refused) = (r.staged.stored, r.staged.refused);
            r.events.add(cache::STORED, stored - r.reported.0);
            r.events.add(cache::REFUSED, refused - r.reported.1);
            r.reported = (stored, refused);
        }
        if let Some(r) = self.replay.as_mut().filter(|r| r.counts) {
            match r.cache.counts() {
                Ok(now) => {
                    for (slot, (n, seen)) in now.iter().zip(r.seen.iter_mut()).enumerate() {
                        let new = n.saturating_sub(*seen);
                        answerer.count_replayed(slot, new);
                        r.events.add(cache::ANSWERED, new);
                        *seen = *n;
                    }
                }
                Err(e) => tracing::debug!(error = %e, "reading the XDP answer cache's counts"),
            }
        }
        let now = self.xsk.stats();
        let kernel = now.kernel_drops.saturating_sub(self.seen.kernel_drops);
        let truncated = now.truncated.saturating_sub(self.seen.truncated);
        self.drops.add(KERNEL, kernel);
        self.drops.add(TRUNCATED, truncated);
        self.seen = now;
    }
}

/// Answers one frame in place; the reply frame's length, if any.
#[allow(clippy::too_many_arguments)]
#[inline]
fn answer_frame(
    buf: &mut [u8],
    len: usize,
    port: u16,
    mtu: usize,
    scratch: &mut [u8; QUERY_BUF],
    answerer: &mut Answerer,
    catalog: &Catalog,
    now: Instant,
    drops: &CountersWriter,
    replay: Option<&mut (&mut Staged, u32)>,
) -> Option<usize> {
    let q = match frame::query(&buf[..len], port) {
        Ok(q) => q,
        Err(reason) => {
            drops.inc(reason as usize);
            return None;
        }
    };
    let n = q.payload.len();
    if n > QUERY_BUF {
        drops.inc(Drop::TooLarge as usize);
        return None;
    }
    scratch[..n].copy_from_slice(&buf[q.payload.clone()]);
    // The reply's IP packet fits the interface's MTU and the frame's chunk.
    let limit = buf.len().min(q.layout.l3 + mtu);
    let out = buf.get_mut(q.payload.start..limit)?;
    let (r, slot) = answerer.answer_replayable(catalog, now, q.client, &scratch[..n], out)?;
    // Only what the program could answer: an untagged IPv4 frame (the rest would come back
    // here and be stored again, a system call per batch for nothing).
    let replayed_frame = q.layout.l3 == 14 && !q.layout.ipv6;
    if let (Some(slot), Some((staged, generation)), true) = (slot, replay, replayed_frame) {
        staged.offer(*generation, &scratch[..n], &out[..r], slot);
    }
    Some(frame::reply(buf, &q, r))
}

/// Serves one queue until `stop` is set.
fn serve(worker: Worker, mut link: Link) {
    let (_socket, catalog, stop, mut answerer) = worker.split();
    let clock = SystemClock;
    let mut scratch = [0u8; QUERY_BUF];
    let mut batches = 0u32;
    let mut reported = clock.now();
    while !stop.load(Ordering::Relaxed) {
        match link.xsk.wait(STOP_POLL) {
            Ok(true) => {}
            Ok(false) => {
                link.report(&answerer);
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "AF_XDP poll failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        }
        let now = clock.now();
        // The cache's generation before the catalog: what is stored is never newer than
        // the generation it is tagged with.
        let mut replay = link
            .replay
            .as_mut()
            .map(|r| (&mut r.staged, r.cache.generation()));
        // One snapshot for the whole batch: never half an update, and one atomic load.
        let current = catalog.load();
        let (port, mtu) = (link.port, link.mtu);
        let drops = &link.drops;
        let served = link.xsk.serve(BATCH, |buf, len| {
            answer_frame(
                buf,
                len,
                port,
                mtu,
                &mut scratch,
                &mut answerer,
                &current,
                now,
                drops,
                replay.as_mut(),
            )
        });
        drop(current);
        if let Some(r) = link.replay.as_mut() {
            r.staged.flush(&r.cache);
        }
        if let Err(e) = served {
            tracing::debug!(error = %e, "AF_XDP send failed");
        }
        let elapsed = clock.now().saturating_duration_since(now);
        answerer.batch_latency(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
        batches += 1;
        if batches == STATS_EVERY || now.saturating_duration_since(reported) >= STATS_AT_LEAST {
            batches = 0;
            reported = now;
            link.report(&answerer);
        }
    }
    link.report(&answerer);
}

/// Attaches the program to `interface` for UDP to `addr`, opens one socket per worker on
/// queues `0..workers`, and starts a thread for each, plus one on a kernel UDP socket bound
/// to `addr` (see the module doc). With `answer_cache` entries (not 0) the program answers
/// what it can itself ([`cache`]). Returns the bound address (its port is the served one
/// when `addr`'s is 0) and the answer cache, to invalidate after each catalog swap.
///
/// # Errors
/// When the socket cannot be bound, the program cannot be attached (not root, another XDP
/// program on the interface), a queue cannot be opened (fewer queues than workers), or the
/// answer cache is asked for on an address that is not one IPv4 address.
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    addr: SocketAddr,
    interface: Interface,
    workers: usize,
    catalog: &Arc<Snapshot<Catalog>>,
    responders: impl Fn(usize) -> (Responder, Option<Limiter>),
    metrics: &Metrics,
    stop: &Arc<AtomicBool>,
    handoff: Option<&Handoff>,
    answer_cache: u32,
) -> io::Result<Spawned> {
    let name = interface.as_str();
    let socket = mmsg::bind(addr)?;
    let bound = socket.local_addr()?;
    let (_, _, mtu) = af_packet::interface(name)?;
    let any_address = bound.ip().is_unspecified();
    let filter = Filter::Udp {
        port: bound.port(),
        any_address,
    };
    let cache = match (answer_cache, bound.ip()) {
        (0, _) => None,
        (entries, IpAddr::V4(a)) if !a.is_unspecified() => Some(Arc::new(AnswerCache::create(
            entries,
            a,
            bound.port(),
            super::REPLAY_SLOTS,
        )?)),
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the XDP answer cache answers one IPv4 address; {bound} is not one"),
            ));
        }
    };
    let mut program = match &cache {
        Some(c) => Program::attach_with(name, Attach::Auto, filter, &|a| c.emit(a))?,
        None => Program::attach_filtered(name, Attach::Auto, filter)?,
    };
    if !any_address {
        program.set_destinations([bound.ip()])?;
    }
    let program = Arc::new(program);
    // Every socket first: a failure leaves no thread behind.
    let mut sockets = Vec::with_capacity(workers);
    for q in 0..workers {
        let xsk = xsk::open_duplex(&xsk::Config::new(name, q as u32), &program).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("AF_XDP on queue {q} of {name} (one queue per worker): {e}"),
            )
        })?;
        sockets.push(xsk);
    }
    tracing::info!(
        interface = name,
        mode = ?program.mode(),
        bind = ?sockets.first().map(Duplex::bind),
        queues = workers,
        answer_cache,
        "AF_XDP attached"
    );
    let worker = |w: usize, socket: std::net::UdpSocket| {
        let (responder, limiter) = responders(w);
        Worker {
            socket,
            catalog: Arc::clone(catalog),
            responder,
            limiter,
            metrics: metrics.worker(),
            stop: Arc::clone(stop),
            handoff: handoff.cloned(),
        }
    };
    let mut threads = Vec::with_capacity(workers + 1);
    for (q, xsk) in sockets.into_iter().enumerate() {
        let link = Link {
            xsk,
            port: bound.port(),
            mtu: mtu as usize,
            drops: metrics.xdp_drops.writer(),
            seen: LinkStats::default(),
            replay: cache.as_ref().map(|c| Replay {
                cache: Arc::clone(c),
                staged: Staged::default(),
                counts: q == 0,
                seen: vec![0; super::REPLAY_SLOTS],
                events: metrics.xdp_cache.writer(),
                reported: (0, 0),
            }),
            _program: Arc::clone(&program),
        };
        let w = worker(q, socket.try_clone()?);
        threads.push(
            std::thread::Builder::new()
                .name(format!("dns-xdp-{q}"))
                .spawn(move || serve(w, link))?,
        );
    }
    let w = worker(workers, socket);
    threads.push(
        std::thread::Builder::new()
            .name("dns-udp-kernel".to_owned())
            .spawn(move || mmsg::serve(w))?,
    );
    Ok((bound, threads, cache))
}

/// What [`spawn`] started: the bound address, the threads, the answer cache if on.
pub type Spawned = (
    SocketAddr,
    Vec<std::thread::JoinHandle<()>>,
    Option<Arc<AnswerCache>>,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_labels_follow_the_reasons() {
        assert_eq!(DROPS[..KERNEL], Drop::NAMES);
        assert_eq!(DROPS[TRUNCATED], "truncated");
        assert_eq!(Drop::TooLarge as usize, KERNEL - 1);
    }

    #[test]
    fn interface_names_are_checked_and_kept_inline() {
        let i = Interface::new("vb-srv").unwrap();
        assert_eq!(i.as_str(), "vb-srv");
        assert_eq!(format!("{i}"), "vb-srv");
        assert!(Interface::new("").is_err());
        assert!(Interface::new("sixteen-bytes-xx").is_err());
        assert!(Interface::new("a/b").is_err());
        assert!(Interface::new("fifteen-bytes-x").is_ok());
    }
}
