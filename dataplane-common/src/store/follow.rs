//! Following a prefix: every change exactly once, in order, across disconnects and compactions.
//!
//! [`Follower::next`] lists the prefix once, a page at a time ([`Store::list_pages`], so
//! that a large prefix is never held raw as a whole), then watches from the next revision.
//! When the watch breaks it resumes from the last revision seen, so nothing is lost or
//! repeated. When the store has compacted past that revision it lists again and emits the
//! difference between what it had and what it found, so the consumer's view is still
//! exactly right.
//! While the store is away the follower retries with backoff and the consumer keeps
//! serving the state it has.
//!
//! The follower keeps each key's `mod_revision`, not its value: that is all a relist needs
//! to find what changed, and at 100,000 Kubernetes objects the values would be a second copy
//! of what the consumer decodes (hundreds of MB). A value is handed over once, in its event.
//!
//! [`Typed`] decodes values into model objects on top; a malformed value is logged with its
//! key, counted and skipped (the key keeps its last good value).

use super::{Event, EventKind, ListPages, Listing, Revision, Store, StoreError, WatchStream};
use crate::model::{Validate, decode};
use crate::telemetry::Telemetry;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap};
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
    /// Whether the state is whole after it: false for the pages of a (re)list before its
    /// last batch (which also carries the deletes), true for every watch batch.
    pub complete: bool,
}

/// Keys with their `mod_revision`: what a follower has told its consumer. Found by hash: a
/// first sync of control lists 200,000 keys, and B-tree searches among keys that share
/// their first 25-odd bytes were most of the cost of taking a page in.
pub type KeyRevisions = HashMap<String, Revision, ahash::RandomState>;

/// Follows one prefix of a store.
#[derive(Debug)]
pub struct Follower {
    store: Arc<dyn Store>,
    prefix: String,
    state: KeyRevisions,
    revision: Revision,
    listed: bool,
    relisting: Option<(ListPages, Relist)>,
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
            state: KeyRevisions::default(),
            revision: 0,
            listed: false,
            relisting: None,
            watch: None,
            backoff: BACKOFF_MIN,
            metrics,
        }
    }

    /// The keys as of [`Follower::revision`], each with its `mod_revision`.
    pub fn state(&self) -> &KeyRevisions {
        &self.state
    }

    /// The revision the state is at.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// Waits for the next changes. The first calls return the initial listing as puts, a
    /// batch per page of it ([`Batch::complete`] on the last). Never fails: store errors are
    /// logged, counted and retried. Cancel-safe: a (re)list in progress goes on at the next
    /// call.
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

    /// Reads the next page of a (re)list (starting one if none is going on) and turns the
    /// difference from the current state into events.
    async fn relist(&mut self) -> Option<Batch> {
        if self.relisting.is_none() {
            match self.store.list_pages(&self.prefix).await {
                Ok(pages) => self.relisting = Some((pages, Relist::default())),
                Err(e) => {
                    self.failed("list", &e).await;
                    return None;
                }
            }
        }
        let (pages, relist) = self.relisting.as_mut().expect("invariant: set above");
        match pages.recv().await {
            Some(Ok(listing)) => {
                let revision = listing.revision;
                let events = relist.page(&mut self.state, listing);
                (!events.is_empty()).then_some(Batch {
                    revision,
                    events,
                    relisted: true,
                    complete: false,
                })
            }
            Some(Err(e)) => {
                self.relisting = None;
                self.failed("list", &e).await;
                None
            }
            None => {
                let (_, relist) = self.relisting.take().expect("invariant: set above");
                let first = self.revision == 0;
                let emitted = relist.emitted;
                let revision = relist.revision;
                let (events, state) = relist.finish(&self.state);
                self.state = state;
                self.revision = revision;
                self.listed = true;
                self.backoff = BACKOFF_MIN;
                self.metrics.revision.set(self.revision);
                info!(prefix = %self.prefix, revision = self.revision, keys = self.state.len(), changes = events.len(), "listed");
                (first || emitted || !events.is_empty()).then_some(Batch {
                    revision: self.revision,
                    events,
                    relisted: true,
                    complete: true,
                })
            }
        }
    }

    fn apply(&mut self, events: Vec<Event>) -> Option<Batch> {
        let last = events.last()?.kv.mod_revision;
        for e in &events {
            match e.kind {
                EventKind::Put => {
                    self.state.insert(e.kv.key.clone(), e.kv.mod_revision);
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
            complete: true,
        })
    }
}

/// A (re)list in progress, a page at a time. PURE.
///
/// Each page's puts are held back until the next page comes, so that the last batch of a
/// listing is never empty (it says the listing is complete) and a listing of one page is one
/// batch, puts and deletes together, as it was before pages. The consumer's state (what it
/// has been told) is updated as each page's puts are handed over, so that a listing that
/// fails half-way and starts again does not tell anything twice.
#[derive(Debug, Default)]
struct Relist {
    /// Every key listed so far, with its `mod_revision`.
    fresh: KeyRevisions,
    /// The last page's puts.
    held: Vec<Event>,
    /// The listing's revision.
    revision: Revision,
    /// Whether a page's events were handed over.
    emitted: bool,
}

