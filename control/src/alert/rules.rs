//! Rules over the window, with `for` and `keep_firing_for`. PURE.
//!
//! A rule selects the series named [`Rule::metric`] whose labels include its
//! [`Rule::matchers`], and tests its [`Condition`] on each one at `now`. Per (rule, series)
//! an alert moves through:
//!
//! ```text
//! inactive --condition true--> pending --true for `for`--> firing
//! firing --false for `keep_firing_for`--> inactive      pending --false--> inactive
//! ```
//!
//! [`Evaluator::evaluate`] returns the firing alerts only; an alert missing from a later
//! result has resolved (the grouper delivers that). `keep_firing_for` is what turns a
//! flapping check into one alert rather than a storm.

use super::config::duration;
use super::window::Window;
use super::{Alert, Fingerprint, Labels, fingerprint};
use serde::Deserialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Op {
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
    /// `==`
    #[serde(rename = "==")]
    Eq,
    /// `!=`
    #[serde(rename = "!=")]
    Ne,
}

impl Op {
    /// `lhs op rhs`; false when either is NaN.
    pub fn holds(self, lhs: f64, rhs: f64) -> bool {
        match self {
            Self::Gt => lhs > rhs,
            Self::Ge => lhs >= rhs,
            Self::Lt => lhs < rhs,
            Self::Le => lhs <= rhs,
            Self::Eq => lhs == rhs,
            Self::Ne => lhs != rhs && !lhs.is_nan() && !rhs.is_nan(),
        }
    }
}

/// When a series is in trouble.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Condition {
    /// Its latest sample compares with `value`.
    Threshold {
        /// The comparison.
        op: Op,
        /// The threshold.
        value: f64,
    },
    /// Its per-second increase over the last `over` compares with `value` (counter resets
    /// count as a restart from zero, as Prometheus' `rate`). Needs two samples in range.
    Rate {
        /// The comparison.
        op: Op,
        /// Per second.
        value: f64,
        /// The range.
        #[serde(deserialize_with = "duration")]
        over: Duration,
    },
    /// No sample within the last `over`: for each series seen in the window that went
    /// quiet, and once (with the rule's matchers as labels) when no series matches at all.
    Absent {
        /// How long a series may be quiet.
        #[serde(deserialize_with = "duration")]
        over: Duration,
    },
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The alert's name (`alertname`).
    pub name: String,
    /// The series' metric name.
    pub metric: String,
    /// Labels the series must have (equality).
    #[serde(default)]
    pub matchers: Labels,
    /// The condition.
    pub condition: Condition,
    /// How long the condition must hold before the alert fires.
    #[serde(default, rename = "for", deserialize_with = "duration")]
    pub for_: Duration,
    /// How long a firing alert keeps firing after the condition stops holding.
    #[serde(default, deserialize_with = "duration")]
    pub keep_firing_for: Duration,
    /// Added to the alert's labels (`severity`).
    #[serde(default)]
    pub labels: Labels,
    /// The alert's annotations (`summary`, `description`).
    #[serde(default)]
    pub annotations: Labels,
}

#[derive(Debug, Clone)]
struct State {
    labels: Labels,
    active_since: Instant,
    /// The last evaluation at which the condition held.
    last_true: Instant,
    firing: bool,
    /// Which rule (index) produced it.
    rule: usize,
}

/// Evaluates rules, keeping each (rule, series) alert's state between calls.
///
/// Call [`Evaluator::evaluate`] with a non-decreasing `now`.
#[derive(Debug, Clone)]
pub struct Evaluator {
    rules: Vec<Rule>,
    states: HashMap<Fingerprint, State>,
}

impl Evaluator {
    /// An evaluator of `rules`.
    pub fn new(rules: Vec<Rule>) -> Self {
        Self {
            rules,
            states: HashMap::new(),
        }
    }

    /// The rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Tests every rule at `now`; returns the alerts firing after it, by fingerprint order.
    pub fn evaluate(&mut self, now: Instant, window: &Window) -> Vec<Alert> {
        let mut seen = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            for labels in active(rule, now, window) {
                let labels = alert_labels(rule, labels);
                let fp = fingerprint(&labels);
                let state = self.states.entry(fp).or_insert_with(|| State {
                    labels,
                    active_since: now,
                    last_true: now,
                    firing: false,
                    rule: index,
                });
                state.last_true = now;
                if now.saturating_duration_since(state.active_since) >= rule.for_ {
                    state.firing = true;
                }
                seen.push(fp);
            }
        }
        let rules = &self.rules;
        self.states.retain(|_, s| {
            if s.last_true == now {
                return true;
            }
            // The condition does not hold now: pending alerts drop, firing ones linger.
            s.firing && now.saturating_duration_since(s.last_true) < rules[s.rule].keep_firing_for
        });
        let mut out: Vec<Alert> = self
            .states
            .values()
            .filter(|s| s.firing)
            .map(|s| Alert {
                labels: s.labels.clone(),
                annotations: rules[s.rule].annotations.clone(),
                active_since: s.active_since,
                folded: Vec::new(),
            })
            .collect();
        out.sort_by_key(Alert::fingerprint);
        out
    }

    /// How many alerts are pending (condition true, `for` not yet over).
    pub fn pending(&self) -> usize {
        self.states.values().filter(|s| !s.firing).count()
    }
}

fn alert_labels(rule: &Rule, series: Labels) -> Labels {
    let mut labels = series;
    labels.extend(rule.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels.insert("alertname".to_owned(), rule.name.clone());
    labels
}

/// The label sets (of series, or the matchers for a wholly absent metric) for which the
/// rule's condition holds at `now`.
fn active(rule: &Rule, now: Instant, window: &Window) -> Vec<Labels> {
    let series = window.select(&rule.metric, &rule.matchers);
    match rule.condition {
        Condition::Threshold { op, value } => series
            .filter(|(_, points)| points.back().is_some_and(|(_, v)| op.holds(*v, value)))
            .map(|(k, _)| k.labels.clone())
            .collect(),
        Condition::Rate { op, value, over } => series
            .filter(|(_, points)| {
                let from = now.checked_sub(over);
                let in_range: Vec<(Instant, f64)> = points
                    .iter()
                    .filter(|(t, _)| from.is_none_or(|f| *t >= f) && *t <= now)
                    .copied()
                    .collect();
                rate(&in_range).is_some_and(|r| op.holds(r, value))
            })
            .map(|(k, _)| k.labels.clone())
            .collect(),
        Condition::Absent { over } => {
            let mut any = false;
            let mut out = Vec::new();
            for (k, points) in series {
                any = true;
                let quiet = points
                    .back()
                    .is_none_or(|(t, _)| now.saturating_duration_since(*t) > over);
                if quiet {
                    out.push(k.labels.clone());
                }
            }
            if !any {
                out.push(rule.matchers.clone());
            }
            out
        }
    }
}

/// Per-second increase over the points (first to last), counter resets included.
fn rate(points: &[(Instant, f64)]) -> Option<f64> {
    let (first, last) = (points.first()?, points.last()?);
    let span = last.0.saturating_duration_since(first.0).as_secs_f64();
    if points.len() < 2 || span <= 0.0 {
        return None;
    }
    let mut increase = 0.0;
    for pair in points.windows(2) {
        let (a, b) = (pair[0].1, pair[1].1);
        increase += if b >= a { b - a } else { b };
    }
    Some(increase / span)
}

#[cfg(test)]
mod tests;
