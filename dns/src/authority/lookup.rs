//! What a zone says about one name and type (RFC 1034 section 4.3.2, RFC 4592), without writing
//! anything: the result borrows the zone's pre-encoded sets.
//!
//! CNAME chains are followed inside the zone up to [`MAX_CHAIN`] links. A chain that leaves the
//! zone, or reaches a zone cut, ends with [`End::Outside`]: the client resolves the rest.

use super::zone::{Node, RrSet, ZoneData};
use crate::wire::TYPE_ANY;
use crate::wire::name::{MAX_LABELS, MAX_LEN, label_starts};

/// The longest CNAME chain followed.
pub const MAX_CHAIN: usize = 8;
/// TYPE CNAME.
const CNAME: u16 = 5;
/// TYPE NS.
const NS: u16 = 2;

/// How a lookup ended.
#[derive(Debug, Clone, Copy)]
pub enum End<'z> {
    /// The set asked for, at the last name of the chain (synthesized from a wildcard if need be).
    Answer(&'z RrSet),
    /// The name exists (perhaps as an empty non-terminal) but has no set of that type.
    NoData,
    /// The name does not exist.
    NxDomain,
    /// The name is at or below a zone cut: refer to the cut's name servers. `cut` is the offset
    /// of the cut's name inside the queried name.
    Referral {
        /// Offset of the cut inside the queried name.
        cut: usize,
        /// The NS set at the cut.
        ns: &'z RrSet,
    },
    /// The chain left the zone (or reached a cut); the answer is the chain alone.
    Outside,
    /// The chain was longer than [`MAX_CHAIN`]; the answer is the chain so far.
    TooLong,
}

/// The CNAME sets followed, then how it ended.
#[derive(Debug, Clone, Copy)]
pub struct Lookup<'z> {
    chain: [Option<&'z RrSet>; MAX_CHAIN],
    chain_len: usize,
    /// How it ended.
    pub end: End<'z>,
}

impl<'z> Lookup<'z> {
    /// The CNAME sets, in order; the first is owned by the queried name, each next one by the
    /// previous one's target.
    pub fn chain(&self) -> impl Iterator<Item = &'z RrSet> + '_ {
        self.chain[..self.chain_len]
            .iter()
            .map(|s| s.expect("invariant: filled up to chain_len"))
    }
    /// The owner of the last set: the queried name when the chain is empty.
    pub fn last_target(&self) -> Option<&'z [u8]> {
        self.chain_len
            .checked_sub(1)
            .and_then(|i| self.chain[i])
            .and_then(|s| s.records()[0].target())
    }
}

enum Found<'z> {
    Node(&'z Node),
    NxDomain,
    Referral { cut: usize, ns: &'z RrSet },
}

/// Looks up `qname` (lower-case wire, inside `zone`) for `qtype`.
pub fn lookup<'z>(zone: &'z ZoneData, qname: &[u8], qtype: u16) -> Lookup<'z> {
    let mut out = Lookup {
        chain: [None; MAX_CHAIN],
        chain_len: 0,
        end: End::NxDomain,
    };
    let mut name: &[u8] = qname;
    loop {
        let node = match find(zone, name) {
            Found::Node(node) => node,
            Found::NxDomain => {
                out.end = End::NxDomain;
                return out;
            }
            Found::Referral { cut, ns } => {
                out.end = if out.chain_len == 0 {
                    End::Referral { cut, ns }
                } else {
                    End::Outside
                };
                return out;
            }
        };
        let wanted = if qtype == TYPE_ANY {
            //= https://www.rfc-editor.org/rfc/rfc8482#section-4.1
            //# A DNS responder can choose to select one or a larger subset of the
            //# available RRsets at the QNAME.
            node.rrsets().first()
        } else {
            node.rrset(qtype)
        };
        if let Some(set) = wanted {
            out.end = End::Answer(set);
            return out;
        }
        let Some(cname) = node.rrset(CNAME).filter(|_| qtype != CNAME) else {
            out.end = End::NoData;
            return out;
        };
        if out.chain_len == MAX_CHAIN {
            out.end = End::TooLong;
            return out;
        }
        out.chain[out.chain_len] = Some(cname);
        out.chain_len += 1;
        match cname.records()[0].target() {
            Some(target) if zone.contains(target) => name = target,
            _ => {
                out.end = End::Outside;
                return out;
            }
        }
    }
}

/// The node for `name`: exact, through a wildcard, or the reason there is none.
fn find<'z>(zone: &'z ZoneData, name: &[u8]) -> Found<'z> {
    let mut starts = [0u8; MAX_LABELS];
    let n = label_starts(name, &mut starts);
    let z = zone.origin_labels();
    if n <= z {
        return Found::Node(zone.apex());
    }
    let below = n - z;
    if zone.has_delegations() {
        // Top down, so a cut above the name wins over anything below it (RFC 1034 4.3.2 step 3b).
        for i in (0..below).rev() {
            match zone.node(&name[usize::from(starts[i])..]) {
                None => return wildcard(zone, name, &starts, i + 1),
                Some(node) if node.is_delegation() => {
                    let ns = node.rrset(NS).expect("invariant: a delegation has NS");
                    return Found::Referral {
                        cut: usize::from(starts[i]),
                        ns,
                    };
                }
                Some(node) if i == 0 => return Found::Node(node),
                Some(_) => {}
            }
        }
        return Found::Node(zone.apex());
    }
    if let Some(node) = zone.node(name) {
        return Found::Node(node);
    }
    for i in 1..below {
        if zone.node(&name[usize::from(starts[i])..]).is_some() {
            return wildcard(zone, name, &starts, i);
        }
    }
    wildcard(zone, name, &starts, below)
}

