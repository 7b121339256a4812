//! From the store to the workers: follow VIPs and health, read the kernel's neighbour table,
//! build a [`Vips`] snapshot off the hot path and swap it in (workers pick it up at their
//! next batch). Changes arriving within [`COALESCE`] of each other make one rebuild; while
//! the store is away, the last good snapshot goes on being served.

use super::neighbours;
use crate::health::Targets;
use crate::packet::Mac;
use crate::vips::{Link, Vips};
use dataplane_common::model::{Health, HealthState, Vip, keys};
use dataplane_common::snapshot::Snapshot;
use dataplane_common::store::{FollowerMetrics, Revision, Store, Typed};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Changes arriving this close together are applied in one rebuild.
pub const COALESCE: Duration = Duration::from_millis(5);

/// What every snapshot is built from besides the store.
#[derive(Debug, Clone)]
pub(crate) struct Fixed {
    pub(crate) link: Link,
    pub(crate) local: Vec<IpAddr>,
    pub(crate) flow_seed: u64,
    /// Whose kernel neighbour table to read, and how often.
    pub(crate) neighbours: Option<(String, Duration)>,
}

/// Snapshot gauges, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub(crate) struct BuildMetrics {
    pub(crate) vips: Gauge,
    pub(crate) down: Gauge,
    pub(crate) revision: Gauge,
    pub(crate) rebuilds: Counter,
}

impl BuildMetrics {
    pub(crate) fn register(telemetry: &dataplane_common::telemetry::Telemetry) -> Self {
        let m = Self::default();
        telemetry.register("lb_vips", "VIPs in the served snapshot.", m.vips.clone());
        telemetry.register(
            "lb_addresses_down",
            "Real server addresses health checks hold down.",
            m.down.clone(),
        );
        telemetry.register(
            "lb_applied_store_revision",
            "The store revision the served snapshot reflects.",
            m.revision.clone(),
        );
        telemetry.register(
            "lb_snapshot_rebuilds",
            "Snapshot rebuilds.",
            m.rebuilds.clone(),
        );
        m
    }
}

/// Builds a snapshot.
pub(crate) fn build(
    fixed: &Fixed,
    vips: &[Vip],
    health: &BTreeMap<String, Health>,
    neighbours: &BTreeMap<IpAddr, Mac>,
) -> Vips {
    let down = health
        .values()
        .filter(|h| h.state == HealthState::Down)
        .map(|h| h.address);
    let mut b = Vips::builder(fixed.link)
        .vips(vips)
        .down(down)
        .local(fixed.local.iter().copied())
        .flow_seed(fixed.flow_seed);
    for (&ip, &mac) in neighbours {
        b = b.neighbour(ip, mac);
    }
    b.build()
}

/// What the follower publishes.
#[derive(Debug)]
pub(crate) struct Outputs {
    pub(crate) vips: Arc<Snapshot<Vips>>,
    pub(crate) targets: watch::Sender<Arc<Targets>>,
    pub(crate) synced: watch::Sender<Option<Revision>>,
    pub(crate) metrics: BuildMetrics,
}

fn read_neighbours(fixed: &Fixed) -> BTreeMap<IpAddr, Mac> {
    fixed
        .neighbours
        .as_ref()
        .map(|(interface, _)| neighbours::read(interface))
        .unwrap_or_default()
}

/// Follows the store until `shutdown`.
pub(crate) async fn follow(
    store: Arc<dyn Store>,
    fixed: Fixed,
    out: Outputs,
    follower_metrics: FollowerMetrics,
    shutdown: impl Future<Output = ()>,
) {
    let mut vips = Typed::<Vip>::new(Arc::clone(&store), keys::VIPS, follower_metrics.clone());
    let mut health = Typed::<Health>::new(store, keys::HEALTH, follower_metrics);
    let refresh_every = fixed
        .neighbours
        .as_ref()
        .map_or(Duration::from_secs(3600), |(_, every)| *every);
    let mut refresh = tokio::time::interval(refresh_every);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    tokio::select! {
        () = &mut shutdown => return,
        _ = async { tokio::join!(vips.next(), health.next()) } => {}
    }
    let mut neighbours = read_neighbours(&fixed);
    loop {
        let list: Vec<Vip> = vips.objects().values().cloned().collect();
        let stored = health.objects().clone();
        let revision = vips.revision().max(health.revision());
        let (f, n) = (fixed.clone(), neighbours.clone());
        let targets = Targets::new(&list, stored.values());
        let down = targets
            .stored
            .values()
            .filter(|s| **s == HealthState::Down)
            .count();
        let built = tokio::task::spawn_blocking(move || build(&f, &list, &stored, &n))
            .await
            .expect("invariant: building a snapshot does not panic");
        out.metrics.vips.set(built.vips().len() as i64);
        out.metrics.down.set(down as i64);
        out.vips.store(built);
        out.metrics.rebuilds.inc();
        out.metrics.revision.set(revision);
        let _ = out.targets.send(Arc::new(targets));
        let _ = out.synced.send(Some(revision));
        tracing::debug!(revision, "snapshot swapped in");

        // Wait for a change, then gather whatever else arrives within COALESCE.
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = vips.next() => break,
                _ = health.next() => break,
                _ = refresh.tick() => {
                    let fresh = read_neighbours(&fixed);
                    if fresh != neighbours {
                        tracing::info!(entries = fresh.len(), "neighbour table changed");
                        neighbours = fresh;
                        break;
                    }
                }
            }
        }
        let deadline = tokio::time::sleep(COALESCE);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = &mut deadline => break,
                _ = vips.next() => {}
                _ = health.next() => {}
            }
        }
    }
}
