//! Grouping, dedup and resolutions, after Alertmanager's dispatcher. PURE.
//!
//! Alerts are grouped by the values of [`Route::group_by`]. A new group waits
//! `group_wait` (for the rest of a burst) before its first notification; afterwards it is
//! looked at every `group_interval`, and notified only when its set of alerts (by
//! fingerprint and status) changed, or `repeat_interval` passed since the last
//! notification: the same alert is never notified twice in a row (dedup). An alert that
//! stops firing is kept as resolved and delivered once as such (a resolution is always
//! delivered), then forgotten; a group with nothing left is dropped.
//!
//! Call order: [`Grouper::handle_alerts`] with each evaluation's result, then
//! [`Grouper::poll_notification`] until it returns `None`; [`Grouper::poll_timeout`] says
//! when to poll next. `now` MUST not decrease.

use super::config::Route;
use super::{Alert, Fingerprint, Labels};
use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

/// Firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Still firing.
    Firing,
    /// No longer firing.
    Resolved,
}

impl Status {
    /// `firing` or `resolved`, as Alertmanager writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

/// One alert in a notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Notified {
    /// The alert (labels, annotations, what it folds).
    pub alert: Alert,
    /// Firing or resolved.
    pub status: Status,
    /// When it stopped firing.
    pub ends_at: Option<Instant>,
}

/// One group's notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The group's identity (`{alertname="NodeDown"}`).
    pub group_key: String,
    /// The `group_by` labels and their values.
    pub group_labels: Labels,
    /// Its alerts, firing and resolved, by fingerprint.
    pub alerts: Vec<Notified>,
}

impl Notification {
    /// `firing` when any alert fires, else `resolved`.
    pub fn status(&self) -> Status {
        if self.alerts.iter().any(|a| a.status == Status::Firing) {
            Status::Firing
        } else {
            Status::Resolved
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    alert: Alert,
    resolved_at: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Group {
    labels: Labels,
    alerts: BTreeMap<Fingerprint, Entry>,
    next_flush: Instant,
    /// The last notification's time and its alerts (fingerprint, status).
    last_sent: Option<(Instant, BTreeMap<Fingerprint, Status>)>,
}

impl Group {
    fn state(&self) -> BTreeMap<Fingerprint, Status> {
        self.alerts
            .iter()
            .map(|(fp, e)| {
                let s = if e.resolved_at.is_some() {
                    Status::Resolved
                } else {
                    Status::Firing
                };
                (*fp, s)
            })
            .collect()
    }
}

/// The groups and their timers.
#[derive(Debug, Clone)]
pub struct Grouper {
    route: Route,
    groups: BTreeMap<String, Group>,
}

impl Grouper {
    /// A grouper with `route`'s timers.
    pub fn new(route: Route) -> Self {
        Self {
            route,
            groups: BTreeMap::new(),
        }
    }

    fn key(&self, labels: &Labels) -> (String, Labels) {
        let group_labels: Labels = self
            .route
            .group_by
            .iter()
            .map(|l| (l.clone(), labels.get(l).cloned().unwrap_or_default()))
            .collect();
        let inner: Vec<String> = group_labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        (format!("{{{}}}", inner.join(",")), group_labels)
    }

    /// Takes one evaluation's result: `notify` is what fires and may be notified; `quiet`
    /// fires but is folded under a root cause or silenced: it stays as it is when already
    /// notified (no false resolution), and is not added otherwise. Every alert known and in
    /// neither list has resolved.
    pub fn handle_alerts(&mut self, now: Instant, notify: &[Alert], quiet: &[Alert]) {
        let mut present: HashSet<Fingerprint> = HashSet::new();
        for a in notify {
            let fp = a.fingerprint();
            present.insert(fp);
            let (key, labels) = self.key(&a.labels);
            let group = self.groups.entry(key).or_insert_with(|| Group {
                labels,
                alerts: BTreeMap::new(),
                next_flush: now + self.route.group_wait,
                last_sent: None,
            });
            group.alerts.insert(
                fp,
                Entry {
                    alert: a.clone(),
                    resolved_at: None,
                },
            );
        }
        for a in quiet {
            present.insert(a.fingerprint());
        }
        for group in self.groups.values_mut() {
            for (fp, e) in &mut group.alerts {
                if e.resolved_at.is_none() && !present.contains(fp) {
                    e.resolved_at = Some(now);
                }
            }
        }
    }

    /// When [`Grouper::poll_notification`] may next have something.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.groups.values().map(|g| g.next_flush).min()
    }

    /// The next notification due at `now`, if any.
    pub fn poll_notification(&mut self, now: Instant) -> Option<Notification> {
        let interval = self.route.group_interval;
        let repeat = self.route.repeat_interval;
        let due: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, g)| g.next_flush <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let group = self.groups.get_mut(&key).expect("invariant: listed above");
            group.next_flush = now + interval;
            let state = group.state();
            let unchanged = group.last_sent.as_ref().is_some_and(|(at, sent)| {
                *sent == state && now.saturating_duration_since(*at) < repeat
            });
            let nothing_firing = state.values().all(|s| *s == Status::Resolved);
            let never_sent = group.last_sent.is_none();
            if unchanged || (nothing_firing && never_sent) {
                // Dedup; or a group that resolved before it was ever notified.
                group.alerts.retain(|_, e| e.resolved_at.is_none());
                if group.alerts.is_empty() {
                    self.groups.remove(&key);
                }
                continue;
            }
            let alerts = group
                .alerts
                .values()
                .map(|e| Notified {
                    alert: e.alert.clone(),
                    status: if e.resolved_at.is_some() {
                        Status::Resolved
                    } else {
                        Status::Firing
                    },
                    ends_at: e.resolved_at,
                })
                .collect();
            let notification = Notification {
                group_key: key.clone(),
                group_labels: group.labels.clone(),
                alerts,
            };
            group.alerts.retain(|_, e| e.resolved_at.is_none());
            group.last_sent = Some((now, group.state()));
            if group.alerts.is_empty() {
                self.groups.remove(&key);
            }
            return Some(notification);
        }
        None
    }

