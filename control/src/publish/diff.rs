//! What to write: the desired state against the stored one. PURE.
//!
//! Two ways in: [`diff_after`] walks the whole desired state and the whole stored state
//! side by side (the full reconcile, a page of writes at a time so that a first sync of a
//! million keys never holds all its writes at once), and [`diff_keys`] looks only at the
//! keys a change touched (the steady state).

use super::Desired;
use dataplane_common::model::keys;
use dataplane_common::store::{Compare, KeyValue, Op, Revision, Txn};
use serde::Deserialize;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::iter::Peekable;
use std::ops::Bound::{Excluded, Unbounded};

/// The most writes in one transaction, when the store takes that many
/// ([`dataplane_common::store::Store::max_txn_ops`]; [`writes_per_txn`]). Fuller
/// transactions are fewer raft entries for etcd to commit and apply: a first sync of
/// 400,000 keys took etcd 14-19 CPU-seconds in transactions of 127 writes and 9-11 in
/// transactions of 1,023 (control-bench). Beyond about a thousand they save little, and
/// one apply holds up everything else etcd serves for longer.
pub const MAX_TXN_OPS: usize = 1023;

/// The writes per transaction on etcd's default `--max-txn-ops` (128), which is what
/// [`Plan`] assumes.
pub const ETCD_DEFAULT_TXN_WRITES: usize = 127;

/// The writes one transaction may hold on a store that takes `max_txn_ops` compares (or
/// operations, each list counted on its own): every write has its guard, plus one compare
/// for the leader fence.
pub fn writes_per_txn(max_txn_ops: usize) -> usize {
    max_txn_ops.saturating_sub(1).clamp(1, MAX_TXN_OPS)
}

/// The most key and value bytes in one transaction: etcd refuses a request over
/// `--max-request-bytes` (1.5 MiB by default), and a Service with thousands of endpoints has
/// an endpoints value of hundreds of KiB. A single write larger than this still goes alone.
pub const MAX_TXN_BYTES: usize = 1 << 20;

/// The prefixes control writes under; `records/` and `vips/` are shared with users.
pub const PREFIXES: [&str; 4] = [keys::RECORDS, keys::VIPS, keys::SERVICES, keys::ENDPOINTS];

/// A 64-bit digest of a stored value, the same for the same bytes throughout the process.
/// The store's values are not kept (at a million keys they would double control's memory);
/// what was written is recognised by this. aHash with fixed seeds: SipHash over every value
/// written and listed was 3% of control's CPU in a first sync.
pub fn fingerprint(value: &[u8]) -> u64 {
    static SEEDS: ahash::RandomState = ahash::RandomState::with_seeds(1, 2, 3, 4);
    SEEDS.hash_one(value)
}

/// One stored key, as far as publishing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// The [`fingerprint`] of the stored value.
    pub hash: u64,
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
    owned: usize,
}

/// What a transaction changes in [`Current`] once it succeeds: each key with the
/// [`fingerprint`] of its new value, or `None` for a delete.
pub type Applied = Vec<(String, Option<u64>)>;

impl Current {
    /// The state from listed keys.
    pub fn from_kvs(kvs: impl IntoIterator<Item = KeyValue>) -> Self {
        let mut current = Self::default();
        for kv in kvs {
            current.add(&kv);
        }
        current
    }

    /// Adds one listed key.
    pub fn add(&mut self, kv: &KeyValue) {
        let stored = Stored {
            hash: fingerprint(&kv.value),
            mod_revision: kv.mod_revision,
            owned: is_owned(&kv.key, &kv.value),
        };
        self.insert(kv.key.clone(), stored);
    }

    fn insert(&mut self, key: String, stored: Stored) {
        self.owned += usize::from(stored.owned);
        if let Some(old) = self.entries.insert(key, stored) {
            self.owned -= usize::from(old.owned);
        }
    }

    /// Records that a transaction was applied at `revision`.
    pub fn applied(&mut self, applied: Applied, revision: Revision) {
        for (key, hash) in applied {
            match hash {
                Some(hash) => self.insert(
                    key,
                    Stored {
                        hash,
                        mod_revision: revision,
                        owned: true,
                    },
                ),
                None => {
                    if let Some(old) = self.entries.remove(&key) {
                        self.owned -= usize::from(old.owned);
                    }
                }
            }
        }
    }

