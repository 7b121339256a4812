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
pub mod publish;
pub mod translate;
pub mod watch;

use dataplane_common::clock::{Clock, SystemClock};
use dataplane_common::model::{MAX_TTL, Name, Soa, Zone};
use dataplane_common::store::{Revision, Store};
use dataplane_common::telemetry::Telemetry;
use prometheus_client::metrics::counter::Counter;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch as channel;
use tracing::{debug, info, warn};
use translate::Translation;
use watch::{Cluster, ServiceKey, Watch};

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
    without_transparent_huge_pages();
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
    // A task of its own: a long publish (a first sync of 400,000 keys) must not stop the
    // lease keep-alives, or leadership is lost in the middle of it.
    let mut elector = AbortOnDrop(tokio::spawn(elector));
    tokio::pin!(shutdown);

    let mut desired = publish::DesiredState::new();
    // Services changed before both prefixes were listed: translated once, when they are.
    let mut pending = watch::ServiceSet::default();
    // Keys whose desired value changed since the last publish.
    let mut dirty = publish::Dirty::default();
    let mut leading = false;
    let mut retry = false;
    let mut elector_done = false;
    info!(node = %settings.node_name, kube_prefix = %settings.kube_prefix, domain = %settings.cluster_domain, "control started");
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = &mut elector.0, if !elector_done => {
                elector_done = true;
                warn!("leader election ended unexpectedly; this node will not publish");
                leading = false;
            }
            update = watch.next() => {
                pending.extend(update.changed);
                if update.relisted {
                    // A relist may hide what happened meanwhile: reconcile the store in full.
                    publisher.invalidate();
                }
                if watch.is_synced() {
                    let changed = pending.len();
                    // In order: the same changes make the same chunks and transactions.
                    let mut keys: Vec<ServiceKey> = std::mem::take(&mut pending).into_iter().collect();
                    keys.sort_unstable();
                    let started = SystemClock.now();
                    // A first sync (or a relist) that this node publishes: each chunk's writes
                    // go to the store while the next chunk is merged into the desired state
                    // and the one after is translated, by blocking on the runtime, which only
                    // a thread cpu_bound handed over may do.
                    let runtime = tokio::runtime::Handle::current();
                    let mut overlap = leading
                        && !retry
                        && publisher.needs_reconcile()
                        && blocks_in_place(changed);
                    if overlap && let Err(e) = publisher.ensure_read().await {
                        warn!(error = %e, "reading the project store failed; the full reconcile follows");
                        overlap = false;
                    }
                    let mut planned = publish::PlannedWrites::default();
                    cpu_bound(changed, || {
                        translate_all(watch.cluster(), &keys, &options, &translate_errors, |chunk, parts| {
                            if overlap && !planned.is_empty() {
                                // etcd applies the chunk before while this one is merged: the
                                // merge is a tenth of a second of one core per 16,384 Services,
                                // and etcd sat idle through it.
                                std::thread::scope(|scope| {
                                    let merging = scope.spawn(|| merge_translated(&mut desired, &mut dirty, chunk, parts));
                                    send_planned(&runtime, &mut publisher, &mut planned, &mut overlap);
                                    if let Err(panic) = merging.join() {
                                        std::panic::resume_unwind(panic);
                                    }
                                });
                            } else {
                                merge_translated(&mut desired, &mut dirty, chunk, parts);
                            }
                            if overlap {
                                planned = publisher.plan_changed(&desired, &mut dirty);
                            }
                        });
                        send_planned(&runtime, &mut publisher, &mut planned, &mut overlap);
                    });
                    let took = SystemClock.now().duration_since(started);
                    if changed >= CPU_BOUND_ITEMS {
                        info!(revision = update.revision, changed, keys = desired.len(), dirty = dirty.len(), ms = took.as_millis(), "Kubernetes changes translated");
                    } else {
                        debug!(revision = update.revision, changed, dirty = dirty.len(), "Kubernetes changes applied");
                    }
                }
            }
            Ok(()) = leader_rx.changed() => {
                let fence = *leader_rx.borrow_and_update();
                leading = fence.is_some();
                publisher.set_fence(fence.map(leader::fence));
                if leading {
                    // A new leader reconciles in full: the store may have moved meanwhile.
                    publisher.invalidate();
                    seed_zones(&publisher, &settings.cluster_domain, settings.ttl).await;
                }
            }
            () = tokio::time::sleep(RETRY_DELAY), if retry => retry = false,
        }
        let due = publisher.needs_reconcile() || !dirty.is_empty();
        if due && !retry && leading && watch.is_synced() {
            match publisher.publish(&desired, &mut dirty).await {
                Ok(stats) => {
                    if stats.full || stats.puts + stats.deletes > 0 {
                        let level_info = stats.full || stats.puts + stats.deletes > 100;
                        if level_info {
                            info!(
                                puts = stats.puts,
                                deletes = stats.deletes,
                                keys = desired.len(),
                                full = stats.full,
                                "published"
                            );
                        } else {
                            debug!(
                                puts = stats.puts,
                                deletes = stats.deletes,
                                keys = desired.len(),
                                "published"
                            );
                        }
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
        let _ = (&mut elector.0).await;
    }
    info!(node = %settings.node_name, "control stopped");
    Ok(())
}

/// Turns transparent huge pages off for this process. A first sync allocates most of a
/// gigabyte of small objects in bursts, and mimalloc asks for huge pages where the kernel
/// allows them only on request: every fault then zeroes 2 MiB, and memory given back and
/// taken again is zeroed again. That was 30% of control's CPU in a first sync of 100,000
/// Services (9.9 -> 7.2-7.7 CPU-seconds without). The flag is the process's: where control
/// shares one with dns and l4lb (`dataplane up`), they go without too.
fn without_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes an integer flag and no pointers.
    let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

/// Work items (events, Services) from which [`cpu_bound`] hands the worker's queue over.
const CPU_BOUND_ITEMS: usize = 256;

/// Runs `f` over `items` things. Many of them are seconds of CPU at a first sync (decoding
/// or translating 100,000 objects): then the tasks queued on this worker go to another
/// thread meanwhile (on a multi-threaded runtime). Otherwise the leader's keep-alives and
/// the etcd connection's own task wait behind it, the keep-alive times out, leadership is
/// lost and the first publish fails its fence and starts over. A few are run in place:
/// the hand-over costs more than they do, on the path of every change.
pub(crate) fn cpu_bound<R>(items: usize, f: impl FnOnce() -> R) -> R {
    if blocks_in_place(items) {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// Whether [`cpu_bound`] hands this thread's queue over for `items` things: only then may
/// they block on the runtime themselves (`Handle::block_on`).
fn blocks_in_place(items: usize) -> bool {
    items >= CPU_BOUND_ITEMS
        && tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

/// `f` over `items`, in order: spread over every core when there are many (a listing's page
/// of 15,000 EndpointSlices to decode), in place otherwise.
pub(crate) fn map_on_every_core<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    if items.len() < CPU_BOUND_ITEMS || cores() == 1 {
        return items.iter().map(f).collect();
    }
    let on_slice = |slice: &[T]| slice.iter().map(&f).collect::<Vec<R>>();
    std::thread::scope(|scope| join_in_order(spawn_on_every_core(scope, items, &on_slice)))
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// Starts `f` on a slice of `items` per core; [`join_in_order`] collects what they return.
fn spawn_on_every_core<'scope, T: Sync, R: Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    items: &'scope [T],
    f: &'scope (impl Fn(&[T]) -> Vec<R> + Sync),
) -> Vec<std::thread::ScopedJoinHandle<'scope, Vec<R>>> {
    items
        .chunks(items.len().div_ceil(cores()).max(1))
        .map(|slice| scope.spawn(move || f(slice)))
        .collect()
}

/// What [`spawn_on_every_core`]'s threads return, in the order of their slices; a thread's
/// panic goes on here.
fn join_in_order<R>(handles: Vec<std::thread::ScopedJoinHandle<'_, Vec<R>>>) -> Vec<R> {
    let mut out = Vec::new();
    for handle in handles {
        match handle.join() {
            Ok(part) => out.extend(part),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
    out
}

/// A task that ends with its owner: when [`run`] is dropped (its node crashed, as tests
/// make it), the elector must stop renewing the lease too, or no other node takes over.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Services translated per round of [`translate_all`]: enough to keep every thread busy,
/// few enough that their encoded values in flight are a small part of the desired state.
const TRANSLATE_CHUNK: usize = 16_384;

/// Sends what a first sync planned so far (if it still overlaps writing with translating),
/// blocking on `runtime`; after a failure it stops overlapping, and the full reconcile that
/// follows writes what is left.
fn send_planned(
    runtime: &tokio::runtime::Handle,
    publisher: &mut publish::Publisher,
    planned: &mut publish::PlannedWrites,
    overlap: &mut bool,
) {
    if *overlap && !planned.is_empty() {
        let writes = std::mem::take(planned);
        if let Err(e) = runtime.block_on(publisher.write_planned(writes)) {
            warn!(error = %e, "publishing while translating failed; the full reconcile follows");
            *overlap = false;
        }
    }
}

/// Merges translated Services (`keys` with the `parts` each wants) into the desired state,
/// adding the keys whose value changed to `dirty`.
fn merge_translated(
    desired: &mut publish::DesiredState,
    dirty: &mut publish::Dirty,
    keys: &[ServiceKey],
    parts: Vec<publish::state::Parts>,
) {
    for (key, parts) in keys.iter().zip(parts) {
        let changes = desired.set_parts(&key.0, &key.1, parts);
        for c in &changes.conflicts {
            warn!(conflict = %c, "two Services want one key");
        }
        dirty.extend(changes.keys);
    }
}

/// Translates the Services `keys` and encodes what each wants, handing each chunk of
/// Services to `on` with what they want, in order. Many (a first sync's 100,000) go in
/// chunks, each spread over every core while the caller merges and publishes the chunk
/// before: translating and encoding is most of a first sync's CPU, and etcd applying the
/// writes most of its time.
fn translate_all<'a>(
    cluster: &'a Cluster,
    keys: &'a [ServiceKey],
    options: &'a translate::Options,
    errors: &'a Counter,
    mut on: impl FnMut(&'a [ServiceKey], Vec<publish::state::Parts>),
) {
    let parts_of = |keys: &[ServiceKey]| -> Vec<publish::state::Parts> {
        keys.iter()
            .map(|key| {
                translate_one(cluster, key, options, errors)
                    .as_ref()
                    .map(publish::state::contributions)
                    .unwrap_or_default()
            })
            .collect()
    };
    if keys.len() < CPU_BOUND_ITEMS {
        on(keys, parts_of(keys));
        return;
    }
    std::thread::scope(|scope| {
        let mut chunks = keys.chunks(TRANSLATE_CHUNK);
        let mut next = chunks
            .next()
            .map(|c| (c, spawn_on_every_core(scope, c, &parts_of)));
        while let Some((chunk, handles)) = next.take() {
            let parts = join_in_order(handles);
            next = chunks
                .next()
                .map(|c| (c, spawn_on_every_core(scope, c, &parts_of)));
            on(chunk, parts);
        }
    });
}

/// Translates one Service; `None` when it is gone or cannot be translated (it then
/// contributes nothing).
fn translate_one(
    cluster: &Cluster,
    key: &ServiceKey,
    options: &translate::Options,
    errors: &Counter,
) -> Option<Translation> {
    let svc = cluster.services().get(key)?;
    match translate::service(svc, &cluster.slices_of(key), options) {
        Ok(t) => {
            for w in &t.warnings {
                warn!(namespace = %key.0, service = %key.1, "{w}");
            }
            Some(t)
        }
        Err(e) => {
            errors.inc();
            warn!(error = %e, "skipping a Service that cannot be translated");
            None
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
