//! Recursion telemetry, in the process's `/metrics`.
//!
//! Two kinds of writers. Cache lookups happen on the workers' hot path, so each worker counts
//! into slots of its own with a plain load and store, as `telemetry::sharded` does (that type
//! is not `Sync`, and a [`Front`](super::Front) must be, so the slots are kept here); a front
//! without slots of its own (TCP connections) counts with shared atomics, and all are summed
//! when scraped. Everything else happens
//! on the resolver's tasks, once per upstream query or resolution, and uses prometheus-client's
//! atomic metrics. Cache size, evictions and the upstreams' health are read at scrape time.
//!
//! Nothing here reads a clock on its own: the health collector is given one.

use super::cache::Cache;
use super::health::Health;
use super::resolve::{Limit, Stats};
use dataplane_common::clock::Clock;
use dataplane_common::telemetry::Telemetry;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// What a cache lookup found, by slot: a fresh entry, nothing, or an entry past its TTL (a miss
/// that may still be answered stale if resolution fails).
pub const LOOKUPS: &[&str] = &["hit", "miss", "expired"];
/// [`LOOKUPS`] slots.
pub(crate) const HIT: usize = 0;
pub(crate) const MISS: usize = 1;
pub(crate) const EXPIRED: usize = 2;

/// Cold-resolution latency buckets, seconds: loopback hierarchies answer in well under a
/// millisecond a hop, the Internet in tens of milliseconds; the budget ends at seconds.
const LATENCY_BOUNDS: [f64; 15] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0,
];

/// One writer's lookup counts, on a cache line of its own.
#[repr(align(64))]
#[derive(Debug, Default)]
struct Slots([AtomicU64; 3]);

/// Where one [`Front`](super::Front) counts its lookups.
#[derive(Debug)]
pub(crate) struct Tally {
    slots: Arc<Slots>,
    /// Only one thread writes `slots`: a plain load and store is exact and costs no locked
    /// instruction (as in `telemetry::sharded`). Otherwise `slots` is shared and incremented
    /// atomically.
    single_writer: bool,
}

impl Tally {
    /// Counts one lookup in `slot` ([`LOOKUPS`]).
    #[inline]
    pub(crate) fn inc(&self, slot: usize) {
        let Some(c) = self.slots.0.get(slot) else {
            return;
        };
        if self.single_writer {
            c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
        } else {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Cache lookups: one slot set per worker plus one shared by everything else, summed at
/// scrape.
#[derive(Debug, Default)]
pub struct Lookups {
    shared: Arc<Slots>,
    workers: Mutex<Vec<Arc<Slots>>>,
}

impl Lookups {
    /// Slots for one worker thread, which alone may count with the result.
    pub(crate) fn worker(&self) -> Tally {
        let slots = Arc::new(Slots::default());
        self.workers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&slots));
        Tally {
            slots,
            single_writer: true,
        }
    }

    /// The shared slots, for any thread.
    pub(crate) fn shared(&self) -> Tally {
        Tally {
            slots: Arc::clone(&self.shared),
            single_writer: false,
        }
    }

    /// The sum of `slot` over every writer.
    pub fn total(&self, slot: usize) -> u64 {
        let read = |s: &Slots| s.0.get(slot).map_or(0, |c| c.load(Ordering::Relaxed));
        let workers = self.workers.lock().unwrap_or_else(PoisonError::into_inner);
        workers.iter().map(|s| read(s)).sum::<u64>() + read(&self.shared)
    }
}

impl Collector for Lookups {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut metric = encoder.encode_descriptor(
            "dns_recursion_cache_lookups",
            "Recursive queries looked up in the cache, by result.",
            None,
            MetricType::Counter,
        )?;
        for (slot, value) in LOOKUPS.iter().enumerate() {
            let labels = [("result", *value)];
            let family = metric.encode_family(&labels)?;
            ConstCounter::new(self.total(slot)).encode(family)?;
        }
        Ok(())
    }
}

