//! The fast path against a slow path: for generated zones and queries, the bytes the
//! [`Responder`] writes decode (with hickory-proto) to the same message that a plain reference
//! answerer builds straight from the model records, section by section.
//!
//! The reference follows RFC 1034 section 4.3.2 for what it covers: exact matches, CNAME
//! chains inside the zone, empty non-terminals (NODATA), NXDOMAIN, and the SOA with the
//! RFC 2308 negative TTL in the authority section. Wildcards and delegations have their own
//! hand-written tests in `tests.rs`.

use super::{Options, Outcome, Responder, Transport};
use crate::authority::Catalog;
use dataplane_common::model::{AnswerPolicy, Name, RData, RecordSet, Soa, Zone};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name as HName, RData as HData, Record, RecordType};
use proptest::prelude::*;
use std::collections::{BTreeMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};

const ORIGIN: &str = "z.test.";
const LABELS: [&str; 5] = ["a", "b", "www", "mx", "c-1"];

/// One generated owner: a CNAME alone, or some other sets.
#[derive(Debug, Clone)]
enum Node {
    Alias { ttl: u32, target: String },
    Data(Vec<(u32, RData)>),
}

fn owner() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(&LABELS[..]), 1..=2)
        .prop_map(|ls| format!("{}.{ORIGIN}", ls.join(".")))
}

fn data() -> impl Strategy<Value = RData> {
    prop_oneof![
        any::<u32>().prop_map(|a| RData::A {
            address: Ipv4Addr::from(a)
        }),
        any::<u128>().prop_map(|a| RData::Aaaa {
            address: Ipv6Addr::from(a)
        }),
        "[a-z0-9 ]{0,20}".prop_map(|t| RData::Txt { strings: vec![t] }),
        (any::<u16>(), owner()).prop_map(|(p, e)| RData::Mx {
            preference: p,
            exchange: e.parse().unwrap()
        }),
    ]
}

fn node() -> impl Strategy<Value = Node> {
    prop_oneof![
        1 => (1u32..3600, prop_oneof![owner(), Just("elsewhere.example.".to_owned())])
            .prop_map(|(ttl, target)| Node::Alias { ttl, target }),
        3 => prop::collection::vec((1u32..3600, data()), 1..5).prop_map(Node::Data),
    ]
}

fn zone_nodes() -> impl Strategy<Value = BTreeMap<String, Node>> {
    prop::collection::btree_map(owner(), node(), 1..12)
}

fn zone(minimum: u32) -> Zone {
    Zone {
        origin: ORIGIN.parse().unwrap(),
        ttl: 300,
        soa: Soa {
            mname: format!("ns.{ORIGIN}").parse().unwrap(),
            rname: format!("h.{ORIGIN}").parse().unwrap(),
            serial: 1,
            refresh: 2,
            retry: 3,
            expire: 4,
            minimum,
        },
        ns: vec![format!("ns.{ORIGIN}").parse().unwrap()],
    }
}

/// Model record sets, one per (owner, type); TTLs of one set are made equal (the lowest).
fn record_sets(nodes: &BTreeMap<String, Node>) -> Vec<RecordSet> {
    let mut sets: BTreeMap<(String, u16), RecordSet> = BTreeMap::new();
    for (owner, node) in nodes {
        let entries: Vec<(u32, RData)> = match node {
            Node::Alias { ttl, target } => vec![(
                *ttl,
                RData::Cname {
                    target: target.parse().unwrap(),
                },
            )],
            Node::Data(d) => d.clone(),
        };
        for (ttl, rdata) in entries {
            let set = sets
                .entry((owner.clone(), rdata.record_type().code()))
                .or_insert_with(|| RecordSet {
                    name: owner.parse::<Name>().unwrap(),
                    ttl,
                    records: Vec::new(),
                    policy: AnswerPolicy::All,
                    affinity_timeout: None,
                    source: "user".into(),
                });
            set.ttl = set.ttl.min(ttl);
            if !set.records.contains(&rdata) {
                set.records.push(rdata);
            }
        }
    }
    sets.into_values().collect()
}

/// A comparable record: owner (lower case), type, TTL, data as text.
type Line = (String, String, u32, String);

fn lines(records: &[Record]) -> Vec<Line> {
    let mut out: Vec<Line> = records
        .iter()
        .map(|r| {
            let data = match &r.data {
                HData::TXT(txt) => txt
                    .txt_data
                    .iter()
                    .map(|s| format!("\"{}\"", String::from_utf8_lossy(s)))
                    .collect::<Vec<_>>()
                    .join(" "),
                other => other.to_string(),
            };
            (
                r.name.to_ascii().to_ascii_lowercase(),
                r.record_type().to_string(),
                r.ttl,
                data,
            )
        })
        .collect();
    out.sort();
    out
}

fn model_line(owner: &str, ttl: u32, rdata: &RData) -> Line {
    let text = match rdata {
        RData::A { address } => address.to_string(),
        RData::Aaaa { address } => address.to_string(),
        RData::Txt { strings } => strings
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(" "),
        RData::Mx {
            preference,
            exchange,
        } => format!("{preference} {exchange}"),
        RData::Cname { target } => target.to_string(),
        other => unreachable!("not generated: {other:?}"),
    };
    (
        owner.to_owned(),
        rdata.record_type().as_str().to_owned(),
        ttl,
        text,
    )
}

