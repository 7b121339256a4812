//! The XDP program itself, run by the kernel (`BPF_PROG_TEST_RUN`, root only) on frames of
//! every kind, against the model in [`super::entry`]: the same verdicts, the same bytes out,
//! and the counters in the map.

use super::entry::{self, Key, Value};
use super::map::Flows;
use crate::flow::{Addr, TCP, Tuple, UDP};
use crate::packet::Mac;
use crate::packet::tcp::{ACK, FIN, RST, SYN};
use crate::testing::{self, GATEWAY_MAC, LB_MAC};
use dataplane_common::packet_io::xdp::bpf::{self, Asm, action, op, reg};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;

const REAL_MAC: Mac = Mac([0x02, 0, 0, 0, 1, 1]);

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn t(src: &str, dst: &str, proto: u8) -> Tuple {
    let (s, d): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
    Tuple {
        src: Addr::from(s.ip()),
        dst: Addr::from(d.ip()),
        src_port: s.port(),
        dst_port: d.port(),
        proto,
    }
}

fn frame(tu: &Tuple, flags: u8, payload: &[u8]) -> Vec<u8> {
    let s = SocketAddr::new(tu.src.ip(), tu.src_port);
    let d = SocketAddr::new(tu.dst.ip(), tu.dst_port);
    if tu.proto == TCP {
        testing::tcp_frame(s, d, flags, payload)
    } else {
        testing::udp_frame(s, d, payload)
    }
}

/// The fast path alone: what it does not forward, it passes.
fn load(flows: &Flows) -> OwnedFd {
    let mut a = Asm::default();
    flows.emit(&mut a);
    a.i(op::MOV_K, reg::R0, 0, 0, action::PASS);
    a.i(op::EXIT, 0, 0, 0, 0);
    bpf::prog_load(&a.finish(), "l4lb_fast_test", bpf::ATTACH_XDP)
        .unwrap_or_else(|e| panic!("the verifier refuses the fast path: {e}"))
}

/// Runs the program on `input`; returns its verdict and the frame it left.
fn run(prog: &OwnedFd, input: &[u8]) -> (u32, Vec<u8>) {
    let mut out = vec![0u8; input.len() + 256];
    let r = bpf::prog_test_run(prog, input, &mut out, 1).expect("test run");
    out.truncate(r.len);
    (r.retval, out)
}

