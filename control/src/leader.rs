//! Leader election on the project store: only the leader publishes.
//!
//! The leader holds the key [`KEY`] (its value is the node name) under a lease of
//! `ttl`. A candidate creates the key in a transaction guarded by "absent", attached to a
//! fresh lease. The leader renews the lease every `ttl / 3` and checks that the key is still
//! its own; a renewal that fails or does not answer within `ttl / 3` ends its leadership at
//! once, before the lease can expire on the server. A follower watches the key and tries
//! again when it is deleted, and at least every `ttl`. A leader that stops revokes its
//! lease, so the next one takes over without waiting for the expiry.
//!
//! Leadership is published as `Some(revision)`: the `mod_revision` of the leader key. The
//! publisher adds it as a guard (a fence) to every transaction, so a leader that lost the
//! key without noticing yet cannot write.

use dataplane_common::store::{Compare, EventKind, LeaseId, Op, Revision, Store, StoreError, Txn};
use dataplane_common::telemetry::Telemetry;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

/// The key the leader holds.
pub const KEY: &str = "/dataplane/leader";

/// Leader state, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// 1 while this node leads, else 0.
    pub leader: Gauge,
    /// Times this node became leader.
    pub elected: Counter,
    /// Times it lost leadership (keep-alive failed, key gone).
    pub lost: Counter,
}

impl Metrics {
    /// Metrics registered in `telemetry`, named `control_leader*`.
    pub fn register(telemetry: &Telemetry) -> Self {
        let m = Self::default();
        telemetry.register(
            "control_leader",
            "1 while this node is the control leader, else 0.",
            m.leader.clone(),
        );
        telemetry.register(
            "control_leader_elected",
            "Times this node became the control leader.",
            m.elected.clone(),
        );
        telemetry.register(
            "control_leader_lost",
            "Times this node lost leadership (keep-alive failed or the key was taken).",
            m.lost.clone(),
        );
        m
    }
}

/// The fence for a leader whose key has `mod_revision`.
pub fn fence(mod_revision: Revision) -> Compare {
    Compare {
        key: KEY.to_owned(),
        mod_revision,
    }
}

/// Campaigns for leadership and keeps it.
#[derive(Debug)]
pub struct Elector {
    store: Arc<dyn Store>,
    node: String,
    ttl: Duration,
    metrics: Metrics,
}

impl Elector {
    /// An elector for `node` with a lease of `ttl` (at least one second: etcd counts whole
    /// seconds).
    pub fn new(store: Arc<dyn Store>, node: &str, ttl: Duration, metrics: Metrics) -> Self {
        Self {
            store,
            node: node.to_owned(),
            ttl: ttl.max(Duration::from_secs(1)),
            metrics,
        }
    }

    /// Runs until `stop` turns true, sending `Some(fence revision)` on `state` while leader
    /// and `None` otherwise. On stop, a leader resigns (revokes its lease).
    pub async fn run(
        self,
        state: watch::Sender<Option<Revision>>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            let attempt = tokio::select! {
                r = self.try_acquire() => r,
                _ = stop.wait_for(|s| *s) => return,
            };
            match attempt {
                Ok(Acquired::Leader { lease, revision }) => {
                    info!(node = %self.node, "became the control leader");
                    self.metrics.elected.inc();
                    self.metrics.leader.set(1);
                    state.send_replace(Some(revision));
                    let stopped = self.hold(lease, revision, &mut stop).await;
                    state.send_replace(None);
                    self.metrics.leader.set(0);
                    if stopped {
                        self.resign(lease).await;
                        return;
                    }
                    self.metrics.lost.inc();
                    warn!(node = %self.node, "lost control leadership");
                }
                Ok(Acquired::Taken { revision }) => {
                    tokio::select! {
                        () = self.wait_for_vacancy(revision) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
                Err(e) => {
                    warn!(node = %self.node, error = %e, "leader election failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(self.ttl / 3) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
            }
        }
    }

    async fn try_acquire(&self) -> Result<Acquired, StoreError> {
        let lease = self.store.grant_lease(self.ttl).await?;
        let outcome = self
            .store
            .txn(Txn {
                compares: vec![fence(0)],
                ops: vec![Op::Put {
                    key: KEY.to_owned(),
                    value: self.node.clone().into_bytes(),
                    lease: Some(lease),
                }],
            })
            .await;
        match outcome {
            Ok(o) if o.succeeded => Ok(Acquired::Leader {
                lease,
                revision: o.revision,
            }),
            Ok(o) => {
                let _ = self.store.revoke_lease(lease).await;
                Ok(Acquired::Taken {
                    revision: o.revision,
                })
            }
            Err(e) => {
                let _ = self.store.revoke_lease(lease).await;
                Err(e)
            }
        }
    }

    /// Renews the lease until it fails or `stop`; returns whether it stopped.
    async fn hold(
        &self,
        lease: LeaseId,
        revision: Revision,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let period = self.ttl / 3;
        loop {
            tokio::select! {
                () = tokio::time::sleep(period) => {}
                _ = stop.wait_for(|s| *s) => return true,
            }
            let renewed = tokio::time::timeout(period, self.renew(lease, revision)).await;
            match renewed {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    warn!(node = %self.node, error = %e, "leader keep-alive failed");
                    return false;
                }
                Err(_) => {
                    warn!(node = %self.node, "leader keep-alive did not answer in time");
                    return false;
                }
            }
        }
    }

    /// One keep-alive, and a check that the key is still this leader's.
    async fn renew(&self, lease: LeaseId, revision: Revision) -> Result<(), StoreError> {
        self.store.keep_alive(lease).await?;
        match self.store.get(KEY).await? {
            Some(kv) if kv.mod_revision == revision && kv.lease == lease => Ok(()),
            _ => Err(StoreError::Invalid(
                "the leader key is gone or held by another".into(),
            )),
        }
    }

    /// Waits until the leader key is deleted after `revision`, or `ttl` passes.
    async fn wait_for_vacancy(&self, revision: Revision) {
        let wait = async {
            let Ok(mut events) = self.store.watch(KEY, revision + 1).await else {
                std::future::pending::<()>().await;
                return;
            };
            while let Some(Ok(batch)) = events.recv().await {
                if batch.iter().any(|e| e.kind == EventKind::Delete) {
                    return;
                }
            }
            // The watch broke: fall back to the timer.
            std::future::pending::<()>().await;
        };
        let _ = tokio::time::timeout(self.ttl, wait).await;
    }

    async fn resign(&self, lease: LeaseId) {
        match self.store.revoke_lease(lease).await {
            Ok(()) => info!(node = %self.node, "resigned control leadership"),
            Err(e) => {
                warn!(node = %self.node, error = %e, "could not revoke the leader lease; it will expire")
            }
        }
    }
}

enum Acquired {
    Leader { lease: LeaseId, revision: Revision },
    Taken { revision: Revision },
}
