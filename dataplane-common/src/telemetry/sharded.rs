//! Per-worker counters and histograms, summed at scrape time.
//!
//! Each worker takes its own writer ([`Counters::writer`], [`Histogram::writer`]). A writer is
//! `Send` but not `Sync`, so exactly one thread writes a shard; that is what lets an increment
//! be a plain load and store instead of a locked read-modify-write. The scraper only reads.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// One worker's slots, on cache lines of its own.
#[repr(align(64))]
#[derive(Debug)]
struct Shard {
    slots: Box<[AtomicU64]>,
}

impl Shard {
    fn new(len: usize) -> Arc<Self> {
        Arc::new(Self {
            slots: (0..len).map(|_| AtomicU64::new(0)).collect(),
        })
    }
}

/// The writer side of one shard. Not `Sync`: one thread writes it.
#[derive(Debug)]
struct ShardWriter {
    shard: Arc<Shard>,
    _not_sync: PhantomData<Cell<()>>,
}

impl ShardWriter {
    #[inline]
    fn add(&self, slot: usize, n: u64) {
        if let Some(cell) = self.shard.slots.get(slot) {
            // Single writer: a plain load and store is exact and costs no locked instruction.
            cell.store(
                cell.load(Ordering::Relaxed).wrapping_add(n),
                Ordering::Relaxed,
            );
        }
    }
}

#[derive(Debug, Default)]
struct Shards(Mutex<Vec<Arc<Shard>>>);

impl Shards {
    fn writer(&self, len: usize) -> ShardWriter {
        let shard = Shard::new(len);
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&shard));
        ShardWriter {
            shard,
            _not_sync: PhantomData,
        }
    }

    fn sum(&self, len: usize) -> Vec<u64> {
        let mut sums = vec![0u64; len];
        for shard in self.0.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            for (sum, slot) in sums.iter_mut().zip(shard.slots.iter()) {
                *sum = sum.wrapping_add(slot.load(Ordering::Relaxed));
            }
        }
        sums
    }
}

/// A counter family with one label whose values are fixed up front (qtype, rcode, drop reason).
#[derive(Debug)]
pub struct Counters {
    name: &'static str,
    help: &'static str,
    label: &'static str,
    values: &'static [&'static str],
    shards: Shards,
}

/// One worker's handle on a [`Counters`].
#[derive(Debug)]
pub struct CountersWriter(ShardWriter);

impl CountersWriter {
    /// Adds `n` to the counter whose label value is `values[slot]`; an unknown slot is ignored.
    #[inline]
    pub fn add(&self, slot: usize, n: u64) {
        self.0.add(slot, n);
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self, slot: usize) {
        self.0.add(slot, 1);
    }
}

impl Counters {
    /// A family `name{label="values[i]"}`. `name` leaves off `_total`; the encoder adds it.
    pub fn new(
        name: &'static str,
        help: &'static str,
        label: &'static str,
        values: &'static [&'static str],
    ) -> Arc<Self> {
        Arc::new(Self {
            name,
            help,
            label,
            values,
            shards: Shards::default(),
        })
    }

    /// A writer for one worker.
    pub fn writer(&self) -> CountersWriter {
        CountersWriter(self.shards.writer(self.values.len()))
    }

    /// The sum over all workers of the counter at `slot`.
    pub fn total(&self, slot: usize) -> u64 {
        self.shards
            .sum(self.values.len())
            .get(slot)
            .copied()
            .unwrap_or(0)
    }
}

impl Collector for Counters {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut metric =
            encoder.encode_descriptor(self.name, self.help, None, MetricType::Counter)?;
        for (value, sum) in self.values.iter().zip(self.shards.sum(self.values.len())) {
            let labels = [(self.label, *value)];
            let family = metric.encode_family(&labels)?;
            prometheus_client::metrics::counter::ConstCounter::new(sum).encode(family)?;
        }
        Ok(())
    }
}

