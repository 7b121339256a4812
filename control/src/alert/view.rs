//! What the evaluator publishes for the API (`/api/v1/alerts`): the firing alerts with their
//! disposition, and the health scores. Stored at `ALERTS/<evaluator node>`. PURE.

use super::Labels;
use super::correlate::Entity;
use super::engine::{Disposition, Engine};
use super::payload::{Anchor, rfc3339};
use dataplane_common::model::{Validate, ValidationError};
use serde::{Deserialize, Serialize};

/// One firing alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertView {
    /// Its fingerprint (hex).
    pub fingerprint: String,
    /// Its labels.
    pub labels: Labels,
    /// Its annotations.
    pub annotations: Labels,
    /// When its condition became true (RFC 3339).
    pub active_since: String,
    /// `notified`, `folded` or `silenced`.
    pub state: String,
    /// The root cause's fingerprint, when folded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folded_under: Option<String>,
    /// The silence's id, when silenced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silenced_by: Option<String>,
    /// The alerts it folds (their labels), when it is a root cause.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub folded: Vec<Labels>,
}

/// One entity's health score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreView {
    /// `node=n1`.
    pub entity: String,
    /// 0 (down) to 100 (healthy).
    pub score: u8,
}

/// The evaluator's view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct View {
    /// The evaluating node.
    pub by: String,
    /// Firing alerts.
    pub alerts: Vec<AlertView>,
    /// Entities with alerts on or below them.
    pub scores: Vec<ScoreView>,
}

impl Validate for View {
    fn validate(&self) -> Result<(), ValidationError> {
        if self.by.is_empty() {
            return Err(ValidationError::new("by", "must name the evaluator"));
        }
        Ok(())
    }
}

impl View {
    /// The engine's current alerts and scores.
    pub fn of(engine: &Engine, by: &str, anchor: Anchor) -> Self {
        let alerts = engine
            .alerts()
            .iter()
            .map(|(a, d)| {
                let (state, folded_under, silenced_by) = match d {
                    Disposition::Notified => ("notified", None, None),
                    Disposition::Folded(root) => ("folded", Some(root.to_string()), None),
                    Disposition::Silenced(id) => ("silenced", None, Some(id.clone())),
                };
                AlertView {
                    fingerprint: a.fingerprint().to_string(),
                    labels: a.labels.clone(),
                    annotations: a.annotations.clone(),
                    active_since: rfc3339(anchor.wall_of(a.active_since)),
                    state: state.to_owned(),
                    folded_under,
                    silenced_by,
                    folded: a.folded.clone(),
                }
            })
            .collect();
        let scores = engine
            .scores()
            .into_iter()
            .map(|(e, score): (Entity, u8)| ScoreView {
                entity: e.to_string(),
                score,
            })
            .collect();
        Self {
            by: by.to_owned(),
            alerts,
            scores,
        }
    }
}
