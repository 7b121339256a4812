//! A store for tests that passes every call on to a real one, through the test's hooks: a
//! store that goes down, one whose watches are cut, one that takes smaller transactions.
//!
//! Every [`Store`] method is passed on here, so a test's wrapper cannot fall back to a
//! trait default by mistake (a listing that stops being paged, a transaction limit of "none"
//! in front of an etcd that has one).

use super::{
    KeyValue, LeaseId, ListPages, Listing, Revision, Store, StoreError, Txn, TxnOutcome,
    WatchStream,
};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// What a test changes about a store; each hook's default lets the call through as it is.
pub trait Intercept: Send + Sync + std::fmt::Debug + 'static {
    /// Before every call; an error fails the call (a store that is down).
    fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Before a transaction is passed on; an error fails it.
    fn txn(&self, _txn: &Txn) -> Result<(), StoreError> {
        Ok(())
    }

    /// The transaction limit to report, the inner store's being `inner`.
    fn max_txn_ops(&self, inner: usize) -> usize {
        inner
    }

    /// The watch to hand out, the inner store's being `inner`; an error refuses it.
    fn watch(&self, inner: WatchStream) -> Result<WatchStream, StoreError> {
        Ok(inner)
    }
}

/// `inner`, with `intercept`'s hooks on every call.
#[derive(Debug)]
pub struct Intercepted<I> {
    /// The store the calls go on to.
    pub inner: Arc<dyn Store>,
    /// The test's hooks.
    pub intercept: I,
}

impl<I: Intercept> Intercepted<I> {
    /// `inner` behind `intercept`.
    pub fn new(inner: Arc<dyn Store>, intercept: I) -> Arc<Self> {
        Arc::new(Self { inner, intercept })
    }
}

#[async_trait]
impl<I: Intercept> Store for Intercepted<I> {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.intercept.check()?;
        self.inner.get(key).await
    }

    async fn list(&self, prefix: &str, at: Option<Revision>) -> Result<Listing, StoreError> {
        self.intercept.check()?;
        self.inner.list(prefix, at).await
    }

    async fn list_pages(&self, prefix: &str) -> Result<ListPages, StoreError> {
        self.intercept.check()?;
        self.inner.list_pages(prefix).await
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<Revision, StoreError> {
        self.intercept.check()?;
        self.inner.put(key, value, lease).await
    }

    async fn delete(&self, key: &str) -> Result<Revision, StoreError> {
        self.intercept.check()?;
        self.inner.delete(key).await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, StoreError> {
        self.intercept.check()?;
        self.intercept.txn(&txn)?;
        self.inner.txn(txn).await
    }

    async fn max_txn_ops(&self) -> Result<usize, StoreError> {
        self.intercept.check()?;
        let inner = self.inner.max_txn_ops().await?;
        Ok(self.intercept.max_txn_ops(inner))
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream, StoreError> {
        self.intercept.check()?;
        let inner = self.inner.watch(prefix, from).await?;
        self.intercept.watch(inner)
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        self.intercept.check()?;
        self.inner.grant_lease(ttl).await
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError> {
        self.intercept.check()?;
        self.inner.keep_alive(lease).await
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.intercept.check()?;
        self.inner.revoke_lease(lease).await
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.intercept.check()?;
        self.inner.compact(revision).await
    }
}
