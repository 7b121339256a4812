//! Following a prefix: every change exactly once, in order, across disconnects and compactions.
//!
//! [`Follower::next`] lists the prefix once, then watches from the next revision. When the
//! watch breaks it resumes from the last revision seen, so nothing is lost or repeated. When
//! the store has compacted past that revision it lists again and emits the difference
//! between what it had and what it found, so the consumer's view is still exactly right.
//! While the store is away the follower retries with backoff and the consumer keeps
//! serving the state it has.
//!
//! [`Typed`] decodes values into model objects on top; a malformed value is logged with its
//! key, counted and skipped (the key keeps its last good value).

use super::{Event, EventKind, KeyValue, Revision, Store, StoreError, WatchStream};
use crate::model::{Validate, decode};
use crate::telemetry::Telemetry;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// What the follower did, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Watches resumed after a break.
    pub resumes: Counter,
    /// Relists after a compaction.
    pub relists: Counter,
    /// Failed store calls (each retried).
    pub errors: Counter,
    /// Values that did not decode and were skipped.
    pub malformed: Counter,
    /// The revision applied last.
    pub revision: Gauge,
}

impl Metrics {
    /// Metrics registered in `telemetry`, named `store_*`.
    pub fn register(telemetry: &Telemetry) -> Self {
        let m = Self::default();
        telemetry.register(
            "store_watch_resumes",
            "Watches resumed from the last seen revision after a break.",
            m.resumes.clone(),
        );
        telemetry.register(
            "store_watch_relists",
            "Relists after the store compacted past the watch.",
            m.relists.clone(),
        );
        telemetry.register(
            "store_errors",
            "Store calls that failed and were retried.",
            m.errors.clone(),
        );
        telemetry.register(
            "store_malformed_values",
            "Stored values that did not decode and were skipped.",
            m.malformed.clone(),
        );
        telemetry.register(
            "store_applied_revision",
            "The store revision applied last.",
            m.revision.clone(),
        );
        m
    }
}

/// One step of changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The revision the follower's state is at after these events.
    pub revision: Revision,
    /// The changes, in order; empty only for the first batch of an empty prefix.
    pub events: Vec<Event>,
    /// Whether this batch came from a (re)list rather than the watch.
    pub relisted: bool,
}

/// Follows one prefix of a store.
#[derive(Debug)]
pub struct Follower {
    store: Arc<dyn Store>,
    prefix: String,
    state: BTreeMap<String, KeyValue>,
    revision: Revision,
    listed: bool,
    watch: Option<WatchStream>,
    backoff: Duration,
    metrics: Metrics,
}

impl Follower {
    /// A follower of `prefix`; nothing is read until [`Follower::next`].
    pub fn new(store: Arc<dyn Store>, prefix: &str, metrics: Metrics) -> Self {
        Self {
            store,
            prefix: prefix.to_owned(),
            state: BTreeMap::new(),
            revision: 0,
            listed: false,
            watch: None,
            backoff: BACKOFF_MIN,
            metrics,
        }
    }

    /// The keys as of [`Follower::revision`].
    pub fn state(&self) -> &BTreeMap<String, KeyValue> {
        &self.state
    }

    /// The revision the state is at.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// Waits for the next changes. The first call returns the initial listing as puts.
    /// Never fails: store errors are logged, counted and retried.
    pub async fn next(&mut self) -> Batch {
        loop {
            if !self.listed {
                match self.relist().await {
                    Some(batch) => return batch,
                    None => continue,
                }
            }
            if self.watch.is_none() {
                match self.store.watch(&self.prefix, self.revision + 1).await {
                    Ok(rx) => self.watch = Some(rx),
                    Err(StoreError::Compacted { .. }) => {
                        self.compacted();
                        continue;
                    }
                    Err(e) => {
                        self.failed("watch", &e).await;
                        continue;
                    }
                }
            }
            let received = match self.watch.as_mut() {
                Some(rx) => rx.recv().await,
                None => continue,
            };
            match received {
                Some(Ok(events)) => {
                    self.backoff = BACKOFF_MIN;
                    let fresh: Vec<Event> = events
                        .into_iter()
                        .filter(|e| e.kv.mod_revision > self.revision)
                        .collect();
                    if let Some(batch) = self.apply(fresh) {
                        return batch;
                    }
                }
                Some(Err(StoreError::Compacted { .. })) => self.compacted(),
                Some(Err(e)) => {
                    self.watch = None;
                    self.metrics.resumes.inc();
                    self.failed("watch stream", &e).await;
                }
                None => {
                    self.watch = None;
                    self.metrics.resumes.inc();
                    warn!(prefix = %self.prefix, revision = self.revision, "watch ended; resuming from the last seen revision");
                    self.pause().await;
                }
            }
        }
    }

