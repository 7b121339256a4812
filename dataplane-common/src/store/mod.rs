//! One key-value store interface over etcd and an embedded database.
//!
//! [`Store`] is the raw interface, shaped after etcd v3: revisions, prefix listing, transactions
//! that compare `mod_revision`, watches from a revision and leases. [`open`] picks a backend
//! from a URL ([`StoreUrl`]): `etcd://HOST:PORT[,HOST:PORT...]` or `embedded:DIR`.
//!
//! Consumers do not use [`Store::watch`] directly: [`Follower`] lists, watches, resumes after a
//! disconnect from the last revision it saw, and relists after a compaction, so that its
//! output is every change exactly once and in order.

mod embedded;
mod etcd;
mod follow;
#[cfg(any(test, feature = "testing"))]
pub mod intercept;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod url;

pub use embedded::{Embedded, HISTORY_LIMIT};
pub use etcd::{Etcd, TlsFiles};
pub use follow::{Batch, Follower, KeyRevisions, Metrics as FollowerMetrics, Typed};
pub use url::StoreUrl;

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// A store revision: increases by one with every write that changes something.
pub type Revision = i64;
/// A lease: keys attached to it are deleted when it expires or is revoked.
pub type LeaseId = i64;

/// One key with its value and metadata, as etcd keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value; empty in a delete event.
    pub value: Vec<u8>,
    /// The revision that created the key.
    pub create_revision: Revision,
    /// The revision of the last change (for a delete event, the deletion's revision).
    pub mod_revision: Revision,
    /// How many times the key was written since it was created.
    pub version: i64,
    /// The lease it is attached to, 0 for none.
    pub lease: LeaseId,
}

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Created or changed.
    Put,
    /// Deleted (by a delete, a revoked or expired lease).
    Delete,
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the change; for a delete, the key and the deletion's revision.
    pub kv: KeyValue,
}

impl Event {
    /// The deletion of `key` at `revision` (a delete carries no value, version or lease).
    pub fn delete(key: String, revision: Revision) -> Self {
        Self {
            kind: EventKind::Delete,
            kv: KeyValue {
                key,
                value: Vec::new(),
                create_revision: 0,
                mod_revision: revision,
                version: 0,
                lease: 0,
            },
        }
    }
}

/// Keys under a prefix at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The store's revision the listing was read at.
    pub revision: Revision,
    /// The keys, in key order.
    pub kvs: Vec<KeyValue>,
}

/// A guard of a transaction: the key's `mod_revision` equals `revision` (0: the key is absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    /// The key.
    pub key: String,
    /// Its expected `mod_revision`; 0 means it must not exist.
    pub mod_revision: Revision,
}

/// A write in a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Sets a key, optionally under a lease.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
        /// The lease, if any.
        lease: Option<LeaseId>,
    },
    /// Deletes a key (nothing happens if it is absent).
    Delete {
        /// The key.
        key: String,
    },
}

/// All-or-nothing: if every compare holds, every op is applied at one new revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    /// Guards that must all hold.
    pub compares: Vec<Compare>,
    /// Writes applied when they do; at most one per key.
    pub ops: Vec<Op>,
}

/// What a transaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnOutcome {
    /// Whether the compares held and the ops were applied.
    pub succeeded: bool,
    /// The store's revision after the transaction.
    pub revision: Revision,
}

/// Events from [`Store::watch`], in revision order; events of one revision come in one batch.
/// The stream ends (or yields an error and ends) when the backend loses the watch.
pub type WatchStream = tokio::sync::mpsc::UnboundedReceiver<Result<Vec<Event>, StoreError>>;

/// Pages of a listing from [`Store::list_pages`], in key order and all at one revision; the
/// channel closes after the last page, or after an error (the listing is then incomplete).
pub type ListPages = tokio::sync::mpsc::Receiver<Result<Listing, StoreError>>;

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not be reached or answered with a transient failure.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The revision asked for is older than the oldest the store keeps.
    #[error("revision compacted (the oldest kept is {compact_revision})")]
    Compacted {
        /// The compaction revision.
        compact_revision: Revision,
    },
    /// The lease does not exist (expired or revoked).
    #[error("lease {0:x} not found")]
    LeaseNotFound(LeaseId),
    /// A store URL that cannot be used.
    #[error("bad store URL `{url}`: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A request the store refuses (e.g. the same key twice in one transaction).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The backend failed in a way retrying will not fix (a corrupt database, a full disk).
    #[error("store failed: {0}")]
    Backend(String),
}

impl StoreError {
    /// Whether trying again later may succeed; callers keep serving their last good state.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// A versioned key-value store with watches and leases.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// One key at the current revision.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// Every key under `prefix` at revision `at` (the current one if `None`).
    ///
    /// # Errors
    /// [`StoreError::Compacted`] when `at` is older than the store keeps.
    async fn list(&self, prefix: &str, at: Option<Revision>) -> Result<Listing, StoreError>;

    /// Every key under `prefix` at the current revision, as [`Store::list`] gives them but a
    /// page at a time, so that a consumer can decode one page while the next is read and never
    /// holds the whole listing's raw values (100,000 EndpointSlices are hundreds of MB). A
    /// backend with nothing better sends the whole listing as one page.
    ///
    /// # Errors
    /// A store error, returned or as the channel's last item.
    async fn list_pages(&self, prefix: &str) -> Result<ListPages, StoreError> {
        let listing = self.list(prefix, None).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.try_send(Ok(listing))
            .expect("invariant: a new channel has room for one");
        Ok(rx)
    }

    /// Sets `key`, optionally under `lease`; returns the new revision.
    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<Revision, StoreError>;

    /// Deletes `key`; returns the store's revision after it (unchanged if the key was absent).
    async fn delete(&self, key: &str) -> Result<Revision, StoreError>;

    /// Applies `txn` atomically.
    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, StoreError>;

    /// The most compares, and the most operations, that one transaction may hold
    /// (`usize::MAX`: no limit). etcd's is its `--max-txn-ops`, 128 by default.
    async fn max_txn_ops(&self) -> Result<usize, StoreError> {
        Ok(usize::MAX)
    }

    /// Every change under `prefix` from revision `from` on.
    ///
    /// # Errors
    /// [`StoreError::Compacted`], as an error or as the stream's last item, when `from` is
    /// older than the store keeps.
    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream, StoreError>;

    /// Grants a lease that expires after `ttl` without a keep-alive.
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError>;

    /// Renews a lease; returns its TTL.
    ///
    /// # Errors
    /// [`StoreError::LeaseNotFound`] when it has expired or was revoked.
    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError>;

    /// Revokes a lease, deleting its keys.
    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError>;

    /// Forgets the history up to `revision`; watches from before it get [`StoreError::Compacted`].
    async fn compact(&self, revision: Revision) -> Result<(), StoreError>;
}

/// Opens the store a URL names.
///
/// # Errors
/// [`StoreError::BadUrl`] for a URL of no known form; the backend's error when it cannot open.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    match url.parse::<StoreUrl>()? {
        StoreUrl::Etcd { endpoints } => Ok(Arc::new(Etcd::connect(&endpoints).await?)),
        StoreUrl::Embedded { dir } => Ok(Arc::new(Embedded::open(&dir).await?)),
    }
}
