//! The samples of every series over a sliding window. PURE.
//!
//! A series is a metric name and its labels. Samples arrive in time order per series
//! ([`Window::handle_sample`]); [`Window::prune`] forgets the ones older than the retention,
//! and series left with no sample. The retention MUST cover the longest range a rule looks
//! at (a rate's `over`, an absent rule's `over`), which [`super::Config::validate`] checks.

use super::Labels;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// One series' identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesKey {
    /// The metric name.
    pub name: String,
    /// Its labels (target labels such as `node` included).
    pub labels: Labels,
}

/// Samples of many series over the last `retention`.
#[derive(Debug, Clone)]
pub struct Window {
    retention: Duration,
    series: BTreeMap<SeriesKey, VecDeque<(Instant, f64)>>,
}

impl Window {
    /// An empty window keeping `retention` of history.
    pub fn new(retention: Duration) -> Self {
        Self {
            retention,
            series: BTreeMap::new(),
        }
    }

    /// How much history it keeps.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// Records one sample. A sample older than the series' last one is ignored.
    pub fn handle_sample(&mut self, at: Instant, key: SeriesKey, value: f64) {
        let points = self.series.entry(key).or_default();
        if points.back().is_some_and(|(t, _)| *t > at) {
            return;
        }
        points.push_back((at, value));
    }

    /// Forgets samples older than the retention, and empty series.
    pub fn prune(&mut self, now: Instant) {
        let Some(oldest) = now.checked_sub(self.retention) else {
            return;
        };
        self.series.retain(|_, points| {
            while points.front().is_some_and(|(t, _)| *t < oldest) {
                points.pop_front();
            }
            !points.is_empty()
        });
    }

    /// Every series named `name` whose labels include all of `matchers`, with its samples.
    pub fn select<'a>(
        &'a self,
        name: &'a str,
        matchers: &'a Labels,
    ) -> impl Iterator<Item = (&'a SeriesKey, &'a VecDeque<(Instant, f64)>)> + 'a {
        self.series.iter().filter(move |(k, _)| {
            k.name == name
                && matchers
                    .iter()
                    .all(|(l, v)| k.labels.get(l).is_some_and(|x| x == v))
        })
    }

    /// How many series it holds.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane_common::clock::Clock;

    #[test]
    fn prune_forgets_old_samples_and_empty_series() {
        let t0 = dataplane_common::clock::ManualClock::new().now();
        let mut w = Window::new(Duration::from_secs(10));
        let key = |n: &str| SeriesKey {
            name: n.into(),
            labels: Labels::from([("node".into(), "a".into())]),
        };
        w.handle_sample(t0, key("x"), 1.0);
        w.handle_sample(t0 + Duration::from_secs(8), key("y"), 1.0);
        w.handle_sample(t0 + Duration::from_secs(5), key("x"), 2.0);
        w.handle_sample(t0 + Duration::from_secs(4), key("x"), 9.0);
        w.prune(t0 + Duration::from_secs(12));
        let m = Labels::new();
        let x: Vec<_> = w.select("x", &m).collect();
        assert_eq!(x.len(), 1);
        assert_eq!(x[0].1.iter().map(|p| p.1).collect::<Vec<_>>(), [2.0]);
        w.prune(t0 + Duration::from_secs(16));
        assert_eq!(w.len(), 1, "x is gone, y stays");
    }
}
