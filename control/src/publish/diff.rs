//! What to write: the desired state against the stored one. PURE.

use super::Desired;
use dataplane_common::model::keys;
use dataplane_common::store::{Compare, KeyValue, Op, Revision, Txn};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The most operations in one transaction: etcd refuses more than `--max-txn-ops` (128 by
/// default), and this leaves room below it.
pub const MAX_TXN_OPS: usize = 100;

/// The prefixes control writes under; `records/` and `vips/` are shared with users.
pub const PREFIXES: [&str; 4] = [keys::RECORDS, keys::VIPS, keys::SERVICES, keys::ENDPOINTS];

/// One stored key, as far as publishing cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The stored value.
    pub value: Vec<u8>,
    /// Its `mod_revision`: every write to it is guarded by this.
    pub mod_revision: Revision,
    /// Whether control owns it (see [`is_owned`]).
    pub owned: bool,
}

/// The stored keys under [`PREFIXES`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Current {
    /// Key to what is stored.
    pub entries: BTreeMap<String, Stored>,
}

impl Current {
    /// The state from listed keys.
    pub fn from_kvs(kvs: impl IntoIterator<Item = KeyValue>) -> Self {
        let entries = kvs
            .into_iter()
            .map(|kv| {
                let owned = is_owned(&kv.key, &kv.value);
                (
                    kv.key,
                    Stored {
                        value: kv.value,
                        mod_revision: kv.mod_revision,
                        owned,
                    },
                )
            })
            .collect();
        Self { entries }
    }

    /// Records that `txn` was applied at `revision`.
    pub fn applied(&mut self, txn: &Txn, revision: Revision) {
        for op in &txn.ops {
            match op {
                Op::Put { key, value, .. } => {
                    self.entries.insert(
                        key.clone(),
                        Stored {
                            value: value.clone(),
                            mod_revision: revision,
                            owned: true,
                        },
                    );
                }
                Op::Delete { key } => {
                    self.entries.remove(key);
                }
            }
        }
    }

    /// How many keys control owns.
    pub fn owned(&self) -> usize {
        self.entries.values().filter(|s| s.owned).count()
    }
}

/// Whether control owns `key`: everything under `services/` and `endpoints/`, and a record
/// set or VIP whose `source` is `kubernetes`. An undecodable record or VIP is not owned: it
/// is left for its writer (or an operator) to fix.
pub fn is_owned(key: &str, value: &[u8]) -> bool {
    if key.starts_with(keys::SERVICES) || key.starts_with(keys::ENDPOINTS) {
        return true;
    }
    #[derive(Deserialize)]
    struct Source {
        #[serde(default)]
        source: Option<String>,
    }
    serde_json::from_slice::<Source>(value)
        .ok()
        .and_then(|s| s.source)
        .is_some_and(|s| s == crate::translate::SOURCE)
}

/// The writes that turn `current` into `desired`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Transactions of at most [`MAX_TXN_OPS`] operations, each guarded.
    pub txns: Vec<Txn>,
    /// Keys created or changed.
    pub puts: usize,
    /// Keys deleted.
    pub deletes: usize,
    /// Keys wanted but held by a user object, left alone.
    pub user_held: Vec<String>,
}

impl Plan {
    /// Whether nothing is to be written.
    pub fn is_empty(&self) -> bool {
        self.txns.is_empty()
    }
}

