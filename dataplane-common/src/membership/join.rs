//! Joining the fleet's gossip: the seeds are the gossip addresses the store's node
//! registrations name (plus any configured), so a node needs no seed list of its own.

use super::udp::{self, Agent};
use crate::model::{self, keys};
use crate::node::Registration;
use crate::store::Store;
use crate::telemetry::Telemetry;
use prometheus_client::metrics::gauge::Gauge;
use std::future::Future;
use std::net::SocketAddr;

/// The least fleet size the timers are tuned for: a fleet starting up grows past its
/// first few members before the first retransmissions matter.
const MIN_FLEET: u32 = 16;

/// The gossip addresses registered in `store` (every node's but `bind`'s). A store that
/// cannot be read gives none: gossip then starts from the configured seeds alone.
pub async fn registered_seeds(store: &dyn Store, bind: SocketAddr) -> Vec<SocketAddr> {
    match store.list(keys::NODES, None).await {
        Ok(listing) => listing
            .kvs
            .iter()
            .filter_map(|kv| model::decode::<Registration>(&kv.value).ok())
            .filter_map(|r| r.addresses.gossip)
            .filter(|g| *g != bind)
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the registered nodes for gossip seeds");
            Vec::new()
        }
    }
}

/// Binds `bind` and joins the members registered in `store` and `seeds`; runs until
/// `shutdown`, leaving the cluster then. Metrics: `gossip_live_members` (this one
/// included).
///
/// # Errors
/// When the socket cannot be bound.
pub async fn join(
    store: Option<&dyn Store>,
    bind: SocketAddr,
    mut seeds: Vec<SocketAddr>,
    telemetry: &Telemetry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<Agent> {
    if let Some(store) = store {
        seeds.extend(registered_seeds(store, bind).await);
    }
    seeds.sort();
    seeds.dedup();
    let size = u32::try_from(seeds.len() + 1)
        .unwrap_or(u32::MAX)
        .max(MIN_FLEET);
    let agent = udp::start(bind, super::config(size), seeds.clone(), shutdown).await?;
    tracing::info!(gossip = %agent.addr, seeds = seeds.len(), "gossip joined");
    let members = Gauge::<i64>::default();
    telemetry.register(
        "gossip_live_members",
        "Members the gossip membership holds alive, this node included.",
        members.clone(),
    );
    let mut live = agent.live.clone();
    tokio::spawn(async move {
        loop {
            let n = live.borrow_and_update().len();
            members.set(i64::try_from(n).unwrap_or(i64::MAX));
            if live.changed().await.is_err() {
                return;
            }
        }
    });
    Ok(agent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{self, Role};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn a_node_finds_its_seeds_in_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(crate::store::Embedded::open(dir.path()).await.unwrap());
        let first = join(
            Some(&*store),
            "127.0.0.1:0".parse().unwrap(),
            Vec::new(),
            &Telemetry::new(),
            std::future::pending(),
        )
        .await
        .unwrap();
        let mut r = Registration::new("dns-1", Role::Dns);
        r.addresses.gossip = Some(first.addr);
        let reg = node::spawn(Arc::clone(&store), r, Duration::from_secs(5));
        reg.registered().await;
        assert_eq!(registered_seeds(&*store, first.addr).await, []);
        let second = join(
            Some(&*store),
            "127.0.0.1:0".parse().unwrap(),
            Vec::new(),
            &Telemetry::new(),
            std::future::pending(),
        )
        .await
        .unwrap();
        let mut both = vec![first.addr, second.addr];
        both.sort();
        for a in [&first, &second] {
            let mut live = a.live.clone();
            tokio::time::timeout(Duration::from_secs(5), live.wait_for(|l| *l == both))
                .await
                .expect("each knows the other")
                .unwrap();
        }
    }
}
