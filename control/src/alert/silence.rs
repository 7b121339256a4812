//! Silences: label matchers with a time range; a silenced alert is not notified. PURE.
//!
//! Silences are stored under [`super::SILENCES`] (written through the API) and matched at
//! every evaluation against the alerts to notify (a silenced root silences what it folds).

use super::Labels;
use dataplane_common::model::{Validate, ValidationError};
use serde::{Deserialize, Serialize};

/// How a matcher compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchOp {
    /// The label equals the value (an absent label equals "").
    #[serde(rename = "=")]
    Eq,
    /// The label differs from the value.
    #[serde(rename = "!=")]
    Ne,
}

/// One matcher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matcher {
    /// The label.
    pub name: String,
    /// The comparison (default `=`).
    #[serde(default = "eq")]
    pub op: MatchOp,
    /// The value.
    pub value: String,
}

fn eq() -> MatchOp {
    MatchOp::Eq
}

impl Matcher {
    /// Whether `labels` satisfy it.
    pub fn matches(&self, labels: &Labels) -> bool {
        let v = labels.get(&self.name).map_or("", String::as_str);
        match self.op {
            MatchOp::Eq => v == self.value,
            MatchOp::Ne => v != self.value,
        }
    }
}

/// A silence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Silence {
    /// Its id (the key's last segment; assigned by the API).
    #[serde(default)]
    pub id: String,
    /// All must match.
    pub matchers: Vec<Matcher>,
    /// Unix seconds it starts at (default: when created).
    #[serde(default)]
    pub starts_at: u64,
    /// Unix seconds it ends at.
    pub ends_at: u64,
    /// Who created it.
    pub created_by: String,
    /// Why.
    #[serde(default)]
    pub comment: String,
}

impl Silence {
    /// Whether it silences `labels` at `now` (Unix seconds).
    pub fn silences(&self, labels: &Labels, now: u64) -> bool {
        (self.starts_at..self.ends_at).contains(&now)
            && self.matchers.iter().all(|m| m.matches(labels))
    }
}

impl Validate for Silence {
    fn validate(&self) -> Result<(), ValidationError> {
        if self.matchers.is_empty() {
            return Err(ValidationError::new(
                "matchers",
                "at least one matcher (a silence of everything is refused)",
            ));
        }
        for (i, m) in self.matchers.iter().enumerate() {
            if m.name.is_empty() {
                return Err(ValidationError::new(
                    format!("matchers[{i}].name"),
                    "must name a label",
                ));
            }
        }
        if self.ends_at <= self.starts_at {
            return Err(ValidationError::new("ends_at", "must be after starts_at"));
        }
        if self.created_by.is_empty() {
            return Err(ValidationError::new("created_by", "must say who"));
        }
        if self.id.contains('/') {
            return Err(ValidationError::new("id", "must not contain `/`"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silence_matches_within_its_range_only() {
        let s = Silence {
            id: "s1".into(),
            matchers: vec![
                Matcher {
                    name: "node".into(),
                    op: MatchOp::Eq,
                    value: "n1".into(),
                },
                Matcher {
                    name: "severity".into(),
                    op: MatchOp::Ne,
                    value: "info".into(),
                },
            ],
            starts_at: 100,
            ends_at: 200,
            created_by: "ops".into(),
            comment: String::new(),
        };
        s.validate().unwrap();
        let labels: Labels = [("node".to_owned(), "n1".to_owned())].into();
        assert!(s.silences(&labels, 150));
        assert!(!s.silences(&labels, 200));
        assert!(!s.silences(&labels, 99));
        let other: Labels = [("node".to_owned(), "n2".to_owned())].into();
        assert!(!s.silences(&other, 150));
    }
}