    /// How many keys control owns.
    pub fn owned(&self) -> usize {
        self.owned
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
    /// Transactions of at most [`ETCD_DEFAULT_TXN_WRITES`] operations, each guarded.
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

    fn push(&mut self, write: Write) {
        match write {
            Write::Put { .. } => self.puts += 1,
            Write::Delete { .. } => self.deletes += 1,
            Write::UserHeld(key) => {
                self.user_held.push(key);
                return;
            }
        }
        match self.txns.last_mut() {
            Some(txn)
                if fits(
                    txn.ops.len(),
                    txn_bytes(txn),
                    &write,
                    ETCD_DEFAULT_TXN_WRITES,
                ) =>
            {
                write.add_to(txn);
            }
            _ => {
                let mut txn = Txn::default();
                write.add_to(&mut txn);
                self.txns.push(txn);
            }
        }
    }
}

/// The bytes of keys and values in `txn`.
fn txn_bytes(txn: &Txn) -> usize {
    txn.ops
        .iter()
        .map(|op| match op {
            Op::Put { key, value, .. } => key.len() + value.len(),
            Op::Delete { key } => key.len(),
        })
        .sum()
}

/// Whether `write` may join a transaction of `ops` operations and `bytes` bytes, when one
/// takes `max_ops` (see [`writes_per_txn`], [`MAX_TXN_BYTES`]); an empty one takes anything.
pub fn fits(ops: usize, bytes: usize, write: &Write, max_ops: usize) -> bool {
    ops == 0 || (ops < max_ops && bytes + write.bytes() <= MAX_TXN_BYTES)
}

/// What one key needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Create or overwrite, guarded by `mod_revision` (0: still absent).
    Put {
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
        /// The guard.
        mod_revision: Revision,
    },
    /// Delete, guarded by `mod_revision`.
    Delete {
        /// The key.
        key: String,
        /// The guard.
        mod_revision: Revision,
    },
    /// Wanted, but a user object holds it: left alone.
    UserHeld(String),
}

impl Write {
    /// Appends the guarded operation to `txn` (nothing for [`Write::UserHeld`]).
    pub fn add_to(self, txn: &mut Txn) {
        match self {
            Self::Put {
                key,
                value,
                mod_revision,
            } => {
                txn.compares.push(Compare {
                    key: key.clone(),
                    mod_revision,
                });
                txn.ops.push(Op::Put {
                    key,
                    value,
                    lease: None,
                });
            }
            Self::Delete { key, mod_revision } => {
                txn.compares.push(Compare {
                    key: key.clone(),
                    mod_revision,
                });
                txn.ops.push(Op::Delete { key });
            }
            Self::UserHeld(_) => {}
        }
    }

    /// The bytes it adds to a transaction's request: its key and value.
    pub fn bytes(&self) -> usize {
        match self {
            Self::Put { key, value, .. } => key.len() + value.len(),
            Self::Delete { key, .. } => key.len(),
            Self::UserHeld(_) => 0,
        }
    }

    /// The key written.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Put { key, .. } | Self::Delete { key, .. } => Some(key),
            Self::UserHeld(_) => None,
        }
    }

    /// What [`Current`] should record once this is applied.
    pub fn applied(&self) -> Option<(String, Option<u64>)> {
        match self {
            Self::Put { key, value, .. } => Some((key.clone(), Some(fingerprint(value)))),
            Self::Delete { key, .. } => Some((key.clone(), None)),
            Self::UserHeld(_) => None,
        }
    }
}

/// The write one key needs, if any:
///
/// - a wanted key that is absent is created, guarded by "still absent";
/// - a wanted key control owns whose value differs is overwritten, guarded by its
///   `mod_revision`; an equal one is not written;
/// - a wanted key held by a user is left alone ([`Write::UserHeld`]);
/// - an owned key that is not wanted is deleted, guarded by its `mod_revision`.
pub fn write_for(key: &str, want: Option<&[u8]>, stored: Option<&Stored>) -> Option<Write> {
    match (want, stored) {
        (None, None) => None,
        (None, Some(s)) => s.owned.then(|| Write::Delete {
            key: key.to_owned(),
            mod_revision: s.mod_revision,
        }),
        (Some(_), Some(s)) if !s.owned => Some(Write::UserHeld(key.to_owned())),
        (Some(value), Some(s)) if s.hash == fingerprint(value) => None,
        (Some(value), stored) => Some(Write::Put {
            key: key.to_owned(),
            value: value.to_vec(),
            mod_revision: stored.map_or(0, |s| s.mod_revision),
        }),
    }
}

/// A page of a full reconcile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// At most the number of writes asked for, user-held keys included.
    pub writes: Vec<Write>,
    /// The last key looked at: the next page starts after it. `None`: nothing is left.
    pub next: Option<String>,
}

