//! Applying plans to the store: the only I/O of publishing.

use super::diff::{
    Applied, Current, ETCD_DEFAULT_TXN_WRITES, PREFIXES, Write, diff_after, diff_keys, fits,
    writes_per_txn,
};
use super::{DesiredState, Dirty};
use dataplane_common::model::{Zone, encode, keys};
use dataplane_common::store::{Compare, Op, Store, StoreError, Txn};
use dataplane_common::telemetry::Telemetry;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::{BTreeSet, VecDeque};
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
    /// Publishes that failed with a store error (each retried after a full re-read).
    pub errors: Counter,
    /// Keys a Service wants that a user object holds.
    pub user_held: Gauge,
    /// Keys control owns in the store.
    pub owned: Gauge,
    /// Full reconciles completed: the whole key space compared with the store and brought in
    /// line (a first sync is done when this reaches 1).
    pub reconciles: Counter,
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
            "control_publish_errors",
            "Publishes that failed with a store error; each is retried with a full re-read.",
            m.errors.clone(),
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
        telemetry.register(
            "control_publish_reconciles",
            "Full reconciles of the project store completed (a first sync is one).",
            m.reconciles.clone(),
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
    /// Whether this publish was a full reconcile (the store listed and compared whole).
    pub full: bool,
}

/// Transactions in flight at once. etcd commits concurrent transactions in one raft batch
/// and one fsync, so a first sync of 600,000 keys goes several times faster than one
/// transaction at a time; each transaction touches other keys, so their order is free.
/// On the benchmark machine 8 wrote a first sync's 600,000 keys in about 13 s where 4 took
/// about 19 s; 16 was no faster (etcd's CPU is then the limit) and only lengthens etcd's
/// apply queue, and the latency of everything else it serves (the leader's keep-alives).
const IN_FLIGHT: usize = 8;

/// The writes of one transaction being filled, within `max_ops` and
/// [`super::MAX_TXN_BYTES`].
#[derive(Debug)]
struct Chunk {
    writes: Vec<Write>,
    bytes: usize,
    max_ops: usize,
}

impl Chunk {
    fn new(max_ops: usize) -> Self {
        Self {
            writes: Vec::new(),
            bytes: 0,
            max_ops,
        }
    }

    fn fits(&self, write: &Write) -> bool {
        fits(self.writes.len(), self.bytes, write, self.max_ops)
    }

    fn push(&mut self, write: Write) {
        self.bytes += write.bytes();
        self.writes.push(write);
    }

    fn is_full(&self) -> bool {
        self.writes.len() >= self.max_ops
    }

    fn room(&self) -> usize {
        self.max_ops.saturating_sub(self.writes.len())
    }
}

/// Writes planned by [`Publisher::plan_changed`], not sent yet.
#[derive(Debug, Default)]
pub struct PlannedWrites(Vec<Write>);

