//! The checker loop: every interval, probe every real server address, run the results
//! through [`Target`] hysteresis, and write [`Health`] to the store when a decided state
//! differs from what the store holds (only then: a steady fleet causes no writes).
//!
//! A target's starting state is the stored one (up when nothing is stored), so a restart
//! neither flaps a down server up nor rewrites what is already there. Several checkers on
//! the same store SHOULD agree (same probes, same thresholds): the last write wins.

use super::probe::Probe;
use super::state::{Target, Thresholds};
use dataplane_common::clock::{Clock, SystemClock};
use dataplane_common::model::{self, Health, HealthState, Protocol, Vip, keys};
use dataplane_common::store::Store;
use dataplane_common::telemetry::Telemetry;
use dataplane_common::telemetry::sharded::{Counters, CountersWriter};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How the checker probes and decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Time between rounds.
    pub interval: Duration,
    /// A probe not answered within this fails.
    pub timeout: Duration,
    /// Results in a row that flip a target.
    pub thresholds: Thresholds,
    /// What a probe does.
    pub probe: Probe,
    /// This checker's name, written as [`Health::by`].
    pub node: String,
}

/// What to check, and what the store says now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    /// Per address, the TCP ports real servers listen on there.
    pub ports: BTreeMap<IpAddr, BTreeSet<u16>>,
    /// Per address, the state stored now (absent: up).
    pub stored: BTreeMap<IpAddr, HealthState>,
}

impl Targets {
    /// The TCP real servers of `vips` (UDP-only addresses are not probed), with `health` as
    /// stored.
    pub fn new<'a>(
        vips: impl IntoIterator<Item = &'a Vip>,
        health: impl IntoIterator<Item = &'a Health>,
    ) -> Self {
        let mut ports: BTreeMap<IpAddr, BTreeSet<u16>> = BTreeMap::new();
        for v in vips.into_iter().filter(|v| v.protocol == Protocol::Tcp) {
            for rs in &v.real_servers {
                ports.entry(rs.address).or_default().insert(rs.port);
            }
        }
        let stored = health.into_iter().map(|h| (h.address, h.state)).collect();
        Self { ports, stored }
    }

    fn stored(&self, address: IpAddr) -> HealthState {
        self.stored
            .get(&address)
            .copied()
            .unwrap_or(HealthState::Up)
    }
}

const RESULTS: &[&str] = &["ok", "failed"];
const STATES: &[&str] = &["up", "down"];

fn state_slot(s: HealthState) -> usize {
    match s {
        HealthState::Up => 0,
        HealthState::Down => 1,
    }
}

/// The checker: per-target hysteresis plus what it wrote.
#[derive(Debug)]
pub struct Checker {
    settings: Settings,
    targets: BTreeMap<IpAddr, Target>,
    /// The last state written per address, until the store shows it.
    written: BTreeMap<IpAddr, HealthState>,
    probes: CountersWriter,
    changes: CountersWriter,
}

impl Checker {
    /// A checker; its counters (`lb_health_probes_total{result}`,
    /// `lb_health_changes_total{state}`) are registered in `telemetry`.
    pub fn new(settings: Settings, telemetry: &Telemetry) -> Self {
        let probes = Counters::new(
            "lb_health_probes",
            "Health probes by result.",
            "result",
            RESULTS,
        );
        let changes = Counters::new(
            "lb_health_changes",
            "Real server addresses that changed state, by new state.",
            "state",
            STATES,
        );
        telemetry.register_collector(Arc::clone(&probes));
        telemetry.register_collector(Arc::clone(&changes));
        Self {
            settings,
            targets: BTreeMap::new(),
            written: BTreeMap::new(),
            probes: probes.writer(),
            changes: changes.writer(),
        }
    }

    /// Applies one round of results (address, passed) to the targets; returns the health
    /// objects to write, stamped `since`.
    pub fn apply(
        &mut self,
        targets: &Targets,
        results: &[(IpAddr, bool)],
        since: u64,
    ) -> Vec<Health> {
        self.targets.retain(|a, _| targets.ports.contains_key(a));
        self.written
            .retain(|a, s| targets.ports.contains_key(a) && targets.stored(*a) != *s);
        let mut out = Vec::new();
        for &(address, ok) in results {
            self.probes.inc(usize::from(!ok));
            let t = self
                .targets
                .entry(address)
                .or_insert_with(|| Target::new(targets.stored(address)));
            if let Some(s) = t.observe(ok, self.settings.thresholds) {
                self.changes.inc(state_slot(s));
                tracing::info!(%address, state = ?s, "real server health changed");
            }
            let decided = t.state();
            if decided != targets.stored(address) && self.written.get(&address) != Some(&decided) {
                out.push(Health {
                    address,
                    state: decided,
                    since,
                    by: self.settings.node.clone(),
                });
            }
        }
        out
    }

