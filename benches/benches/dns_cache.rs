//! `dns::recursor::cache`: recursive queries answered from the shared cache on the worker path
//! ([`Responder::handle_query`] with recursion on), singly and in batches of 32 and 64.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dataplane_common::clock::{Clock, SystemClock};
use dns::authority::Catalog;
use dns::recursor::cache::{Cache, Entry, Settings};
use dns::recursor::metrics::Metrics;
use dns::recursor::{Acl, Front};
use dns::respond::{Options, Outcome, Responder, Transport};
use dns::wire::message::{Rr, TYPE_A, TYPE_CNAME};
use std::collections::HashSet;
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;

fn wire(name: &str) -> Vec<u8> {
    let mut q = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q
}

/// A query with RD and an EDNS OPT offering 1232 octets.
fn query(name: &str) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    q.extend_from_slice(&wire(name));
    q.extend_from_slice(&TYPE_A.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]);
    q
}

fn rr(owner: &[u8], rtype: u16, rdata: &[u8]) -> Rr {
    Rr {
        owner: owner.into(),
        rtype,
        class: 1,
        ttl: 3600,
        rdata: rdata.into(),
    }
}

fn bench(c: &mut Criterion) {
    let now = SystemClock.now();
    let cache = Arc::new(Cache::new(Settings::default(), 1));
    let names: Vec<String> = (0..64).map(|i| format!("host{i}.example.com.")).collect();
    for n in &names {
        let w = wire(n);
        let answer = [
            rr(&w, TYPE_CNAME, &wire("edge.cdn.example.net.")),
            rr(&wire("edge.cdn.example.net."), TYPE_A, &[192, 0, 2, 1]),
            rr(&wire("edge.cdn.example.net."), TYPE_A, &[192, 0, 2, 2]),
        ];
        let e = Entry::build(now, cache.settings(), &w, TYPE_A, 0, [&answer, &[], &[]])
            .expect("bench entry encodes");
        cache.insert(now, e);
    }
    let metrics = Metrics::unregistered();
    let front = Front::new(cache, Arc::new(Acl::default()), &metrics).worker();
    let catalog = Catalog::build(Vec::new(), &HashSet::new());
    let client: SocketAddr = "10.1.2.3:5353".parse().expect("addr");
    let queries: Vec<Vec<u8>> = names.iter().map(|n| query(n)).collect();
    let mut out = vec![0u8; 4096];
    let mut responder = Responder::new(1, Options::default()).with_recursion(front);
    let mut group = c.benchmark_group("dns_cache");
    for batch in [1usize, 32, 64] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::new("hit", batch), &batch, |b, &batch| {
            b.iter(|| {
                for q in &queries[..batch] {
                    let outcome = responder.handle_query(
                        &catalog,
                        now,
                        client,
                        Transport::Udp,
                        black_box(q),
                        &mut out,
                    );
                    debug_assert!(matches!(outcome, Outcome::Reply { .. }));
                    black_box(outcome);
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
