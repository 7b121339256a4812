use super::*;
use crate::alert::window::SeriesKey;
use dataplane_common::clock::{Clock, ManualClock};

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn key(node: &str) -> SeriesKey {
    SeriesKey {
        name: "up".into(),
        labels: Labels::from([("node".into(), node.into())]),
    }
}

fn rule(condition: Condition, for_: u64, keep: u64) -> Rule {
    Rule {
        name: "R".into(),
        metric: "up".into(),
        matchers: Labels::new(),
        condition,
        for_: s(for_),
        keep_firing_for: s(keep),
        labels: Labels::from([("severity".into(), "critical".into())]),
        annotations: Labels::new(),
    }
}

const DOWN: Condition = Condition::Threshold {
    op: Op::Lt,
    value: 1.0,
};

#[test]
fn threshold_fires_only_after_for_and_carries_rule_and_series_labels() {
    let t0 = ManualClock::new().now();
    let mut w = Window::new(s(600));
    let mut e = Evaluator::new(vec![rule(DOWN, 30, 0)]);
    w.handle_sample(t0, key("a"), 1.0);
    assert!(e.evaluate(t0, &w).is_empty());
    w.handle_sample(t0 + s(10), key("a"), 0.0);
    assert!(e.evaluate(t0 + s(10), &w).is_empty());
    assert_eq!(e.pending(), 1);
    w.handle_sample(t0 + s(39), key("a"), 0.0);
    assert!(e.evaluate(t0 + s(39), &w).is_empty(), "29 s < for");
    w.handle_sample(t0 + s(40), key("a"), 0.0);
    let firing = e.evaluate(t0 + s(40), &w);
    assert_eq!(firing.len(), 1);
    assert_eq!(firing[0].name(), "R");
    assert_eq!(firing[0].labels["node"], "a");
    assert_eq!(firing[0].labels["severity"], "critical");
    assert_eq!(firing[0].active_since, t0 + s(10));
    w.handle_sample(t0 + s(50), key("a"), 1.0);
    assert!(
        e.evaluate(t0 + s(50), &w).is_empty(),
        "resolved at once without keep_firing_for"
    );
}

#[test]
fn a_flapping_series_keeps_one_alert_firing_with_keep_firing_for() {
    let t0 = ManualClock::new().now();
    let mut w = Window::new(s(600));
    let mut e = Evaluator::new(vec![rule(DOWN, 0, 60)]);
    let mut fingerprints = std::collections::BTreeSet::new();
    let mut firing_at_every_step = true;
    // Down 10 s, up 10 s, for five minutes.
    for step in 0..30u64 {
        let now = t0 + s(10 * step);
        w.handle_sample(now, key("a"), if step % 2 == 0 { 0.0 } else { 1.0 });
        let firing = e.evaluate(now, &w);
        firing_at_every_step &= firing.len() == 1;
        fingerprints.extend(firing.iter().map(Alert::fingerprint));
    }
    assert!(firing_at_every_step, "never resolved in between");
    assert_eq!(fingerprints.len(), 1, "one alert throughout");
    // Stable up: it resolves after keep_firing_for.
    let last = t0 + s(290);
    // The last down sample was at 280 s: firing until 340 s.
    w.handle_sample(last + s(40), key("a"), 1.0);
    assert_eq!(e.evaluate(last + s(40), &w).len(), 1);
    w.handle_sample(last + s(51), key("a"), 1.0);
    assert!(e.evaluate(last + s(51), &w).is_empty());
}

#[test]
fn rate_is_per_second_over_the_range_and_survives_counter_resets() {
    let t0 = ManualClock::new().now();
    let mut w = Window::new(s(600));
    let errors = Condition::Rate {
        op: Op::Gt,
        value: 1.0,
        over: s(60),
    };
    let mut e = Evaluator::new(vec![rule(errors, 0, 0)]);
    // 0 .. 50 over 50 s is 1/s: not above 1.
    for i in 0..=5u64 {
        w.handle_sample(t0 + s(10 * i), key("a"), (10 * i) as f64);
    }
    assert!(e.evaluate(t0 + s(50), &w).is_empty());
    // A restart (reset to 0) then +70 in 10 s: (50 .. reset .. 70) over 60 s is 2/s... from t=10.
    w.handle_sample(t0 + s(60), key("a"), 70.0 - 70.0);
    w.handle_sample(t0 + s(70), key("a"), 70.0);
    let firing = e.evaluate(t0 + s(70), &w);
    assert_eq!(firing.len(), 1, "increase 40 + 0 + 70 over 60 s");
}

#[test]
fn absent_fires_for_a_quiet_series_and_for_a_missing_metric() {
    let t0 = ManualClock::new().now();
    let mut w = Window::new(s(600));
    let mut r = rule(Condition::Absent { over: s(30) }, 0, 0);
    r.matchers = Labels::from([("job".into(), "dns".into())]);
    let mut e = Evaluator::new(vec![r]);
    let firing = e.evaluate(t0, &w);
    assert_eq!(firing.len(), 1, "no series at all");
    assert_eq!(firing[0].labels["job"], "dns");
    let mut k = key("a");
    k.labels.insert("job".into(), "dns".into());
    w.handle_sample(t0 + s(1), k.clone(), 1.0);
    assert!(e.evaluate(t0 + s(1), &w).is_empty());
    assert!(e.evaluate(t0 + s(31), &w).is_empty());
    let firing = e.evaluate(t0 + s(32), &w);
    assert_eq!(firing.len(), 1);
    assert_eq!(firing[0].labels["node"], "a", "the quiet series is named");
}