    /// How many groups there are.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane_common::clock::{Clock, ManualClock};
    use std::time::Duration;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn alert(name: &str, node: &str, t: Instant) -> Alert {
        Alert {
            labels: [
                ("alertname".to_owned(), name.to_owned()),
                ("node".to_owned(), node.to_owned()),
            ]
            .into(),
            annotations: Labels::new(),
            active_since: t,
            folded: Vec::new(),
        }
    }

    fn route() -> Route {
        Route {
            group_by: vec!["alertname".into()],
            group_wait: s(30),
            group_interval: s(60),
            repeat_interval: s(3600),
        }
    }

    fn drain(g: &mut Grouper, now: Instant) -> Vec<Notification> {
        std::iter::from_fn(|| g.poll_notification(now)).collect()
    }

    #[test]
    fn a_burst_is_one_notification_after_group_wait_then_changes_then_resolution() {
        let t0 = ManualClock::new().now();
        let mut g = Grouper::new(route());
        g.handle_alerts(t0, &[alert("Down", "a", t0)], &[]);
        assert_eq!(g.poll_timeout(), Some(t0 + s(30)));
        g.handle_alerts(
            t0 + s(10),
            &[alert("Down", "a", t0), alert("Down", "b", t0)],
            &[],
        );
        assert!(drain(&mut g, t0 + s(29)).is_empty());
        let n = drain(&mut g, t0 + s(30));
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].alerts.len(), 2);
        assert_eq!(n[0].group_key, "{alertname=\"Down\"}");
        // Unchanged: no notification at the next interval (dedup).
        assert!(drain(&mut g, t0 + s(90)).is_empty());
        // b resolves: delivered once as resolved, with a still firing.
        g.handle_alerts(t0 + s(100), &[alert("Down", "a", t0)], &[]);
        let n = drain(&mut g, t0 + s(150));
        assert_eq!(n.len(), 1);
        let statuses: Vec<_> = n[0]
            .alerts
            .iter()
            .map(|a| (a.alert.labels["node"].clone(), a.status))
            .collect();
        assert_eq!(
            statuses,
            [("a".into(), Status::Firing), ("b".into(), Status::Resolved)]
        );
        assert_eq!(n[0].alerts[1].ends_at, Some(t0 + s(100)));
        // a resolves: the group's last notification, then the group is gone.
        g.handle_alerts(t0 + s(160), &[], &[]);
        let n = drain(&mut g, t0 + s(210));
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].status(), Status::Resolved);
        assert!(g.is_empty());
    }

    #[test]
    fn repeats_after_repeat_interval_and_quiet_alerts_do_not_resolve() {
        let t0 = ManualClock::new().now();
        let mut g = Grouper::new(route());
        let a = alert("Down", "a", t0);
        g.handle_alerts(t0, std::slice::from_ref(&a), &[]);
        assert_eq!(drain(&mut g, t0 + s(30)).len(), 1);
        // Folded under a root cause now: still known, not resolved, not notified.
        g.handle_alerts(t0 + s(40), &[], std::slice::from_ref(&a));
        assert!(drain(&mut g, t0 + s(90)).is_empty());
        // An hour on: repeated.
        let mut t = t0 + s(90);
        let mut repeats = 0;
        while t < t0 + s(3700) {
            t += s(60);
            g.handle_alerts(t, std::slice::from_ref(&a), &[]);
            repeats += drain(&mut g, t).len();
        }
        assert_eq!(repeats, 1);
    }

    #[test]
    fn an_alert_resolved_before_group_wait_is_never_notified() {
        let t0 = ManualClock::new().now();
        let mut g = Grouper::new(route());
        g.handle_alerts(t0, &[alert("Blip", "a", t0)], &[]);
        g.handle_alerts(t0 + s(5), &[], &[]);
        assert!(drain(&mut g, t0 + s(30)).is_empty());
        assert!(g.is_empty());
    }
}
