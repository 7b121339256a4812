//! Smooth weighted round robin, as nginx does it.
//!
//! Each pick adds every backend's weight to its current value, takes the largest, and
//! subtracts the total from the winner. Over any window of `Σ weights` picks each backend is
//! chosen exactly `weight` times, interleaved rather than in bursts (weights 5,1,1 give
//! a a b a c a a, not a a a a a b c). O(backends) per pick; new flows only.

use super::{Backend, StatefulScheduler};
use std::net::IpAddr;

/// Smooth weighted round robin over one VIP's backends; per-worker state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedRoundRobin {
    weights: Vec<i64>,
    current: Vec<i64>,
    total: i64,
}

impl WeightedRoundRobin {
    /// A scheduler over `backends`.
    pub fn new(backends: &[Backend]) -> Self {
        let weights: Vec<i64> = backends.iter().map(|b| i64::from(b.weight)).collect();
        Self {
            total: weights.iter().sum(),
            current: vec![0; weights.len()],
            weights,
        }
    }

    /// The next backend, or `None` if none has a weight.
    pub fn next_pick(&mut self) -> Option<usize> {
        if self.total == 0 {
            return None;
        }
        let mut best: Option<(usize, i64)> = None;
        for (i, (c, &w)) in self.current.iter_mut().zip(&self.weights).enumerate() {
            if w == 0 {
                continue;
            }
            *c += w;
            if best.is_none_or(|(_, v)| *c > v) {
                best = Some((i, *c));
            }
        }
        let (b, _) = best?;
        self.current[b] -= self.total;
        Some(b)
    }
}

impl StatefulScheduler for WeightedRoundRobin {
    fn pick_mut(
        &mut self,
        _flow_hash: u64,
        _client: IpAddr,
        _active: &dyn Fn(usize) -> u64,
    ) -> Option<usize> {
        self.next_pick()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(weights: &[u32]) -> Vec<Backend> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| Backend {
                key: i as u64,
                weight,
            })
            .collect()
    }

    #[test]
    fn nginx_sequence_is_smooth() {
        let mut w = WeightedRoundRobin::new(&b(&[5, 1, 1]));
        let seq: Vec<usize> = (0..7).map(|_| w.next_pick().unwrap()).collect();
        assert_eq!(seq, [0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn zero_weight_is_never_picked() {
        let mut w = WeightedRoundRobin::new(&b(&[2, 0, 3]));
        let mut n = [0; 3];
        for _ in 0..50 {
            n[w.next_pick().unwrap()] += 1;
        }
        assert_eq!(n, [20, 0, 30]);
        assert_eq!(WeightedRoundRobin::new(&b(&[0, 0])).next_pick(), None);
    }
}
