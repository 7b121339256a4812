//! The alerting configuration (the `[alert]` table of the daemon's TOML): rules, the route
//! (grouping timers) and receivers. Durations are written `500ms`, `30s`, `5m`, `4h`, `1d`.
//!
//! ```toml
//! [alert]
//! evaluation_interval = "15s"
//! retention = "10m"
//! [alert.route]
//! group_by = ["alertname"]
//! group_wait = "30s"
//! group_interval = "5m"
//! repeat_interval = "4h"
//! [[alert.receivers]]
//! kind = "webhook"
//! name = "ops"
//! url = "http://hooks.example:8080/alert"
//! [[alert.receivers]]
//! kind = "alertmanager"
//! name = "am"
//! url = "http://alertmanager:9093"
//! [[alert.rules]]
//! name = "NodeDown"
//! metric = "up"
//! condition = { kind = "threshold", op = "<", value = 1 }
//! for = "30s"
//! keep_firing_for = "1m"
//! labels = { severity = "critical" }
//! ```

use super::Labels;
use super::rules::{Condition, Rule};
use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// Everything alerting needs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Time between evaluations (and scrapes).
    #[serde(default = "default_interval", deserialize_with = "duration")]
    pub evaluation_interval: Duration,
    /// History kept per series; MUST cover every rule's range.
    #[serde(default = "default_retention", deserialize_with = "duration")]
    pub retention: Duration,
    /// Grouping.
    #[serde(default)]
    pub route: Route,
    /// Where notifications go (all of them, each).
    #[serde(default)]
    pub receivers: Vec<Receiver>,
    /// The rules.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

fn default_interval() -> Duration {
    Duration::from_secs(15)
}

fn default_retention() -> Duration {
    Duration::from_secs(600)
}

impl Default for Config {
    fn default() -> Self {
        Self {
            evaluation_interval: default_interval(),
            retention: default_retention(),
            route: Route::default(),
            receivers: Vec::new(),
            rules: Vec::new(),
        }
    }
}

/// How alerts are grouped into notifications (Alertmanager's route timers).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Labels whose values make a group; alerts without one of them share the empty value.
    #[serde(default = "default_group_by")]
    pub group_by: Vec<String>,
    /// How long a new group waits for more alerts before its first notification.
    #[serde(default = "default_group_wait", deserialize_with = "duration")]
    pub group_wait: Duration,
    /// How long a group waits after a notification before sending its changes.
    #[serde(default = "default_group_interval", deserialize_with = "duration")]
    pub group_interval: Duration,
    /// After which an unchanged group is notified again.
    #[serde(default = "default_repeat_interval", deserialize_with = "duration")]
    pub repeat_interval: Duration,
}

fn default_group_by() -> Vec<String> {
    vec!["alertname".to_owned()]
}
fn default_group_wait() -> Duration {
    Duration::from_secs(30)
}
fn default_group_interval() -> Duration {
    Duration::from_secs(300)
}
fn default_repeat_interval() -> Duration {
    Duration::from_secs(4 * 3600)
}

impl Default for Route {
    fn default() -> Self {
        Self {
            group_by: default_group_by(),
            group_wait: default_group_wait(),
            group_interval: default_group_interval(),
            repeat_interval: default_repeat_interval(),
        }
    }
}

/// A destination.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Receiver {
    /// POSTs Alertmanager's webhook payload (version 4) to `url`.
    Webhook {
        /// Its name (the payload's `receiver`).
        name: String,
        /// Where to POST.
        url: String,
    },
    /// POSTs the alerts to an Alertmanager's `/api/v2/alerts`.
    Alertmanager {
        /// Its name.
        name: String,
        /// The Alertmanager's base URL (`http://host:9093`).
        url: String,
    },
}

impl Receiver {
    /// Its name.
    pub fn name(&self) -> &str {
        match self {
            Self::Webhook { name, .. } | Self::Alertmanager { name, .. } => name,
        }
    }
}