impl PlannedWrites {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A transaction on its way, with what it changes once it succeeds.
struct Planned {
    txn: Txn,
    applied: Applied,
}

impl Planned {
    fn from_writes(writes: impl IntoIterator<Item = Write>, fence: Option<&Compare>) -> Self {
        let mut txn = Txn::default();
        let mut applied = Vec::new();
        for write in writes {
            applied.extend(write.applied());
            write.add_to(&mut txn);
        }
        if let Some(fence) = fence {
            txn.compares.push(fence.clone());
        }
        Self { txn, applied }
    }
}

/// Keeps the store's `/dataplane/` in line with the desired state.
///
/// It lists the store once (a full reconcile) and afterwards plans against what it wrote
/// itself, looking only at the keys a change touched. A failed guard, or any store error,
/// makes it list again before the next plan, so a concurrent writer is seen rather than
/// overwritten.
///
/// A first sync can start writing before the desired state is whole
/// ([`Publisher::plan_changed`] and [`Publisher::write_planned`]: the keys translated so
/// far, against the listed store, nothing deleted); the full reconcile that follows then
/// finds those written already.
#[derive(Debug)]
pub struct Publisher {
    store: Arc<dyn Store>,
    current: Option<Current>,
    /// Whether the whole key space was compared with `current` since it was listed: until
    /// then a stale key may still be stored.
    swept: bool,
    fence: Option<Compare>,
    /// The writes per transaction the store takes ([`writes_per_txn`]), learnt at each
    /// listing: a new etcd member may take fewer.
    txn_writes: usize,
    user_held: BTreeSet<String>,
    metrics: Metrics,
}

impl Publisher {
    /// A publisher that has read nothing yet.
    pub fn new(store: Arc<dyn Store>, metrics: Metrics) -> Self {
        Self {
            store,
            current: None,
            swept: false,
            fence: None,
            txn_writes: ETCD_DEFAULT_TXN_WRITES,
            user_held: BTreeSet::new(),
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

    /// Whether the next publish is a full reconcile.
    pub fn needs_reconcile(&self) -> bool {
        self.current.is_none() || !self.swept
    }

    /// Writes what differs between `desired` and the store: the `dirty` keys only when the
    /// store's state is known, every key otherwise. `dirty` is emptied once they are written.
    ///
    /// # Errors
    /// The store's error (the state is then re-read next time), or
    /// [`StoreError::Unavailable`] when concurrent writers kept failing the guards.
    pub async fn publish(
        &mut self,
        desired: &DesiredState,
        dirty: &mut Dirty,
    ) -> Result<Stats, StoreError> {
        let result = self.try_publish(desired, dirty).await;
        match &result {
            Ok(_) => dirty.clear(),
            Err(_) => {
                self.metrics.errors.inc();
                self.current = None;
            }
        }
        result
    }

    /// Lists the store if what it holds is not known (before [`Self::plan_changed`]).
    ///
    /// # Errors
    /// The store's error.
    pub async fn ensure_read(&mut self) -> Result<(), StoreError> {
        if self.current.is_none() {
            self.current = Some(self.read().await?);
            self.swept = false;
        }
        Ok(())
    }

    /// The writes the `dirty` keys need against the store as last read and written
    /// ([`Self::ensure_read`] first), to be sent by [`Self::write_planned`]; `dirty` is
    /// emptied. Nothing else is compared or deleted: for a first sync, whose desired state
    /// is still being filled while these are written.
    pub fn plan_changed(&self, desired: &DesiredState, dirty: &mut Dirty) -> PlannedWrites {
        let writes = self.plan(desired, dirty);
        dirty.clear();
        PlannedWrites(writes)
    }

    /// Sends what [`Self::plan_changed`] planned. Nothing is retried here: after a failed
    /// guard or a store error the store is listed again, and its full reconcile writes
    /// whatever these did not.
    ///
    /// # Errors
    /// The store's error, or [`StoreError::Unavailable`] when a guard failed.
    pub async fn write_planned(&mut self, writes: PlannedWrites) -> Result<Stats, StoreError> {
        let mut stats = Stats::default();
        let result = match self.write_writes(&mut stats, writes.0).await {
            Ok(false) => return Ok(stats),
            Ok(true) => {
                self.metrics.conflicts.inc();
                Err(StoreError::Unavailable(
                    "a concurrent write failed a publish guard".into(),
                ))
            }
            Err(e) => {
                self.metrics.errors.inc();
                Err(e)
            }
        };
        self.current = None;
        result
    }

    /// The writes `dirty` needs, in key order as a full reconcile writes them: the same
    /// changes make the same transactions.
    fn plan(&self, desired: &DesiredState, dirty: &Dirty) -> Vec<Write> {
        let mut keys: Vec<&str> = dirty.iter().map(|k| &**k).collect();
        keys.sort_unstable();
        diff_keys(
            keys,
            |k| desired.get(k),
            self.current
                .as_ref()
                .expect("invariant: the store is read before planning"),
        )
    }

    /// Sends `writes` in transactions as full as the store takes; returns whether a guard
    /// failed.
    async fn write_writes(
        &mut self,
        stats: &mut Stats,
        writes: Vec<Write>,
    ) -> Result<bool, StoreError> {
        let mut writes = writes.into_iter().peekable();
        let (fence, max_ops) = (self.fence.clone(), self.txn_writes);
        self.write(stats, |_, user_held| {
            let mut chunk = Chunk::new(max_ops);
            while let Some(write) = writes.next_if(|w| chunk.fits(w)) {
                match write {
                    Write::UserHeld(key) => {
                        user_held.insert(key);
                    }
                    write => {
                        if let Some(key) = write.key() {
                            user_held.remove(key);
                        }
                        chunk.push(write);
                    }
                }
            }
            (!chunk.writes.is_empty()).then(|| Planned::from_writes(chunk.writes, fence.as_ref()))
        })
        .await
    }

    async fn try_publish(
        &mut self,
        desired: &DesiredState,
        dirty: &Dirty,
    ) -> Result<Stats, StoreError> {
        let mut stats = Stats::default();
        for _ in 0..MAX_ATTEMPTS {
            let conflicted = if self.current.is_some() && self.swept {
                let writes = self.plan(desired, dirty);
                self.write_writes(&mut stats, writes).await?
            } else {
                stats.full = true;
                if self.current.is_none() {
                    self.current = Some(self.read().await?);
                }
                self.user_held.clear();
                let mut cursor: Option<String> = None;
                let mut done = false;
                let (fence, max_ops) = (self.fence.clone(), self.txn_writes);
                // Writes planned but over the current transaction's budget: the next one's.
                let mut pending: VecDeque<Write> = VecDeque::new();
                self.write(&mut stats, |current, user_held| {
                    let mut chunk = Chunk::new(max_ops);
                    loop {
                        while let Some(write) = pending.pop_front() {
                            if !chunk.fits(&write) {
                                pending.push_front(write);
                                return Some(Planned::from_writes(chunk.writes, fence.as_ref()));
                            }
                            chunk.push(write);
                        }
                        if done || chunk.is_full() {
                            break;
                        }
                        let page = diff_after(
                            desired.iter_after(cursor.as_deref()),
                            current,
                            cursor.as_deref(),
                            chunk.room(),
                        );
                        done = page.next.is_none();
                        cursor = page.next;
                        for write in page.writes {
                            match write {
                                Write::UserHeld(key) => {
                                    user_held.insert(key);
                                }
                                write => pending.push_back(write),
                            }
                        }
                    }
                    (!chunk.writes.is_empty())
                        .then(|| Planned::from_writes(chunk.writes, fence.as_ref()))
                })
                .await?
            };
            self.metrics.user_held.set(to_i64(self.user_held.len()));
            for key in &self.user_held {
                debug!(%key, "a Service wants a key a user object holds; left alone");
            }
            if let Some(current) = &self.current {
                self.metrics.owned.set(to_i64(current.owned()));
            }
            if !conflicted {
                if stats.full {
                    self.swept = true;
                    self.metrics.reconciles.inc();
                }
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

    /// Runs the transactions `next` plans (against the state as it is after the ones
    /// applied so far), [`IN_FLIGHT`] at a time; returns whether a guard failed, after which
    /// nothing more is sent.
    async fn write(
        &mut self,
        stats: &mut Stats,
        mut next: impl FnMut(&Current, &mut BTreeSet<String>) -> Option<Planned>,
    ) -> Result<bool, StoreError> {
        let current = self
            .current
            .as_mut()
            .expect("invariant: the store is read before writing");
        let mut in_flight = FuturesUnordered::new();
        let mut conflicted = false;
        let mut exhausted = false;
        loop {
            while !conflicted && !exhausted && in_flight.len() < IN_FLIGHT {
                match next(current, &mut self.user_held) {
                    Some(Planned { txn, applied }) => {
                        let store = Arc::clone(&self.store);
                        in_flight.push(async move { (store.txn(txn).await, applied) });
                    }
                    None => exhausted = true,
                }
            }
            let Some((outcome, applied)) = in_flight.next().await else {
                return Ok(conflicted);
            };
            let outcome = outcome?;
            if !outcome.succeeded {
                conflicted = true;
                continue;
            }
            for (_, hash) in &applied {
                let (label, n) = match hash {
                    Some(_) => ("put", &mut stats.puts),
                    None => ("delete", &mut stats.deletes),
                };
                *n += 1;
                self.metrics.writes.get_or_create(&[("op", label)]).inc();
            }
            current.applied(applied, outcome.revision);
            self.metrics.owned.set(to_i64(current.owned()));
        }
    }

    /// Lists every prefix control writes under, and learns how many writes a transaction
    /// may hold.
    async fn read(&mut self) -> Result<Current, StoreError> {
        self.txn_writes = writes_per_txn(self.store.max_txn_ops().await?);
        let mut current = Current::default();
        for prefix in PREFIXES {
            for kv in self.store.list(prefix, None).await?.kvs {
                current.add(&kv);
            }
        }
        info!(
            keys = current.entries.len(),
            owned = current.owned(),
            txn_writes = self.txn_writes,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::testing::{port, service};
    use crate::translate::{self, Options};
    use dataplane_common::store::Embedded;
    use dataplane_common::store::intercept::{Intercept, Intercepted};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A transaction limit, with the size of each transaction sent.
    #[derive(Debug)]
    struct Limit {
        limit: AtomicUsize,
        sizes: Mutex<Vec<(usize, usize)>>,
    }

    impl Intercept for Limit {
        fn txn(&self, txn: &Txn) -> Result<(), StoreError> {
            if txn.compares.len().max(txn.ops.len()) > self.limit.load(Ordering::Relaxed) {
                return Err(StoreError::Invalid(
                    "too many operations in txn request".into(),
                ));
            }
            let size = (txn.compares.len(), txn.ops.len());
            self.sizes.lock().unwrap().push(size);
            Ok(())
        }

        fn max_txn_ops(&self, _inner: usize) -> usize {
            self.limit.load(Ordering::Relaxed)
        }
    }

    #[tokio::test]
    async fn transactions_are_as_full_as_the_store_takes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Intercepted::new(
            Arc::new(Embedded::open(dir.path()).await.unwrap()),
            Limit {
                limit: AtomicUsize::new(200),
                sizes: Mutex::new(Vec::new()),
            },
        );
        let fence = Compare {
            key: "/dataplane/leader".into(),
            mod_revision: 0,
        };
        let mut publisher =
            Publisher::new(Arc::clone(&store) as Arc<dyn Store>, Metrics::default());
        publisher.set_fence(Some(fence));
        // 125 Services, 4 keys each (A, SRV, PTR, VIP).
        let mut desired = DesiredState::new();
        let mut dirty = Dirty::default();
        let set_all = |desired: &mut DesiredState, dirty: &mut Dirty, third: u8| {
            for i in 0..125 {
                let name = format!("s{i}");
                let t = translation("a", &name, &format!("10.96.{third}.{i}"));
                dirty.extend(desired.set("a", &name, Some(&t)).keys);
            }
        };
        set_all(&mut desired, &mut dirty, 0);
        let stats = publisher.publish(&desired, &mut dirty).await.unwrap();
        assert_eq!(stats.puts, 500);
        let sizes = std::mem::take(&mut *store.intercept.sizes.lock().unwrap());
        assert_eq!(
            sizes,
            [(200, 199), (200, 199), (103, 102)],
            "each write guarded, plus the fence"
        );

        // A new etcd member that takes fewer: learnt at the next listing.
        store.intercept.limit.store(50, Ordering::Relaxed);
        publisher.invalidate();
        set_all(&mut desired, &mut dirty, 1);
        let stats = publisher.publish(&desired, &mut dirty).await.unwrap();
        assert_eq!(stats.puts, 375, "A, PTR and VIP changed; {stats:?}");
        let sizes = store.intercept.sizes.lock().unwrap();
        assert!(sizes.iter().all(|&(c, o)| c <= 50 && o <= 49), "{sizes:?}");
    }

    fn translation(ns: &str, name: &str, ip: &str) -> translate::Translation {
        let svc = service(ns, name, &[ip], vec![port("http", "TCP", 80, None)]);
        translate::service(&svc, &[], &Options::default()).unwrap()
    }

    #[tokio::test]
    async fn publishing_while_translating_deletes_nothing_until_the_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(Embedded::open(dir.path()).await.unwrap());
        // A previous leader's key for a Service not translated yet, and one that is gone.
        let mut before = DesiredState::new();
        let mut dirty = Dirty::default();
        for (name, ip) in [("later", "10.96.0.2"), ("gone", "10.96.0.3")] {
            let t = translation("a", name, ip);
            dirty.extend(before.set("a", name, Some(&t)).keys);
        }
        let mut old = Publisher::new(Arc::clone(&store), Metrics::default());
        old.publish(&before, &mut dirty).await.unwrap();
        let stored = |store: Arc<dyn Store>| async move {
            store
                .list(keys::VIPS, None)
                .await
                .unwrap()
                .kvs
                .into_iter()
                .map(|kv| kv.key)
                .collect::<Vec<_>>()
        };
        assert_eq!(stored(Arc::clone(&store)).await.len(), 2);

        // A new leader's first sync: one chunk translated and published so far.
        let mut publisher = Publisher::new(Arc::clone(&store), Metrics::default());
        let mut desired = DesiredState::new();
        let t = translation("a", "first", "10.96.0.1");
        dirty.extend(desired.set("a", "first", Some(&t)).keys);
        publisher.ensure_read().await.unwrap();
        let planned = publisher.plan_changed(&desired, &mut dirty);
        let stats = publisher.write_planned(planned).await.unwrap();
        assert!(
            !stats.full && stats.puts > 0 && stats.deletes == 0,
            "{stats:?}"
        );
        assert!(dirty.is_empty());
        assert!(publisher.needs_reconcile(), "the sweep is still due");
        assert_eq!(
            stored(Arc::clone(&store)).await,
            [
                "/dataplane/vips/10.96.0.1/80/tcp",
                "/dataplane/vips/10.96.0.2/80/tcp",
                "/dataplane/vips/10.96.0.3/80/tcp"
            ],
            "nothing deleted while the desired state is partial"
        );

        // The rest translated: the sweep writes nothing twice and deletes what is stale.
        let t = translation("a", "later", "10.96.0.2");
        dirty.extend(desired.set("a", "later", Some(&t)).keys);
        let stats = publisher.publish(&desired, &mut dirty).await.unwrap();
        assert!(stats.full, "{stats:?}");
        assert_eq!(
            stats.puts, 0,
            "the later Service's keys were stored already"
        );
        assert!(stats.deletes > 0);
        assert!(!publisher.needs_reconcile());
        assert_eq!(
            stored(store).await,
            [
                "/dataplane/vips/10.96.0.1/80/tcp",
                "/dataplane/vips/10.96.0.2/80/tcp"
            ]
        );
    }

    /// Fails every transaction while `down` is set.
    #[derive(Debug, Default)]
    struct Down {
        down: std::sync::atomic::AtomicBool,
    }

    impl Intercept for Down {
        fn txn(&self, _txn: &Txn) -> Result<(), StoreError> {
            if self.down.load(Ordering::Relaxed) {
                return Err(StoreError::Unavailable("etcd is down".into()));
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn planned_writes_that_fail_are_left_to_the_full_reconcile() {
        let dir = tempfile::tempdir().unwrap();
        let store = Intercepted::new(
            Arc::new(Embedded::open(dir.path()).await.unwrap()),
            Down::default(),
        );
        let mut publisher = Publisher::new(store.clone(), Metrics::default());
        let mut desired = DesiredState::new();
        let mut dirty = Dirty::default();
        for (name, ip) in [("one", "10.96.0.1"), ("two", "10.96.0.2")] {
            let t = translation("a", name, ip);
            dirty.extend(desired.set("a", name, Some(&t)).keys);
        }
        publisher.ensure_read().await.unwrap();
        let planned = publisher.plan_changed(&desired, &mut dirty);
        assert!(!planned.is_empty() && dirty.is_empty());

        store.intercept.down.store(true, Ordering::Relaxed);
        assert!(publisher.write_planned(planned).await.is_err());
        assert!(
            publisher.needs_reconcile(),
            "the store is to be listed again"
        );

        // The writes planned and lost are the full reconcile's, dirty or not.
        store.intercept.down.store(false, Ordering::Relaxed);
        let stats = publisher.publish(&desired, &mut dirty).await.unwrap();
        assert!(stats.full, "{stats:?}");
        assert_eq!(stats.puts, desired.len());
        let stored = store.list(keys::ROOT, None).await.unwrap().kvs;
        assert_eq!(stored.len(), desired.len());
        assert!(
            stored
                .iter()
                .all(|kv| desired.get(&kv.key) == Some(kv.value.as_slice()))
        );
        assert!(!publisher.needs_reconcile());

        // A user creates a key between planning and writing: the guard fails, and the
        // reconcile that follows sees the user's key and leaves it alone.
        let t = translation("a", "three", "10.96.0.3");
        dirty.extend(desired.set("a", "three", Some(&t)).keys);
        let planned = publisher.plan_changed(&desired, &mut dirty);
        let vip = keys::vip(
            "10.96.0.3".parse().unwrap(),
            80,
            dataplane_common::model::Protocol::Tcp,
        );
        let user = br#"{"v":1,"source":"user"}"#.to_vec();
        store.put(&vip, user.clone(), None).await.unwrap();
        let err = publisher.write_planned(planned).await.unwrap_err();
        assert!(err.to_string().contains("guard"), "{err}");
        assert!(
            publisher.needs_reconcile(),
            "the store is to be listed again"
        );
        let stats = publisher.publish(&desired, &mut dirty).await.unwrap();
        assert!(stats.full, "{stats:?}");
        assert_eq!(store.get(&vip).await.unwrap().unwrap().value, user);
        let stored = store.list(keys::ROOT, None).await.unwrap().kvs;
        assert_eq!(stored.len(), desired.len());
    }
}
