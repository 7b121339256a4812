//! Weighted least connections: the backend with the fewest active sessions per unit of
//! weight.
//!
//! The counts are the worker's own (its session table), not the balancer's total: workers
//! share nothing on the packet path. With flows spread evenly over workers by RSS, each
//! worker's counts are a fair sample. Ties go to the first backend at or after a rotating
//! start, so equal backends take turns.

use super::{Backend, StatefulScheduler};
use std::net::IpAddr;

/// Weighted least connections over one VIP's backends; per-worker state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeastConnections {
    weights: Vec<u32>,
    start: usize,
}

impl LeastConnections {
    /// A scheduler over `backends`.
    pub fn new(backends: &[Backend]) -> Self {
        Self {
            weights: backends.iter().map(|b| b.weight).collect(),
            start: 0,
        }
    }

    /// The backend minimising `active(i) / weight(i)`, or `None` if none has a weight.
    pub fn next(&mut self, active: &dyn Fn(usize) -> u64) -> Option<usize> {
        let n = self.weights.len();
        let mut best: Option<(usize, u64, u32)> = None;
        for k in 0..n {
            let i = (self.start + k) % n;
            let w = self.weights[i];
            if w == 0 {
                continue;
            }
            let a = active(i);
            // a / w < best_a / best_w, without division.
            if best.is_none_or(|(_, ba, bw)| {
                u128::from(a) * u128::from(bw) < u128::from(ba) * u128::from(w)
            }) {
                best = Some((i, a, w));
            }
        }
        let (i, _, _) = best?;
        self.start = (i + 1) % n;
        Some(i)
    }
}

impl StatefulScheduler for LeastConnections {
    fn pick_mut(
        &mut self,
        _flow_hash: u64,
        _client: IpAddr,
        active: &dyn Fn(usize) -> u64,
    ) -> Option<usize> {
        self.next(active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fewest_per_weight_wins_and_ties_rotate() {
        let b: Vec<Backend> = [1u32, 2, 0]
            .iter()
            .enumerate()
            .map(|(i, &weight)| Backend {
                key: i as u64,
                weight,
            })
            .collect();
        let mut lc = LeastConnections::new(&b);
        let mut active = [0u64; 3];
        let mut picks = [0; 3];
        for _ in 0..300 {
            let i = lc.next(&|i| active[i]).unwrap();
            active[i] += 1;
            picks[i] += 1;
        }
        assert_eq!(picks, [100, 200, 0]);
        assert_eq!(lc.next(&|i| [5, 1, 0][i]), Some(1));
    }
}
