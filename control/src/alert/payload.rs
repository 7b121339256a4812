//! Notifications as JSON: Alertmanager's webhook payload (version 4) and the body of
//! Alertmanager's `POST /api/v2/alerts`. PURE: instants become wall time through the
//! caller's `(now, wall_now)` anchor.

use super::Labels;
use super::group::{Notification, Notified, Status};
use serde_json::{Value, json};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The pair that turns an [`Instant`] into wall time: the same moment read from both clocks.
#[derive(Debug, Clone, Copy)]
pub struct Anchor {
    /// Monotonic now.
    pub now: Instant,
    /// Wall-clock now.
    pub wall: SystemTime,
}

impl Anchor {
    /// The wall time of `t` (the anchor's, shifted by their distance).
    pub fn wall_of(&self, t: Instant) -> SystemTime {
        if t <= self.now {
            self.wall - (self.now - t)
        } else {
            self.wall + (t - self.now)
        }
    }
}

//= https://www.rfc-editor.org/rfc/rfc3339#section-5.6
//# date-time = full-date "T" full-time
/// `2026-01-02T03:04:05.678Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

fn labels_json(l: &Labels) -> Value {
    serde_json::to_value(l).expect("invariant: string maps serialize")
}

/// The labels (or annotations) every alert of `alerts` shares.
fn common(alerts: &[Notified], pick: impl Fn(&Notified) -> &Labels) -> Labels {
    let mut it = alerts.iter();
    let Some(first) = it.next() else {
        return Labels::new();
    };
    let mut out = pick(first).clone();
    for a in it {
        let l = pick(a);
        out.retain(|k, v| l.get(k) == Some(v));
    }
    out
}

fn annotations(n: &Notified) -> Labels {
    let mut a = n.alert.annotations.clone();
    if !n.alert.folded.is_empty() {
        a.insert("folded_count".to_owned(), n.alert.folded.len().to_string());
    }
    a
}

/// Alertmanager's webhook payload, version 4.
//= https://prometheus.io/docs/alerting/latest/configuration/#webhook_config
pub fn webhook(n: &Notification, receiver: &str, anchor: Anchor) -> Value {
    let alerts: Vec<Value> = n
        .alerts
        .iter()
        .map(|a| {
            json!({
                "status": a.status.as_str(),
                "labels": labels_json(&a.alert.labels),
                "annotations": labels_json(&annotations(a)),
                "startsAt": rfc3339(anchor.wall_of(a.alert.active_since)),
                "endsAt": a.ends_at.map_or_else(|| "0001-01-01T00:00:00Z".to_owned(), |t| rfc3339(anchor.wall_of(t))),
                "generatorURL": "",
                "fingerprint": a.alert.fingerprint().to_string(),
                "folded": a.alert.folded.iter().map(labels_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "version": "4",
        "groupKey": n.group_key,
        "truncatedAlerts": 0,
        "status": n.status().as_str(),
        "receiver": receiver,
        "groupLabels": labels_json(&n.group_labels),
        "commonLabels": labels_json(&common(&n.alerts, |a| &a.alert.labels)),
        "commonAnnotations": labels_json(&common(&n.alerts, |a| &a.alert.annotations)),
        "externalURL": "",
        "alerts": alerts,
    })
}

/// The body of Alertmanager's `POST /api/v2/alerts` (`postableAlerts`): a resolved alert
/// carries its `endsAt`, a firing one none (Alertmanager then resolves it by itself after
/// its `resolve_timeout` unless it is sent again, which the repeat interval does).
pub fn alertmanager(n: &Notification, anchor: Anchor) -> Value {
    Value::Array(
        n.alerts
            .iter()
            .map(|a| {
                let mut v = json!({
                    "labels": labels_json(&a.alert.labels),
                    "annotations": labels_json(&annotations(a)),
                    "startsAt": rfc3339(anchor.wall_of(a.alert.active_since)),
                });
                if let (Status::Resolved, Some(t)) = (a.status, a.ends_at) {
                    v["endsAt"] = json!(rfc3339(anchor.wall_of(t)));
                }
                v
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_251_199_123);
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59.123Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.000Z");
    }
}
