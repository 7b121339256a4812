//! Which records a server may speak for: a server for zone Z is trusted only for names at or
//! below Z (its bailiwick). Referrals MUST go down, glue MUST sit inside the referring zone.
//!
//! Names are uncompressed lower-case wire names, as [`crate::wire::message::Rr`] holds them.

use crate::wire::message::{Rr, TYPE_A, TYPE_AAAA, TYPE_NS};
use std::net::IpAddr;

/// Whether `name` is `zone` or below it (label-wise, not byte-wise: `xexample.` is not below
/// `example.`).
pub fn is_at_or_below(name: &[u8], zone: &[u8]) -> bool {
    if zone.len() > name.len() {
        return false;
    }
    let mut pos = 0;
    while pos < name.len() {
        if name.len() - pos == zone.len() {
            return name[pos..].eq_ignore_ascii_case(zone);
        }
        pos += 1 + usize::from(name[pos]);
    }
    false
}

/// The number of labels of `name`, the root not counted.
pub fn labels(name: &[u8]) -> usize {
    let (mut pos, mut n) = (0, 0);
    while let Some(&l) = name.get(pos) {
        if l == 0 {
            break;
        }
        n += 1;
        pos += 1 + usize::from(l);
    }
    n
}

/// The suffix of `name` with its last `keep` labels (the root not counted).
pub fn suffix(name: &[u8], keep: usize) -> &[u8] {
    let mut drop = labels(name).saturating_sub(keep);
    let mut pos = 0;
    while drop > 0 {
        pos += 1 + usize::from(name[pos]);
        drop -= 1;
    }
    &name[pos..]
}

/// A referral read from an authority section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referral {
    /// The child zone.
    pub zone: Box<[u8]>,
    /// Its name servers' names.
    pub ns: Vec<Box<[u8]>>,
    /// The smallest NS TTL.
    pub ttl: u32,
}

/// The referral in `authority`, if it goes strictly below `cut` (the zone of the server that
/// sent it) and covers `qname`. A referral sideways or upwards is a lame answer: `None`.
pub fn referral(cut: &[u8], qname: &[u8], authority: &[Rr]) -> Option<Referral> {
    let first = authority.iter().find(|r| r.rtype == TYPE_NS)?;
    let zone = &first.owner;
    if zone.len() <= cut.len() || !is_at_or_below(zone, cut) || !is_at_or_below(qname, zone) {
        return None;
    }
    let mut ns: Vec<Box<[u8]>> = Vec::new();
    let mut ttl = u32::MAX;
    for r in authority
        .iter()
        .filter(|r| r.rtype == TYPE_NS && r.owner == *zone)
    {
        if let Some(t) = r.target()
            && !ns.iter().any(|n| **n == *t)
        {
            ns.push(t.into());
            ttl = ttl.min(r.ttl);
        }
    }
    (!ns.is_empty()).then(|| Referral {
        zone: zone.clone(),
        ns,
        ttl,
    })
}

/// The glue addresses for `ns` in `additional` that the server for `cut` may give: A and AAAA
/// records owned by `ns`, and only when `ns` is inside `cut`.
pub fn glue<'a>(
    cut: &[u8],
    ns: &'a [u8],
    additional: &'a [Rr],
) -> impl Iterator<Item = IpAddr> + 'a {
    let trusted = is_at_or_below(ns, cut);
    additional
        .iter()
        .filter(move |r| trusted && (r.rtype == TYPE_A || r.rtype == TYPE_AAAA) && *r.owner == *ns)
        .filter_map(Rr::address)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rr(owner: &[u8], rtype: u16, rdata: &[u8]) -> Rr {
        Rr {
            owner: owner.into(),
            rtype,
            class: 1,
            ttl: 60,
            rdata: rdata.into(),
        }
    }

    #[test]
    fn below_is_label_wise() {
        assert!(is_at_or_below(b"\x01a\x07example\x00", b"\x07example\x00"));
        assert!(is_at_or_below(b"\x07example\x00", b"\x07example\x00"));
        assert!(is_at_or_below(b"\x07example\x00", b"\x00"));
        assert!(!is_at_or_below(b"\x08xexample\x00", b"\x07example\x00"));
        assert!(!is_at_or_below(b"\x00", b"\x07example\x00"));
        assert_eq!(suffix(b"\x01a\x01b\x01c\x00", 2), b"\x01b\x01c\x00");
        assert_eq!(labels(b"\x01a\x01b\x00"), 2);
    }

    #[test]
    fn referrals_must_go_down_and_cover_the_name() {
        let auth = [rr(b"\x01b\x01c\x00", TYPE_NS, b"\x02ns\x01b\x01c\x00")];
        let q = b"\x01a\x01b\x01c\x00";
        let r = referral(b"\x01c\x00", q, &auth).unwrap();
        assert_eq!(&*r.zone, b"\x01b\x01c\x00");
        // From the server of b.c itself (sideways) or of a.b.c (upwards): lame.
        assert!(referral(b"\x01b\x01c\x00", q, &auth).is_none());
        assert!(referral(q, q, &auth).is_none());
        // Not covering the question.
        assert!(referral(b"\x01c\x00", b"\x01x\x01c\x00", &auth).is_none());
    }

    #[test]
    fn glue_outside_the_referring_zone_is_ignored() {
        let add = [
            rr(b"\x02ns\x01b\x01c\x00", TYPE_A, &[192, 0, 2, 1]),
            rr(b"\x02ns\x01e\x00", TYPE_A, &[192, 0, 2, 66]),
        ];
        assert_eq!(glue(b"\x01c\x00", b"\x02ns\x01b\x01c\x00", &add).count(), 1);
        // The server of c. cannot vouch for ns.e.
        assert_eq!(glue(b"\x01c\x00", b"\x02ns\x01e\x00", &add).count(), 0);
    }
}
