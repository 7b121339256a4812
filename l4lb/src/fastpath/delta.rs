//! Checksum deltas precomputed for the XDP program (RFC 1624), so that it only adds and folds.
//!
//! A full-NAT rewrite of one direction of a flow always changes the same fields from the same
//! old values to the same new ones (the addresses and ports of the tuple), so the change to
//! the IPv4 header checksum and to the TCP/UDP checksum (whose pseudo-header covers the
//! addresses) is a constant of the flow: `Σ (~m + m')` over the changed 16-bit words, folded.
//! The program then computes `HC' = ~(~HC + delta)` (RFC 1624 eqn. 3) per packet.
//!
//! Byte order: the program loads a checksum with a plain (little-endian) 16-bit load, so it
//! works on byte-swapped words. One's-complement addition commutes with swapping the bytes of
//! every word (RFC 1071 §2(B)), so a delta computed on network-order words and swapped once
//! ([`loaded`]) gives, stored back with the same plain store, exactly the network-order
//! result. Deltas are kept in that "as loaded" order.

use crate::flow::Tuple;
use crate::packet::checksum::fold;

/// The two deltas of one direction of a flow, as the program loads them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deltas {
    /// For the IPv4 header checksum: the addresses.
    pub ip: u16,
    /// For the TCP or UDP checksum: the addresses (pseudo-header) and the ports.
    pub l4: u16,
}

/// Adds `~old + new` for each 16-bit big-endian word of two equal-length byte strings.
fn replace(acc: &mut u64, old: &[u8], new: &[u8]) {
    debug_assert_eq!(old.len(), new.len());
    for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        *acc += u64::from(!u16::from_be_bytes([o[0], o[1]]));
        *acc += u64::from(u16::from_be_bytes([n[0], n[1]]));
    }
}

/// A network-order 16-bit value as a little-endian load of its two bytes sees it.
#[inline]
pub fn loaded(network: u16) -> u16 {
    u16::from_le_bytes(network.to_be_bytes())
}

/// The deltas that rewrite an IPv4 TCP or UDP packet with tuple `from` into one with tuple
/// `to` (both IPv4).
pub fn deltas(from: &Tuple, to: &Tuple) -> Deltas {
    debug_assert!(from.src.is_ipv4() && to.src.is_ipv4());
    let mut ip = 0u64;
    replace(&mut ip, &from.src.v4_octets(), &to.src.v4_octets());
    replace(&mut ip, &from.dst.v4_octets(), &to.dst.v4_octets());
    let mut l4 = ip;
    replace(
        &mut l4,
        &from.src_port.to_be_bytes(),
        &to.src_port.to_be_bytes(),
    );
    replace(
        &mut l4,
        &from.dst_port.to_be_bytes(),
        &to.dst_port.to_be_bytes(),
    );
    Deltas {
        ip: loaded(fold(ip)),
        l4: loaded(fold(l4)),
    }
}

/// What the program does to a checksum `old` it loaded, with a `delta` in the same order:
/// `~fold(~old + delta)`; one fold is enough for the sum of two 16-bit values.
#[inline]
pub fn apply(old: u16, delta: u16) -> u16 {
    let sum = u32::from(!old) + u32::from(delta);
    let folded = (sum & 0xffff) + (sum >> 16);
    !(folded as u16)
}

