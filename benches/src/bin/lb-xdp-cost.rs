//! `lb-xdp-cost [RUNS]` (root): the l4lb XDP fast path's own cost per packet, timed by the
//! kernel with `BPF_PROG_TEST_RUN` (no interface, no veth, no other traffic in the figure):
//! a full-NAT UDP hit, rewritten and counted (`XDP_TX`), and a frame that misses the map and
//! falls through (here to `XDP_PASS`; in `dataplane lb` to the `AF_XDP` redirect). Not a test:
//! it prints. Compare Katran's figure of about 101 ns for its BPF forwarding path.

use dataplane_common::packet_io::xdp::bpf::{self, Asm, action, op, reg};
use l4lb::fastpath::{Flows, Key, Value};
use l4lb::flow::{Addr, Tuple, UDP};
use l4lb::testing::{self, GATEWAY_MAC, LB_MAC};
use std::io;
use std::net::SocketAddr;

fn tuple(src: &str, dst: &str) -> Tuple {
    let parse = |a: &str| {
        a.parse::<SocketAddr>()
            .expect("invariant: a literal address")
    };
    let (s, d) = (parse(src), parse(dst));
    Tuple {
        src: Addr::from(s.ip()),
        dst: Addr::from(d.ip()),
        src_port: s.port(),
        dst_port: d.port(),
        proto: UDP,
    }
}

fn main() -> io::Result<()> {
    let runs: u32 = std::env::args()
        .nth(1)
        .map_or(Ok(10_000_000), |a| a.parse())
        .map_err(io::Error::other)?;
    let flows = Flows::create(16)?;
    // Two tuples that rewrite into each other, so every repeated run (each sees the frame as
    // the last left it) hits the map.
    let client = tuple("198.51.100.7:40000", "203.0.113.10:53");
    let real = tuple("198.51.100.100:1025", "10.0.0.11:5353");
    let key = |t: &Tuple| Key::of(t).ok_or_else(|| io::Error::other("not IPv4"));
    flows.set(
        &key(&client)?,
        &Value::nat(&client, &real, LB_MAC, GATEWAY_MAC),
    )?;
    flows.set(
        &key(&real)?,
        &Value::nat(&real, &client, LB_MAC, GATEWAY_MAC),
    )?;
    let mut a = Asm::default();
    flows.emit(&mut a);
    a.i(op::MOV_K, reg::R0, 0, 0, action::PASS);
    a.i(op::EXIT, 0, 0, 0, 0);
    let prog = bpf::prog_load(&a.finish(), "l4lb_fast_cost", bpf::ATTACH_XDP)?;
    let ep = |t: &Tuple| {
        (
            SocketAddr::new(t.src.ip(), t.src_port),
            SocketAddr::new(t.dst.ip(), t.dst_port),
        )
    };
    let (s, d) = ep(&client);
    // 64-byte frames, as benches/lb/compare.sh sends.
    let hit = testing::udp_frame(s, d, &[0u8; 22]);
    let (s, _) = ep(&tuple("198.51.100.9:1", "203.0.113.10:53"));
    let miss = testing::udp_frame(s, d, &[0u8; 22]);
    let mut out = vec![0u8; 256];
    println!(
        "l4lb XDP fast path, {runs} runs each (BPF_PROG_TEST_RUN), {}-byte frames",
        hit.len()
    );
    for (name, frame, want) in [
        ("hit (rewrite, XDP_TX)", &hit, action::TX),
        ("miss (fall through)", &miss, action::PASS),
    ] {
        let r = bpf::prog_test_run(&prog, frame, &mut out, runs)?;
        if r.retval != want as u32 {
            return Err(io::Error::other(format!("{name}: returned {}", r.retval)));
        }
        println!("{name:24} {:>5} ns/packet", r.duration_ns);
    }
    let counted: u64 = [client, real]
        .iter()
        .map(|t| {
            key(t)
                .and_then(|k| flows.get(&k))
                .map(|v| v.map_or(0, |v| v.totals().packets))
        })
        .sum::<io::Result<u64>>()?;
    println!("map counters: {counted} packets (the hits)");
    Ok(())
}
