//! The I/O edges: each backend receives queries in batches, calls the pure
//! [`crate::respond::Responder`] against the current catalog snapshot, sends the replies, and
//! counts. That is all a backend does.

pub mod frame;
pub mod mmsg;
pub mod tcp;
pub mod upstream;
pub mod uring;
pub mod xdp;

/// Which UDP backend the workers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// `recvmmsg`/`sendmmsg` batches.
    #[default]
    Mmsg,
    /// io_uring.
    Uring,
    /// `AF_XDP` on this interface, one socket per queue ([`xdp`]).
    Xdp(xdp::Interface),
}

use crate::respond::{DropReason, Outcome};
use crate::rrl::{Action, Limiter};
use dataplane_common::telemetry::Telemetry;
use dataplane_common::telemetry::sharded::{Counters, CountersWriter, Histogram, HistogramWriter};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// Query types counted by name; everything else is `other`.
const QTYPES: &[&str] = &[
    "A", "NS", "CNAME", "SOA", "PTR", "MX", "TXT", "AAAA", "SRV", "ANY", "other",
];
/// Response codes counted by name (RFC 1035, 6891), by their number.
const RCODES: &[&str] = &[
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "other", "BADVERS",
];
/// The XDP answer cache's counter slots: one per query type and rcode.
pub const REPLAY_SLOTS: usize = QTYPES.len() * RCODES.len();
/// Answers by the policy that chose the addresses.
const POLICIES: &[&str] = &["all", "one-persistent", "one-round-robin"];
/// What rate limiting did to a response (the index is [`crate::rrl::Action`] less `Send`).
const RRL_ACTIONS: &[&str] = &["drop", "slip"];
/// Latency buckets, seconds: per batch, from receive to send.
const LATENCY_BOUNDS: &[f64] = &[
    0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05,
];

fn qtype_slot(qtype: u16) -> usize {
    match qtype {
        1 => 0,
        2 => 1,
        5 => 2,
        6 => 3,
        12 => 4,
        15 => 5,
        16 => 6,
        28 => 7,
        33 => 8,
        255 => 9,
        _ => 10,
    }
}

fn rcode_slot(rcode: u8) -> usize {
    match rcode {
        0..=5 => usize::from(rcode),
        16 => 7,
        _ => 6,
    }
}

/// The server's shared counter families.
#[derive(Debug, Clone)]
pub struct Metrics {
    queries: Arc<Counters>,
    responses: Arc<Counters>,
    policies: Arc<Counters>,
    drops: Arc<Counters>,
    limited: Arc<Counters>,
    latency: Arc<Histogram>,
    /// Frames the `AF_XDP` path dropped before answering (zero with other backends).
    pub(crate) xdp_drops: Arc<Counters>,
    /// What the XDP answer cache did (zero without it).
    pub(crate) xdp_cache: Arc<Counters>,
}

impl Metrics {
    /// Creates the families and registers them in `telemetry`.
    pub fn register(telemetry: &Telemetry) -> Self {
        let m = Self {
            queries: Counters::new("dns_queries", "Queries answered, by type.", "qtype", QTYPES),
            responses: Counters::new(
                "dns_responses",
                "Responses sent, by response code.",
                "rcode",
                RCODES,
            ),
            policies: Counters::new(
                "dns_answers_by_policy",
                "Answers for names with several addresses, by policy.",
                "policy",
                POLICIES,
            ),
            drops: Counters::new(
                "dns_dropped",
                "Packets dropped without an answer, by reason.",
                "reason",
                &DropReason::NAMES,
            ),
            limited: Counters::new(
                "dns_rate_limited",
                "Responses over the rate limit, by what was done.",
                "action",
                RRL_ACTIONS,
            ),
            latency: Histogram::new(
                "dns_batch_latency_seconds",
                "Time from receiving a batch of queries to sending its replies.",
                LATENCY_BOUNDS,
            ),
            xdp_drops: Counters::new(
                "dns_xdp_frames_dropped",
                "Frames the AF_XDP path dropped without an answer, by reason (kernel: a full \
                 receive ring).",
                "reason",
                &xdp::DROPS,
            ),
            xdp_cache: Counters::new(
                "dns_xdp_cache_replies",
                "Replies of the XDP answer cache: answered (sent by the XDP program itself), \
                 stored (written by user space for the program to send), refused (not stored: \
                 the kernel refused the write).",
                "event",
                &xdp::cache::EVENTS,
            ),
        };
        telemetry.register_collector(Arc::clone(&m.queries));
        telemetry.register_collector(Arc::clone(&m.responses));
        telemetry.register_collector(Arc::clone(&m.policies));
        telemetry.register_collector(Arc::clone(&m.drops));
        telemetry.register_collector(Arc::clone(&m.limited));
        telemetry.register_collector(Arc::clone(&m.latency));
        telemetry.register_collector(Arc::clone(&m.xdp_drops));
        telemetry.register_collector(Arc::clone(&m.xdp_cache));
        m
    }

