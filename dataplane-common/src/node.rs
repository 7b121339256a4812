//! A node's registration: who it is (name, role, addresses, version, the store revision it
//! has applied, where it sits in the topology), stored at `/dataplane/nodes/<name>` under a
//! lease, so that the key disappears within the lease's TTL when the node dies.
//!
//! [`Registration`] is the stored object (PURE, validated like every model object);
//! [`spawn`] writes it and keeps the lease alive in a tokio task. The gossip membership
//! ([`crate::membership`]) tells the nodes about each other faster than the lease does;
//! the registration is what the rest (API, inspection, `dpctl`) reads, and where a node
//! joining gossip finds its seeds (`addresses.gossip`).

use crate::model::{self, Validate, ValidationError, keys};
use crate::store::{LeaseId, Revision, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What a node does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// `dataplane dns`.
    Dns,
    /// `dataplane lb`.
    Lb,
    /// `dataplane control`.
    Control,
    /// `dataplane up`: every part in one process.
    Up,
}

/// Where a node can be reached.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Addresses {
    /// Its `/metrics` (and `/healthz`) endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<SocketAddr>,
    /// Its gossip (SWIM) UDP socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gossip: Option<SocketAddr>,
    /// What it serves (DNS listeners, the API).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service: Vec<SocketAddr>,
}

/// Where a node sits: datacenter, then zone or rack. Alerts are correlated along it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    /// The datacenter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter: Option<String>,
    /// The zone or rack within it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// One node, as stored under `/dataplane/nodes/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// Unique in the fleet; the key's last segment.
    pub name: String,
    /// What it does.
    pub role: Role,
    /// Where to reach it.
    #[serde(default)]
    pub addresses: Addresses,
    /// The build (`CARGO_PKG_VERSION`).
    pub version: String,
    /// The store revision its served state reflects (none before it has loaded any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_revision: Option<Revision>,
    /// Where it sits.
    #[serde(default)]
    pub placement: Placement,
}

impl Validate for Registration {
    fn validate(&self) -> Result<(), ValidationError> {
        if self.name.is_empty() || self.name.len() > 253 {
            return Err(ValidationError::new("name", "must be 1 to 253 bytes"));
        }
        if self.name.contains('/') || self.name.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "name",
                "must not contain `/` or control characters",
            ));
        }
        if self.version.is_empty() {
            return Err(ValidationError::new("version", "must name the build"));
        }
        Ok(())
    }
}

impl Registration {
    /// A registration of this build (`version` is the crate's) with no addresses yet.
    pub fn new(name: impl Into<String>, role: Role) -> Self {
        Self {
            name: name.into(),
            role,
            addresses: Addresses::default(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            applied_revision: None,
            placement: Placement::default(),
        }
    }
}

/// This host's name (`/proc/sys/kernel/hostname`), or `fallback` when it cannot be read.
pub fn host_name(fallback: &str) -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| fallback.to_owned())
}

/// The default lease: a dead node's key is gone within this.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);

/// A running registration. Dropping it stops the keep-alive (the key then expires with the
/// lease); [`Registrar::leave`] deletes it at once.
#[derive(Debug)]
pub struct Registrar {
    updates: watch::Sender<Registration>,
    lease: watch::Receiver<Option<LeaseId>>,
    task: tokio::task::JoinHandle<()>,
    followers: Vec<tokio::task::JoinHandle<()>>,
    store: Arc<dyn Store>,
}

impl Drop for Registrar {
    fn drop(&mut self) {
        self.task.abort();
        for f in &self.followers {
            f.abort();
        }
    }
}

impl Registrar {
    /// Changes what is registered (e.g. a new applied revision). Written at once, or
    /// [`MIN_WRITE_GAP`] after the previous write; changes made meanwhile are written
    /// together (only the latest registration is).
    pub fn update(&self, change: impl FnOnce(&mut Registration)) {
        self.updates.send_modify(change);
    }

    /// Keeps `applied_revision` equal to what `applied` says (a server's revision of its
    /// served snapshot, sent once per swap), until the registrar is dropped.
    pub fn follow_applied(&mut self, mut applied: watch::Receiver<Option<Revision>>) {
        let updates = self.updates.clone();
        self.followers.push(tokio::spawn(async move {
            loop {
                let revision = *applied.borrow_and_update();
                if revision.is_some() {
                    updates.send_if_modified(|r| {
                        let changed = r.applied_revision != revision;
                        r.applied_revision = revision;
                        changed
                    });
                }
                if applied.changed().await.is_err() {
                    return;
                }
            }
        }));
    }

    /// Waits until the registration is in the store (the first write succeeded).
    pub async fn registered(&self) {
        let mut lease = self.lease.clone();
        let _ = lease.wait_for(Option::is_some).await;
    }

    /// Stops and revokes the lease, deleting the key now rather than at expiry.
    pub async fn leave(self) {
        self.task.abort();
        let lease = *self.lease.borrow();
        if let Some(lease) = lease
            && let Err(e) = self.store.revoke_lease(lease).await
        {
            tracing::debug!(error = %e, "cannot revoke the node lease; it will expire");
        }
    }
}

