//! The control plane: Kubernetes Services and EndpointSlices into dataplane's records and VIPs.
//!
//! control reads the cluster's own etcd (the keys kube-apiserver writes, not the API server)
//! and writes what it derives under `/dataplane/` in the project store, where dns and l4lb
//! follow it. The parts, in the order data flows:
//!
//! - [`kube`] PURE: stored values (protobuf, JSON; encrypted ones recognised) into plain
//!   Service and EndpointSlice structs.
//! - [`watch`]: follows the two Kubernetes prefixes and keeps the decoded objects by name.
//! - [`translate`] PURE: one Service and its slices into model objects (records per the
//!   Kubernetes DNS specification, VIPs, the Service and its endpoints).
//! - [`publish`]: desired state against the store, written as guarded transactions; user
//!   objects are never touched.
//! - [`leader`]: only one node publishes; the others wait to take over.
//!
//! [`run`] wires them together. Beside it, [`api`] is the REST API over the same store
//! (user zones, records and VIPs; Kubernetes-derived objects read-only), and `dpctl`
//! (`src/bin/dpctl.rs`) its command-line client.
//!
//! Dependency choices: `k8s-pb` has the generated protobuf types of the Kubernetes API
//! (no protoc at build time), `prost` is the runtime it is generated for (0.14).

pub mod alert;
pub mod api;
pub mod inspect;
pub mod kube;
pub mod leader;
pub mod membership;
pub mod publish;
pub mod translate;
pub mod watch;

use dataplane_common::model::{MAX_TTL, Name, Soa, Zone};
use dataplane_common::store::{Revision, Store};
use dataplane_common::telemetry::Telemetry;
use prometheus_client::metrics::counter::Counter;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch as channel;
use tracing::{debug, info, warn};
use translate::Translation;
use watch::{ServiceKey, Watch};

/// How long to wait before publishing again after a store error.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// What [`run`] needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// kube-apiserver's `--etcd-prefix` (`/registry`).
    pub kube_prefix: String,
    /// The cluster domain (`cluster.local.`).
    pub cluster_domain: Name,
    /// The TTL of every record control writes (seconds; the default is 30).
    pub ttl: u32,
    /// This node's name, stored in the leader key while it leads.
    pub node_name: String,
    /// The leader lease: a dead leader is replaced within this (whole seconds, at least 1).
    pub lease_ttl: Duration,
}

impl Settings {
    /// Checks every field.
    ///
    /// # Errors
    /// [`Error::Settings`] naming the field that is wrong.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field: &'static str, reason: &str| Error::Settings {
            field,
            reason: reason.to_owned(),
        };
        if !self.kube_prefix.starts_with('/') {
            return Err(bad("kube_prefix", "must start with `/` (e.g. /registry)"));
        }
        if self.ttl > MAX_TTL {
            return Err(bad("ttl", "must be at most 2147483647 (RFC 2181)"));
        }
        if self.node_name.is_empty() {
            return Err(bad("node_name", "must name this node"));
        }
        if self.lease_ttl < Duration::from_secs(1) {
            return Err(bad("lease_ttl", "must be at least one second"));
        }
        Ok(())
    }
}