#[test]
fn the_program_does_what_the_model_does() {
    if !is_root() {
        eprintln!("skipped: loading XDP programs needs root");
        return;
    }
    let flows = Flows::create(64).unwrap();
    let prog = load(&flows);
    let client = t("198.51.100.7:40000", "203.0.113.10:80", TCP);
    let real = t("10.0.0.11:8080", "198.51.100.100:1025", TCP);
    let udp_client = Tuple {
        proto: UDP,
        ..client
    };
    let udp_real = Tuple { proto: UDP, ..real };
    let dr = t("198.51.100.8:40000", "203.0.113.20:80", TCP);
    let entries = [
        (
            client,
            Value::nat(&client, &real.reversed(), LB_MAC, REAL_MAC),
        ),
        (
            real,
            Value::nat(&real, &client.reversed(), LB_MAC, GATEWAY_MAC),
        ),
        (
            udp_client,
            Value::nat(&udp_client, &udp_real.reversed(), LB_MAC, REAL_MAC),
        ),
        (
            udp_real,
            Value::nat(&udp_real, &udp_client.reversed(), LB_MAC, GATEWAY_MAC),
        ),
        (dr, Value::dr(LB_MAC, REAL_MAC)),
    ];
    for (tu, v) in &entries {
        flows.set(&Key::of(tu).unwrap(), v).unwrap();
    }
    let mut udp_no_checksum = frame(&udp_client, 0, b"no checksum");
    udp_no_checksum[34 + 6..34 + 8].fill(0);
    // A UDP checksum whose update comes to zero: sent as 0xffff.
    let delta = super::delta::deltas(&udp_client, &udp_real.reversed()).l4;
    let zero = (1..=u16::MAX)
        .find(|&c| super::delta::apply(c, delta) == 0)
        .unwrap();
    let mut udp_to_zero = frame(&udp_client, 0, b"zero");
    udp_to_zero[34 + 6..34 + 8].copy_from_slice(&zero.to_le_bytes());
    let mut fragment = frame(&udp_client, 0, b"frag");
    fragment[14 + 6] = 0x20;
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        (
            "tcp client",
            frame(&client, ACK, b"GET / HTTP/1.1\r\n\r\n"),
            true,
        ),
        ("tcp reply", frame(&real, ACK | 0x08, &[7; 1000]), true),
        ("tcp empty ack", frame(&client, ACK, b""), true),
        ("udp client", frame(&udp_client, 0, b"query"), true),
        ("udp reply", frame(&udp_real, 0, &[1; 333]), true),
        ("udp no checksum", udp_no_checksum, true),
        ("udp checksum to zero", udp_to_zero, true),
        ("dr", frame(&dr, ACK, b"data"), true),
        ("syn", frame(&client, SYN, b""), false),
        ("fin", frame(&client, FIN | ACK, b""), false),
        ("rst", frame(&real, RST, b""), false),
        ("fragment", fragment, false),
        (
            "miss",
            frame(&t("198.51.100.9:1", "203.0.113.10:80", TCP), ACK, b""),
            false,
        ),
        (
            "ipv6",
            frame(&t("[2001:db8::7]:1", "[2001:db8::10]:80", UDP), 0, b"v6"),
            false,
        ),
        ("short", frame(&client, ACK, b"")[..50].to_vec(), false),
    ];
    let mut forwarded = std::collections::HashMap::<Key, (u64, u64)>::new();
    for (name, input, fast) in &cases {
        let (ret, out) = run(&prog, input);
        let mut want = input.clone();
        match entry::key_of_frame(input) {
            Some(key) if *fast => {
                let v = entries
                    .iter()
                    .find(|(tu, _)| Key::of(tu) == Some(key))
                    .map(|(_, v)| *v)
                    .unwrap();
                entry::apply(&mut want, &v);
                let c = forwarded.entry(key).or_default();
                c.0 += 1;
                c.1 += input.len() as u64;
            }
            _ => assert!(!fast, "{name}: the model forwards it"),
        }
        let verdict = if *fast { action::TX } else { action::PASS };
        assert_eq!(ret, verdict as u32, "{name}");
        assert_eq!(out, want, "{name}");
        if *name == "udp checksum to zero" {
            assert_eq!(out[34 + 6..34 + 8], [0xff, 0xff]);
        } else if *fast && *name != "dr" {
            testing::verify_checksums(&out).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
    for (tu, _) in &entries {
        let key = Key::of(tu).unwrap();
        let got = flows.get(&key).unwrap().unwrap().totals();
        let want = forwarded.get(&key).copied().unwrap_or_default();
        assert_eq!((got.packets, got.bytes), want, "{tu:?}");
    }
}

/// A datapath with the fast path on, for one full-NAT TCP VIP 203.0.113.10:80 -> 10.0.0.11:8080.
fn datapath() -> crate::Datapath {
    use crate::vips::{Link, Vips};
    use dataplane_common::model::{self, ForwardingMode, Protocol, RealServer};
    let v = model::Vip {
        address: "203.0.113.10".parse().unwrap(),
        port: 80,
        protocol: Protocol::Tcp,
        scheduler: model::Scheduler::Maglev,
        mode: ForwardingMode::FullNat,
        persistence: None,
        real_servers: vec![RealServer {
            address: "10.0.0.11".parse().unwrap(),
            port: 8080,
            weight: 1,
        }],
        source: "user".into(),
    };
    let vips = Vips::builder(Link {
        mac: LB_MAC,
        gateway: GATEWAY_MAC,
    })
    .vips(&[v])
    .local(["198.51.100.100".parse().unwrap()])
    .neighbour("10.0.0.11".parse().unwrap(), REAL_MAC)
    .maglev_size(251)
    .build();
    let config = crate::Config {
        fast_path: Some(super::Config {
            poll: 1_000,
            queue: 8,
        }),
        ..crate::Config::default()
    };
    crate::Datapath::new(config, std::sync::Arc::new(vips))
}

#[test]
fn the_edge_carries_out_installs_polls_and_removals_on_the_kernels_map() {
    if !is_root() {
        eprintln!("skipped: BPF maps need root");
        return;
    }
    let flows = Flows::create(64).unwrap();
    let prog = load(&flows);
    let mut applier = super::Applier::new(16);
    let mut dp = datapath();
    let client = t("198.51.100.7:40000", "203.0.113.10:80", TCP);
    let mut syn = frame(&client, SYN, b"");
    assert_eq!(dp.handle_frame(1, &mut syn), crate::Verdict::Tx);
    let seen = crate::packet::parse(&syn).unwrap().unwrap().tuple;
    let reply = seen.reversed();
    let mut syn_ack = frame(&reply, SYN | ACK, b"");
    assert_eq!(dp.handle_frame(2, &mut syn_ack), crate::Verdict::Tx);
    let mut ack = frame(&client, ACK, b"");
    assert_eq!(dp.handle_frame(3, &mut ack), crate::Verdict::Tx);
    applier.apply(&flows, &mut dp, 3);
    assert!(flows.get(&Key::of(&client).unwrap()).unwrap().is_some());
    assert!(flows.get(&Key::of(&reply).unwrap()).unwrap().is_some());

    // Ten packets each way in the kernel, then a poll folds them in.
    for _ in 0..10 {
        assert_eq!(run(&prog, &frame(&client, ACK, b"x")).0, action::TX as u32);
        assert_eq!(run(&prog, &frame(&reply, ACK, b"y")).0, action::TX as u32);
    }
    dp.handle_timeout(2_000, 64);
    applier.apply(&flows, &mut dp, 2_000);
    let c = dp.counters().vips[0];
    assert_eq!(c.packets, 3 + 20);
    assert_eq!(dp.fast_path_stats().unwrap().packets, 20);

    // A RST, then a new SYN on the tuple: the old entries go (their last packets counted)
    // before anything else happens to the key.
    assert_eq!(run(&prog, &frame(&client, ACK, b"z")).0, action::TX as u32);
    let mut rst = frame(&client, RST, b"");
    assert_eq!(
        run(&prog, &rst).0,
        action::PASS as u32,
        "a RST goes to user space"
    );
    assert_eq!(dp.handle_frame(2_001, &mut rst), crate::Verdict::Tx);
    let mut again = frame(&client, SYN, b"");
    assert_eq!(dp.handle_frame(2_002, &mut again), crate::Verdict::Tx);
    applier.apply(&flows, &mut dp, 2_002);
    assert!(flows.get(&Key::of(&client).unwrap()).unwrap().is_none());
    assert!(flows.get(&Key::of(&reply).unwrap()).unwrap().is_none());
    let stats = dp.fast_path_stats().unwrap();
    assert_eq!(
        (stats.packets, stats.installs, stats.removals, stats.errors),
        (21, 1, 1, 0)
    );
    assert_eq!(dp.counters().vips[0].packets, 3 + 21 + 2);
}