    /// One worker's writers.
    pub fn worker(&self) -> WorkerMetrics {
        WorkerMetrics {
            queries: self.queries.writer(),
            responses: self.responses.writer(),
            policies: self.policies.writer(),
            drops: self.drops.writer(),
            limited: self.limited.writer(),
            latency: self.latency.writer(),
        }
    }

    /// The number of dropped packets for `reason`, summed over workers.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops.total(reason as usize)
    }
}

/// One worker's counters: written by that worker only.
#[derive(Debug)]
pub struct WorkerMetrics {
    queries: CountersWriter,
    responses: CountersWriter,
    policies: CountersWriter,
    drops: CountersWriter,
    limited: CountersWriter,
    latency: HistogramWriter,
}

impl WorkerMetrics {
    /// Counts one outcome.
    #[inline]
    pub fn count(&self, outcome: &Outcome) {
        match outcome {
            Outcome::Reply {
                qtype,
                rcode,
                policy,
                ..
            } => {
                self.queries.inc(qtype_slot(*qtype));
                self.responses.inc(rcode_slot(*rcode));
                if let Some(p) = policy {
                    self.policies.inc(*p as usize);
                }
            }
            Outcome::Recurse { qtype } => self.queries.inc(qtype_slot(*qtype)),
            Outcome::Drop(reason) => self.drops.inc(*reason as usize),
        }
    }

    /// Applies rate limiting to a reply of `len` octets in `out`: returns the length to send,
    /// or `None` to send nothing.
    #[inline]
    pub fn limit(
        &self,
        limiter: Option<&mut Limiter>,
        now: Instant,
        client: IpAddr,
        out: &mut [u8],
        len: usize,
    ) -> Option<usize> {
        let Some(limiter) = limiter else {
            return Some(len);
        };
        match limiter.check(now, client) {
            Action::Send => Some(len),
            Action::Drop => {
                self.limited.inc(0);
                None
            }
            Action::Slip => {
                self.limited.inc(1);
                Some(crate::rrl::slip(out, len))
            }
        }
    }

    /// Records one batch's latency.
    #[inline]
    pub fn batch_latency(&self, ns: u64) {
        self.latency.observe_ns(ns);
    }
}

/// The per-query step both UDP backends share: answer into the caller's buffer, count,
/// hand a cache miss (or a prefetch) to the resolver, apply rate limiting.
pub struct Answerer {
    responder: crate::respond::Responder,
    limiter: Option<Limiter>,
    metrics: WorkerMetrics,
    handoff: Option<upstream::Handoff>,
    /// Resolutions reply from a duplicate of the worker's socket, so clients see the address
    /// they asked.
    reply_socket: Option<Arc<std::net::UdpSocket>>,
}

impl Answerer {
    /// Answers one UDP query from `client` into `out`; returns the length to send, if any.
    #[inline]
    pub fn answer(
        &mut self,
        catalog: &crate::authority::Catalog,
        now: Instant,
        client: std::net::SocketAddr,
        query: &[u8],
        out: &mut [u8],
    ) -> Option<usize> {
        self.answer_replayable(catalog, now, client, query, out)
            .map(|(len, _)| len)
    }