/// The slow path: what the answer must be, built from the model alone.
fn reference(
    sets: &[RecordSet],
    soa: &Zone,
    qname: &str,
    qtype: RecordType,
) -> (ResponseCode, Vec<Line>, Vec<Line>) {
    let soa_line = || {
        let s = &soa.soa;
        let text = format!(
            "{} {} {} {} {} {} {}",
            s.mname, s.rname, s.serial, s.refresh, s.retry, s.expire, s.minimum
        );
        vec![(
            ORIGIN.to_owned(),
            "SOA".to_owned(),
            soa.ttl.min(s.minimum),
            text,
        )]
    };
    let mut answer = Vec::new();
    let mut name = qname.to_ascii_lowercase();
    for _ in 0..8 {
        let at: Vec<&RecordSet> = sets.iter().filter(|s| s.name.as_str() == name).collect();
        let exists = !at.is_empty()
            || name == ORIGIN
            || sets
                .iter()
                .any(|s| s.name.as_str().ends_with(&format!(".{name}")));
        if !exists {
            let rcode = if name.ends_with(ORIGIN) {
                ResponseCode::NXDomain
            } else {
                ResponseCode::NoError
            };
            let authority = if name.ends_with(ORIGIN) {
                soa_line()
            } else {
                Vec::new()
            };
            return (rcode, answer, authority);
        }
        if let Some(set) = at
            .iter()
            .find(|s| s.record_type().map(|t| t.code()) == Some(u16::from(qtype)))
        {
            answer.extend(set.records.iter().map(|r| model_line(&name, set.ttl, r)));
            return (ResponseCode::NoError, answer, Vec::new());
        }
        match at.iter().find_map(|s| match &s.records[0] {
            RData::Cname { target } => Some((s.ttl, target.clone())),
            _ => None,
        }) {
            Some((ttl, target)) => {
                answer.push(model_line(
                    &name,
                    ttl,
                    &RData::Cname {
                        target: target.clone(),
                    },
                ));
                if !target.as_str().ends_with(ORIGIN) {
                    return (ResponseCode::NoError, answer, Vec::new());
                }
                name = target.to_string();
            }
            None => return (ResponseCode::NoError, answer, soa_line()),
        }
    }
    unreachable!("generated chains are shorter than 8")
}

/// Whether following CNAMEs from `name` loops (the reference stops at 8, as the server does,
/// but what a server puts in a looping answer is its own choice, so such cases are skipped).
fn loops(sets: &[RecordSet], name: &str) -> bool {
    let mut seen = HashSet::new();
    let mut name = name.to_owned();
    while let Some(RData::Cname { target }) = sets
        .iter()
        .find(|s| s.name.as_str() == name)
        .map(|s| &s.records[0])
    {
        if !seen.insert(name.clone()) {
            return true;
        }
        name = target.to_string();
    }
    false
}

fn flip_case(name: &str, mask: u64) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn fast_path_matches_the_reference(
        nodes in zone_nodes(),
        minimum in 1u32..1000,
        asked in prop_oneof![owner(), Just(ORIGIN.to_owned()), Just(format!("nope.a.{ORIGIN}"))],
        qtype in prop::sample::select(vec![RecordType::A, RecordType::AAAA, RecordType::TXT, RecordType::MX, RecordType::CNAME]),
        case_mask in any::<u64>(),
    ) {
        let sets = record_sets(&nodes);
        prop_assume!(!loops(&sets, &asked));
        let z = zone(minimum);
        let catalog = Catalog::build(vec![(z.clone(), sets.clone())], &HashSet::new());
        let mut responder = Responder::new(1, Options::default());

        let qname = flip_case(&asked, case_mask);
        let mut query = Message::query();
        query.metadata.id = 7;
        query.add_query(Query::query(HName::from_ascii(&qname).unwrap(), qtype));
        let mut out = vec![0u8; 65_535];
        let now = dataplane_common::clock::Clock::now(&dataplane_common::clock::ManualClock::new());
        let outcome = responder.handle_query(&catalog, now, "192.0.2.1:53".parse().unwrap(), Transport::Tcp, &query.to_vec().unwrap(), &mut out);
        let Outcome::Reply { len, .. } = outcome else { panic!("no reply: {outcome:?}") };
        let reply = Message::from_vec(&out[..len]).unwrap();

        let (rcode, answer, authority) = reference(&sets, &z, &asked, qtype);
        prop_assert_eq!(reply.metadata.response_code, rcode);
        prop_assert!(reply.metadata.authoritative);
        prop_assert_eq!(reply.queries[0].name().to_ascii(), qname, "the question echoes the query's case");
        prop_assert_eq!(lines(&reply.answers), { let mut a = answer; a.sort(); a });
        prop_assert_eq!(lines(&reply.authorities), authority);
    }
}
