//! One worker thread: receive a batch, run each frame through the datapath, send what it
//! rewrote, flush once; sweep a slice of the session table; publish counters now and then.
//! Frames the datapath passes are dropped: the balancer's interface is dedicated to it; with
//! AF_PACKET the host stack gets its own copy of every frame anyway
//! ([`crate::io::af_packet`]), and with AF_XDP only frames to our addresses reach a worker,
//! the rest going to the host ([`crate::io::xdp`]). With the XDP fast path, the worker also
//! carries out its datapath's map intents after each batch ([`crate::fastpath`]). With
//! several AF_XDP queues, a worker hands each frame it does not own to its owner and runs the
//! frames handed to it with its own ([`super::handoff`]).

use super::handoff::Handoffs;
use super::metrics::Published;
use crate::datapath::{Datapath, Verdict};
use crate::fastpath::{Applier, Flows};
use crate::io::{Rx, Tx, steering};
use crate::vips::Vips;
use dataplane_common::clock::{Clock, SystemClock};
use dataplane_common::snapshot::Snapshot;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Frames per batch.
pub const BATCH: usize = 64;
/// How long a worker waits for frames before looking at `stop` (and sweeping) again.
const POLL: Duration = Duration::from_millis(50);
/// The same when other workers hand it frames: a frame handed to an idle worker waits at
/// most this long (a busy worker finds it after its current batch).
const POLL_HANDOFF: Duration = Duration::from_millis(1);
/// Session slots swept per batch.
const SWEEP: u32 = 1024;
/// How often counters are published, in ticks (ms).
const PUBLISH_TICKS: u64 = 100;

/// What a worker needs besides its link.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) vips: Arc<Snapshot<Vips>>,
    pub(crate) stop: Arc<AtomicBool>,
    /// Tick 0.
    pub(crate) epoch: Instant,
}

/// How a worker finds and reaches the owner of a frame (AF_XDP with several queues).
#[derive(Debug)]
pub(crate) struct Steer {
    pub(crate) handoffs: Arc<Handoffs>,
    pub(crate) me: usize,
    pub(crate) workers: u16,
    pub(crate) local: Vec<IpAddr>,
}

/// Milliseconds since the server started: the datapath's ticks.
fn ticks(shared: &Shared) -> u64 {
    SystemClock
        .now()
        .saturating_duration_since(shared.epoch)
        .as_millis() as u64
}

/// Runs one worker until `stop` is set.
pub(crate) fn run<R: Rx, T: Tx>(
    mut rx: R,
    mut tx: T,
    mut dp: Datapath,
    shared: &Shared,
    slot: &Mutex<Published>,
    fast: Option<&Flows>,
    steer: Option<&Steer>,
) {
    let mut applier = Applier::new(BATCH + SWEEP as usize);
    let mut tx_full = 0u64;
    let mut tx_errors = 0u64;
    let mut published = 0u64;
    let poll = if steer.is_some() { POLL_HANDOFF } else { POLL };
    while !shared.stop.load(Ordering::Relaxed) {
        let mut now = ticks(shared);
        let mut first = true;
        // Once per batch, after the wait: the snapshot and the time as of now.
        let refresh = |dp: &mut Datapath, now: &mut u64| {
            *now = ticks(shared);
            let current = shared.vips.load();
            if !Arc::ptr_eq(&current, dp.vips()) {
                dp.set_vips(Arc::clone(&current));
            }
        };
        let received = rx.rx(poll, BATCH, |frame| {
            if first {
                first = false;
                refresh(&mut dp, &mut now);
            }
            if let Some(s) = steer {
                let owner = usize::from(steering::owner(frame, s.workers, &s.local));
                if owner != s.me {
                    s.handoffs.send(owner, frame);
                    return;
                }
            }
            if dp.handle_frame(now, frame) == Verdict::Tx && !tx.push(frame) {
                tx_full += 1;
            }
        });
        if let Err(e) = received {
            tracing::error!(error = %e, "receiving failed");
            std::thread::sleep(poll);
        }
        if let Some(s) = steer
            && s.handoffs.pending(s.me)
        {
            if first {
                refresh(&mut dp, &mut now);
            }
            s.handoffs.drain(s.me, |frame| {
                if dp.handle_frame(now, frame) == Verdict::Tx && !tx.push(frame) {
                    tx_full += 1;
                }
            });
        }
        if let Err(e) = tx.flush() {
            tx_errors += 1;
            tracing::debug!(error = %e, "transmit flush failed");
        }
        dp.handle_timeout(now, SWEEP);
        if let Some(flows) = fast
            && dp.has_fast_path_intents()
        {
            applier.apply(flows, &mut dp, now);
        }
        if now.wrapping_sub(published) >= PUBLISH_TICKS {
            published = now;
            // Never wait for a scrape: if the scraper holds the slot, publish next time.
            if let Ok(mut p) = slot.try_lock() {
                if !Arc::ptr_eq(&p.vips, dp.vips()) {
                    p.vips = Arc::clone(dp.vips());
                }
                p.counters.clone_from(dp.counters());
                p.link = rx.stats();
                p.tx_full = tx_full;
                p.tx_errors = tx_errors;
                p.sessions = u64::from(dp.sessions().len());
                p.fast = dp.fast_path_stats();
            }
        }
    }
}
