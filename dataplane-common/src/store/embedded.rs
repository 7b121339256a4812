//! The embedded backend: etcd's semantics in-process, persisted with redb.
//!
//! Every key lives in memory and in a redb table; a write commits to redb before it is
//! visible, so a restart keeps every acknowledged write. The event history that watches read
//! is kept in memory and bounded ([`HISTORY_LIMIT`]): after a restart, or once the history has
//! moved on, a watch from an older revision gets [`StoreError::Compacted`], as in etcd, and
//! [`super::Follower`] relists. Leases survive a restart with a fresh TTL, as in etcd.

use super::{
    Compare, Event, EventKind, KeyValue, LeaseId, Listing, Op, Revision, Store, StoreError, Txn,
    TxnOutcome, WatchStream,
};
use crate::clock::{Clock, SystemClock};
use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// Events kept for watches that start in the past.
pub const HISTORY_LIMIT: usize = 100_000;
/// How often expired leases are looked for.
const EXPIRY_TICK: Duration = Duration::from_millis(100);

const KVS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("kvs");
const META: TableDefinition<'_, &str, i64> = TableDefinition::new("meta");
const LEASES: TableDefinition<'_, i64, u64> = TableDefinition::new("leases");
const META_REVISION: &str = "revision";
const META_NEXT_LEASE: &str = "next_lease";
/// create_revision, mod_revision, version, lease: four little-endian i64 before the value.
const HEADER_LEN: usize = 32;

/// The embedded store. Cloning shares it.
#[derive(Clone)]
pub struct Embedded {
    inner: Arc<Mutex<Inner>>,
    dir: PathBuf,
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded").field("dir", &self.dir).finish()
    }
}

struct Lease {
    ttl: Duration,
    deadline: Instant,
}

struct Watcher {
    prefix: String,
    tx: UnboundedSender<Result<Vec<Event>, StoreError>>,
}

struct Inner {
    db: redb::Database,
    clock: Arc<dyn Clock>,
    kvs: BTreeMap<String, KeyValue>,
    revision: Revision,
    compacted: Revision,
    history: VecDeque<Event>,
    watchers: Vec<Watcher>,
    leases: HashMap<LeaseId, Lease>,
    next_lease: LeaseId,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn encode_kv(kv: &KeyValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + kv.value.len());
    for n in [kv.create_revision, kv.mod_revision, kv.version, kv.lease] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    out.extend_from_slice(&kv.value);
    out
}

fn decode_kv(key: &str, bytes: &[u8]) -> Result<KeyValue, StoreError> {
    if bytes.len() < HEADER_LEN {
        return Err(StoreError::Backend(format!(
            "corrupt entry for key `{key}`"
        )));
    }
    let field = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
        i64::from_le_bytes(b)
    };
    Ok(KeyValue {
        key: key.to_owned(),
        value: bytes[HEADER_LEN..].to_vec(),
        create_revision: field(0),
        mod_revision: field(1),
        version: field(2),
        lease: field(3),
    })
}

impl Embedded {
    /// Opens (or creates) the store under `dir`.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the directory or database cannot be opened (for example,
    /// another process has it open).
    pub async fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_clock(dir, Arc::new(SystemClock)).await
    }

    /// Opens the store with a given clock for lease expiry.
    ///
    /// # Errors
    /// As [`Embedded::open`].
    pub async fn open_with_clock(dir: &Path, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join("store.redb");
        let db = redb::Database::create(&path)
            .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
        let inner = Inner::load(db, clock)?;
        let store = Self {
            inner: Arc::new(Mutex::new(inner)),
            dir: dir.to_owned(),
        };
        tokio::spawn(expire_leases(Arc::downgrade(&store.inner)));
        Ok(store)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn expire_leases(inner: Weak<Mutex<Inner>>) {
    let mut tick = tokio::time::interval(EXPIRY_TICK);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let mut inner = inner.lock().unwrap_or_else(PoisonError::into_inner);
        let now = inner.clock.now();
        let expired: Vec<LeaseId> = inner
            .leases
            .iter()
            .filter(|(_, l)| l.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Err(e) = inner.revoke(id) {
                tracing::warn!(lease = id, error = %e, "could not expire lease");
            }
        }
    }
}