/// `name` does not exist and its closest encloser starts at label `encloser`: the source of
/// synthesis is `*.<closest encloser>` if that exists (RFC 4592 section 3.3.1).
fn wildcard<'z>(
    zone: &'z ZoneData,
    name: &[u8],
    starts: &[u8; MAX_LABELS],
    encloser: usize,
) -> Found<'z> {
    let encloser = &name[usize::from(starts[encloser])..];
    let mut buf = [0u8; MAX_LEN + 2];
    if encloser.len() + 2 > MAX_LEN {
        return Found::NxDomain;
    }
    buf[0] = 1;
    buf[1] = b'*';
    buf[2..2 + encloser.len()].copy_from_slice(encloser);
    match zone.node(&buf[..2 + encloser.len()]) {
        Some(node) => Found::Node(node),
        None => Found::NxDomain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authority::testing::{n, set, zone};
    use crate::wire::name::encode;
    use dataplane_common::model::RData;

    fn w(s: &str) -> Vec<u8> {
        let mut v = Vec::new();
        encode(&n(s), &mut v);
        v
    }

    fn data() -> ZoneData {
        let a = |o| RData::A {
            address: [10, 0, 0, o].into(),
        };
        let cname = |t: &str| RData::Cname { target: n(t) };
        let sets = vec![
            set("www.example.", 60, vec![a(1)]),
            set("alias.example.", 60, vec![cname("www.example.")]),
            set("loop1.example.", 60, vec![cname("loop2.example.")]),
            set("loop2.example.", 60, vec![cname("loop1.example.")]),
            set("out.example.", 60, vec![cname("www.elsewhere.")]),
            set("*.apps.example.", 60, vec![a(7)]),
            set("x.blocked.apps.example.", 60, vec![a(8)]),
            set(
                "sub.example.",
                60,
                vec![RData::Ns {
                    host: n("ns.sub.example."),
                }],
            ),
            set("ns.sub.example.", 60, vec![a(9)]),
        ];
        ZoneData::build(&zone("example."), sets, &mut 0)
    }

    #[test]
    fn answers_chains_and_negatives() {
        let z = data();
        assert!(matches!(
            lookup(&z, &w("www.example."), 1).end,
            End::Answer(_)
        ));
        assert!(matches!(
            lookup(&z, &w("www.example."), 28).end,
            End::NoData
        ));
        assert!(matches!(
            lookup(&z, &w("nope.example."), 1).end,
            End::NxDomain
        ));
        let l = lookup(&z, &w("alias.example."), 1);
        assert_eq!(l.chain().count(), 1);
        assert!(matches!(l.end, End::Answer(s) if s.rtype() == 1));
        assert_eq!(l.last_target(), Some(&w("www.example.")[..]));
        assert!(
            matches!(lookup(&z, &w("alias.example."), 5).end, End::Answer(s) if s.rtype() == 5)
        );
        let l = lookup(&z, &w("loop1.example."), 1);
        assert!(matches!(l.end, End::TooLong));
        assert_eq!(l.chain().count(), MAX_CHAIN);
        assert!(matches!(
            lookup(&z, &w("out.example."), 1).end,
            End::Outside
        ));
    }

    #[test]
    fn wildcards_follow_the_closest_encloser() {
        let z = data();
        assert!(matches!(
            lookup(&z, &w("web.apps.example."), 1).end,
            End::Answer(_)
        ));
        // The closest encloser of `a.b.apps` is `apps`: the wildcard covers every depth below it.
        assert!(matches!(
            lookup(&z, &w("a.b.apps.example."), 1).end,
            End::Answer(_)
        ));
        // `blocked.apps.example.` exists as an empty non-terminal: it blocks the wildcard.
        assert!(matches!(
            lookup(&z, &w("blocked.apps.example."), 1).end,
            End::NoData
        ));
        assert!(matches!(
            lookup(&z, &w("y.blocked.apps.example."), 1).end,
            End::NxDomain
        ));
    }

    #[test]
    fn names_at_or_below_a_cut_are_referred() {
        let z = data();
        for q in ["sub.example.", "www.sub.example.", "ns.sub.example."] {
            match lookup(&z, &w(q), 1).end {
                End::Referral { cut, ns } => {
                    assert_eq!(&w(q)[cut..], &w("sub.example.")[..]);
                    assert_eq!(ns.rtype(), 2);
                }
                other => panic!("{q}: {other:?}"),
            }
        }
        assert!(matches!(lookup(&z, &w("example."), 2).end, End::Answer(_)));
    }
}