/// The writes for the keys after `after` (from the first for `None`) in `desired` or
/// `current`, up to `max` of them. `desired` must be in key order.
pub fn diff_after<'a>(
    desired: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    current: &Current,
    after: Option<&str>,
    max: usize,
) -> Page {
    let stored = match after {
        None => current.entries.range::<str, _>(..),
        Some(after) => current
            .entries
            .range::<str, _>((Excluded(after), Unbounded)),
    };
    let mut want = desired.into_iter().peekable();
    let mut have: Peekable<_> = stored.peekable();
    let mut page = Page::default();
    while page.writes.len() < max {
        let order = match (want.peek(), have.peek()) {
            (None, None) => return Page { next: None, ..page },
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((w, _)), Some((h, _))) => (*w).cmp(h.as_str()),
        };
        let (key, write) = match order {
            Ordering::Less => {
                let (k, v) = want.next().expect("invariant: peeked");
                (k, write_for(k, Some(v), None))
            }
            Ordering::Greater => {
                let (k, s) = have.next().expect("invariant: peeked");
                (k.as_str(), write_for(k, None, Some(s)))
            }
            Ordering::Equal => {
                let (k, v) = want.next().expect("invariant: peeked");
                let (_, s) = have.next().expect("invariant: peeked");
                (k, write_for(k, Some(v), Some(s)))
            }
        };
        page.writes.extend(write);
        page.next = Some(key.to_owned());
    }
    if want.peek().is_none() && have.peek().is_none() {
        page.next = None;
    }
    page
}

/// Plans every write from `current` to `desired` (in key order) at once.
pub fn diff<'a>(desired: impl IntoIterator<Item = (&'a str, &'a [u8])>, current: &Current) -> Plan {
    let page = diff_after(desired, current, None, usize::MAX);
    let mut plan = Plan::default();
    for write in page.writes {
        plan.push(write);
    }
    plan
}

/// The writes for `keys` only (each once), `want` giving their desired values.
pub fn diff_keys<'a, 'k>(
    keys: impl IntoIterator<Item = &'k str>,
    want: impl Fn(&str) -> Option<&'a [u8]>,
    current: &Current,
) -> Vec<Write> {
    keys.into_iter()
        .filter_map(|k| write_for(k, want(k), current.entries.get(k)))
        .collect()
}

impl Desired {
    /// Every key with its value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.objects.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }
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
        let plan = diff(desired.iter(), &current);
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
        let plan = diff(Desired::default().iter(), &current);
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
        let plan = diff(want(&refs).iter(), &Current::default());
        let sizes: Vec<usize> = plan.txns.iter().map(|t| t.ops.len()).collect();
        assert_eq!(sizes, [127, 123]);
        assert!(plan.txns.iter().all(|t| t.compares.len() == t.ops.len()));
    }

    #[test]
    fn large_values_are_split_by_bytes() {
        let big = format!(r#"{{"v":1,"pad":"{}"}}"#, "x".repeat(400 << 10));
        let pairs: Vec<(String, &str)> = (0..5)
            .map(|i| (format!("/dataplane/endpoints/a/s{i}"), big.as_str()))
            .chain([("/dataplane/endpoints/b/small".to_owned(), "{}")])
            .collect();
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let plan = diff(want(&refs).iter(), &Current::default());
        let sizes: Vec<usize> = plan.txns.iter().map(|t| t.ops.len()).collect();
        assert_eq!(
            sizes,
            [2, 2, 2],
            "two 400 KiB values fit in 1 MiB, three do not"
        );
        assert!(plan.txns.iter().all(|t| txn_bytes(t) <= MAX_TXN_BYTES));
        let huge = "x".repeat(2 << 20);
        let plan = diff(
            want(&[("/dataplane/endpoints/a/huge", huge.as_str())]).iter(),
            &Current::default(),
        );
        assert_eq!(
            plan.txns.len(),
            1,
            "a write over the budget still goes, alone"
        );
    }

    #[test]
    fn applying_a_plan_makes_the_next_diff_empty() {
        let mut current = Current::from_kvs([kv("/dataplane/records/stale./A", K8S, 2)]);
        let desired = want(&[("/dataplane/records/new./A", K8S)]);
        let plan = diff(desired.iter(), &current);
        for txn in &plan.txns {
            let applied = txn
                .ops
                .iter()
                .map(|op| match op {
                    Op::Put { key, value, .. } => (key.clone(), Some(fingerprint(value))),
                    Op::Delete { key } => (key.clone(), None),
                })
                .collect();
            current.applied(applied, 10);
        }
        assert!(diff(desired.iter(), &current).is_empty());
        assert_eq!(
            current.entries["/dataplane/records/new./A"].mod_revision,
            10
        );
        assert_eq!(current.owned(), 1);
    }
}
