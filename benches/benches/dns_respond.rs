//! `dns::respond`: one query through [`Responder::handle_query`] against a small catalog.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dataplane_common::clock::{Clock, SystemClock};
use dataplane_common::model::{AnswerPolicy, RData, RecordSet};
use dns::authority::Catalog;
use dns::respond::{Options, Outcome, Responder, Transport};
use std::collections::HashSet;
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};

const ZONE: &str = "$ORIGIN default.svc.cluster.local.\n$TTL 30\n\
@ SOA ns1 hostmaster 1 7200 900 1209600 10\n@ NS ns1\nns1 A 10.0.0.53\n\
web A 10.0.1.1\n_http._tcp.web SRV 0 50 80 web\n";

/// A query with RD and an EDNS OPT offering 1232 octets.
fn query(name: &str, qtype: u16) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]);
    q
}

fn catalog() -> Catalog {
    let mut zones = dataplane_common::zonefile::parse(ZONE, None).expect("bench zone parses");
    zones[0].1.push(RecordSet {
        name: "sticky.default.svc.cluster.local.".parse().expect("name"),
        ttl: 5,
        records: (1..=8)
            .map(|i| RData::A {
                address: Ipv4Addr::new(10, 0, 5, i),
            })
            .collect(),
        policy: AnswerPolicy::OnePersistent,
        affinity_timeout: None,
        source: "user".to_owned(),
    });
    Catalog::build(zones, &HashSet::new())
}

fn bench(c: &mut Criterion) {
    let catalog = catalog();
    let now = SystemClock.now();
    let client: SocketAddr = "192.0.2.7:5353".parse().expect("addr");
    let mut out = vec![0u8; 4096];
    let mut group = c.benchmark_group("dns_respond");
    group.throughput(Throughput::Elements(1));
    let cases = [
        ("a_answer", query("web.default.svc.cluster.local.", 1)),
        ("nxdomain", query("nope.default.svc.cluster.local.", 1)),
        (
            "srv",
            query("_http._tcp.web.default.svc.cluster.local.", 33),
        ),
        (
            "one_persistent",
            query("sticky.default.svc.cluster.local.", 1),
        ),
    ];
    for (label, q) in &cases {
        let mut responder = Responder::new(1, Options::default());
        group.bench_function(*label, |b| {
            b.iter(|| {
                let outcome = responder.handle_query(
                    &catalog,
                    now,
                    client,
                    Transport::Udp,
                    black_box(q),
                    &mut out,
                );
                debug_assert!(matches!(outcome, Outcome::Reply { .. }));
                black_box(outcome)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
