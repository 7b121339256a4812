//! The `AF_PACKET` backend on a veth pair, with l4lb's frames.

use crate::io::af_packet::{Config, interface, open};
use crate::io::{Rx as _, Tx as _};
use crate::testing;
use dataplane_common::packet_io::testing::Netns;
use std::net::SocketAddr;
use std::time::Duration;

#[test]
fn frames_sent_on_one_end_of_a_veth_arrive_whole_at_the_other() {
    let Some(ns) = Netns::new() else {
        eprintln!("skipped: AF_PACKET needs root");
        return;
    };
    ns.run(|| {
        let (_, mac_b, mtu) = interface("veth-b").unwrap();
        assert_eq!(mtu, 1500);
        assert_ne!(mac_b, [0; 6]);
        let (_rx_a, mut tx_a) = open(&Config::new("veth-a"), None).unwrap();
        let (mut rx_b, _tx_b) = open(&Config::new("veth-b"), None).unwrap();
        let c: SocketAddr = "198.51.100.7:5000".parse().unwrap();
        let v: SocketAddr = "203.0.113.10:53".parse().unwrap();
        let sent: Vec<Vec<u8>> = (0..300u16)
            .map(|i| testing::udp_frame(c, v, format!("frame {i:04}").as_bytes()))
            .collect();
        for chunk in sent.chunks(50) {
            for f in chunk {
                assert!(tx_a.push(f));
            }
            tx_a.flush().unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(!tx_a.push(&vec![0u8; 4000]), "larger than a slot");
        let mut got = Vec::new();
        for _ in 0..100 {
            rx_b.rx(Duration::from_millis(20), 64, |f| {
                // The host may send its own frames (IPv6 neighbour discovery) too.
                if f.len() >= 42 && f[23] == 17 {
                    got.push(f.to_vec());
                }
            })
            .unwrap();
            if got.len() == sent.len() {
                break;
            }
        }
        assert_eq!(got.len(), sent.len());
        assert_eq!(got, sent, "in order and unchanged");
        assert_eq!(rx_b.stats().kernel_drops, 0);
    });
}
