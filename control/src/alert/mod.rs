//! Alerting: rules over scraped telemetry, folded along the topology, grouped and delivered
//! once, with their resolutions.
//!
//! The cores are PURE (no I/O, no clock: `now` comes from the caller):
//!
//! - [`window`]: the samples of every scraped series over a sliding window.
//! - [`exposition`]: the Prometheus text format into samples.
//! - [`rules`]: threshold, rate-of-change and absent rules with `for` and `keep_firing_for`;
//!   an [`rules::Evaluator`] turns a window into the set of firing [`Alert`]s.
//! - [`correlate`]: the topology (datacenter → zone → node → service → endpoint); the alerts
//!   of an entity whose ancestor is failing are folded under the ancestor's alert, which
//!   names them; a health score per entity.
//! - [`silence`]: label matchers with a time range.
//! - [`group`]: Alertmanager's grouping (group wait, group interval, repeat interval),
//!   dedup by fingerprint, and resolutions (an alert that stops firing is delivered once
//!   more as resolved).
//! - [`engine`]: the four above in order, once per evaluation.
//! - [`payload`]: a notification as Alertmanager's webhook payload (version 4) and as the
//!   body of Alertmanager's `POST /api/v2/alerts`.
//!
//! The I/O edges: [`scrape`] (each node's `/metrics` into the window), [`deliver`] (webhook
//! and Alertmanager over HTTP, retried), [`run`] wiring them on an interval.
//!
//! What it does not do: it does not route to several receivers by label (every
//! notification goes to every configured receiver), and it keeps its state in memory (a
//! restarted evaluator starts from an empty window; firing alerts are written to the store
//! under [`ALERTS`] for the API).

pub mod config;
pub mod correlate;
pub mod deliver;
pub mod engine;
pub mod exposition;
pub mod group;
pub mod payload;
pub mod rules;
pub mod run;
pub mod scrape;
pub mod silence;
pub mod view;
pub mod window;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Instant;

pub use config::Config;
pub use engine::Engine;

/// Where the evaluator publishes its current alerts (one key per fingerprint, for the API).
pub const ALERTS: &str = "/dataplane/alerts/";
/// Where silences are stored (one key per id).
pub const SILENCES: &str = "/dataplane/silences/";

/// Label names to values, in order (so that equal sets compare and hash equal).
pub type Labels = BTreeMap<String, String>;

/// A stable 64-bit identity of a label set (FNV-1a over `name=value` pairs, in order).
pub fn fingerprint(labels: &Labels) -> Fingerprint {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for (k, v) in labels {
        feed(k.as_bytes());
        feed(&[0xff]);
        feed(v.as_bytes());
        feed(&[0xfe]);
    }
    Fingerprint(h)
}

/// An alert's identity: the fingerprint of its labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(pub u64);

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// One firing alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// `alertname`, the rule's labels and the series' labels.
    pub labels: Labels,
    /// Free text (`summary`, `description`), and what the engine adds (`caused`).
    pub annotations: Labels,
    /// When its condition became true (before `for`).
    pub active_since: Instant,
    /// The alerts folded under this one (root cause), by their labels.
    pub folded: Vec<Labels>,
}

impl Alert {
    /// Its identity.
    pub fn fingerprint(&self) -> Fingerprint {
        fingerprint(&self.labels)
    }

    /// Its `alertname`.
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }
}