/// The cache's size and evictions, read at scrape.
#[derive(Debug)]
struct CacheSize(Arc<Cache>);

impl Collector for CacheSize {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let entries = i64::try_from(self.0.len()).unwrap_or(i64::MAX);
        let metric = encoder.encode_descriptor(
            "dns_recursion_cache_entries",
            "Answers in the recursion cache (fresh and stale).",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(entries).encode(metric)?;
        let metric = encoder.encode_descriptor(
            "dns_recursion_cache_evictions",
            "Answers evicted from the recursion cache to make room.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(self.0.evictions()).encode(metric)
    }
}

/// Forward upstreams' health, read at scrape.
struct Upstreams<C> {
    health: Arc<Health>,
    clock: C,
}

impl<C> std::fmt::Debug for Upstreams<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams")
            .field("health", &self.health)
            .finish()
    }
}

impl<C: Clock + 'static> Collector for Upstreams<C> {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let reports: Vec<_> = self.health.report(self.clock.now()).collect();
        if reports.is_empty() {
            return Ok(());
        }
        let mut metric = encoder.encode_descriptor(
            "dns_recursion_upstream_up",
            "Whether a forward upstream is in use (1) or cooling off after failures (0).",
            None,
            MetricType::Gauge,
        )?;
        for r in &reports {
            let labels = [("upstream", r.addr.to_string())];
            let family = metric.encode_family(&labels)?;
            ConstGauge::new(i64::from(r.up)).encode(family)?;
        }
        let mut metric = encoder.encode_descriptor(
            "dns_recursion_upstream_consecutive_failures",
            "Failed exchanges with a forward upstream since its last success.",
            None,
            MetricType::Gauge,
        )?;
        for r in &reports {
            let labels = [("upstream", r.addr.to_string())];
            let family = metric.encode_family(&labels)?;
            ConstGauge::new(i64::from(r.consecutive_failures)).encode(family)?;
        }
        let mut metric = encoder.encode_descriptor(
            "dns_recursion_upstream_exchanges",
            "Exchanges with a forward upstream, by result.",
            None,
            MetricType::Counter,
        )?;
        for r in &reports {
            let addr = r.addr.to_string();
            for (result, n) in [("ok", r.answered), ("failed", r.failed)] {
                let labels = [("upstream", addr.as_str()), ("result", result)];
                let family = metric.encode_family(&labels)?;
                ConstCounter::new(n).encode(family)?;
            }
        }
        Ok(())
    }
}

/// What became of one upstream query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    /// A reply that was used.
    Answer,
    /// A reply from a server that could not answer: SERVFAIL, REFUSED, a lame referral.
    Lame,
    /// No matching reply before the deadline.
    Timeout,
    /// A truncated reply over UDP; the question goes again over TCP.
    Truncated,
    /// The socket or connection failed.
    Error,
}

impl Exchange {
    fn label(self) -> &'static str {
        match self {
            Self::Answer => "answer",
            Self::Lame => "lame",
            Self::Timeout => "timeout",
            Self::Truncated => "truncated",
            Self::Error => "error",
        }
    }
}

/// How a resolution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    /// An answer (NOERROR, NODATA included).
    Noerror,
    /// A name that does not exist.
    Nxdomain,
    /// Resolution failed; a stale answer went out instead.
    Stale,
    /// Resolution failed and nothing stale was at hand.
    Servfail,
}

impl Resolved {
    fn label(self) -> &'static str {
        match self {
            Self::Noerror => "noerror",
            Self::Nxdomain => "nxdomain",
            Self::Stale => "stale",
            Self::Servfail => "servfail",
        }
    }
}

type Label1 = [(&'static str, &'static str); 1];
type Label2 = [(&'static str, &'static str); 2];

