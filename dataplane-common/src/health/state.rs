//! Up/down with hysteresis. PURE.
//!
//! A target flips only after [`Thresholds::fall`] failures in a row (when up) or
//! [`Thresholds::rise`] successes in a row (when down); a result that agrees with the current
//! state resets the streak. So one lost probe does not move traffic, and a flapping server
//! stays down until it has been good for a while (pingora's `consecutive_counter`).

use crate::model::HealthState;

/// How many results in a row flip a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Successes in a row that bring a down target up; MUST be at least 1.
    pub rise: u32,
    /// Failures in a row that take an up target down; MUST be at least 1.
    pub fall: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self { rise: 2, fall: 3 }
    }
}

/// One target's state and its streak of results that disagree with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    state: HealthState,
    streak: u32,
}

impl Target {
    /// A target starting in `state` (what the store says, or up if it says nothing).
    pub fn new(state: HealthState) -> Self {
        Self { state, streak: 0 }
    }

    /// Its state.
    pub fn state(&self) -> HealthState {
        self.state
    }

    /// Records one probe result; returns the new state when this result flipped it.
    pub fn observe(&mut self, ok: bool, t: Thresholds) -> Option<HealthState> {
        debug_assert!(t.rise >= 1 && t.fall >= 1, "thresholds MUST be at least 1");
        let (agrees, needed, other) = match self.state {
            HealthState::Up => (ok, t.fall, HealthState::Down),
            HealthState::Down => (!ok, t.rise, HealthState::Up),
        };
        if agrees {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        if self.streak < needed.max(1) {
            return None;
        }
        self.state = other;
        self.streak = 0;
        Some(other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HealthState::{Down, Up};

    fn feed(t: &mut Target, results: &str, th: Thresholds) -> Vec<Option<HealthState>> {
        results.chars().map(|c| t.observe(c == '+', th)).collect()
    }

    #[test]
    fn falls_after_fall_failures_in_a_row_and_rises_after_rise_successes() {
        let th = Thresholds { rise: 2, fall: 3 };
        let mut t = Target::new(Up);
        assert_eq!(
            feed(&mut t, "--+---", th),
            [None, None, None, None, None, Some(Down)]
        );
        assert_eq!(feed(&mut t, "+-++", th), [None, None, None, Some(Up)]);
        assert_eq!(t.state(), Up);
    }

    #[test]
    fn thresholds_of_one_flip_at_once() {
        let th = Thresholds { rise: 1, fall: 1 };
        let mut t = Target::new(Down);
        assert_eq!(feed(&mut t, "++-", th), [Some(Up), None, Some(Down)]);
    }

    proptest::proptest! {
        /// The state changes only at the end of a streak of exactly the threshold's length.
        #[test]
        fn flips_only_after_a_full_streak(results in proptest::collection::vec(proptest::bool::ANY, 0..200), rise in 1u32..5, fall in 1u32..5) {
            let th = Thresholds { rise, fall };
            let mut t = Target::new(Up);
            let mut run = 0u32;
            let mut last = None;
            for ok in results {
                run = if last == Some(ok) { run + 1 } else { 1 };
                last = Some(ok);
                let before = t.state();
                let flipped = t.observe(ok, th);
                match (before, flipped) {
                    (Up, Some(Down)) => proptest::prop_assert!(!ok && run >= fall),
                    (Down, Some(Up)) => proptest::prop_assert!(ok && run >= rise),
                    (_, None) => {}
                    other => proptest::prop_assert!(false, "{other:?}"),
                }
                if flipped.is_some() { run = 0; last = None; }
            }
        }
    }
}