    /// Probes every target once, concurrently; an address passes when all its ports do.
    pub async fn probe(probe: &Probe, timeout: Duration, targets: &Targets) -> Vec<(IpAddr, bool)> {
        let rounds = targets.ports.iter().map(|(&address, ports)| async move {
            let each = ports
                .iter()
                .map(|&p| probe.run(SocketAddr::new(address, p), timeout));
            let results = futures::future::join_all(each).await;
            if let Some(e) = results.iter().find_map(|r| r.as_ref().err()) {
                tracing::debug!(%address, error = %e, "health probe failed");
            }
            (address, results.iter().all(Result::is_ok))
        });
        futures::future::join_all(rounds).await
    }

    /// Runs until `shutdown`: a round every interval over the latest `targets`.
    pub async fn run(
        mut self,
        store: Arc<dyn Store>,
        mut targets: watch::Receiver<Arc<Targets>>,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let (probe, timeout) = (self.settings.probe.clone(), self.settings.timeout);
        let mut tick = tokio::time::interval(self.settings.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = tick.tick() => {}
            }
            let current = Arc::clone(&targets.borrow_and_update());
            let results = tokio::select! {
                () = &mut shutdown => return,
                r = Self::probe(&probe, timeout, &current) => r,
            };
            let since = SystemClock
                .wall()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            // The targets may have moved on while probing: decide against the latest.
            let latest = Arc::clone(&targets.borrow());
            for h in self.apply(&latest, &results, since) {
                match store
                    .put(&keys::health(h.address), model::encode(&h), None)
                    .await
                {
                    Ok(_) => {
                        self.written.insert(h.address, h.state);
                    }
                    Err(e) => {
                        tracing::warn!(address = %h.address, error = %e, "cannot write health; retrying next round");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HealthState::{Down, Up};

    fn settings() -> Settings {
        Settings {
            interval: Duration::from_millis(10),
            timeout: Duration::from_millis(100),
            thresholds: Thresholds { rise: 2, fall: 2 },
            probe: Probe::Tcp,
            node: "lb-1".into(),
        }
    }

    fn targets(stored: &[(IpAddr, HealthState)]) -> Targets {
        let vip: Vip = serde_json::from_str(
            r#"{"address":"203.0.113.10","port":80,"protocol":"TCP",
                "real_servers":[{"address":"192.0.2.11","port":80,"weight":1},
                                {"address":"192.0.2.12","port":80,"weight":1}]}"#,
        )
        .unwrap();
        let mut t = Targets::new([&vip], []);
        t.stored = stored.iter().copied().collect();
        t
    }

    #[test]
    fn writes_only_when_the_decided_state_differs_from_the_store() {
        let (a, b): (IpAddr, IpAddr) =
            ("192.0.2.11".parse().unwrap(), "192.0.2.12".parse().unwrap());
        let mut c = Checker::new(settings(), &Telemetry::new());
        let t = targets(&[]);
        assert_eq!(t.ports[&a], BTreeSet::from([80]));
        assert!(
            c.apply(&t, &[(a, true), (b, false)], 1).is_empty(),
            "one failure is not a fall"
        );
        let out = c.apply(&t, &[(a, true), (b, false)], 2);
        assert_eq!(out.len(), 1);
        assert_eq!(
            (
                out[0].address,
                out[0].state,
                out[0].since,
                out[0].by.as_str()
            ),
            (b, Down, 2, "lb-1")
        );
        c.written.insert(b, Down);
        assert!(
            c.apply(&t, &[(a, true), (b, false)], 3).is_empty(),
            "written, not yet in the store"
        );
        let t = targets(&[(b, Down)]);
        assert!(
            c.apply(&t, &[(a, true), (b, false)], 4).is_empty(),
            "the store agrees"
        );
        assert!(c.apply(&t, &[(a, true), (b, true)], 5).is_empty());
        let out = c.apply(&t, &[(a, true), (b, true)], 6);
        assert_eq!(
            out.iter().map(|h| (h.address, h.state)).collect::<Vec<_>>(),
            [(b, Up)]
        );
    }

    #[test]
    fn a_target_starts_from_the_stored_state() {
        let b: IpAddr = "192.0.2.12".parse().unwrap();
        let mut c = Checker::new(settings(), &Telemetry::new());
        let t = targets(&[(b, Down)]);
        // Down in the store: one success is not enough to write it up again.
        assert!(c.apply(&t, &[(b, true)], 1).is_empty());
        assert_eq!(c.apply(&t, &[(b, true)], 2).len(), 1);
    }
}