/// Every recursion metric. Registered once per server; shared by the resolver and the fronts.
#[derive(Debug)]
pub struct Metrics {
    lookups: Arc<Lookups>,
    resolutions: Family<Label1, Counter>,
    latency: Histogram,
    upstream: Family<Label2, Counter>,
    ignored: Counter,
    bailiwick: Family<Label1, Counter>,
    exhausted: Family<Label1, Counter>,
    prefetches: Counter,
    stale_served: Counter,
    dropped: Counter,
}

impl Metrics {
    /// The families, registered in `telemetry`, with collectors over `cache` and `health`
    /// (whose cool-offs are judged by `clock` at scrape).
    pub fn register(
        telemetry: &Telemetry,
        cache: &Arc<Cache>,
        health: &Arc<Health>,
        clock: impl Clock + 'static,
    ) -> Arc<Self> {
        let m = Self::families();
        telemetry.register_collector(Arc::clone(&m.lookups));
        telemetry.register_collector(CacheSize(Arc::clone(cache)));
        telemetry.register_collector(Upstreams {
            health: Arc::clone(health),
            clock,
        });
        telemetry.register(
            "dns_recursion_resolutions",
            "Cache misses resolved, by how they ended",
            m.resolutions.clone(),
        );
        telemetry.register(
            "dns_recursion_resolution_seconds",
            "Time to resolve a cache miss (cold resolution), from the first upstream query \
             to the answer",
            m.latency.clone(),
        );
        telemetry.register(
            "dns_recursion_upstream_queries",
            "Queries to upstream servers, by transport and outcome",
            m.upstream.clone(),
        );
        telemetry.register(
            "dns_recursion_upstream_ignored",
            "Datagrams from upstreams ignored: wrong ID or question (spoofed or stray)",
            m.ignored.clone(),
        );
        telemetry.register(
            "dns_recursion_bailiwick_rejected",
            "Records a server may not speak for, dropped, by section",
            m.bailiwick.clone(),
        );
        telemetry.register(
            "dns_recursion_budget_exhausted",
            "Resolutions that ran into a limit of their work budget, by limit",
            m.exhausted.clone(),
        );
        telemetry.register(
            "dns_recursion_prefetches",
            "Popular names refreshed shortly before they expired",
            m.prefetches.clone(),
        );
        telemetry.register(
            "dns_recursion_stale_served",
            "Replies served from expired answers because resolution failed (RFC 8767)",
            m.stale_served.clone(),
        );
        telemetry.register(
            "dns_recursion_misses_dropped",
            "Cache misses dropped because the resolver's queue was full",
            m.dropped.clone(),
        );
        Arc::new(m)
    }

    /// Families not registered anywhere (benchmarks, tests).
    pub fn unregistered() -> Arc<Self> {
        Arc::new(Self::families())
    }

    fn families() -> Self {
        Self {
            lookups: Arc::new(Lookups::default()),
            resolutions: Family::default(),
            latency: Histogram::new(LATENCY_BOUNDS),
            upstream: Family::default(),
            ignored: Counter::default(),
            bailiwick: Family::default(),
            exhausted: Family::default(),
            prefetches: Counter::default(),
            stale_served: Counter::default(),
            dropped: Counter::default(),
        }
    }

    /// The cache lookup counters.
    pub fn lookups(&self) -> &Arc<Lookups> {
        &self.lookups
    }

    /// One upstream query over TCP (`tcp`) or UDP.
    pub fn exchange(&self, tcp: bool, outcome: Exchange) {
        let transport = if tcp { "tcp" } else { "udp" };
        self.upstream
            .get_or_create(&[("transport", transport), ("outcome", outcome.label())])
            .inc();
    }

    /// One upstream datagram ignored.
    pub fn ignored(&self) {
        self.ignored.inc();
    }

    /// One resolution finished after `took`, with what it saw.
    pub fn resolved(&self, how: Resolved, took: Duration, stats: &Stats) {
        self.resolutions
            .get_or_create(&[("result", how.label())])
            .inc();
        self.latency.observe(took.as_secs_f64());
        for (section, n) in [
            ("answer", stats.rejected_answers),
            ("referral", stats.rejected_referrals),
            ("glue", stats.rejected_glue),
        ] {
            if n > 0 {
                self.bailiwick
                    .get_or_create(&[("section", section)])
                    .inc_by(u64::from(n));
            }
        }
        if let Some(limit) = stats.exhausted {
            let label = Limit::NAMES[limit as usize];
            self.exhausted.get_or_create(&[("limit", label)]).inc();
        }
    }

