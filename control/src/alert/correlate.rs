//! Root-cause folding along the topology, and a health score per entity. PURE.
//!
//! The topology is a forest: datacenter → zone (or rack) → node → service → endpoint. An
//! alert is about the most specific entity its labels name (`endpoint`, `service`, `node`,
//! `zone`, `datacenter`, in that order). When an ancestor of that entity has a firing alert
//! of its own, the alert is folded: it is not notified by itself, and the topmost failing
//! ancestor's alert lists it ([`Alert::folded`], and a `caused` annotation). A node that
//! dies with 100 endpoints behind it is one notification naming the 100.
//!
//! An entity the topology does not know takes its ancestors from the alert's own labels
//! (an endpoint alert labelled with its `node` folds under that node's alert).

use super::{Alert, Fingerprint, Labels};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// A level of the topology, from the top.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// A datacenter.
    Datacenter,
    /// A zone or rack.
    Zone,
    /// A node.
    Node,
    /// A service (on a node, or fleet-wide).
    Service,
    /// An endpoint (`address:port`).
    Endpoint,
}

impl Level {
    /// All levels, from the top.
    pub const ALL: [Self; 5] = [
        Self::Datacenter,
        Self::Zone,
        Self::Node,
        Self::Service,
        Self::Endpoint,
    ];

    /// The label that names an entity of this level.
    pub fn label(self) -> &'static str {
        match self {
            Self::Datacenter => "datacenter",
            Self::Zone => "zone",
            Self::Node => "node",
            Self::Service => "service",
            Self::Endpoint => "endpoint",
        }
    }
}

/// One thing that can fail.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Entity {
    /// Its level.
    pub level: Level,
    /// Its name at that level.
    pub name: String,
}

impl Entity {
    /// An entity.
    pub fn new(level: Level, name: impl Into<String>) -> Self {
        Self {
            level,
            name: name.into(),
        }
    }

    /// The most specific entity `labels` name.
    pub fn of(labels: &Labels) -> Option<Self> {
        Level::ALL
            .iter()
            .rev()
            .find_map(|l| labels.get(l.label()).map(|n| Self::new(*l, n.clone())))
    }
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.level.label(), self.name)
    }
}

/// Who is whose parent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    parent: HashMap<Entity, Entity>,
}

impl Topology {
    /// An empty topology.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `parent` the parent of `child`. The parent MUST be of a higher level.
    pub fn add(&mut self, child: Entity, parent: Entity) {
        debug_assert!(
            parent.level < child.level,
            "a parent MUST be above its child"
        );
        self.parent.insert(child, parent);
    }

    /// How many entities have a parent.
    pub fn len(&self) -> usize {
        self.parent.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.parent.is_empty()
    }

    /// The ancestors of the entity `labels` name, nearest first: from the topology when it
    /// knows the entity, else from the labels.
    pub fn ancestors(&self, entity: &Entity, labels: &Labels) -> Vec<Entity> {
        let mut out = Vec::new();
        let mut at = entity;
        while let Some(p) = self.parent.get(at) {
            out.push(p.clone());
            at = p;
        }
        if out.is_empty() {
            out = Level::ALL
                .iter()
                .rev()
                .filter(|l| **l < entity.level)
                .filter_map(|l| labels.get(l.label()).map(|n| Entity::new(*l, n.clone())))
                .collect();
        }
        out
    }
}

/// The alerts after folding.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Folded {
    /// The alerts to notify: roots (with what they fold) and alerts with no failing ancestor.
    pub notify: Vec<Alert>,
    /// The folded alerts, each with the fingerprint of the root it is folded under.
    pub folded: Vec<(Alert, Fingerprint)>,
}

/// Folds `alerts` along `topology`.
pub fn fold(topology: &Topology, alerts: Vec<Alert>) -> Folded {
    // The first alert (by fingerprint) about each entity stands for it.
    let mut by_entity: BTreeMap<Entity, Fingerprint> = BTreeMap::new();
    let mut sorted = alerts;
    sorted.sort_by_key(Alert::fingerprint);
    for a in &sorted {
        if let Some(e) = Entity::of(&a.labels) {
            by_entity.entry(e).or_insert_with(|| a.fingerprint());
        }
    }
    let mut root_of: HashMap<Fingerprint, Fingerprint> = HashMap::new();
    for a in &sorted {
        let Some(e) = Entity::of(&a.labels) else {
            continue;
        };
        // The topmost failing ancestor.
        if let Some(root) = topology
            .ancestors(&e, &a.labels)
            .iter()
            .rev()
            .find_map(|anc| by_entity.get(anc))
        {
            root_of.insert(a.fingerprint(), *root);
        }
    }
    let mut out = Folded::default();
    let mut children: HashMap<Fingerprint, Vec<Alert>> = HashMap::new();
    let mut roots = Vec::new();
    for a in sorted {
        match root_of.get(&a.fingerprint()) {
            Some(root) => children.entry(*root).or_default().push(a),
            None => roots.push(a),
        }
    }
    for mut root in roots {
        if let Some(kids) = children.remove(&root.fingerprint()) {
            root.annotations.insert("caused".to_owned(), caused(&kids));
            root.folded = kids.iter().map(|k| k.labels.clone()).collect();
            let fp = root.fingerprint();
            out.folded.extend(kids.into_iter().map(|k| (k, fp)));
        }
        out.notify.push(root);
    }
    debug_assert!(children.is_empty(), "every root is a notified alert");
    out
}