/// A configuration that cannot be used, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("alert setting `{field}`: {reason}")]
pub struct ConfigError {
    /// The field (`rules[2].for`).
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl Config {
    /// Checks what serde cannot: rule names, ranges within the retention, non-zero timers.
    ///
    /// # Errors
    /// The first bad field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: String, reason: &str| ConfigError {
            field,
            reason: reason.to_owned(),
        };
        if self.evaluation_interval.is_zero() {
            return Err(bad("evaluation_interval".into(), "must be positive"));
        }
        if self.route.group_interval.is_zero() || self.route.repeat_interval.is_zero() {
            return Err(bad(
                "route".into(),
                "group_interval and repeat_interval must be positive",
            ));
        }
        for (i, r) in self.rules.iter().enumerate() {
            if r.name.is_empty() || r.metric.is_empty() {
                return Err(bad(
                    format!("rules[{i}].name"),
                    "a rule needs a name and a metric",
                ));
            }
            let range = match r.condition {
                Condition::Threshold { .. } => Duration::ZERO,
                Condition::Rate { over, .. } | Condition::Absent { over } => over,
            };
            if range > self.retention {
                return Err(bad(
                    format!("rules[{i}].condition.over"),
                    "longer than `retention`: the window would not hold it",
                ));
            }
            if matches!(r.condition, Condition::Rate { over, .. } if over.is_zero()) {
                return Err(bad(
                    format!("rules[{i}].condition.over"),
                    "must be positive",
                ));
            }
        }
        Ok(())
    }
}

/// Extra labels every alert of a rule gets.
pub type RuleLabels = Labels;

/// Deserializes `500ms`, `30s`, `5m`, `4h`, `1d` (or a bare number of seconds).
///
/// # Errors
/// A string of another form.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Seconds(s) => Ok(Duration::from_secs(s)),
        Raw::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
    }
}

/// Parses `500ms`, `30s`, `5m`, `4h`, `1d`.
///
/// # Errors
/// Why the text is not a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit (ms, s, m, h, d)"))?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{text}` does not start with a number"))?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (ms, s, m, h, d)")),
    };
    Ok(Duration::from_millis(n.saturating_mul(ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_config_parses_and_validates() {
        let text = r#"
            evaluation_interval = "5s"
            retention = "2m"
            [route]
            group_by = ["alertname", "datacenter"]
            group_wait = "10s"
            [[receivers]]
            kind = "webhook"
            name = "ops"
            url = "http://127.0.0.1:1/hook"
            [[rules]]
            name = "NodeDown"
            metric = "up"
            condition = { kind = "threshold", op = "<", value = 1 }
            for = "30s"
            keep_firing_for = "1m"
            labels = { severity = "critical" }
            [[rules]]
            name = "Errors"
            metric = "control_api_requests_total"
            matchers = { class = "5xx" }
            condition = { kind = "rate", op = ">", value = 0.5, over = "1m" }
            [[rules]]
            name = "NoScrape"
            metric = "up"
            condition = { kind = "absent", over = "1m" }
        "#;
        let c: Config = toml::from_str(text).unwrap();
        c.validate().unwrap();
        assert_eq!(c.route.group_wait, Duration::from_secs(10));
        assert_eq!(c.route.group_interval, Duration::from_secs(300));
        assert_eq!(c.rules[0].for_, Duration::from_secs(30));
        assert_eq!(c.rules.len(), 3);
        let mut long = c.clone();
        long.retention = Duration::from_secs(30);
        assert_eq!(
            long.validate().unwrap_err().field,
            "rules[1].condition.over"
        );
        assert!(toml::from_str::<Config>("evaluation_interval = \"5 minutes\"").is_err());
        assert!(toml::from_str::<Config>("surprise = 1").is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("4h"), Ok(Duration::from_secs(4 * 3600)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5y").is_err());
    }
}
