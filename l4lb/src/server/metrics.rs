//! Traffic counters for `/metrics`: each worker publishes a copy of its datapath counters
//! (with the snapshot they are indexed by) a few times a second, and the [`Collector`] sums
//! them by label when scraped. Labels are bounded by configuration: one series per VIP, per
//! real server of a VIP, and per drop reason.

use super::handoff::Handoffs;
use crate::counters::{Counter, Counters};
use crate::datapath::FastPathStats;
use crate::drop::DropReason;
use crate::io::LinkStats;
use crate::vips::Vips;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

/// What one worker last published.
#[derive(Debug)]
pub(crate) struct Published {
    pub(crate) vips: Arc<Vips>,
    pub(crate) counters: Counters,
    pub(crate) link: LinkStats,
    /// Frames the transmit queue refused.
    pub(crate) tx_full: u64,
    /// Failed flushes.
    pub(crate) tx_errors: u64,
    pub(crate) sessions: u64,
    /// The XDP fast path's, when on.
    pub(crate) fast: Option<FastPathStats>,
}

/// Every worker's published counters.
#[derive(Debug, Default)]
pub(crate) struct Board {
    workers: Mutex<Vec<Arc<Mutex<Published>>>>,
    /// The workers' inboxes, when they hand frames to each other (AF_XDP, several queues).
    pub(crate) handoffs: Option<Arc<Handoffs>>,
}

impl Board {
    /// A board for workers that hand frames to each other through `handoffs`, if any.
    pub(crate) fn new(handoffs: Option<Arc<Handoffs>>) -> Self {
        Self {
            workers: Mutex::default(),
            handoffs,
        }
    }

    /// A slot for one more worker.
    pub(crate) fn slot(&self, vips: Arc<Vips>) -> Arc<Mutex<Published>> {
        let counters = Counters::new(vips.vips().len(), vips.real_servers().len());
        let slot = Arc::new(Mutex::new(Published {
            vips,
            counters,
            link: LinkStats::default(),
            tx_full: 0,
            tx_errors: 0,
            sessions: 0,
            fast: None,
        }));
        self.workers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&slot));
        slot
    }
}

/// Sums of one scrape.
#[derive(Debug, Default)]
struct Sums {
    vips: BTreeMap<String, Counter>,
    real_servers: BTreeMap<(String, String), Counter>,
    drops: [u64; DropReason::COUNT],
    transmitted: u64,
    passed: u64,
    expired: u64,
    evicted: u64,
    sessions: u64,
    kernel_drops: u64,
    truncated: u64,
    tx_full: u64,
    tx_errors: u64,
    fast: Option<FastPathStats>,
}

fn add(into: &mut Counter, c: &Counter) {
    into.packets += c.packets;
    into.bytes += c.bytes;
    into.new_sessions += c.new_sessions;
    into.active_sessions += c.active_sessions;
}

fn proto_name(p: u8) -> &'static str {
    match p {
        crate::flow::TCP => "tcp",
        crate::flow::UDP => "udp",
        _ => "other",
    }
}

fn endpoint(address: &crate::flow::Addr, port: u16) -> String {
    std::net::SocketAddr::new(address.ip(), port).to_string()
}

impl Board {
    fn sum(&self) -> Sums {
        let mut s = Sums::default();
        let workers = self.workers.lock().unwrap_or_else(PoisonError::into_inner);
        for w in workers.iter() {
            let p = w.lock().unwrap_or_else(PoisonError::into_inner);
            let names: Vec<String> = p
                .vips
                .vips()
                .iter()
                .map(|v| format!("{}/{}", endpoint(&v.address, v.port), proto_name(v.proto)))
                .collect();
            for (name, c) in names.iter().zip(&p.counters.vips) {
                add(s.vips.entry(name.clone()).or_default(), c);
            }
            for (r, c) in p.vips.real_servers().iter().zip(&p.counters.real_servers) {
                let vip = names.get(r.vip as usize).cloned().unwrap_or_default();
                add(
                    s.real_servers
                        .entry((vip, endpoint(&r.address, r.port)))
                        .or_default(),
                    c,
                );
            }
            for (d, n) in s.drops.iter_mut().zip(p.counters.drops) {
                *d += n;
            }
            s.transmitted += p.counters.transmitted;
            s.passed += p.counters.passed;
            s.expired += p.counters.expired;
            s.evicted += p.counters.evicted;
            s.sessions += p.sessions;
            s.kernel_drops += p.link.kernel_drops;
            s.truncated += p.link.truncated;
            s.tx_full += p.tx_full;
            s.tx_errors += p.tx_errors;
            if let Some(f) = p.fast {
                let sum = s.fast.get_or_insert_default();
                sum.packets += f.packets;
                sum.bytes += f.bytes;
                sum.installs += f.installs;
                sum.removals += f.removals;
                sum.errors += f.errors;
            }
        }
        s
    }
}

/// The collector registered in the process's telemetry.
#[derive(Debug)]
pub(crate) struct Metrics(pub(crate) Arc<Board>);

type Family<'a> = (&'static str, &'static str, MetricType);

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    (name, help, ty): Family<'_>,
    series: &[(Vec<(&str, &str)>, u64)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, ty)?;
    for (labels, v) in series {
        let family = metric.encode_family(labels)?;
        match ty {
            MetricType::Gauge => ConstGauge::new(*v as i64).encode(family)?,
            _ => ConstCounter::new(*v).encode(family)?,
        }
    }
    Ok(())
}