/// [`apply`] for a UDP checksum: 0 means "no checksum" over IPv4 and stays 0, and a computed
/// 0 is sent as 0xffff (RFC 768). Both values read the same in either byte order.
#[inline]
pub fn apply_udp(old: u16, delta: u16) -> u16 {
    if old == 0 {
        return 0;
    }
    match apply(old, delta) {
        0 => 0xffff,
        new => new,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{Addr, TCP, UDP};
    use crate::packet::checksum::{self, Delta};
    use crate::packet::{ipv4, tcp, udp};
    use crate::testing::{self, verify_checksums};
    use std::net::SocketAddr;

    const IP: usize = 14;
    const L4: usize = IP + 20;

    fn tuple(src: &str, dst: &str, proto: u8) -> Tuple {
        let (s, d): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
        Tuple {
            src: Addr::from(s.ip()),
            dst: Addr::from(d.ip()),
            src_port: s.port(),
            dst_port: d.port(),
            proto,
        }
    }

    fn endpoint(a: &Addr, port: u16) -> SocketAddr {
        SocketAddr::new(a.ip(), port)
    }

    fn frame(t: &Tuple, payload: &[u8]) -> Vec<u8> {
        let (s, d) = (endpoint(&t.src, t.src_port), endpoint(&t.dst, t.dst_port));
        if t.proto == TCP {
            testing::tcp_frame(s, d, tcp::ACK, payload)
        } else {
            testing::udp_frame(s, d, payload)
        }
    }

    fn read(f: &[u8], at: usize) -> u16 {
        u16::from_le_bytes([f[at], f[at + 1]])
    }

    fn write(f: &mut [u8], at: usize, v: u16) {
        f[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }

    /// Rewrites `f` from `from` to `to` the way the program does: fields copied, checksums
    /// by loaded-order delta.
    fn rewrite(f: &mut [u8], from: &Tuple, to: &Tuple) {
        let d = deltas(from, to);
        let ipc = IP + ipv4::CHECKSUM;
        let c = apply(read(f, ipc), d.ip);
        write(f, ipc, c);
        f[IP + ipv4::SRC..IP + ipv4::SRC + 4].copy_from_slice(&to.src.v4_octets());
        f[IP + ipv4::DST..IP + ipv4::DST + 4].copy_from_slice(&to.dst.v4_octets());
        f[L4..L4 + 2].copy_from_slice(&to.src_port.to_be_bytes());
        f[L4 + 2..L4 + 4].copy_from_slice(&to.dst_port.to_be_bytes());
        if from.proto == TCP {
            let at = L4 + tcp::CHECKSUM;
            let c = apply(read(f, at), d.l4);
            write(f, at, c);
        } else {
            let at = L4 + udp::CHECKSUM;
            let c = apply_udp(read(f, at), d.l4);
            write(f, at, c);
        }
    }

    #[test]
    fn applying_the_delta_equals_recomputing_both_ways_tcp_and_udp() {
        let client = tuple("198.51.100.7:40000", "203.0.113.10:80", TCP);
        let to_real = tuple("198.51.100.100:1025", "10.0.0.11:8080", TCP);
        let reply = to_real.reversed();
        let to_client = client.reversed();
        for proto in [TCP, UDP] {
            let with = |t: Tuple| Tuple { proto, ..t };
            for (from, to) in [
                (with(client), with(to_real)),
                (with(reply), with(to_client)),
            ] {
                for payload in [&b""[..], b"x", b"hello, world", &[0xff; 333]] {
                    let mut got = frame(&from, payload);
                    rewrite(&mut got, &from, &to);
                    // An independent full computation of the same packet.
                    let want = frame(&to, payload);
                    assert_eq!(got, want, "{from:?} -> {to:?}, {} bytes", payload.len());
                    verify_checksums(&got).unwrap();
                }
            }
        }
    }

    #[test]
    fn agrees_with_the_datapaths_incremental_update() {
        let from = tuple("192.0.2.1:1", "192.0.2.2:65535", UDP);
        let to = tuple("255.255.255.255:0", "0.0.0.0:12345", UDP);
        let mut d = Delta::default();
        d.replace_addr(&from.src, &to.src);
        d.replace_addr(&from.dst, &to.dst);
        let ip = d;
        d.replace_u16(from.src_port, to.src_port);
        d.replace_u16(from.dst_port, to.dst_port);
        let got = deltas(&from, &to);
        for hc in [0u16, 1, 0x1234, 0xfffe, 0xffff] {
            assert_eq!(apply(loaded(hc), got.ip), loaded(ip.apply(hc)), "{hc:#x}");
            assert_eq!(apply(loaded(hc), got.l4), loaded(d.apply(hc)), "{hc:#x}");
        }
    }

    #[test]
    fn udp_zero_checksum_stays_zero_and_a_computed_zero_is_sent_as_ffff() {
        let from = tuple("198.51.100.7:5000", "203.0.113.10:53", UDP);
        let to = tuple("198.51.100.100:1025", "10.0.0.11:5353", UDP);
        let mut f = frame(&from, b"no checksum");
        f[L4 + udp::CHECKSUM..L4 + udp::CHECKSUM + 2].fill(0);
        rewrite(&mut f, &from, &to);
        assert_eq!(&f[L4 + udp::CHECKSUM..L4 + udp::CHECKSUM + 2], &[0, 0]);
        let ipc = IP + ipv4::CHECKSUM;
        assert_eq!(
            checksum::checksum(&f[IP..IP + 20]),
            0,
            "the IPv4 header checksum is still right"
        );
        assert_ne!(read(&f, ipc), 0);
        // A checksum whose update comes to 0 (0x0000 and 0xffff are the same sum) is sent
        // as 0xffff.
        let d = deltas(&from, &to);
        let old = (0..=u16::MAX)
            .find(|&c| c != 0 && apply(c, d.l4) == 0)
            .expect("some checksum updates to zero");
        assert_eq!(apply_udp(old, d.l4), 0xffff);
        assert_eq!(apply_udp(0, d.l4), 0);
    }
}