    /// One prefetch started.
    pub fn prefetch(&self) {
        self.prefetches.inc();
    }

    /// One client answered with stale data.
    pub fn stale_served(&self) {
        self.stale_served.inc();
    }

    /// One miss dropped at the queue.
    pub fn dropped(&self) {
        self.dropped.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recursor::cache::{Entry, Settings};
    use crate::wire::message::{Rr, TYPE_A};
    use dataplane_common::clock::ManualClock;

    #[test]
    fn every_family_shows_up_in_the_scrape() {
        let clock = ManualClock::new();
        let cache = Arc::new(Cache::new(
            Settings {
                capacity: 1,
                ..Settings::default()
            },
            1,
        ));
        let upstream = "127.0.0.1:53".parse().unwrap();
        let health = Arc::new(Health::new(clock.now(), [upstream]));
        let telemetry = Telemetry::new();
        let m = Metrics::register(&telemetry, &cache, &health, clock.clone());
        for i in 0..200u8 {
            let name = [3, b'n', b'0' + i / 16, b'a' + i % 16, 0];
            let a = [Rr {
                owner: name.into(),
                rtype: TYPE_A,
                class: 1,
                ttl: 60,
                rdata: [192, 0, 2, i].into(),
            }];
            let e = Entry::build(
                clock.now(),
                cache.settings(),
                &name,
                TYPE_A,
                0,
                [&a, &[], &[]],
            );
            cache.insert(clock.now(), e.unwrap());
        }
        let w = m.lookups().worker();
        w.inc(HIT);
        w.inc(HIT);
        m.lookups().shared().inc(HIT);
        m.lookups().shared().inc(MISS);
        m.exchange(false, Exchange::Truncated);
        m.exchange(true, Exchange::Answer);
        m.ignored();
        health.record(clock.now(), upstream, false);
        m.resolved(
            Resolved::Noerror,
            Duration::from_millis(3),
            &Stats {
                rejected_glue: 2,
                exhausted: Some(Limit::Cnames),
                ..Stats::default()
            },
        );
        let text = telemetry.encode();
        let (entries, evicted) = (cache.len(), cache.evictions());
        assert!(
            entries <= 64 && evicted == 200 - entries as u64,
            "{entries} {evicted}"
        );
        assert!(text.contains(&format!("dns_recursion_cache_entries {entries}\n")));
        assert!(text.contains(&format!("dns_recursion_cache_evictions_total {evicted}\n")));
        for line in [
            "dns_recursion_cache_lookups_total{result=\"hit\"} 3",
            "dns_recursion_cache_lookups_total{result=\"miss\"} 1",
            "dns_recursion_cache_lookups_total{result=\"expired\"} 0",
            "dns_recursion_upstream_queries_total{transport=\"udp\",outcome=\"truncated\"} 1",
            "dns_recursion_upstream_queries_total{transport=\"tcp\",outcome=\"answer\"} 1",
            "dns_recursion_upstream_ignored_total 1",
            "dns_recursion_bailiwick_rejected_total{section=\"glue\"} 2",
            "dns_recursion_budget_exhausted_total{limit=\"cnames\"} 1",
            "dns_recursion_resolutions_total{result=\"noerror\"} 1",
            "dns_recursion_resolution_seconds_bucket{le=\"0.005\"} 1",
            "dns_recursion_upstream_up{upstream=\"127.0.0.1:53\"} 1",
            "dns_recursion_upstream_consecutive_failures{upstream=\"127.0.0.1:53\"} 1",
            "dns_recursion_upstream_exchanges_total{upstream=\"127.0.0.1:53\",result=\"failed\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
