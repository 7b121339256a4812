//! The `AF_XDP` backend and our XDP program on a veth pair, with l4lb's frames.

use crate::io::xdp::{Attach, Bind, Config, Mode, Program, open};
use crate::io::{Rx as _, Tx as _, af_packet};
use crate::testing;
use dataplane_common::packet_io::testing::Netns;
use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::Duration;

fn xdp_attached(ns: &Netns, dev: &str) -> bool {
    let out = Command::new("ip")
        .args(["-n", ns.name(), "link", "show", "dev", dev])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains("xdp")
}

/// Receives on `rx` until `want` frames matching `keep` arrived or a second passed.
fn collect(rx: &mut impl crate::io::Rx, want: usize, keep: impl Fn(&[u8]) -> bool) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    for _ in 0..50 {
        rx.rx(Duration::from_millis(20), 64, |f| {
            if keep(f) {
                got.push(f.to_vec());
            }
        })
        .unwrap();
        if got.len() >= want {
            break;
        }
    }
    got
}

#[test]
fn frames_to_our_addresses_come_through_the_socket_and_sent_frames_come_out() {
    let Some(ns) = Netns::new() else {
        eprintln!("skipped: AF_XDP needs root");
        return;
    };
    let detached = ns.run(|| {
        let mut program = Program::attach("veth-b", Attach::Auto).unwrap();
        assert_eq!(program.mode(), Mode::Native, "veth has native XDP");
        let vip4: IpAddr = "203.0.113.10".parse().unwrap();
        let vip6: IpAddr = "2001:db8::10".parse().unwrap();
        assert_eq!(program.set_destinations([vip4, vip6]).unwrap(), 2);
        assert_eq!(
            program.set_destinations([vip4, vip6]).unwrap(),
            0,
            "no change"
        );
        let (mut rx, mut tx) = open(&Config::new("veth-b", 0), &program).unwrap();
        assert_eq!(rx.bind(), Bind::Copy, "veth has no zero-copy");
        assert!(xdp_attached(&ns, "veth-b"));
        // A tap on veth-b sees what the program passes to the kernel.
        let (mut tap_b, _) = af_packet::open(&af_packet::Config::new("veth-b"), None).unwrap();
        let (mut rx_a, mut tx_a) =
            af_packet::open(&af_packet::Config::new("veth-a"), None).unwrap();

        let client: SocketAddr = "198.51.100.7:5000".parse().unwrap();
        let client6: SocketAddr = "[2001:db8::7]:5000".parse().unwrap();
        let ours: Vec<Vec<u8>> = (0..300u16)
            .map(|i| {
                let payload = format!("frame {i:04}");
                if i % 3 == 0 {
                    testing::udp_frame(client6, SocketAddr::new(vip6, 53), payload.as_bytes())
                } else {
                    testing::udp_frame(client, SocketAddr::new(vip4, 53), payload.as_bytes())
                }
            })
            .collect();
        let other = testing::udp_frame(client, "203.0.113.99:53".parse().unwrap(), b"host");
        for chunk in ours.chunks(50) {
            for f in chunk {
                assert!(tx_a.push(f));
            }
            assert!(tx_a.push(&other));
            tx_a.flush().unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        let is_udp = |f: &[u8]| f.len() >= 42 && (f[23] == 17 || f[20] == 17);
        let got = collect(&mut rx, ours.len(), is_udp);
        assert_eq!(got.len(), ours.len());
        assert!(got == ours, "ours only, in order and unchanged");
        let passed = collect(&mut tap_b, 6, is_udp);
        assert!(
            passed == vec![other.clone(); 6],
            "the rest goes to the kernel"
        );
        assert_eq!(rx.stats().kernel_drops, 0);

        // Transmit: more frames than one batch, in two flushes.
        let sent: Vec<Vec<u8>> = (0..100u16)
            .map(|i| testing::udp_frame(SocketAddr::new(vip4, 53), client, &i.to_be_bytes()))
            .collect();
        for f in &sent[..60] {
            assert!(tx.push(f));
        }
        tx.flush().unwrap();
        for f in &sent[60..] {
            assert!(tx.push(f));
        }
        tx.flush().unwrap();
        assert_eq!(tx.queued(), 0);
        assert!(!tx.push(&vec![0u8; 5000]), "larger than a frame");
        let out = collect(&mut rx_a, sent.len(), is_udp);
        assert_eq!(out.len(), sent.len());
        assert!(out == sent, "in order and unchanged");

        // Transmit frames are reused: many more than the UMEM holds go out.
        let mut pushed = 0;
        for round in 0..40 {
            for _ in 0..128 {
                if tx.push(&sent[round % sent.len()]) {
                    pushed += 1;
                }
            }
            tx.flush().unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(pushed > 4096, "{pushed}");

        drop((rx, tx, program));
        !xdp_attached(&ns, "veth-b")
    });
    assert!(detached, "the program is detached when dropped");
}
