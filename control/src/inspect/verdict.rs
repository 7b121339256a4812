//! Probe results into health writes, per address, with rise/fall hysteresis. PURE.
//!
//! An address passes a round when every port probed on it passes. A target starts from the
//! stored state (up when nothing is stored), so a check that moves to another node neither
//! flaps the address nor rewrites what is stored. A health object is produced only when the
//! decided state differs from the store's and was not written already.

use dataplane_common::health::{Target, Thresholds};
use dataplane_common::model::{Health, HealthState};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The hysteresis state of the addresses this node checks.
#[derive(Debug, Clone)]
pub struct Verdicts {
    node: String,
    thresholds: Thresholds,
    targets: BTreeMap<IpAddr, Target>,
    written: BTreeMap<IpAddr, HealthState>,
}

impl Verdicts {
    /// Verdicts signed `node`.
    pub fn new(node: impl Into<String>, thresholds: Thresholds) -> Self {
        Self {
            node: node.into(),
            thresholds,
            targets: BTreeMap::new(),
            written: BTreeMap::new(),
        }
    }

    /// Takes one round of results (address, passed) against the `stored` states; returns
    /// what to write, stamped `since` (Unix seconds). Addresses not in `results` are
    /// forgotten (no longer this node's).
    pub fn handle_results(
        &mut self,
        stored: &BTreeMap<IpAddr, HealthState>,
        results: &BTreeMap<IpAddr, bool>,
        since: u64,
    ) -> Vec<Health> {
        let stored_of = |a: &IpAddr| stored.get(a).copied().unwrap_or(HealthState::Up);
        self.targets.retain(|a, _| results.contains_key(a));
        self.written
            .retain(|a, s| results.contains_key(a) && stored_of(a) != *s);
        let mut out = Vec::new();
        for (&address, &ok) in results {
            let t = self
                .targets
                .entry(address)
                .or_insert_with(|| Target::new(stored_of(&address)));
            if let Some(s) = t.observe(ok, self.thresholds) {
                tracing::info!(%address, state = ?s, "health changed");
            }
            let decided = t.state();
            if decided != stored_of(&address) && self.written.get(&address) != Some(&decided) {
                out.push(Health {
                    address,
                    state: decided,
                    since,
                    by: self.node.clone(),
                });
            }
        }
        out
    }

    /// Records that `h` was written (not to write it again before the store shows it).
    pub fn handle_written(&mut self, h: &Health) {
        self.written.insert(h.address, h.state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HealthState::{Down, Up};

    #[test]
    fn falls_after_fall_failures_writes_once_and_rises_again() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let mut v = Verdicts::new("c1", Thresholds { rise: 2, fall: 3 });
        let mut stored = BTreeMap::new();
        let fail = BTreeMap::from([(a, false)]);
        let pass = BTreeMap::from([(a, true)]);
        assert!(v.handle_results(&stored, &fail, 1).is_empty());
        assert!(v.handle_results(&stored, &fail, 2).is_empty());
        let out = v.handle_results(&stored, &fail, 3);
        assert_eq!(
            (out[0].state, out[0].since, out[0].by.as_str()),
            (Down, 3, "c1")
        );
        v.handle_written(&out[0]);
        assert!(
            v.handle_results(&stored, &fail, 4).is_empty(),
            "written already"
        );
        stored.insert(a, Down);
        assert!(v.handle_results(&stored, &pass, 5).is_empty());
        let out = v.handle_results(&stored, &pass, 6);
        assert_eq!(out[0].state, Up);
    }
}