/// Why control could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is invalid.
    #[error("control setting `{field}`: {reason}")]
    Settings {
        /// The setting.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Runs the control plane until `shutdown` completes: follows `kube` (the Kubernetes etcd)
/// and, while this node is the leader, publishes into `store`. Store errors are retried
/// (the last published state stays in place meanwhile); a leader resigns on shutdown.
///
/// Metrics (`control_*`): Services and EndpointSlices seen, decode errors by kind, publish
/// writes, leader state, the last applied Kubernetes revision.
///
/// # Errors
/// [`Error::Settings`] for invalid settings; nothing else stops it.
pub async fn run(
    settings: Settings,
    kube: Arc<dyn Store>,
    store: Arc<dyn Store>,
    telemetry: &Telemetry,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    settings.validate()?;
    let options = translate::Options {
        cluster_domain: settings.cluster_domain.clone(),
        ttl: settings.ttl,
    };
    let translate_errors = Counter::default();
    telemetry.register(
        "control_translate_errors",
        "Kubernetes Services that could not be translated (skipped).",
        translate_errors.clone(),
    );
    let mut watch = Watch::new(
        kube,
        &settings.kube_prefix,
        watch::Metrics::register(telemetry),
    );
    let mut publisher =
        publish::Publisher::new(store.clone(), publish::Metrics::register(telemetry));
    let (leader_tx, mut leader_rx) = channel::channel::<Option<Revision>>(None);
    let (stop_tx, stop_rx) = channel::channel(false);
    let elector = leader::Elector::new(
        store,
        &settings.node_name,
        settings.lease_ttl,
        leader::Metrics::register(telemetry),
    )
    .run(leader_tx, stop_rx);
    tokio::pin!(elector, shutdown);

    let mut translations: BTreeMap<ServiceKey, Translation> = BTreeMap::new();
    let mut leading = false;
    let mut dirty = false;
    let mut retry = false;
    let mut elector_done = false;
    info!(node = %settings.node_name, kube_prefix = %settings.kube_prefix, domain = %settings.cluster_domain, "control started");
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = &mut elector, if !elector_done => {
                elector_done = true;
                warn!("leader election ended unexpectedly; this node will not publish");
                leading = false;
            }
            update = watch.next() => {
                for key in &update.changed {
                    retranslate(&watch, key, &options, &mut translations, &translate_errors);
                }
                debug!(revision = update.revision, changed = update.changed.len(), "Kubernetes changes applied");
                dirty |= !update.changed.is_empty();
            }
            Ok(()) = leader_rx.changed() => {
                let fence = *leader_rx.borrow_and_update();
                leading = fence.is_some();
                publisher.set_fence(fence.map(leader::fence));
                if leading {
                    // A new leader reconciles in full: the store may have moved meanwhile.
                    publisher.invalidate();
                    seed_zones(&publisher, &settings.cluster_domain, settings.ttl).await;
                    dirty = true;
                }
            }
            // Any other event publishes too; this only makes sure a failure is retried.
            () = tokio::time::sleep(RETRY_DELAY), if retry => {
                retry = false;
                dirty = true;
            }
        }
        if dirty && leading && watch.is_synced() {
            let (desired, conflicts) = publish::desired(translations.values());
            for c in &conflicts {
                warn!(conflict = %c, "two Services want one key");
            }
            match publisher.publish(&desired).await {
                Ok(stats) => {
                    dirty = false;
                    if stats.puts + stats.deletes > 0 {
                        info!(
                            puts = stats.puts,
                            deletes = stats.deletes,
                            keys = desired.len(),
                            "published"
                        );
                    }
                }
                Err(e) => {
                    warn!(error = %e, "publishing failed; the store keeps its last state, retrying");
                    retry = true;
                }
            }
        }
    }
    stop_tx.send_replace(true);
    if !elector_done {
        elector.await;
    }
    info!(node = %settings.node_name, "control stopped");
    Ok(())
}

/// Translates one Service again (or forgets it when it is gone).
fn retranslate(
    watch: &Watch,
    key: &ServiceKey,
    options: &translate::Options,
    translations: &mut BTreeMap<ServiceKey, Translation>,
    errors: &Counter,
) {
    let Some(svc) = watch.cluster().services().get(key) else {
        translations.remove(key);
        return;
    };
    match translate::service(svc, &watch.cluster().slices_of(key), options) {
        Ok(t) => {
            for w in &t.warnings {
                warn!(namespace = %key.0, service = %key.1, "{w}");
            }
            translations.insert(key.clone(), t);
        }
        Err(e) => {
            errors.inc();
            warn!(error = %e, "skipping a Service that cannot be translated");
            translations.remove(key);
        }
    }
}

/// Reverse zones served beside the cluster zone, so that the PTR records of Services and
/// endpoints are answered (as CoreDNS's `kubernetes cluster.local in-addr.arpa ip6.arpa`).
const REVERSE_ZONES: [&str; 2] = ["in-addr.arpa.", "ip6.arpa."];

/// Creates the cluster zone and the reverse zones unless they exist (the cluster zone with the
/// same defaults `dataplane up` seeds); their SOA and NS name the cluster domain's server.
async fn seed_zones(publisher: &publish::Publisher, cluster_domain: &Name, ttl: u32) {
    let (Ok(ns), Ok(rname)) = (
        cluster_domain.prepend("ns"),
        cluster_domain.prepend("hostmaster"),
    ) else {
        warn!(%cluster_domain, "the cluster domain leaves no room for the zone's NS name; not seeded");
        return;
    };
    let reverse = REVERSE_ZONES.iter().filter_map(|z| z.parse::<Name>().ok());
    for origin in std::iter::once(cluster_domain.clone()).chain(reverse) {
        seed_zone(publisher, &origin, &ns, &rname, ttl).await;
    }
}

async fn seed_zone(
    publisher: &publish::Publisher,
    origin: &Name,
    ns: &Name,
    rname: &Name,
    ttl: u32,
) {
    let (ns, rname) = (ns.clone(), rname.clone());
    let zone = Zone {
        origin: origin.clone(),
        ttl,
        soa: Soa {
            mname: ns.clone(),
            rname,
            serial: 1,
            refresh: 7200,
            retry: 1800,
            expire: 86400,
            minimum: ttl,
        },
        ns: vec![ns],
    };
    match publisher.seed_zone(&zone).await {
        Ok(true) => info!(%origin, "seeded a zone"),
        Ok(false) => {}
        Err(e) => warn!(%origin, error = %e, "could not seed a zone"),
    }
}