/// `3 alerts folded: EndpointDown endpoint=10.0.0.1:80, ...`
fn caused(kids: &[Alert]) -> String {
    let names: Vec<String> = kids
        .iter()
        .map(|k| match Entity::of(&k.labels) {
            Some(e) => format!("{} {e}", k.name()),
            None => k.name().to_owned(),
        })
        .collect();
    format!("{} alerts folded: {}", kids.len(), names.join(", "))
}

/// How much one firing alert of a severity takes off its own entity's score.
fn penalty(labels: &Labels) -> u32 {
    match labels.get("severity").map(String::as_str) {
        Some("critical") => 60,
        Some("warning") => 25,
        _ => 10,
    }
}

/// A score per entity with alerts on it or below it: 100 is healthy, 0 is down. An alert
/// takes its severity's penalty off its own entity and a tenth of it (at least 1) off each
/// ancestor.
pub fn scores(topology: &Topology, alerts: &[Alert]) -> BTreeMap<Entity, u8> {
    let mut lost: BTreeMap<Entity, u32> = BTreeMap::new();
    for a in alerts {
        let Some(e) = Entity::of(&a.labels) else {
            continue;
        };
        let p = penalty(&a.labels);
        for anc in topology.ancestors(&e, &a.labels) {
            *lost.entry(anc).or_default() += (p / 10).max(1);
        }
        *lost.entry(e).or_default() += p;
    }
    lost.into_iter()
        .map(|(e, l)| (e, u8::try_from(100u32.saturating_sub(l)).unwrap_or(0)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane_common::clock::{Clock, ManualClock};

    fn alert(pairs: &[(&str, &str)]) -> Alert {
        Alert {
            labels: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            annotations: Labels::new(),
            active_since: ManualClock::new().now(),
            folded: Vec::new(),
        }
    }

    #[test]
    fn children_fold_under_the_topmost_failing_ancestor() {
        let mut t = Topology::new();
        t.add(
            Entity::new(Level::Zone, "z1"),
            Entity::new(Level::Datacenter, "dc1"),
        );
        t.add(
            Entity::new(Level::Node, "n1"),
            Entity::new(Level::Zone, "z1"),
        );
        t.add(
            Entity::new(Level::Service, "web@n1"),
            Entity::new(Level::Node, "n1"),
        );
        t.add(
            Entity::new(Level::Endpoint, "10.0.0.1:80"),
            Entity::new(Level::Service, "web@n1"),
        );
        let alerts = vec![
            alert(&[("alertname", "EndpointDown"), ("endpoint", "10.0.0.1:80")]),
            alert(&[
                ("alertname", "NodeDown"),
                ("node", "n1"),
                ("severity", "critical"),
            ]),
            alert(&[("alertname", "NodeDown"), ("node", "n2")]),
            alert(&[("alertname", "ServiceSlow"), ("service", "web@n1")]),
        ];
        let f = fold(&t, alerts.clone());
        assert_eq!(f.notify.len(), 2, "n1's root and the unrelated n2");
        let root = f.notify.iter().find(|a| a.labels["node"] == "n1").unwrap();
        assert_eq!(root.folded.len(), 2);
        assert!(root.annotations["caused"].starts_with("2 alerts folded"));
        assert!(f.folded.iter().all(|(_, r)| *r == root.fingerprint()));

        // The zone fails too: everything under it folds under the zone.
        let mut more = alerts;
        more.push(alert(&[("alertname", "ZoneDown"), ("zone", "z1")]));
        let f = fold(&t, more);
        assert_eq!(f.notify.len(), 2);
        let zone = f.notify.iter().find(|a| a.name() == "ZoneDown").unwrap();
        assert_eq!(zone.folded.len(), 3);

        let s = scores(&t, &f.notify);
        assert!(s[&Entity::new(Level::Zone, "z1")] < 100);
        assert!(s[&Entity::new(Level::Datacenter, "dc1")] < 100);
    }

    #[test]
    fn labels_stand_in_for_an_unknown_topology() {
        let f = fold(
            &Topology::new(),
            vec![
                alert(&[
                    ("alertname", "EndpointDown"),
                    ("endpoint", "e1"),
                    ("node", "n1"),
                ]),
                alert(&[("alertname", "NodeDown"), ("node", "n1")]),
            ],
        );
        assert_eq!(f.notify.len(), 1);
        assert_eq!(f.notify[0].folded.len(), 1);
    }
}