impl Inner {
    fn load(db: redb::Database, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let write = db.begin_write().map_err(backend)?;
        {
            write.open_table(KVS).map_err(backend)?;
            write.open_table(META).map_err(backend)?;
            write.open_table(LEASES).map_err(backend)?;
        }
        write.commit().map_err(backend)?;

        let read = db.begin_read().map_err(backend)?;
        let mut kvs = BTreeMap::new();
        for entry in read
            .open_table(KVS)
            .map_err(backend)?
            .iter()
            .map_err(backend)?
        {
            let (k, v) = entry.map_err(backend)?;
            let kv = decode_kv(k.value(), v.value())?;
            kvs.insert(kv.key.clone(), kv);
        }
        let meta = read.open_table(META).map_err(backend)?;
        let get_meta = |name: &str| -> Result<i64, StoreError> {
            Ok(meta.get(name).map_err(backend)?.map_or(0, |v| v.value()))
        };
        let revision = get_meta(META_REVISION)?.max(1);
        let next_lease = get_meta(META_NEXT_LEASE)?.max(1);
        let now = clock.now();
        let mut leases = HashMap::new();
        for entry in read
            .open_table(LEASES)
            .map_err(backend)?
            .iter()
            .map_err(backend)?
        {
            let (id, ttl) = entry.map_err(backend)?;
            let ttl = Duration::from_secs(ttl.value());
            leases.insert(
                id.value(),
                Lease {
                    ttl,
                    deadline: now + ttl,
                },
            );
        }
        drop(meta);
        Ok(Self {
            db,
            clock,
            kvs,
            revision,
            // The history is not persisted: nothing before now can be watched.
            compacted: revision,
            history: VecDeque::new(),
            watchers: Vec::new(),
            leases,
            next_lease,
        })
    }

    /// Applies `ops` at one new revision: redb first, then memory, history and watchers.
    /// Returns the new revision, or the current one when nothing changed.
    fn apply(&mut self, ops: &[Op]) -> Result<Revision, StoreError> {
        let revision = self.revision + 1;
        let mut events = Vec::new();
        for op in ops {
            match op {
                Op::Put { key, value, lease } => {
                    let lease = lease.unwrap_or(0);
                    if lease != 0 && !self.leases.contains_key(&lease) {
                        return Err(StoreError::LeaseNotFound(lease));
                    }
                    let prev = self.kvs.get(key);
                    events.push(Event {
                        kind: EventKind::Put,
                        kv: KeyValue {
                            key: key.clone(),
                            value: value.clone(),
                            create_revision: prev.map_or(revision, |p| p.create_revision),
                            mod_revision: revision,
                            version: prev.map_or(1, |p| p.version + 1),
                            lease,
                        },
                    });
                }
                Op::Delete { key } => {
                    if self.kvs.contains_key(key) {
                        events.push(Event::delete(key.clone(), revision));
                    }
                }
            }
        }
        if events.is_empty() {
            return Ok(self.revision);
        }
        self.persist(&events, revision, &[])?;
        self.publish(events, revision);
        Ok(revision)
    }

    fn persist(
        &self,
        events: &[Event],
        revision: Revision,
        dropped_leases: &[LeaseId],
    ) -> Result<(), StoreError> {
        let write = self.db.begin_write().map_err(backend)?;
        {
            let mut kvs = write.open_table(KVS).map_err(backend)?;
            for e in events {
                match e.kind {
                    EventKind::Put => {
                        kvs.insert(e.kv.key.as_str(), encode_kv(&e.kv).as_slice())
                            .map_err(backend)?;
                    }
                    EventKind::Delete => {
                        kvs.remove(e.kv.key.as_str()).map_err(backend)?;
                    }
                }
            }
            let mut meta = write.open_table(META).map_err(backend)?;
            meta.insert(META_REVISION, revision).map_err(backend)?;
            let mut leases = write.open_table(LEASES).map_err(backend)?;
            for id in dropped_leases {
                leases.remove(id).map_err(backend)?;
            }
        }
        write.commit().map_err(backend)
    }

    fn publish(&mut self, events: Vec<Event>, revision: Revision) {
        for e in &events {
            match e.kind {
                EventKind::Put => {
                    self.kvs.insert(e.kv.key.clone(), e.kv.clone());
                }
                EventKind::Delete => {
                    self.kvs.remove(&e.kv.key);
                }
            }
        }
        self.revision = revision;
        self.watchers.retain(|w| {
            let mine: Vec<Event> = events
                .iter()
                .filter(|e| e.kv.key.starts_with(&w.prefix))
                .cloned()
                .collect();
            mine.is_empty() || w.tx.send(Ok(mine)).is_ok()
        });
        self.history.extend(events);
        while self.history.len() > HISTORY_LIMIT {
            if let Some(old) = self.history.pop_front() {
                self.compacted = self.compacted.max(old.kv.mod_revision);
            }
        }
        // Keep a revision's events together: drop a partly-evicted revision whole.
        while self
            .history
            .front()
            .is_some_and(|e| e.kv.mod_revision <= self.compacted)
        {
            self.history.pop_front();
        }
    }

