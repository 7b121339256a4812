//! `l4lb::sched::Maglev`: building the table for 1,000 real servers at M = 65,537.

use criterion::{Criterion, criterion_group, criterion_main};
use l4lb::sched::{Backend, Maglev};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

fn build(c: &mut Criterion) {
    let backends: Vec<Backend> = (0..1000u32)
        .map(|i| {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a01_0000 + i));
            Backend::new(ip, 8080, 1 + i % 4, true)
        })
        .collect();
    c.bench_function("l4lb_maglev/build_1000_servers_m65537", |b| {
        b.iter(|| black_box(Maglev::new(black_box(&backends), Maglev::DEFAULT_SIZE)));
    });
}

criterion_group!(benches, build);
criterion_main!(benches);
