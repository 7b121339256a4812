//! Telemetry: counters a hot path can afford, exported in the Prometheus text format.
//!
//! Hot paths write [`sharded`] counters and histograms: one shard per worker, written with a
//! plain load and store (no locked instruction), summed only when `/metrics` is scraped.
//! Everything else (store watch, control) uses prometheus-client's own metric types. Both are
//! registered in one [`Telemetry`], which [`http::router`] serves with `/healthz` and `/readyz`.

pub mod http;
pub mod sharded;

use prometheus_client::collector::Collector;
use prometheus_client::registry::{Metric, Registry};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The process's metrics and readiness. Cloning shares them.
#[derive(Clone, Default)]
pub struct Telemetry {
    registry: Arc<Mutex<Registry>>,
    ready: Arc<AtomicBool>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("ready", &self.is_ready())
            .finish()
    }
}

impl Telemetry {
    /// An empty registry, not ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a prometheus-client metric (for paths that are not hot).
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.lock().register(name, help, metric);
    }

    /// Registers a collector, such as [`sharded::Counters`], that encodes itself at scrape time.
    pub fn register_collector(&self, collector: impl Collector) {
        self.lock().register_collector(Box::new(collector));
    }

    /// Marks the process ready (initial data loaded) or not; `/readyz` reports it.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Whether the process is ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Every metric in the Prometheus/OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.lock())
            .expect("invariant: writing to a String cannot fail");
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        // A panic while holding the lock leaves a registry that is still consistent.
        self.registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