    fn compacted(&mut self) {
        self.watch = None;
        self.listed = false;
        self.metrics.relists.inc();
        warn!(prefix = %self.prefix, revision = self.revision, "store compacted past the watch; relisting");
    }

    async fn failed(&mut self, what: &str, e: &StoreError) {
        self.metrics.errors.inc();
        warn!(prefix = %self.prefix, revision = self.revision, error = %e, "store {what} failed; keeping the last good state and retrying");
        self.pause().await;
    }

    async fn pause(&mut self) {
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// Lists the prefix and turns the difference from the current state into events.
    async fn relist(&mut self) -> Option<Batch> {
        let listing = match self.store.list(&self.prefix, None).await {
            Ok(listing) => listing,
            Err(e) => {
                self.failed("list", &e).await;
                return None;
            }
        };
        let first = self.revision == 0;
        let mut fresh: BTreeMap<String, KeyValue> = listing
            .kvs
            .into_iter()
            .map(|kv| (kv.key.clone(), kv))
            .collect();
        let mut events = Vec::new();
        for (key, old) in &self.state {
            if !fresh.contains_key(key) {
                events.push(Event {
                    kind: EventKind::Delete,
                    kv: KeyValue {
                        key: key.clone(),
                        value: Vec::new(),
                        create_revision: 0,
                        mod_revision: listing.revision,
                        version: 0,
                        lease: old.lease,
                    },
                });
            }
        }
        for (key, kv) in &fresh {
            if self
                .state
                .get(key)
                .is_none_or(|old| old.mod_revision != kv.mod_revision)
            {
                events.push(Event {
                    kind: EventKind::Put,
                    kv: kv.clone(),
                });
            }
        }
        events.sort_by(|a, b| a.kv.key.cmp(&b.kv.key));
        std::mem::swap(&mut self.state, &mut fresh);
        self.revision = listing.revision;
        self.listed = true;
        self.backoff = BACKOFF_MIN;
        self.metrics.revision.set(self.revision);
        info!(prefix = %self.prefix, revision = self.revision, keys = self.state.len(), changes = events.len(), "listed");
        (first || !events.is_empty()).then_some(Batch {
            revision: self.revision,
            events,
            relisted: true,
        })
    }

    fn apply(&mut self, events: Vec<Event>) -> Option<Batch> {
        let last = events.last()?.kv.mod_revision;
        for e in &events {
            match e.kind {
                EventKind::Put => {
                    self.state.insert(e.kv.key.clone(), e.kv.clone());
                }
                EventKind::Delete => {
                    self.state.remove(&e.kv.key);
                }
            }
        }
        self.revision = last;
        self.metrics.revision.set(self.revision);
        Some(Batch {
            revision: last,
            events,
            relisted: false,
        })
    }
}

/// A follower whose values are model objects.
#[derive(Debug)]
pub struct Typed<T> {
    follower: Follower,
    objects: BTreeMap<String, T>,
}

impl<T: DeserializeOwned + Validate> Typed<T> {
    /// Follows `prefix`, decoding each value as a `T`.
    pub fn new(store: Arc<dyn Store>, prefix: &str, metrics: Metrics) -> Self {
        Self {
            follower: Follower::new(store, prefix, metrics),
            objects: BTreeMap::new(),
        }
    }

    /// Waits for changes and applies them; returns the keys that changed and the revision.
    pub async fn next(&mut self) -> (Vec<String>, Revision) {
        let batch = self.follower.next().await;
        let mut changed = Vec::with_capacity(batch.events.len());
        for e in batch.events {
            match e.kind {
                EventKind::Put => match decode::<T>(&e.kv.value) {
                    Ok(obj) => {
                        self.objects.insert(e.kv.key.clone(), obj);
                        changed.push(e.kv.key);
                    }
                    Err(err) => {
                        self.follower.metrics.malformed.inc();
                        warn!(key = %e.kv.key, revision = e.kv.mod_revision, error = %err, "skipping a malformed stored value");
                    }
                },
                EventKind::Delete => {
                    if self.objects.remove(&e.kv.key).is_some() {
                        changed.push(e.kv.key);
                    }
                }
            }
        }
        (changed, batch.revision)
    }

    /// The decoded objects by key.
    pub fn objects(&self) -> &BTreeMap<String, T> {
        &self.objects
    }

    /// The revision applied.
    pub fn revision(&self) -> Revision {
        self.follower.revision()
    }
}
