//! `l4lb::Datapath::handle_frame`: established-flow packets and new sessions per second; and
//! what handing a frame to its owner between AF_XDP workers costs.
//!
//! Each packet is copied from a template into the working buffer before the call (the
//! datapath rewrites in place), so the figures include one ~80-byte copy per packet.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dataplane_common::model::{self, ForwardingMode, Protocol, RealServer};
use l4lb::packet::tcp::{ACK, SYN};
use l4lb::table::{self, Timeouts};
use l4lb::testing;
use l4lb::vips::Link;
use l4lb::{Config, Datapath, Verdict, Vips};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

const VIP: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), 80);

fn datapath(capacity: u32) -> Datapath {
    let vip = model::Vip {
        address: VIP.ip(),
        port: VIP.port(),
        protocol: Protocol::Tcp,
        scheduler: model::Scheduler::Maglev,
        mode: ForwardingMode::FullNat,
        persistence: None,
        real_servers: (1..=10)
            .map(|i| RealServer {
                address: IpAddr::V4(Ipv4Addr::new(10, 1, 0, i)),
                port: 8080,
                weight: 1,
            })
            .collect(),
        source: "bench".into(),
    };
    let vips = Vips::builder(Link::default())
        .vips(&[vip])
        .local((100..104).map(|i| IpAddr::V4(Ipv4Addr::new(10, 0, 0, i))))
        .build();
    let config = Config {
        table: table::Config {
            capacity,
            seed: 0x5eed,
            timeouts: Timeouts::default(),
            min_idle_to_evict: 5_000,
        },
        ..Config::default()
    };
    Datapath::new(config, Arc::new(vips))
}

fn client(k: u32) -> SocketAddr {
    let ip = Ipv4Addr::from(0xc633_0000 | (k >> 16) << 8 | (k >> 8) & 0xff);
    SocketAddr::new(
        IpAddr::V4(ip),
        1024 + (k & 0xff) as u16 * 200 + (k >> 24) as u16,
    )
}

fn established(c: &mut Criterion) {
    const FLOWS: u32 = 1024;
    let mut dp = datapath(1 << 16);
    let templates: Vec<Vec<u8>> = (0..FLOWS)
        .map(|k| {
            let mut syn = testing::tcp_frame(client(k), VIP, SYN, b"");
            assert_eq!(dp.handle_frame(0, &mut syn), Verdict::Tx);
            testing::tcp_frame(client(k), VIP, ACK, &[0u8; 16])
        })
        .collect();
    let mut group = c.benchmark_group("l4lb_datapath/established");
    for batch in [1usize, 32, 64] {
        group.throughput(Throughput::Elements(batch as u64));
        let mut bufs: Vec<Vec<u8>> = vec![templates[0].clone(); batch];
        let mut next = 0usize;
        group.bench_function(BenchmarkId::from_parameter(batch), |b| {
            b.iter(|| {
                for buf in bufs.iter_mut() {
                    buf.copy_from_slice(&templates[next % FLOWS as usize]);
                    next += 1;
                    black_box(dp.handle_frame(1, buf));
                }
            });
        });
    }
    group.finish();
}

fn new_sessions(c: &mut Criterion) {
    // 2^19 distinct clients; after each pass `now` moves past the SYN timeout, so the next
    // pass finds the old session expired, removes it and opens a new one.
    const FLOWS: u32 = 1 << 19;
    let mut dp = datapath(FLOWS + 1024);
    let mut k = 0u32;
    let mut group = c.benchmark_group("l4lb_datapath/new_session");
    group.throughput(Throughput::Elements(1));
    group.bench_function("syn", |b| {
        b.iter_batched_ref(
            || {
                let f = testing::tcp_frame(client(k % FLOWS), VIP, SYN, b"");
                let now = u64::from(k / FLOWS) * 20_000;
                k += 1;
                (f, now)
            },
            |(f, now)| {
                let v = dp.handle_frame(*now, f);
                debug_assert_eq!(v, Verdict::Tx);
                black_box(v)
            },
            criterion::BatchSize::SmallInput,
        );
    });
    group.finish();
}

/// What a multi-queue AF_XDP worker adds per frame: finding the frame's owner
/// (`steering::owner`), and for a frame it does not own, the copy into the owner's inbox and
/// the owner draining it (`server::handoff`), in batches of 64.
fn handoff(c: &mut Criterion) {
    use l4lb::io::steering;
    use l4lb::server::handoff::Handoffs;
    const BATCH: usize = 64;
    let local: Vec<IpAddr> = (100..104)
        .map(|i| IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)))
        .collect();
    let frames: Vec<Vec<u8>> = (0..BATCH as u32)
        .map(|k| testing::tcp_frame(client(k), VIP, ACK, &[0u8; 16]))
        .collect();
    let mut group = c.benchmark_group("l4lb_datapath/handoff");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("owner", |b| {
        b.iter(|| {
            for f in &frames {
                black_box(steering::owner(f, 2, &local));
            }
        });
    });
    let handoffs = Handoffs::new(2, 1024, 4096);
    group.bench_function("send_and_drain", |b| {
        b.iter(|| {
            for f in &frames {
                handoffs.send(1, f);
            }
            handoffs.drain(1, |f| {
                black_box(f);
            })
        });
    });
    group.finish();
}

criterion_group!(benches, established, new_sessions, handoff);
criterion_main!(benches);