    /// [`Self::answer`], and, when the reply says the same to every client until the catalog
    /// changes ([`xdp::cache::replayable`]: no rate limiting, no choice among addresses,
    /// authoritative), the counter slot the XDP answer cache counts its replays in.
    #[inline]
    pub fn answer_replayable(
        &mut self,
        catalog: &crate::authority::Catalog,
        now: Instant,
        client: std::net::SocketAddr,
        query: &[u8],
        out: &mut [u8],
    ) -> Option<(usize, Option<u16>)> {
        let outcome = self.responder.handle_query(
            catalog,
            now,
            client,
            crate::respond::Transport::Udp,
            query,
            out,
        );
        self.metrics.count(&outcome);
        if let Some(h) = &self.handoff {
            if let Outcome::Recurse { .. } = outcome {
                h.miss(client, query, self.reply_socket.as_ref());
            } else if self.responder.poll_prefetch() {
                h.miss(client, query, None);
            }
        }
        match outcome {
            Outcome::Reply {
                len,
                qtype,
                rcode,
                policy,
                ..
            } => {
                let slot = (self.limiter.is_none()
                    && xdp::cache::replayable(&out[..len], policy.is_some()))
                .then(|| (qtype_slot(qtype) * RCODES.len() + rcode_slot(rcode)) as u16);
                let len = self
                    .metrics
                    .limit(self.limiter.as_mut(), now, client.ip(), out, len)?;
                Some((len, slot))
            }
            Outcome::Recurse { .. } | Outcome::Drop(_) => None,
        }
    }

    /// Counts `n` replies the XDP answer cache sent in `slot` (see [`Self::answer_replayable`]).
    pub fn count_replayed(&self, slot: usize, n: u64) {
        self.metrics.queries.add(slot / RCODES.len(), n);
        self.metrics.responses.add(slot % RCODES.len(), n);
    }

    /// Records one batch's latency.
    #[inline]
    pub fn batch_latency(&self, ns: u64) {
        self.metrics.batch_latency(ns);
    }
}

/// Everything one UDP worker thread owns.
pub struct Worker {
    /// Its own socket (SO_REUSEPORT on the shared address).
    pub socket: std::net::UdpSocket,
    /// The catalog it answers from.
    pub catalog: Arc<dataplane_common::snapshot::Snapshot<crate::authority::Catalog>>,
    /// Its responder (per-worker state: round robin, sticky picks, RNG).
    pub responder: crate::respond::Responder,
    /// Its rate limiter, when RRL is on.
    pub limiter: Option<Limiter>,
    /// Its counters.
    pub metrics: WorkerMetrics,
    /// Set when the server stops.
    pub stop: Arc<std::sync::atomic::AtomicBool>,
    /// Where cache misses go, when recursion is on.
    pub handoff: Option<upstream::Handoff>,
}

impl Worker {
    /// The worker's socket, catalog and stop flag, and the answering step over the rest.
    pub fn split(
        self,
    ) -> (
        std::net::UdpSocket,
        Arc<dataplane_common::snapshot::Snapshot<crate::authority::Catalog>>,
        Arc<std::sync::atomic::AtomicBool>,
        Answerer,
    ) {
        let reply_socket = self
            .handoff
            .as_ref()
            .and_then(|_| self.socket.try_clone().ok())
            .map(Arc::new);
        let answerer = Answerer {
            responder: self.responder,
            limiter: self.limiter,
            metrics: self.metrics,
            handoff: self.handoff,
            reply_socket,
        };
        (self.socket, self.catalog, self.stop, answerer)
    }
}

/// Binds `workers` sockets on `addr` (the first bind picks the port when it is 0, the others
/// share it) and runs `serve` with each on a thread named `{name}-{index}`. Both UDP
/// backends start their workers through this.
///
/// # Errors
/// When a socket cannot be bound or a thread cannot be started.
#[allow(clippy::too_many_arguments)]
pub fn spawn_workers(
    addr: std::net::SocketAddr,
    workers: usize,
    name: &str,
    catalog: &Arc<dataplane_common::snapshot::Snapshot<crate::authority::Catalog>>,
    responders: impl Fn(usize) -> (crate::respond::Responder, Option<Limiter>),
    metrics: &Metrics,
    stop: &Arc<std::sync::atomic::AtomicBool>,
    handoff: Option<&upstream::Handoff>,
    serve: fn(Worker),
) -> std::io::Result<(std::net::SocketAddr, Vec<std::thread::JoinHandle<()>>)> {
    let mut addr = addr;
    let mut threads = Vec::with_capacity(workers);
    for w in 0..workers {
        let socket = mmsg::bind(addr)?;
        addr = socket.local_addr()?;
        let (responder, limiter) = responders(w);
        let worker = Worker {
            socket,
            catalog: Arc::clone(catalog),
            responder,
            limiter,
            metrics: metrics.worker(),
            stop: Arc::clone(stop),
            handoff: handoff.cloned(),
        };
        threads.push(
            std::thread::Builder::new()
                .name(format!("{name}-{w}"))
                .spawn(move || serve(worker))?,
        );
    }
    Ok((addr, threads))
}