/// A histogram with fixed bucket bounds in seconds, observed in nanoseconds.
#[derive(Debug)]
pub struct Histogram {
    name: &'static str,
    help: &'static str,
    /// Upper bounds in nanoseconds, ascending.
    bounds_ns: Vec<u64>,
    shards: Shards,
}

/// One worker's handle on a [`Histogram`].
#[derive(Debug)]
pub struct HistogramWriter {
    writer: ShardWriter,
    bounds_ns: Vec<u64>,
}

impl HistogramWriter {
    /// Records one observation of `ns` nanoseconds.
    #[inline]
    pub fn observe_ns(&self, ns: u64) {
        let bucket = self.bounds_ns.partition_point(|&b| b < ns);
        self.writer.add(bucket, 1);
        self.writer.add(self.bounds_ns.len() + 1, ns);
    }
}

impl Histogram {
    /// A histogram with the given upper bounds, in seconds.
    pub fn new(name: &'static str, help: &'static str, bounds_secs: &[f64]) -> Arc<Self> {
        let bounds_ns = bounds_secs.iter().map(|s| (s * 1e9) as u64).collect();
        Arc::new(Self {
            name,
            help,
            bounds_ns,
            shards: Shards::default(),
        })
    }

    /// Slots: one per bound, one for +Inf, one for the sum.
    fn slots(&self) -> usize {
        self.bounds_ns.len() + 2
    }

    /// A writer for one worker.
    pub fn writer(&self) -> HistogramWriter {
        HistogramWriter {
            writer: self.shards.writer(self.slots()),
            bounds_ns: self.bounds_ns.clone(),
        }
    }

    /// (count, sum in seconds) over all workers.
    pub fn count_and_sum(&self) -> (u64, f64) {
        let sums = self.shards.sum(self.slots());
        let count = sums[..=self.bounds_ns.len()].iter().sum();
        (count, sums[self.bounds_ns.len() + 1] as f64 / 1e9)
    }
}

impl Collector for Histogram {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let sums = self.shards.sum(self.slots());
        // Per-bucket counts: the encoder makes them cumulative.
        let mut buckets: Vec<(f64, u64)> = self
            .bounds_ns
            .iter()
            .zip(&sums)
            .map(|(bound, n)| (*bound as f64 / 1e9, *n))
            .collect();
        buckets.push((f64::INFINITY, sums[self.bounds_ns.len()]));
        let count = sums[..=self.bounds_ns.len()].iter().sum();
        let sum = sums[self.bounds_ns.len() + 1] as f64 / 1e9;
        let mut metric =
            encoder.encode_descriptor(self.name, self.help, None, MetricType::Histogram)?;
        metric.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Telemetry;

    #[test]
    fn shards_are_summed_at_scrape() {
        let counters = Counters::new("dns_queries", "Queries by type.", "qtype", &["A", "AAAA"]);
        let telemetry = Telemetry::new();
        telemetry.register_collector(Arc::clone(&counters));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let writer = counters.writer();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        writer.inc(0);
                    }
                    writer.add(1, 5);
                    writer.inc(99); // unknown slot: ignored
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(counters.total(0), 4000);
        let text = telemetry.encode();
        assert!(
            text.contains("dns_queries_total{qtype=\"A\"} 4000"),
            "{text}"
        );
        assert!(
            text.contains("dns_queries_total{qtype=\"AAAA\"} 20"),
            "{text}"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new("latency_seconds", "Latency.", &[0.000_001, 0.001]);
        let w = h.writer();
        w.observe_ns(500);
        w.observe_ns(50_000);
        w.observe_ns(5_000_000);
        assert_eq!(h.count_and_sum().0, 3);
        let telemetry = Telemetry::new();
        telemetry.register_collector(h);
        let text = telemetry.encode();
        assert!(
            text.contains("latency_seconds_bucket{le=\"0.000001\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("latency_seconds_bucket{le=\"0.001\"} 2"),
            "{text}"
        );
        assert!(text.contains("latency_seconds_count 3"), "{text}");
        assert!(
            text.contains("latency_seconds_bucket{le=\"+Inf\"} 3"),
            "{text}"
        );
    }
}