impl Collector for Metrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = self.0.sum();
        type Pick = fn(&Counter) -> u64;
        let families: [(Family<'_>, Pick); 4] = [
            (
                (
                    "lb_packets",
                    "Packets forwarded (both directions).",
                    MetricType::Counter,
                ),
                |c| c.packets,
            ),
            (
                (
                    "lb_bytes",
                    "Bytes (whole frames) forwarded.",
                    MetricType::Counter,
                ),
                |c| c.bytes,
            ),
            (
                ("lb_new_sessions", "Sessions created.", MetricType::Counter),
                |c| c.new_sessions,
            ),
            (
                (
                    "lb_active_sessions",
                    "Sessions live now.",
                    MetricType::Gauge,
                ),
                |c| c.active_sessions,
            ),
        ];
        for ((name, help, ty), pick) in families {
            let series: Vec<_> = s
                .vips
                .iter()
                .map(|(v, c)| (vec![("vip", v.as_str())], pick(c)))
                .collect();
            counter(&mut encoder, (name, help, ty), &series)?;
        }
        let rs_families: [(Family<'_>, Pick); 4] = [
            (
                (
                    "lb_real_server_packets",
                    "Packets forwarded per real server.",
                    MetricType::Counter,
                ),
                |c| c.packets,
            ),
            (
                (
                    "lb_real_server_bytes",
                    "Bytes forwarded per real server.",
                    MetricType::Counter,
                ),
                |c| c.bytes,
            ),
            (
                (
                    "lb_real_server_new_sessions",
                    "Sessions created per real server.",
                    MetricType::Counter,
                ),
                |c| c.new_sessions,
            ),
            (
                (
                    "lb_real_server_active_sessions",
                    "Sessions live now per real server.",
                    MetricType::Gauge,
                ),
                |c| c.active_sessions,
            ),
        ];
        for ((name, help, ty), pick) in rs_families {
            let series: Vec<_> = s
                .real_servers
                .iter()
                .map(|((v, r), c)| {
                    (
                        vec![("vip", v.as_str()), ("real_server", r.as_str())],
                        pick(c),
                    )
                })
                .collect();
            counter(&mut encoder, (name, help, ty), &series)?;
        }
        let drops: Vec<_> = DropReason::ALL
            .iter()
            .map(|r| (vec![("reason", r.name())], s.drops[r.index()]))
            .collect();
        counter(
            &mut encoder,
            (
                "lb_drops",
                "Frames dropped by the datapath, by reason.",
                MetricType::Counter,
            ),
            &drops,
        )?;
        let frames = [
            (vec![("verdict", "tx")], s.transmitted),
            (vec![("verdict", "pass")], s.passed),
        ];
        counter(
            &mut encoder,
            (
                "lb_frames",
                "Frames the datapath transmitted or passed (passed frames are not ours and are dropped).",
                MetricType::Counter,
            ),
            &frames,
        )?;
        let sessions = [
            (vec![("event", "expired")], s.expired),
            (vec![("event", "evicted")], s.evicted),
        ];
        counter(
            &mut encoder,
            (
                "lb_sessions_removed",
                "Sessions removed, by why.",
                MetricType::Counter,
            ),
            &sessions,
        )?;
        counter(
            &mut encoder,
            (
                "lb_sessions",
                "Sessions in the workers' tables.",
                MetricType::Gauge,
            ),
            &[(vec![], s.sessions)],
        )?;
        let link = [
            (vec![("event", "kernel_drop")], s.kernel_drops),
            (vec![("event", "truncated")], s.truncated),
            (vec![("event", "tx_full")], s.tx_full),
            (vec![("event", "tx_error")], s.tx_errors),
        ];
        counter(
            &mut encoder,
            (
                "lb_link_events",
                "Frames lost at the link: receive ring full, truncated, transmit ring full, failed flushes.",
                MetricType::Counter,
            ),
            &link,
        )?;
        if let Some(h) = &self.0.handoffs {
            let events = [
                (vec![("event", "sent")], h.sent.load(Ordering::Relaxed)),
                (
                    vec![("event", "dropped")],
                    h.dropped.load(Ordering::Relaxed),
                ),
            ];
            counter(
                &mut encoder,
                (
                    "lb_handoff_frames",
                    "Frames a worker received on its queue and handed to the worker owning their session, and those dropped because its inbox was full.",
                    MetricType::Counter,
                ),
                &events,
            )?;
        }
        if let Some(f) = s.fast {
            counter(
                &mut encoder,
                (
                    "lb_fast_path_packets",
                    "Packets the XDP program forwarded itself (counted in lb_packets too, up to a poll interval late).",
                    MetricType::Counter,
                ),
                &[(vec![], f.packets)],
            )?;
            counter(
                &mut encoder,
                (
                    "lb_fast_path_bytes",
                    "Bytes the XDP program forwarded itself.",
                    MetricType::Counter,
                ),
                &[(vec![], f.bytes)],
            )?;
            let events = [
                (vec![("event", "install")], f.installs),
                (vec![("event", "remove")], f.removals),
                (vec![("event", "error")], f.errors),
            ];
            counter(
                &mut encoder,
                (
                    "lb_fast_path_sessions",
                    "Sessions put into and taken out of the XDP program's map, and map operations that failed.",
                    MetricType::Counter,
                ),
                &events,
            )?;
        }
        Ok(())
    }
}