/// Registers `registration` under a lease of `ttl` and keeps it alive until the
/// [`Registrar`] is dropped. Store failures are retried; an expired lease is granted again
/// and the key rewritten.
///
/// # Panics
/// Outside a tokio runtime.
pub fn spawn(store: Arc<dyn Store>, registration: Registration, ttl: Duration) -> Registrar {
    debug_assert!(
        registration.validate().is_ok(),
        "registration MUST be valid"
    );
    let (updates, rx) = watch::channel(registration);
    let (lease_tx, lease) = watch::channel(None);
    let task = tokio::spawn(keep(Arc::clone(&store), rx, lease_tx, ttl));
    Registrar {
        updates,
        lease,
        task,
        followers: Vec::new(),
        store,
    }
}

/// The least time between two writes of a changing registration: a node applying many
/// snapshots a second writes its registration a few times a second at most.
pub const MIN_WRITE_GAP: Duration = Duration::from_millis(200);

async fn keep(
    store: Arc<dyn Store>,
    mut updates: watch::Receiver<Registration>,
    lease_tx: watch::Sender<Option<LeaseId>>,
    ttl: Duration,
) {
    let ttl = ttl.max(Duration::from_secs(1));
    let renew = ttl / 3;
    loop {
        match hold(&*store, &mut updates, &lease_tx, ttl, renew).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "node registration lost; registering again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Grants a lease, writes the registration and renews until an error (or the sender is gone).
async fn hold(
    store: &dyn Store,
    updates: &mut watch::Receiver<Registration>,
    lease_tx: &watch::Sender<Option<LeaseId>>,
    ttl: Duration,
    renew: Duration,
) -> Result<(), StoreError> {
    let lease = store.grant_lease(ttl).await?;
    let write = |r: &Registration| (keys::node(&r.name), model::encode(r));
    let (key, value) = write(&updates.borrow_and_update());
    store.put(&key, value, Some(lease)).await?;
    lease_tx.send_replace(Some(lease));
    tracing::info!(%key, "node registered");
    let mut tick = tokio::time::interval(renew);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                store.keep_alive(lease).await?;
            }
            changed = updates.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let (key, value) = write(&updates.borrow_and_update());
                store.put(&key, value, Some(lease)).await?;
                // What changes meanwhile is written once, after the gap.
                tokio::time::sleep(MIN_WRITE_GAP).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_round_trip_and_validate() {
        let mut r = Registration::new("dns-1", Role::Dns);
        r.addresses.metrics = Some("127.0.0.1:9100".parse().unwrap());
        r.applied_revision = Some(42);
        r.placement.datacenter = Some("dc1".into());
        let bytes = model::encode(&r);
        assert_eq!(model::decode::<Registration>(&bytes).unwrap(), r);
        r.name = "a/b".into();
        let err = model::decode::<Registration>(&model::encode(&r)).unwrap_err();
        assert!(err.to_string().contains("`name`"), "{err}");
    }

    #[tokio::test]
    async fn a_registration_is_written_under_a_lease_updated_and_removed_on_leave() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            crate::store::Embedded::open(dir.path())
                .await
                .expect("embedded store"),
        );
        let r = spawn(
            Arc::clone(&store),
            Registration::new("lb-1", Role::Lb),
            Duration::from_secs(5),
        );
        r.registered().await;
        let kv = store.get(&keys::node("lb-1")).await.unwrap().unwrap();
        assert_ne!(kv.lease, 0, "held by a lease");
        r.update(|reg| reg.applied_revision = Some(7));
        let mut applied = None;
        for _ in 0..100 {
            let kv = store.get(&keys::node("lb-1")).await.unwrap().unwrap();
            applied = model::decode::<Registration>(&kv.value)
                .unwrap()
                .applied_revision;
            if applied.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(applied, Some(7));
        r.leave().await;
        assert_eq!(store.get(&keys::node("lb-1")).await.unwrap(), None);
    }

    #[tokio::test]
    async fn applied_revisions_are_followed_and_their_writes_coalesced() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            crate::store::Embedded::open(dir.path())
                .await
                .expect("embedded store"),
        );
        let mut r = spawn(
            Arc::clone(&store),
            Registration::new("dns-1", Role::Dns),
            Duration::from_secs(5),
        );
        r.registered().await;
        let (tx, rx) = watch::channel(None);
        r.follow_applied(rx);
        // A burst of swaps, as a flapping health state would cause.
        for revision in 1..=200 {
            tx.send_replace(Some(revision));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut last = None;
        for _ in 0..200 {
            let kv = store.get(&keys::node("dns-1")).await.unwrap().unwrap();
            let applied = model::decode::<Registration>(&kv.value)
                .unwrap()
                .applied_revision;
            last = Some((applied, kv.version));
            if applied == Some(200) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (applied, writes) = last.unwrap();
        assert_eq!(applied, Some(200));
        // 200 swaps over about 200 ms (or more, on a loaded machine) are a few writes: one
        // per MIN_WRITE_GAP, not one per swap.
        assert!(writes < 40, "{writes} writes for 200 swaps");
    }
}
