use super::*;
use crate::ports::Partition;
use crate::testing;
use std::net::SocketAddr;

/// Runs a classic BPF program over `pkt` (the subset [`steering`] uses).
fn run(prog: &[libc::sock_filter], pkt: &[u8]) -> u32 {
    let (mut a, mut x, mut mem) = (0u32, 0u32, [0u32; 16]);
    let load = |at: usize, n: usize| -> Option<u32> {
        let b = pkt.get(at..at + n)?;
        Some(b.iter().fold(0u32, |acc, &v| acc << 8 | u32::from(v)))
    };
    let mut pc = 0;
    loop {
        let i = prog[pc];
        pc += 1;
        let k = i.k;
        match i.code {
            op::LD_W_ABS => {
                a = match load(k as usize, 4) {
                    Some(v) => v,
                    None => return 0,
                }
            }
            op::LD_H_ABS => {
                a = match load(k as usize, 2) {
                    Some(v) => v,
                    None => return 0,
                }
            }
            op::LD_B_ABS => {
                a = match load(k as usize, 1) {
                    Some(v) => v,
                    None => return 0,
                }
            }
            op::LD_H_IND => {
                a = match load((x + k) as usize, 2) {
                    Some(v) => v,
                    None => return 0,
                }
            }
            op::LDX_B_MSH => x = 4 * (u32::from(pkt[k as usize]) & 0xf),
            op::LDX_MEM => x = mem[k as usize],
            op::ST => mem[k as usize] = a,
            op::SUB_K => a = a.wrapping_sub(k),
            op::MOD_K => a %= k,
            op::XOR_X => a ^= x,
            op::RET_A => return a,
            op::RET_K => return k,
            op::JEQ_K | op::JSET_K => {
                let taken = if i.code == op::JEQ_K {
                    a == k
                } else {
                    a & k != 0
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            other => panic!("unexpected opcode {other:#x}"),
        }
    }
}

#[test]
fn steering_sends_replies_to_the_port_owner_and_keeps_client_flows_together() {
    let local: Vec<IpAddr> = vec![
        "192.0.2.100".parse().unwrap(),
        "2001:db8::64".parse().unwrap(),
    ];
    for workers in [2u16, 3, 4] {
        let prog = steering(workers, &local);
        for port in [1024u16, 1025, 4000, 65535] {
            for (rs, l) in [
                ("192.0.2.11:80", "192.0.2.100"),
                ("[2001:db8::b]:80", "[2001:db8::64]"),
            ] {
                let dst: SocketAddr = format!("{l}:{port}").parse().unwrap();
                let rs: SocketAddr = rs.parse().unwrap();
                let want = u32::from(Partition::owner(port, workers).unwrap());
                let tcp = testing::tcp_frame(rs, dst, crate::packet::tcp::ACK, b"x");
                assert_eq!(run(&prog, &tcp) % u32::from(workers), want, "{rs} -> {dst}");
                let udp = testing::udp_frame(rs, dst, b"x");
                assert_eq!(run(&prog, &udp) % u32::from(workers), want, "{rs} -> {dst}");
            }
        }
        // A client flow: every packet of it to one worker, and clients spread over all.
        let mut seen = vec![false; usize::from(workers)];
        for p in 0..64u16 {
            let c: SocketAddr = format!("198.51.100.7:{}", 30_000 + p).parse().unwrap();
            let v: SocketAddr = "203.0.113.10:80".parse().unwrap();
            let syn = run(
                &prog,
                &testing::tcp_frame(c, v, crate::packet::tcp::SYN, b""),
            );
            let ack = run(
                &prog,
                &testing::tcp_frame(c, v, crate::packet::tcp::ACK, b"data"),
            );
            assert_eq!(syn, ack);
            seen[(syn % u32::from(workers)) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s), "{seen:?}");
    }
    let mut arp = vec![0u8; 42];
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(run(&steering(4, &local), &arp), 0);
}

proptest::proptest! {
    /// The Rust owner and the classic BPF program agree on every frame: well-formed ones to
    /// local addresses and to VIPs, truncated ones, and ones with bytes flipped anywhere.
    #[test]
    fn owner_agrees_with_the_program(
        workers in 1u16..9,
        v6 in proptest::bool::ANY,
        to_local in proptest::bool::ANY,
        tcp in proptest::bool::ANY,
        sport in proptest::num::u16::ANY,
        dport in proptest::num::u16::ANY,
        host in proptest::num::u8::ANY,
        cut in proptest::option::of(0usize..80),
        flip in proptest::option::of((0usize..80, proptest::num::u8::ANY)),
    ) {
        let local: Vec<IpAddr> = vec![
            "192.0.2.100".parse().unwrap(),
            "2001:db8::64".parse().unwrap(),
        ];
        let (src, dst): (SocketAddr, SocketAddr) = match (v6, to_local) {
            (false, true) => (
                format!("192.0.2.{host}:{sport}").parse().unwrap(),
                format!("192.0.2.100:{dport}").parse().unwrap(),
            ),
            (false, false) => (
                format!("198.51.100.{host}:{sport}").parse().unwrap(),
                format!("203.0.113.10:{dport}").parse().unwrap(),
            ),
            (true, true) => (
                format!("[2001:db8::{host:x}]:{sport}").parse().unwrap(),
                format!("[2001:db8::64]:{dport}").parse().unwrap(),
            ),
            (true, false) => (
                format!("[2001:db8:1::{host:x}]:{sport}").parse().unwrap(),
                format!("[2001:db8:2::a]:{dport}").parse().unwrap(),
            ),
        };
        let mut frame = if tcp {
            testing::tcp_frame(src, dst, crate::packet::tcp::ACK, b"x")
        } else {
            testing::udp_frame(src, dst, b"x")
        };
        if let Some((at, v)) = flip
            && at < frame.len()
        {
            frame[at] = v;
        }
        if let Some(len) = cut {
            frame.truncate(len);
        }
        // The IHL byte is read unchecked by the program (LDX_B_MSH): keep it in the frame.
        proptest::prop_assume!(frame.len() > 14);
        let want = run(&steering(workers, &local), &frame) % u32::from(workers);
        proptest::prop_assert_eq!(u32::from(owner(&frame, workers, &local)), want);
    }
}