/// Plans the writes from `current` to `desired`.
///
/// - A wanted key that is absent is created, guarded by "still absent".
/// - A wanted key control owns whose value differs is overwritten, guarded by its
///   `mod_revision`; an equal one is not written.
/// - A wanted key held by a user is left alone and listed in [`Plan::user_held`].
/// - An owned key that is not wanted is deleted, guarded by its `mod_revision`.
pub fn diff(desired: &Desired, current: &Current) -> Plan {
    let mut plan = Plan::default();
    let mut writes: Vec<(Compare, Op)> = Vec::new();
    for (key, value) in &desired.objects {
        let mod_revision = match current.entries.get(key) {
            None => 0,
            Some(stored) if !stored.owned => {
                plan.user_held.push(key.clone());
                continue;
            }
            Some(stored) if stored.value == *value => continue,
            Some(stored) => stored.mod_revision,
        };
        plan.puts += 1;
        writes.push((
            Compare {
                key: key.clone(),
                mod_revision,
            },
            Op::Put {
                key: key.clone(),
                value: value.clone(),
                lease: None,
            },
        ));
    }
    for (key, stored) in &current.entries {
        if stored.owned && !desired.objects.contains_key(key) {
            plan.deletes += 1;
            writes.push((
                Compare {
                    key: key.clone(),
                    mod_revision: stored.mod_revision,
                },
                Op::Delete { key: key.clone() },
            ));
        }
    }
    for chunk in writes.chunks(MAX_TXN_OPS) {
        let (compares, ops) = chunk.iter().cloned().unzip();
        plan.txns.push(Txn { compares, ops });
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str, mod_revision: Revision) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            create_revision: 1,
            mod_revision,
            version: 1,
            lease: 0,
        }
    }

    fn want(pairs: &[(&str, &str)]) -> Desired {
        Desired {
            objects: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
                .collect(),
        }
    }

    const K8S: &str = r#"{"v":1,"source":"kubernetes"}"#;
    const USER: &str = r#"{"v":1,"source":"user"}"#;

    #[test]
    fn ownership_follows_prefix_and_source() {
        assert!(is_owned("/dataplane/services/default/web", b"anything"));
        assert!(is_owned("/dataplane/endpoints/default/web", b"{}"));
        assert!(is_owned("/dataplane/records/a./A", K8S.as_bytes()));
        assert!(!is_owned("/dataplane/records/a./A", USER.as_bytes()));
        // No source is a user object (the model's default), garbage is nobody's.
        assert!(!is_owned("/dataplane/vips/1.2.3.4/80/tcp", br#"{"v":1}"#));
        assert!(!is_owned("/dataplane/vips/1.2.3.4/80/tcp", b"{garbage"));
    }

    #[test]
    fn only_changes_are_written_each_guarded() {
        let current = Current::from_kvs([
            kv("/dataplane/records/same./A", K8S, 5),
            kv("/dataplane/records/changed./A", K8S, 6),
            kv("/dataplane/records/stale./A", K8S, 7),
            kv("/dataplane/records/mine./A", USER, 8),
            kv("/dataplane/records/user-only./A", USER, 9),
        ]);
        let desired = want(&[
            ("/dataplane/records/same./A", K8S),
            (
                "/dataplane/records/changed./A",
                r#"{"v":1,"source":"kubernetes","ttl":5}"#,
            ),
            ("/dataplane/records/new./A", K8S),
            ("/dataplane/records/mine./A", K8S),
        ]);
        let plan = diff(&desired, &current);
        assert_eq!((plan.puts, plan.deletes), (2, 1));
        assert_eq!(plan.user_held, ["/dataplane/records/mine./A"]);
        assert_eq!(plan.txns.len(), 1);
        let txn = &plan.txns[0];
        let guards: Vec<(&str, Revision)> = txn
            .compares
            .iter()
            .map(|c| (c.key.as_str(), c.mod_revision))
            .collect();
        assert_eq!(
            guards,
            [
                ("/dataplane/records/changed./A", 6),
                ("/dataplane/records/new./A", 0),
                ("/dataplane/records/stale./A", 7),
            ]
        );
        assert!(matches!(&txn.ops[2], Op::Delete { key } if key.ends_with("stale./A")));
    }

    #[test]
    fn an_empty_desired_state_deletes_owned_keys_only() {
        let current = Current::from_kvs([
            kv("/dataplane/services/default/web", "{}", 3),
            kv("/dataplane/vips/10.0.0.1/80/tcp", USER, 4),
        ]);
        let plan = diff(&Desired::default(), &current);
        assert_eq!((plan.puts, plan.deletes), (0, 1));
        assert_eq!(
            plan.txns[0].ops,
            [Op::Delete {
                key: "/dataplane/services/default/web".into()
            }]
        );
    }

    #[test]
    fn large_plans_are_split_into_bounded_transactions() {
        let pairs: Vec<(String, &str)> = (0..250)
            .map(|i| (format!("/dataplane/records/n{i:03}./A"), K8S))
            .collect();
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let plan = diff(&want(&refs), &Current::default());
        let sizes: Vec<usize> = plan.txns.iter().map(|t| t.ops.len()).collect();
        assert_eq!(sizes, [100, 100, 50]);
        assert!(plan.txns.iter().all(|t| t.compares.len() == t.ops.len()));
    }

    #[test]
    fn applying_a_plan_makes_the_next_diff_empty() {
        let mut current = Current::from_kvs([kv("/dataplane/records/stale./A", K8S, 2)]);
        let desired = want(&[("/dataplane/records/new./A", K8S)]);
        let plan = diff(&desired, &current);
        for txn in &plan.txns {
            current.applied(txn, 10);
        }
        assert!(diff(&desired, &current).is_empty());
        assert_eq!(
            current.entries["/dataplane/records/new./A"].mod_revision,
            10
        );
        assert_eq!(current.owned(), 1);
    }
}
