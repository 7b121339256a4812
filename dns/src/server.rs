//! The running server: sources feed catalog snapshots, and for every listen address a set of
//! UDP workers ([`crate::io::mmsg`]) and a TCP listener ([`crate::io::tcp`]) answer from them.
//! With recursion on, the workers share one cache and hand misses to one resolver task
//! ([`crate::io::upstream`]).
//!
//! The catalog is updated off the hot path whenever the store changes (changes that arrive
//! within [`COALESCE`] go into one update) and swapped in whole: a query sees the old
//! catalog or the new one, never half of an update. A few changed record sets are patched
//! into a copy that shares every other name with the served catalog
//! ([`Catalog::patched`]); zone changes and large batches rebuild it. When the store is
//! unreachable the last good catalog goes on being served.

use crate::authority::Catalog;
use crate::io::upstream::Resolver;
use crate::io::{self, Metrics};
use crate::recursor::Cache;
use crate::respond::{Options, Responder};
use crate::source::{self, Inputs, LoadError};
use dataplane_common::clock::{Clock, SystemClock};
use dataplane_common::model::{Health, RecordSet, Zone, keys};
use dataplane_common::snapshot::Snapshot;
use dataplane_common::store::{FollowerMetrics, Revision, Store, Typed};
use dataplane_common::telemetry::Telemetry;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::watch;

/// Changes arriving this close together are applied in one update. Short: a patch costs
/// well under a millisecond, so waiting longer only delays the answer.
pub const COALESCE: Duration = Duration::from_millis(1);

