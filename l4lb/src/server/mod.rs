//! The running balancer: store-fed snapshots, one worker thread per link, counters for
//! `/metrics`, and optionally the health checker.
//!
//! ```text
//! store ─ follow ─▶ Snapshot<Vips> ─▶ worker 0: rx batch → Datapath::handle_frame → tx batch
//!   ▲        │                    └─▶ worker 1: ...
//!   │        └──▶ health Targets ─▶ checker ─┐
//!   └───────────── health/<addr> ────────────┘
//! ```
//!
//! [`Server::start`] takes the links already opened (any [`Rx`]/[`Tx`] pair: AF_PACKET or
//! AF_XDP in production, [`crate::io::mem`] in tests), so this module never opens a socket
//! itself.

mod follow;
pub mod handoff;
mod metrics;
pub mod neighbours;
mod worker;

pub use follow::COALESCE;
pub use worker::BATCH;

use self::follow::{BuildMetrics, Fixed, Outputs};
use self::handoff::Handoffs;
use self::metrics::{Board, Metrics};
use self::worker::{Shared, Steer};
use crate::datapath::{Config, Datapath};
use crate::fastpath::Flows;
use crate::health::{self, Checker};
use crate::io::{Rx, Tx};
use crate::vips::{Link, Vips};
use dataplane_common::clock::{Clock, SystemClock};
use dataplane_common::snapshot::Snapshot;
use dataplane_common::store::{FollowerMetrics, Revision, Store};
use dataplane_common::telemetry::Telemetry;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::watch;

/// How the balancer runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Our MAC and the gateway's.
    pub link: Link,
    /// Local (SNAT) addresses for full-NAT.
    pub local: Vec<IpAddr>,
    /// Each worker's datapath (`worker` and `workers` are filled in per worker).
    pub datapath: Config,
    /// Read this interface's kernel neighbour table for real servers' MACs, this often.
    pub neighbours: Option<(String, Duration)>,
    /// Health checking, if on.
    pub health: Option<health::Settings>,
    /// The XDP fast path's map, when the links are `AF_XDP` behind a program that has it:
    /// the workers install established sessions there ([`crate::fastpath`]).
    pub fast_path: Option<Arc<Flows>>,
    /// The links are queues of one interface whose frames arrive wherever the NIC hashed
    /// them (AF_XDP): workers hand each frame they do not own to its owner ([`handoff`]).
    /// Off when the kernel already steers frames to their owner (AF_PACKET fanout).
    pub handoff: bool,
}

/// Frames each worker's inbox holds when workers hand frames to each other.
const HANDOFF_DEPTH: usize = 1024;
/// The largest frame handed on: an `AF_XDP` frame.
const HANDOFF_FRAME: usize = 4096;

/// A running balancer. Dropping it does not stop it: call [`Server::stop`].
#[derive(Debug)]
pub struct Server {
    vips: Arc<Snapshot<Vips>>,
    synced: watch::Receiver<Option<Revision>>,
    stop: Arc<AtomicBool>,
    stop_tasks: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    /// Starts one worker thread per link, the store follower and (if configured) the
    /// health checker. MUST be called within a tokio runtime.
    ///
    /// # Errors
    /// When a worker thread cannot be spawned.
    pub fn start<R, T>(
        settings: Settings,
        links: Vec<(R, T)>,
        store: Arc<dyn Store>,
        telemetry: &Telemetry,
    ) -> std::io::Result<Self>
    where
        R: Rx + Send + 'static,
        T: Tx + Send + 'static,
    {
        let empty = Arc::new(Vips::empty(settings.link));
        let vips = Arc::new(Snapshot::new(Vips::empty(settings.link)));
        let stop = Arc::new(AtomicBool::new(false));
        let (stop_tasks, stopped) = watch::channel(false);
        let shutdown = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let handoffs = (settings.handoff && links.len() > 1)
            .then(|| Arc::new(Handoffs::new(links.len(), HANDOFF_DEPTH, HANDOFF_FRAME)));
        let board = Arc::new(Board::new(handoffs.clone()));
        telemetry.register_collector(Metrics(Arc::clone(&board)));
        let shared = Arc::new(Shared {
            vips: Arc::clone(&vips),
            stop: Arc::clone(&stop),
            epoch: SystemClock.now(),
        });
        let workers = u16::try_from(links.len()).unwrap_or(u16::MAX);
        let mut threads = Vec::with_capacity(links.len());
        for (i, (rx, tx)) in links.into_iter().enumerate() {
            let fast = settings.fast_path.clone();
            let config = Config {
                worker: i as u16,
                workers,
                fast_path: fast
                    .as_ref()
                    .map(|_| settings.datapath.fast_path.unwrap_or_default()),
                ..settings.datapath
            };
            let dp = Datapath::new(config, Arc::clone(&empty));
            let slot = board.slot(Arc::clone(&empty));
            let shared = Arc::clone(&shared);
            let steer = handoffs.clone().map(|handoffs| Steer {
                handoffs,
                me: i,
                workers,
                local: settings.local.clone(),
            });
            let t = std::thread::Builder::new()
                .name(format!("lb-worker-{i}"))
                .spawn(move || {
                    worker::run(rx, tx, dp, &shared, &slot, fast.as_deref(), steer.as_ref());
                })?;
            threads.push(t);
        }

        let (targets_tx, targets_rx) = watch::channel(Arc::new(health::Targets::default()));
        let (synced_tx, synced) = watch::channel(None);
        let fixed = Fixed {
            link: settings.link,
            local: settings.local.clone(),
            flow_seed: settings.datapath.flow_seed,
            neighbours: settings.neighbours.clone(),
        };
        let outputs = Outputs {
            vips: Arc::clone(&vips),
            targets: targets_tx,
            synced: synced_tx,
            metrics: BuildMetrics::register(telemetry),
        };
        tokio::spawn(follow::follow(
            Arc::clone(&store),
            fixed,
            outputs,
            FollowerMetrics::register(telemetry),
            shutdown(),
        ));
        if let Some(h) = settings.health {
            let checker = Checker::new(h, telemetry);
            tokio::spawn(checker.run(store, targets_rx, shutdown()));
        }
        Ok(Self {
            vips,
            synced,
            stop,
            stop_tasks,
            threads,
        })
    }

    /// Waits until the store's data is in the served snapshot; returns the store revision.
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

    /// The snapshot being served.
    pub fn vips(&self) -> Arc<Vips> {
        self.vips.load_full()
    }

    /// Stops the follower and checker at once and the workers within their poll interval
    /// (this waits for them).
    pub fn stop(self) {
        let _ = self.stop_tasks.send(true);
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests;
