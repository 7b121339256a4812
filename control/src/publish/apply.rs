//! Applying plans to the store: the only I/O of publishing.

use super::Desired;
use super::diff::{Current, PREFIXES, diff};
use dataplane_common::model::{Zone, encode, keys};
use dataplane_common::store::{Compare, Op, Store, StoreError, Txn};
use dataplane_common::telemetry::Telemetry;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;
use tracing::{debug, info, warn};

/// How often one publish re-reads the store after a guard failed before giving up for now.
const MAX_ATTEMPTS: usize = 5;

/// What publishing did, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Keys written, by `op` (`put`, `delete`).
    pub writes: Family<[(&'static str, &'static str); 1], Counter>,
    /// Transactions whose guard failed (a concurrent writer); each leads to a re-read.
    pub conflicts: Counter,
    /// Keys a Service wants that a user object holds.
    pub user_held: Gauge,
    /// Keys control owns in the store.
    pub owned: Gauge,
}

impl Metrics {
    /// Metrics registered in `telemetry`, named `control_publish_*`.
    pub fn register(telemetry: &Telemetry) -> Self {
        let m = Self::default();
        telemetry.register(
            "control_publish_writes",
            "Keys control wrote to the project store, by op.",
            m.writes.clone(),
        );
        telemetry.register(
            "control_publish_conflicts",
            "Publishing transactions whose guard failed because of a concurrent writer.",
            m.conflicts.clone(),
        );
        telemetry.register(
            "control_publish_user_held_keys",
            "Keys a Service wants that a user-sourced object holds (left alone).",
            m.user_held.clone(),
        );
        telemetry.register(
            "control_publish_owned_keys",
            "Keys under /dataplane/ that control owns.",
            m.owned.clone(),
        );
        m
    }
}

/// What one publish wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Keys created or changed.
    pub puts: usize,
    /// Keys deleted.
    pub deletes: usize,
    /// Transactions that failed their guard and were planned again.
    pub conflicts: usize,
}

/// Keeps the store's `/dataplane/` in line with the desired state.
///
/// It lists the store once (a full reconcile) and afterwards plans against what it wrote
/// itself. A failed guard, or any store error, makes it list again before the next plan,
/// so a concurrent writer is seen rather than overwritten.
#[derive(Debug)]
pub struct Publisher {
    store: Arc<dyn Store>,
    current: Option<Current>,
    fence: Option<Compare>,
    metrics: Metrics,
}

impl Publisher {
    /// A publisher that has read nothing yet.
    pub fn new(store: Arc<dyn Store>, metrics: Metrics) -> Self {
        Self {
            store,
            current: None,
            fence: None,
            metrics,
        }
    }

    /// Adds `fence` to the guards of every transaction (the leader key's revision), so that
    /// a node that is no longer leader cannot write; `None` removes it.
    pub fn set_fence(&mut self, fence: Option<Compare>) {
        self.fence = fence;
    }

    /// Forgets what it knows of the store: the next publish lists it again.
    pub fn invalidate(&mut self) {
        self.current = None;
    }

    /// Writes what differs between `desired` and the store.
    ///
    /// # Errors
    /// The store's error (the state is then re-read next time), or
    /// [`StoreError::Unavailable`] when concurrent writers kept failing the guards.
    pub async fn publish(&mut self, desired: &Desired) -> Result<Stats, StoreError> {
        let result = self.try_publish(desired).await;
        if result.is_err() {
            self.current = None;
        }
        result
    }

    async fn try_publish(&mut self, desired: &Desired) -> Result<Stats, StoreError> {
        let mut stats = Stats::default();
        for _ in 0..MAX_ATTEMPTS {
            let current = match self.current.take() {
                Some(current) => current,
                None => self.read().await?,
            };
            let current = self.current.insert(current);
            let plan = diff(desired, current);
            self.metrics.user_held.set(to_i64(plan.user_held.len()));
            for key in &plan.user_held {
                debug!(%key, "a Service wants a key a user object holds; left alone");
            }
            let mut conflicted = false;
            for mut txn in plan.txns {
                if let Some(fence) = &self.fence {
                    txn.compares.push(fence.clone());
                }
                let outcome = self.store.txn(txn.clone()).await?;
                if !outcome.succeeded {
                    conflicted = true;
                    break;
                }
                current.applied(&txn, outcome.revision);
                for op in &txn.ops {
                    let (label, n) = match op {
                        Op::Put { .. } => ("put", &mut stats.puts),
                        Op::Delete { .. } => ("delete", &mut stats.deletes),
                    };
                    *n += 1;
                    self.metrics.writes.get_or_create(&[("op", label)]).inc();
                }
            }
            self.metrics.owned.set(to_i64(current.owned()));
            if !conflicted {
                return Ok(stats);
            }
            stats.conflicts += 1;
            self.metrics.conflicts.inc();
            self.current = None;
            if let Some(fence) = &self.fence {
                let holder = self.store.get(&fence.key).await?;
                if holder.is_none_or(|kv| kv.mod_revision != fence.mod_revision) {
                    return Err(StoreError::Invalid(
                        "not the leader any more: the leader key changed".into(),
                    ));
                }
            }
            warn!("a concurrent write failed a publish guard; re-reading the store");
        }
        Err(StoreError::Unavailable(format!(
            "publishing failed its guards {MAX_ATTEMPTS} times in a row (concurrent writers)"
        )))
    }

    /// Lists every prefix control writes under.
    async fn read(&self) -> Result<Current, StoreError> {
        let mut kvs = Vec::new();
        for prefix in PREFIXES {
            kvs.extend(self.store.list(prefix, None).await?.kvs);
        }
        let current = Current::from_kvs(kvs);
        info!(
            keys = current.entries.len(),
            owned = current.owned(),
            "read the project store for a full reconcile"
        );
        Ok(current)
    }

    /// Creates `zone` if no zone is stored at its origin; an existing one is left alone.
    /// Returns whether it was created.
    ///
    /// # Errors
    /// The store's error.
    pub async fn seed_zone(&self, zone: &Zone) -> Result<bool, StoreError> {
        let key = keys::zone(&zone.origin);
        let outcome = self
            .store
            .txn(Txn {
                compares: vec![Compare {
                    key: key.clone(),
                    mod_revision: 0,
                }],
                ops: vec![Op::Put {
                    key,
                    value: encode(zone),
                    lease: None,
                }],
            })
            .await?;
        Ok(outcome.succeeded)
    }
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
