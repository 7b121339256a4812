//! A harness that drives [`Responder`] with queries built and replies parsed by hickory-proto,
//! an independent implementation of the wire format.

use super::{Options, Outcome, Responder, Transport};
use crate::authority::Catalog;
use dataplane_common::clock::{Clock, ManualClock};
use dataplane_common::model::{AnswerPolicy, Name, RData, RecordSet};
use dataplane_common::zonefile;
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name as HName, RecordType};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

pub(crate) const ZONE: &str = r#"
$ORIGIN default.svc.cluster.local.
$TTL 30
@        SOA   ns1 hostmaster 1 7200 900 1209600 10
@        NS    ns1
ns1      A     10.0.0.53
web      A     10.0.1.1
multi    A     10.0.2.1
multi    A     10.0.2.2
multi    A     10.0.2.3
multi    A     10.0.2.4
_http._tcp.web SRV 0 50 80 web
alias    CNAME alias2
alias2   CNAME web
*.wild   A     10.0.3.1
x.ent.wild A   10.0.3.2
sub      NS    ns.sub
ns.sub   A     10.0.9.9
text     TXT   "v=1"
"#;

pub(crate) fn name(s: &str) -> Name {
    s.parse().expect("test name")
}

/// The four addresses of a policy test set.
pub(crate) fn four() -> Vec<RData> {
    (1..=4)
        .map(|i| RData::A {
            address: Ipv4Addr::new(10, 0, 5, i),
        })
        .collect()
}

fn policy_set(owner: &str, policy: AnswerPolicy, affinity: Option<Duration>) -> RecordSet {
    RecordSet {
        name: name(owner),
        ttl: 5,
        records: four(),
        policy,
        affinity_timeout: affinity,
        source: "user".to_owned(),
    }
}

pub(crate) struct Harness {
    pub(crate) catalog: Catalog,
    pub(crate) responder: Responder,
    pub(crate) now: Instant,
    pub(crate) client: SocketAddr,
    pub(crate) buf: Vec<u8>,
}

impl Harness {
    pub(crate) fn new() -> Self {
        Self::with(Options::default(), &HashSet::new())
    }

    pub(crate) fn with(options: Options, down: &HashSet<IpAddr>) -> Self {
        let mut zones = zonefile::parse(ZONE, None).expect("test zone parses");
        let sets = &mut zones[0].1;
        sets.push(policy_set(
            "rr.default.svc.cluster.local.",
            AnswerPolicy::OneRoundRobin,
            None,
        ));
        sets.push(policy_set(
            "sticky.default.svc.cluster.local.",
            AnswerPolicy::OnePersistent,
            None,
        ));
        sets.push(policy_set(
            "affine.default.svc.cluster.local.",
            AnswerPolicy::OnePersistent,
            Some(Duration::from_secs(60)),
        ));
        let big = (0..100u8)
            .map(|i| RData::A {
                address: Ipv4Addr::new(10, 1, 0, i),
            })
            .collect();
        sets.push(RecordSet {
            name: name("big.default.svc.cluster.local."),
            ttl: 5,
            records: big,
            policy: AnswerPolicy::All,
            affinity_timeout: None,
            source: "user".to_owned(),
        });
        Self {
            catalog: Catalog::build(zones, down),
            responder: Responder::new(7, options),
            now: ManualClock::new().now(),
            client: "192.0.2.7:5353".parse().expect("addr"),
            buf: vec![0; 65_535],
        }
    }

    /// Sends raw bytes; returns the outcome and the reply bytes.
    pub(crate) fn raw(&mut self, query: &[u8], transport: Transport) -> (Outcome, Vec<u8>) {
        let out = if transport == Transport::Udp {
            &mut self.buf[..4096]
        } else {
            &mut self.buf[..]
        };
        let outcome = self.responder.handle_query(
            &self.catalog,
            self.now,
            self.client,
            transport,
            query,
            out,
        );
        let bytes = match outcome {
            Outcome::Reply { len, .. } => self.buf[..len].to_vec(),
            Outcome::Recurse { .. } | Outcome::Drop(_) => Vec::new(),
        };
        (outcome, bytes)
    }

    /// Sends `msg` and parses the reply with hickory.
    pub(crate) fn send(&mut self, msg: &Message, transport: Transport) -> (Outcome, Message) {
        let (outcome, bytes) = self.raw(&msg.to_vec().expect("encode query"), transport);
        let reply = Message::from_vec(&bytes)
            .unwrap_or_else(|e| panic!("reply does not decode: {e}: {bytes:02x?}"));
        (outcome, reply)
    }

    /// A plain UDP query without EDNS.
    pub(crate) fn query(&mut self, qname: &str, qtype: RecordType) -> Message {
        self.send(&query(qname, qtype, None), Transport::Udp).1
    }
}

/// A query for `qname`/`qtype` with RD set and, if given, an OPT with that payload size.
pub(crate) fn query(qname: &str, qtype: RecordType, payload: Option<u16>) -> Message {
    let mut m = Message::query();
    m.metadata.id = 0x1234;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(HName::from_ascii(qname).expect("name"), qtype));
    if let Some(p) = payload {
        let mut e = Edns::new();
        e.set_max_payload(p);
        m.edns = Some(e);
    }
    m
}
