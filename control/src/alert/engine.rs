//! The alert pipeline, once per evaluation: rules → folding → silences → grouping. PURE.
//!
//! Call order: feed samples into [`Engine::window_mut`], then [`Engine::handle_tick`],
//! then [`Engine::poll_notification`] until `None`. [`Engine::alerts`] is the current
//! view (for the API), [`Engine::scores`] the health score per entity.

use super::config::Config;
use super::correlate::{self, Entity, Topology};
use super::group::{Grouper, Notification};
use super::rules::Evaluator;
use super::silence::Silence;
use super::window::Window;
use super::{Alert, Fingerprint};
use std::collections::BTreeMap;
use std::time::Instant;

/// Why an alert is, or is not, notified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Notified by itself (a root cause, or unrelated to any failing ancestor).
    Notified,
    /// Folded under the root-cause alert with this fingerprint.
    Folded(Fingerprint),
    /// Matched by the silence with this id.
    Silenced(String),
}

/// The engine's state.
#[derive(Debug, Clone)]
pub struct Engine {
    window: Window,
    evaluator: Evaluator,
    topology: Topology,
    silences: Vec<Silence>,
    grouper: Grouper,
    current: Vec<(Alert, Disposition)>,
}

impl Engine {
    /// An engine for `config` (which SHOULD have passed [`Config::validate`]).
    pub fn new(config: &Config) -> Self {
        Self {
            window: Window::new(config.retention),
            evaluator: Evaluator::new(config.rules.clone()),
            topology: Topology::new(),
            silences: Vec::new(),
            grouper: Grouper::new(config.route.clone()),
            current: Vec::new(),
        }
    }

    /// The samples the rules read.
    pub fn window_mut(&mut self) -> &mut Window {
        &mut self.window
    }

    /// Replaces the topology.
    pub fn set_topology(&mut self, topology: Topology) {
        self.topology = topology;
    }

    /// Replaces the silences.
    pub fn set_silences(&mut self, silences: Vec<Silence>) {
        self.silences = silences;
    }

    /// Evaluates at `now` (`wall` is Unix seconds, for silences) and hands the result to
    /// the grouper.
    pub fn handle_tick(&mut self, now: Instant, wall: u64) {
        self.window.prune(now);
        let firing = self.evaluator.evaluate(now, &self.window);
        let folded = correlate::fold(&self.topology, firing);
        let mut notify = Vec::new();
        let mut quiet = Vec::new();
        self.current.clear();
        for a in folded.notify {
            match self.silences.iter().find(|s| s.silences(&a.labels, wall)) {
                Some(s) => {
                    self.current
                        .push((a.clone(), Disposition::Silenced(s.id.clone())));
                    quiet.push(a);
                }
                None => {
                    self.current.push((a.clone(), Disposition::Notified));
                    notify.push(a);
                }
            }
        }
        for (a, root) in folded.folded {
            self.current.push((a.clone(), Disposition::Folded(root)));
            quiet.push(a);
        }
        self.grouper.handle_alerts(now, &notify, &quiet);
    }

    /// The next notification due at `now`.
    pub fn poll_notification(&mut self, now: Instant) -> Option<Notification> {
        self.grouper.poll_notification(now)
    }

    /// When a notification may next be due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.grouper.poll_timeout()
    }

    /// The alerts firing after the last tick, each with its disposition.
    pub fn alerts(&self) -> &[(Alert, Disposition)] {
        &self.current
    }

    /// The health score of every entity with a firing alert on or below it.
    pub fn scores(&self) -> BTreeMap<Entity, u8> {
        let firing: Vec<Alert> = self.current.iter().map(|(a, _)| a.clone()).collect();
        correlate::scores(&self.topology, &firing)
    }

    /// The rules' pending alerts (condition true, `for` not over).
    pub fn pending(&self) -> usize {
        self.evaluator.pending()
    }
}