    fn revoke(&mut self, id: LeaseId) -> Result<(), StoreError> {
        if self.leases.remove(&id).is_none() {
            return Err(StoreError::LeaseNotFound(id));
        }
        let keys: Vec<String> = self
            .kvs
            .values()
            .filter(|kv| kv.lease == id)
            .map(|kv| kv.key.clone())
            .collect();
        let revision = self.revision + 1;
        let events: Vec<Event> = keys
            .into_iter()
            .map(|key| Event::delete(key, revision))
            .collect();
        if events.is_empty() {
            let write = self.db.begin_write().map_err(backend)?;
            write
                .open_table(LEASES)
                .map_err(backend)?
                .remove(&id)
                .map_err(backend)?;
            return write.commit().map_err(backend);
        }
        self.persist(&events, revision, &[id])?;
        self.publish(events, revision);
        Ok(())
    }
}

#[async_trait]
impl Store for Embedded {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        Ok(self.lock().kvs.get(key).cloned())
    }

    async fn list(&self, prefix: &str, at: Option<Revision>) -> Result<Listing, StoreError> {
        let inner = self.lock();
        if let Some(at) = at
            && at != inner.revision
        {
            // Only the current revision is kept in full; older reads are compacted away.
            return Err(StoreError::Compacted {
                compact_revision: inner.revision,
            });
        }
        let kvs = inner
            .kvs
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, kv)| kv.clone())
            .collect();
        Ok(Listing {
            revision: inner.revision,
            kvs,
        })
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<Revision, StoreError> {
        self.lock().apply(&[Op::Put {
            key: key.to_owned(),
            value,
            lease,
        }])
    }

    async fn delete(&self, key: &str) -> Result<Revision, StoreError> {
        self.lock().apply(&[Op::Delete {
            key: key.to_owned(),
        }])
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, StoreError> {
        let mut inner = self.lock();
        let mut seen = std::collections::HashSet::new();
        for op in &txn.ops {
            let (Op::Put { key, .. } | Op::Delete { key }) = op;
            if !seen.insert(key.as_str()) {
                return Err(StoreError::Invalid(format!(
                    "key `{key}` written twice in one transaction"
                )));
            }
        }
        let holds = txn.compares.iter().all(|Compare { key, mod_revision }| {
            inner.kvs.get(key).map_or(0, |kv| kv.mod_revision) == *mod_revision
        });
        if !holds {
            return Ok(TxnOutcome {
                succeeded: false,
                revision: inner.revision,
            });
        }
        let revision = inner.apply(&txn.ops)?;
        Ok(TxnOutcome {
            succeeded: true,
            revision,
        })
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream, StoreError> {
        let mut inner = self.lock();
        if from <= inner.compacted {
            return Err(StoreError::Compacted {
                compact_revision: inner.compacted,
            });
        }
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        // Replay the kept history from `from`, one batch per revision.
        let mut batch: Vec<Event> = Vec::new();
        for e in inner
            .history
            .iter()
            .filter(|e| e.kv.mod_revision >= from && e.kv.key.starts_with(prefix))
        {
            if batch
                .last()
                .is_some_and(|last| last.kv.mod_revision != e.kv.mod_revision)
            {
                let _ = tx.send(Ok(std::mem::take(&mut batch)));
            }
            batch.push(e.clone());
        }
        if !batch.is_empty() {
            let _ = tx.send(Ok(batch));
        }
        inner.watchers.push(Watcher {
            prefix: prefix.to_owned(),
            tx,
        });
        Ok(rx)
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        let mut inner = self.lock();
        let ttl = ttl.max(Duration::from_secs(1));
        let id = inner.next_lease;
        let write = inner.db.begin_write().map_err(backend)?;
        {
            write
                .open_table(LEASES)
                .map_err(backend)?
                .insert(id, ttl.as_secs())
                .map_err(backend)?;
            write
                .open_table(META)
                .map_err(backend)?
                .insert(META_NEXT_LEASE, id + 1)
                .map_err(backend)?;
        }
        write.commit().map_err(backend)?;
        inner.next_lease = id + 1;
        let deadline = inner.clock.now() + ttl;
        inner.leases.insert(id, Lease { ttl, deadline });
        Ok(id)
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError> {
        let mut inner = self.lock();
        let now = inner.clock.now();
        let l = inner
            .leases
            .get_mut(&lease)
            .ok_or(StoreError::LeaseNotFound(lease))?;
        if l.deadline <= now {
            return Err(StoreError::LeaseNotFound(lease));
        }
        l.deadline = now + l.ttl;
        Ok(l.ttl)
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.lock().revoke(lease)
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if revision > inner.revision {
            return Err(StoreError::Invalid(format!(
                "cannot compact to {revision}, past the current revision {}",
                inner.revision
            )));
        }
        inner.compacted = inner.compacted.max(revision);
        let compacted = inner.compacted;
        while inner
            .history
            .front()
            .is_some_and(|e| e.kv.mod_revision <= compacted)
        {
            inner.history.pop_front();
        }
        Ok(())
    }
}