impl Relist {
    /// Takes a page (in key order, after the last); returns the events to hand over now
    /// (the page before's puts), recording them in `told`.
    fn page(&mut self, told: &mut KeyRevisions, listing: Listing) -> Vec<Event> {
        self.revision = listing.revision;
        let mut puts = Vec::new();
        for kv in listing.kvs {
            if told.get(&kv.key) != Some(&kv.mod_revision) {
                self.fresh.insert(kv.key.clone(), kv.mod_revision);
                puts.push(Event {
                    kind: EventKind::Put,
                    kv,
                });
            } else {
                self.fresh.insert(kv.key, kv.mod_revision);
            }
        }
        let out = std::mem::replace(&mut self.held, puts);
        for e in &out {
            told.insert(e.kv.key.clone(), e.kv.mod_revision);
        }
        self.emitted |= !out.is_empty();
        out
    }

    /// The listing is complete: the held puts and a delete for every key `told` has that
    /// the listing has not, in key order, and the new state.
    fn finish(self, told: &KeyRevisions) -> (Vec<Event>, KeyRevisions) {
        let mut events = self.held;
        for key in told.keys().filter(|k| !self.fresh.contains_key(*k)) {
            events.push(Event::delete(key.clone(), self.revision));
        }
        events.sort_by(|a, b| a.kv.key.cmp(&b.kv.key));
        (events, self.fresh)
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
    /// A (re)list is applied whole: its pages are decoded as they come, but returned as one.
    pub async fn next(&mut self) -> (Vec<String>, Revision) {
        let mut changed = Vec::new();
        loop {
            let batch = self.follower.next().await;
            self.apply(batch.events, &mut changed);
            if batch.complete {
                return (changed, batch.revision);
            }
        }
    }

    fn apply(&mut self, events: Vec<Event>, changed: &mut Vec<String>) {
        for e in events {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::KeyValue;

    fn kv(key: &str, mod_revision: Revision) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: key.as_bytes().to_vec(),
            create_revision: 1,
            mod_revision,
            version: 1,
            lease: 0,
        }
    }

    fn listing(kvs: &[(&str, Revision)]) -> Listing {
        Listing {
            revision: 50,
            kvs: kvs.iter().map(|(k, r)| kv(k, *r)).collect(),
        }
    }

    /// Runs a relist of `pages` against `told`; returns every batch's events.
    fn relist(told: &mut KeyRevisions, pages: &[&[(&str, Revision)]]) -> Vec<Vec<Event>> {
        let mut r = Relist::default();
        let mut batches: Vec<Vec<Event>> = pages
            .iter()
            .map(|p| r.page(told, listing(p)))
            .filter(|events| !events.is_empty())
            .collect();
        let (last, state) = r.finish(told);
        batches.push(last);
        *told = state;
        batches
    }

    fn summary(events: &[Event]) -> Vec<(EventKind, &str, Revision)> {
        events
            .iter()
            .map(|e| (e.kind, e.kv.key.as_str(), e.kv.mod_revision))
            .collect()
    }

    #[test]
    fn a_paged_relist_tells_what_a_whole_one_tells() {
        let before: KeyRevisions = [("a", 1), ("b", 2), ("c", 3), ("e", 5)]
            .into_iter()
            .map(|(k, r)| (k.to_owned(), r))
            .collect();
        let all = [("a", 1), ("b", 7), ("d", 8), ("e", 5), ("f", 9)];

        let mut whole = before.clone();
        let one = relist(&mut whole, &[&all]);
        assert_eq!(one.len(), 1, "one page is one batch");
        assert_eq!(
            summary(&one[0]),
            [
                (EventKind::Put, "b", 7),
                (EventKind::Delete, "c", 50),
                (EventKind::Put, "d", 8),
                (EventKind::Put, "f", 9),
            ]
        );

        let mut paged = before.clone();
        let batches = relist(&mut paged, &[&all[..2], &all[2..3], &all[3..]]);
        assert_eq!(paged, whole);
        let events: Vec<Event> = batches.concat();
        let mut sorted = events.clone();
        sorted.sort_by(|x, y| x.kv.key.cmp(&y.kv.key));
        assert_eq!(sorted, one[0]);
        assert!(
            !batches.last().unwrap().is_empty(),
            "the last batch is never empty"
        );
    }

    #[test]
    fn a_relist_that_starts_again_tells_nothing_twice() {
        let mut told = KeyRevisions::default();
        // Two pages handed over, the third page lost with the connection.
        let mut r = Relist::default();
        assert!(r.page(&mut told, listing(&[("a", 1), ("b", 2)])).is_empty());
        assert_eq!(r.page(&mut told, listing(&[("c", 3)])).len(), 2);
        drop(r);
        // Again from the start, b changed meanwhile.
        let batches = relist(&mut told, &[&[("a", 1), ("b", 4), ("c", 3), ("d", 5)]]);
        assert_eq!(
            summary(&batches.concat()),
            [
                (EventKind::Put, "b", 4),
                (EventKind::Put, "c", 3),
                (EventKind::Put, "d", 5)
            ],
            "c was held back, never handed over: it is told now"
        );
    }
}