/// What the server serves and how.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Addresses answered on, UDP and TCP.
    pub listen: Vec<SocketAddr>,
    /// Zone files, read once at start.
    pub zone_files: Vec<PathBuf>,
    /// UDP workers per address.
    pub workers: usize,
    /// The UDP backend.
    pub backend: io::Backend,
    /// With the `AF_XDP` backend: replies the XDP program keeps and sends itself
    /// ([`io::xdp::cache`]); 0 is off.
    pub xdp_answer_cache: u32,
    /// Answering options.
    pub options: Options,
    /// Response rate limiting for UDP; `None` is off.
    pub rrl: Option<crate::rrl::Settings>,
    /// The Kubernetes cluster domain, if this server serves one.
    pub cluster_domain: Option<dataplane_common::model::Name>,
    /// Called after a catalog is swapped in, to hand the memory the old one (and the parsed
    /// records) held back to the system. Allocators keep freed memory for reuse; after a
    /// million-record rebuild that is hundreds of MiB nobody uses. The allocator is the
    /// binary's choice, so the binary says how.
    pub release_memory: Option<fn()>,
    /// Resolving names outside the zones; `None`: REFUSED, as an authoritative server.
    pub recursion: Option<crate::recursor::Settings>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A zone file did not load.
    #[error(transparent)]
    ZoneFile(#[from] LoadError),
    /// An address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Catalog gauges, for `/metrics`.
#[derive(Debug, Clone, Default)]
struct CatalogMetrics {
    zones: Gauge,
    record_sets: Gauge,
    outside: Gauge,
    revision: Gauge,
    rebuilds: Counter,
    patches: Counter,
    build_micros: Gauge,
}

impl CatalogMetrics {
    fn register(telemetry: &Telemetry) -> Self {
        let m = Self::default();
        telemetry.register("dns_zones", "Zones served.", m.zones.clone());
        telemetry.register(
            "dns_record_sets",
            "Record sets served.",
            m.record_sets.clone(),
        );
        telemetry.register(
            "dns_records_outside_zones",
            "Store record sets in no served zone (not served).",
            m.outside.clone(),
        );
        telemetry.register(
            "dns_applied_store_revision",
            "The store revision the served catalog reflects.",
            m.revision.clone(),
        );
        telemetry.register(
            "dns_catalog_rebuilds",
            "Catalog rebuilds.",
            m.rebuilds.clone(),
        );
        telemetry.register(
            "dns_catalog_patches",
            "Catalog updates that copied only the changed names' shards instead of rebuilding.",
            m.patches.clone(),
        );
        telemetry.register(
            "dns_catalog_build_microseconds",
            "How long the last catalog build or patch took.",
            m.build_micros.clone(),
        );
        m
    }
}

/// A running server. Dropping it does not stop it: call [`Server::stop`].
#[derive(Debug)]
pub struct Server {
    /// The bound UDP addresses (the same ports serve TCP).
    pub addrs: Vec<SocketAddr>,
    /// The catalog being served.
    pub catalog: Arc<Snapshot<Catalog>>,
    /// The per-query counters.
    pub metrics: Metrics,
    synced: watch::Receiver<Option<Revision>>,
    stop: Arc<AtomicBool>,
    stop_tasks: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
}

fn build(inputs: &Inputs, metrics: &CatalogMetrics) -> Catalog {
    build_from(inputs.assemble(), metrics)
}

fn build_from(assembled: source::Assembled, metrics: &CatalogMetrics) -> Catalog {
    let started = SystemClock.now();
    let sets: usize = assembled.zones.iter().map(|(_, r)| r.len()).sum();
    metrics.zones.set(assembled.zones.len() as i64);
    metrics.record_sets.set(sets as i64);
    metrics.outside.set(assembled.outside as i64);
    let catalog = Catalog::build(assembled.zones, &assembled.down);
    metrics.rebuilds.inc();
    metrics.build_micros.set(
        SystemClock
            .now()
            .saturating_duration_since(started)
            .as_micros() as i64,
    );
    catalog
}

impl Server {
    /// Loads the zone files, binds every address and starts answering; with a store, follows
    /// it and swaps in a new catalog on every change.
    ///
    /// # Errors
    /// [`StartError`] when a zone file does not load or an address cannot be bound.
    pub async fn start(
        settings: Settings,
        store: Option<Arc<dyn Store>>,
        telemetry: &Telemetry,
    ) -> Result<Self, StartError> {
        // Parse and build on one thread, and without a store consume the parsed records into
        // the catalog: no second copy, and no freed memory scattered over other threads' heaps.
        let files = settings.zone_files.clone();
        let cluster_domain = settings.cluster_domain.clone();
        let catalog_metrics = CatalogMetrics::register(telemetry);
        let keep_inputs = store.is_some();
        let release_memory = settings.release_memory;
        let m = catalog_metrics.clone();
        let (first, inputs) = tokio::task::spawn_blocking(move || -> Result<_, LoadError> {
            let inputs = Inputs {
                files: source::load_files(&files)?,
                cluster_domain,
                ..Inputs::default()
            };
            if keep_inputs {
                let catalog = build(&inputs, &m);
                Ok((catalog, Some(inputs)))
            } else {
                let catalog = build_from(inputs.into_assembled(), &m);
                if let Some(release) = release_memory {
                    release();
                }
                Ok((catalog, None))
            }
        })
        .await
        .expect("invariant: zone loading does not panic")?;
        let catalog = Arc::new(Snapshot::new(first));
        let metrics = Metrics::register(telemetry);
        let stop = Arc::new(AtomicBool::new(false));
        let (stop_tasks, stopped) = watch::channel(false);
        let shutdown = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };

        // Recursion: one cache for every worker, one resolver task fed by a miss queue.
        let recursion = settings.recursion.clone().map(|r| {
            let cache = Arc::new(Cache::new(r.cache.clone(), seed_base().rotate_left(7)));
            let resolver = Resolver::new(r, cache, settings.options.udp_payload, telemetry);
            let front = resolver.front();
            let (tx, rx) = tokio::sync::mpsc::channel(io::upstream::QUEUE);
            tokio::spawn(Arc::clone(&resolver).serve(rx, shutdown()));
            let handoff = resolver.handoff(tx);
            (front, resolver, handoff)
        });
        let front = recursion.as_ref().map(|(f, _, _)| f.clone());
        let handoff = recursion.as_ref().map(|(_, _, h)| h.clone());
        let resolver = recursion.as_ref().map(|(_, r, _)| Arc::clone(r));

        let seeds = AtomicU64::new(seed_base());
        let options = settings.options.clone();
        let rrl = settings.rrl;
        let epoch = SystemClock.now();
        let worker_front = front.clone();
        let responders = move |_: usize| {
            let mut responder = Responder::new(
                seeds.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed),
                options.clone(),
            );
            if let Some(f) = &worker_front {
                responder = responder.with_recursion(f.worker());
            }
            (responder, rrl.map(|r| crate::rrl::Limiter::new(r, epoch)))
        };
        let mut addrs = Vec::new();
        let mut threads = Vec::new();
        let mut answer_caches = Vec::new();
        for &addr in &settings.listen {
            let spawned = match settings.backend {
                io::Backend::Mmsg => io::mmsg::spawn(
                    addr,
                    settings.workers,
                    &catalog,
                    &responders,
                    &metrics,
                    &stop,
                    handoff.as_ref(),
                )
                .map(|(bound, t)| (bound, t, None)),
                io::Backend::Uring => io::uring::spawn(
                    addr,
                    settings.workers,
                    &catalog,
                    &responders,
                    &metrics,
                    &stop,
                    handoff.as_ref(),
                )
                .map(|(bound, t)| (bound, t, None)),
                io::Backend::Xdp(interface) => io::xdp::spawn(
                    addr,
                    interface,
                    settings.workers,
                    &catalog,
                    &responders,
                    &metrics,
                    &stop,
                    handoff.as_ref(),
                    settings.xdp_answer_cache,
                ),
            };
            let (bound, mut t, cache) =
                spawned.map_err(|source| StartError::Bind { addr, source })?;
            threads.append(&mut t);
            answer_caches.extend(cache);
            let listener = tokio::net::TcpListener::bind(bound)
                .await
                .map_err(|source| StartError::Bind {
                    addr: bound,
                    source,
                })?;
            let tcp_options = Options {
                sticky_entries: 0,
                ..settings.options.clone()
            };
            let tcp_seed = AtomicU64::new(seed_base() ^ 0x5555);
            let tcp_front = front.clone();
            tokio::spawn(io::tcp::serve(
                listener,
                Arc::clone(&catalog),
                move || {
                    let r = Responder::new(
                        tcp_seed.fetch_add(1, Ordering::Relaxed),
                        tcp_options.clone(),
                    );
                    match &tcp_front {
                        Some(f) => r.with_recursion(f.clone()),
                        None => r,
                    }
                },
                metrics.clone(),
                resolver.clone(),
                shutdown(),
            ));
            addrs.push(bound);
        }

        let (synced_tx, synced) = watch::channel(None);
        match (store, inputs) {
            (Some(store), Some(inputs)) => {
                let follower_metrics = FollowerMetrics::register(telemetry);
                tokio::spawn(follow(
                    store,
                    inputs,
                    Target {
                        catalog: Arc::clone(&catalog),
                        metrics: catalog_metrics,
                        synced: synced_tx,
                        release_memory,
                        answer_caches,
                    },
                    follower_metrics,
                    shutdown(),
                ));
            }
            _ => {
                let _ = synced_tx.send(Some(0));
            }
        }
        Ok(Self {
            addrs,
            catalog,
            metrics,
            synced,
            stop,
            stop_tasks,
            threads,
        })
    }

    /// Waits until the store's data is in the served catalog (at once without a store);
    /// returns the store revision.
    pub async fn synced(&self) -> Revision {
        let mut rx = self.synced.clone();
        let rev = rx.wait_for(Option::is_some).await.map(|r| r.unwrap_or(0));
        rev.unwrap_or(0)
    }

    /// The store revision of each snapshot swapped in (None before the first): for the
    /// node's registration.
    pub fn applied(&self) -> watch::Receiver<Option<Revision>> {
        self.synced.clone()
    }

    /// Stops answering: the TCP listener and store follower at once, the UDP workers within
    /// their poll interval (this waits for them).
    pub fn stop(self) {
        let _ = self.stop_tasks.send(true);
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// A per-process seed for answer shuffling; not security-relevant.
fn seed_base() -> u64 {
    let nanos = SystemClock
        .wall()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    (nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)
}

/// Where a rebuilt catalog goes, and what is told about it.
struct Target {
    catalog: Arc<Snapshot<Catalog>>,
    metrics: CatalogMetrics,
    synced: watch::Sender<Option<Revision>>,
    release_memory: Option<fn()>,
    /// Invalidated after each swap: their replies came from the catalog before.
    answer_caches: Vec<Arc<io::xdp::cache::AnswerCache>>,
}

async fn follow(
    store: Arc<dyn Store>,
    mut inputs: Inputs,
    target: Target,
    follower_metrics: FollowerMetrics,
    shutdown: impl Future<Output = ()> + Send,
) {
    let Target {
        catalog,
        metrics,
        synced,
        release_memory,
        answer_caches,
    } = target;
    let mut zones = Typed::<Zone>::new(Arc::clone(&store), keys::ZONES, follower_metrics.clone());
    let mut records =
        Typed::<RecordSet>::new(Arc::clone(&store), keys::RECORDS, follower_metrics.clone());
    let mut health = Typed::<Health>::new(store, keys::HEALTH, follower_metrics);
    tokio::pin!(shutdown);
    // The first batch of each is its initial listing.
    tokio::select! {
        () = &mut shutdown => return,
        _ = async { tokio::join!(zones.next(), records.next(), health.next()) } => {}
    }
    let mut changes = Changes {
        full: true,
        ..Changes::default()
    };
    loop {
        let revision = zones
            .revision()
            .max(records.revision())
            .max(health.revision());
        let patched = if changes.full || changes.records.len() > patch_limit(&inputs) {
            None
        } else {
            patch(
                &catalog.load_full(),
                &mut inputs,
                &records,
                &health,
                &changes,
                &metrics,
            )
        };
        match patched {
            Some(next) => catalog.store(next),
            None => {
                inputs.zones.clone_from(zones.objects());
                inputs.records.clone_from(records.objects());
                inputs.health.clone_from(health.objects());
                inputs.index();
                let (built, returned) = {
                    let m = metrics.clone();
                    tokio::task::spawn_blocking(move || {
                        let c = build(&inputs, &m);
                        (c, inputs)
                    })
                    .await
                    .expect("invariant: catalog building does not panic")
                };
                inputs = returned;
                catalog.store(built);
                if let Some(release) = release_memory {
                    release();
                }
            }
        }
        for cache in &answer_caches {
            // A write to a one-entry array map; should it fail, the cache would go on
            // replaying the old catalog's replies, so it is tried again before going on.
            if let Err(e) = cache.invalidate().or_else(|_| cache.invalidate()) {
                tracing::error!(error = %e, "the XDP answer cache could not be invalidated");
            }
        }
        metrics.revision.set(revision);
        let _ = synced.send(Some(revision));
        tracing::debug!(
            revision,
            patched = changes.records.len(),
            "catalog swapped in"
        );

        // Wait for a change, then gather whatever else arrives within COALESCE.
        changes = Changes::default();
        tokio::select! {
            () = &mut shutdown => return,
            _ = zones.next() => changes.full = true,
            (keys, _) = records.next() => changes.records.extend(keys),
            _ = health.next() => changes.health = true,
        }
        let deadline = tokio::time::sleep(COALESCE);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = &mut deadline => break,
                _ = zones.next() => changes.full = true,
                (keys, _) = records.next() => changes.records.extend(keys),
                _ = health.next() => changes.health = true,
            }
        }
    }
}

