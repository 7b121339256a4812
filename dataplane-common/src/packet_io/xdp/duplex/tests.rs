use super::*;
use crate::packet_io::testing::Netns;
use crate::packet_io::xdp::{Attach, Filter};
use crate::packet_io::{Rx as _, Tx as _, af_packet, checksum, frame};

/// An Ethernet + IPv4 frame carrying `proto` with ports `sport` → `dport` and `payload`.
fn frame(proto: u8, dport: u16, payload: &[u8]) -> Vec<u8> {
    let l4 = if proto == frame::TCP { 20 } else { 8 };
    let mut f = vec![0x02, 0, 0, 0, 0, 0x0b, 0x02, 0, 0, 0, 0, 0x0a, 0x08, 0x00];
    let total = (20 + l4 + payload.len()) as u16;
    f.extend_from_slice(&[0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, proto, 0, 0]);
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
    let c = checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    let mut h = vec![0u8; l4];
    h[0..2].copy_from_slice(&40000u16.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    if proto == frame::TCP {
        h[12] = 5 << 4;
    } else {
        h[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    }
    f.extend_from_slice(&h);
    f.extend_from_slice(payload);
    assert!(checksum::complete(&mut f));
    f
}

#[test]
fn udp_to_the_port_is_answered_in_place_and_the_rest_goes_to_the_kernel() {
    let Some(ns) = Netns::new() else {
        eprintln!("skipped: AF_XDP needs root");
        return;
    };
    ns.run(|| {
        let filter = Filter::Udp {
            port: 53,
            any_address: false,
        };
        let mut program = Program::attach_filtered("veth-b", Attach::Auto, filter).unwrap();
        program
            .set_destinations(["192.0.2.2".parse().unwrap()])
            .unwrap();
        let mut config = Config::new("veth-b", 0);
        config.frames = 64;
        let mut xsk = open_duplex(&config, &program).unwrap();
        let (mut tap_b, _) = af_packet::open(&af_packet::Config::new("veth-b"), None).unwrap();
        let (mut rx_a, mut tx_a) =
            af_packet::open(&af_packet::Config::new("veth-a"), None).unwrap();
        let ours: Vec<Vec<u8>> = (0..200u16)
            .map(|i| frame(frame::UDP, 53, format!("q{i:03}").as_bytes()))
            .collect();
        let others = [
            frame(frame::UDP, 54, b"other port"),
            frame(frame::TCP, 53, b"tcp"),
        ];
        // More frames than the UMEM holds: replies must come back to the fill ring.
        let mut answered = 0;
        for chunk in ours.chunks(20) {
            for f in chunk {
                assert!(tx_a.push(f));
            }
            for f in &others {
                assert!(tx_a.push(f));
            }
            tx_a.flush().unwrap();
            let target = answered + chunk.len();
            for _ in 0..50 {
                if answered == target {
                    break;
                }
                xsk.wait(Duration::from_millis(20)).unwrap();
                answered += xsk
                    .serve(64, |buf, len| {
                        // Echo: swap the MACs, uppercase the payload.
                        let (dst, src) = buf.split_at_mut(6);
                        dst.swap_with_slice(&mut src[..6]);
                        buf[42..len].make_ascii_uppercase();
                        Some(len)
                    })
                    .unwrap();
            }
        }
        assert_eq!(answered, ours.len());
        let is_ipv4 = |f: &[u8]| f.len() >= 34 && f[12..14] == [0x08, 0x00];
        let mut back = Vec::new();
        for _ in 0..50 {
            rx_a.rx(Duration::from_millis(20), 256, |f| {
                if is_ipv4(f) {
                    back.push(f.to_vec());
                }
            })
            .unwrap();
            if back.len() >= ours.len() {
                break;
            }
        }
        assert_eq!(back.len(), ours.len(), "every reply came out");
        for (got, sent) in back.iter().zip(&ours) {
            assert_eq!(got[..6], sent[6..12]);
            assert_eq!(got[6..12], sent[..6]);
            assert_eq!(got[42..], sent[42..].to_ascii_uppercase()[..]);
        }
        let mut passed = Vec::new();
        for _ in 0..20 {
            tap_b
                .rx(Duration::from_millis(20), 256, |f| {
                    if is_ipv4(f) {
                        passed.push(f.to_vec());
                    }
                })
                .unwrap();
        }
        assert_eq!(passed.len(), 2 * 10, "the kernel got the rest");
        assert!(passed.iter().all(|f| others.contains(f)));
        assert_eq!(xsk.stats().kernel_drops, 0);
    });
}
