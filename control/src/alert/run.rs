//! The alert loop: every evaluation interval, read the nodes and silences from the store,
//! scrape every node's `/metrics` into the window (plus `up{node}` 1 or 0 per scrape),
//! evaluate, deliver what is due, and publish the view for the API when it changed.

use super::config::Config;
use super::correlate::{Entity, Level, Topology};
use super::deliver::Deliverer;
use super::engine::Engine;
use super::payload::Anchor;
use super::silence::Silence;
use super::view::View;
use super::window::SeriesKey;
use super::{ALERTS, Labels, SILENCES, scrape};
use dataplane_common::clock::Clock;
use dataplane_common::model::{self, keys};
use dataplane_common::node::Registration;
use dataplane_common::store::Store;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// One scrape target: a registered node's metrics endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `http://addr/metrics`.
    pub url: String,
    /// Labels added to its samples (`node`, `role`, `zone`, `datacenter`).
    pub labels: Labels,
}

/// The scrape targets and the topology the registrations describe. PURE.
pub fn from_registrations(nodes: &[Registration]) -> (Vec<Target>, Topology) {
    let mut topology = Topology::new();
    let mut targets = Vec::new();
    for n in nodes {
        let mut labels = Labels::from([
            ("node".to_owned(), n.name.clone()),
            ("role".to_owned(), format!("{:?}", n.role).to_lowercase()),
        ]);
        let node = Entity::new(Level::Node, n.name.clone());
        let dc = n.placement.datacenter.clone();
        match (&n.placement.zone, &dc) {
            (Some(z), _) => {
                labels.insert("zone".to_owned(), z.clone());
                topology.add(node, Entity::new(Level::Zone, z.clone()));
                if let Some(d) = &dc {
                    topology.add(
                        Entity::new(Level::Zone, z.clone()),
                        Entity::new(Level::Datacenter, d.clone()),
                    );
                }
            }
            (None, Some(d)) => topology.add(node, Entity::new(Level::Datacenter, d.clone())),
            (None, None) => {}
        }
        if let Some(d) = dc {
            labels.insert("datacenter".to_owned(), d);
        }
        if let Some(m) = n.addresses.metrics {
            targets.push(Target {
                url: format!("http://{m}/metrics"),
                labels,
            });
        }
    }
    (targets, topology)
}

/// Runs until `shutdown`: evaluates as `node`, on `store`, reading time from `clock`.
pub async fn run(
    config: Config,
    node: String,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut engine = Engine::new(&config);
    let deliverer = Deliverer::new(config.receivers.clone(), Duration::from_secs(10));
    let agent = scrape::agent(config.evaluation_interval.min(Duration::from_secs(10)));
    let mut tick = tokio::time::interval(config.evaluation_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut published: Option<View> = None;
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = tick.tick() => {}
        }
        let nodes = list::<Registration>(&*store, keys::NODES).await;
        let silences = list::<Silence>(&*store, SILENCES).await;
        let (targets, topology) = from_registrations(&nodes);
        let scrapes =
            futures::future::join_all(targets.iter().map(|t| scrape::scrape(&agent, &t.url))).await;
        let now = clock.now();
        for (t, result) in targets.iter().zip(scrapes) {
            let up = match result {
                Ok(page) => {
                    for s in page.samples {
                        let mut labels = s.labels;
                        labels.extend(t.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
                        engine.window_mut().handle_sample(
                            now,
                            SeriesKey {
                                name: s.name,
                                labels,
                            },
                            s.value,
                        );
                    }
                    1.0
                }
                Err(e) => {
                    tracing::debug!(url = %t.url, error = %e, "scrape failed");
                    0.0
                }
            };
            engine.window_mut().handle_sample(
                now,
                SeriesKey {
                    name: "up".into(),
                    labels: t.labels.clone(),
                },
                up,
            );
        }
        engine.set_topology(topology);
        engine.set_silences(silences);
        let wall = clock.wall();
        engine.handle_tick(
            now,
            wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        );
        let anchor = Anchor { now, wall };
        while let Some(n) = engine.poll_notification(now) {
            let d = deliverer.clone();
            tokio::spawn(async move {
                for e in d.deliver(&n, anchor).await {
                    tracing::warn!(error = %e, group = %n.group_key, "notification not delivered");
                }
            });
        }
        let view = View::of(&engine, &node, anchor);
        if published.as_ref() != Some(&view) {
            match store
                .put(&format!("{ALERTS}{node}"), model::encode(&view), None)
                .await
            {
                Ok(_) => published = Some(view),
                Err(e) => tracing::warn!(error = %e, "cannot publish alerts"),
            }
        }
    }
}

/// Every decodable object under `prefix` (others are logged and skipped).
async fn list<T: serde::de::DeserializeOwned + model::Validate>(
    store: &dyn Store,
    prefix: &str,
) -> Vec<T> {
    match store.list(prefix, None).await {
        Ok(listing) => listing
            .kvs
            .iter()
            .filter_map(|kv| match model::decode::<T>(&kv.value) {
                Ok(v) => Some(v),
                Err(e) => {
                    tracing::warn!(key = %kv.key, error = %e, "skipping an unreadable object");
                    None
                }
            })
            .collect(),
        Err(e) => {
            tracing::warn!(%prefix, error = %e, "cannot list");
            Vec::new()
        }
    }
}