/// What changed in the store since the catalog was last swapped in.
#[derive(Debug, Default)]
struct Changes {
    /// Zones changed (or nothing is built yet): rebuild.
    full: bool,
    /// Record set keys changed.
    records: BTreeSet<String>,
    /// Health changed: a new down-set.
    health: bool,
}

/// Beyond this many changed record sets a rebuild is cheaper than patching them one by one.
fn patch_limit(inputs: &Inputs) -> usize {
    (inputs.records.len() / 4).max(1024)
}

/// `served` with `changes` applied, sharing every untouched node with it; `None` when a
/// change needs a rebuild (the inputs are then rebuilt from the followers in full).
fn patch(
    served: &Catalog,
    inputs: &mut Inputs,
    records: &Typed<RecordSet>,
    health: &Typed<Health>,
    changes: &Changes,
    metrics: &CatalogMetrics,
) -> Option<Catalog> {
    let started = SystemClock.now();
    let mut edits = Vec::new();
    let mut served_sets = metrics.record_sets.get();
    let mut outside = metrics.outside.get();
    for key in &changes.records {
        let count = |inputs: &Inputs, key: &str| match inputs.records.get(key) {
            Some(set) if in_zone(served, set) => (1, 0),
            Some(_) => (0, 1),
            None => (0, 0),
        };
        let (was_in, was_out) = count(inputs, key);
        for slot in inputs.set_record(key, records.objects().get(key).cloned()) {
            edits.push(inputs.edit(served, &slot).ok()?);
        }
        let (is_in, is_out) = count(inputs, key);
        served_sets += is_in - was_in;
        outside += is_out - was_out;
    }
    let mut next = served.patched(edits.into_iter().flatten().collect())?;
    if changes.health {
        inputs.health.clone_from(health.objects());
        next = next.with_down(&inputs.down());
    }
    metrics.record_sets.set(served_sets);
    metrics.outside.set(outside);
    metrics.patches.inc();
    metrics.build_micros.set(
        SystemClock
            .now()
            .saturating_duration_since(started)
            .as_micros() as i64,
    );
    Some(next)
}

fn in_zone(catalog: &Catalog, set: &RecordSet) -> bool {
    let mut owner = Vec::with_capacity(set.name.wire_len());
    crate::wire::name::encode(&set.name, &mut owner);
    catalog.find_index(&owner).is_some()
}
