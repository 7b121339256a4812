//! Frame builders and checksum verifiers for tests and benches (feature `testing`).
//!
//! Frames are built the slow, obvious way (every checksum computed in full), so that tests
//! compare the datapath's incremental work against an independent computation.

use crate::flow::{Addr, ICMP, ICMPV6, TCP, UDP};
use crate::packet::checksum;
use crate::packet::eth::{ETHERTYPE_IPV4, ETHERTYPE_IPV6, Mac};
use crate::packet::{frame, icmp, ipv4, ipv6, tcp, udp};
use std::net::{IpAddr, SocketAddr};

/// The client-side router's MAC in test frames.
pub const ROUTER_MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0x01]);
/// The balancer's MAC.
pub const LB_MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0x02]);
/// The gateway's MAC.
pub const GATEWAY_MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0x03]);

/// A TCP segment header with `flags`, followed by `payload`, checksum 0.
fn tcp_segment(src_port: u16, dst_port: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut s = vec![0u8; tcp::MIN_HEADER_LEN];
    s[tcp::SRC_PORT..tcp::SRC_PORT + 2].copy_from_slice(&src_port.to_be_bytes());
    s[tcp::DST_PORT..tcp::DST_PORT + 2].copy_from_slice(&dst_port.to_be_bytes());
    s[4..8].copy_from_slice(&0x0102_0304u32.to_be_bytes());
    s[tcp::DATA_OFFSET] = 5 << 4;
    s[tcp::FLAGS] = flags;
    s[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
    s.extend_from_slice(payload);
    s
}

/// A UDP datagram, checksum 0.
fn udp_datagram(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let len = (udp::HEADER_LEN + payload.len()) as u16;
    let mut d = vec![0u8; udp::HEADER_LEN];
    d[udp::SRC_PORT..udp::SRC_PORT + 2].copy_from_slice(&src_port.to_be_bytes());
    d[udp::DST_PORT..udp::DST_PORT + 2].copy_from_slice(&dst_port.to_be_bytes());
    d[udp::LENGTH..udp::LENGTH + 2].copy_from_slice(&len.to_be_bytes());
    d.extend_from_slice(payload);
    d
}

/// The full checksum of an upper-layer message (with its checksum field zeroed).
fn upper_checksum(src: &Addr, dst: &Addr, proto: u8, msg: &[u8]) -> u16 {
    let pseudo = if proto == ICMP {
        0
    } else {
        checksum::pseudo_header(src, dst, proto, msg.len() as u32)
    };
    checksum::finish(checksum::add(pseudo, msg))
}

fn checksum_offset(proto: u8) -> usize {
    match proto {
        TCP => tcp::CHECKSUM,
        UDP => udp::CHECKSUM,
        _ => icmp::CHECKSUM,
    }
}

/// An IP packet (no Ethernet) carrying `l4`, with all checksums filled in.
pub fn ip_packet(src: IpAddr, dst: IpAddr, proto: u8, mut l4: Vec<u8>) -> Vec<u8> {
    let (s, d) = (Addr::from(src), Addr::from(dst));
    let at = checksum_offset(proto);
    l4[at..at + 2].fill(0);
    let mut c = upper_checksum(&s, &d, proto, &l4);
    if proto == UDP && c == 0 {
        c = 0xffff;
    }
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    let mut p = if s.is_ipv4() {
        let mut h = vec![0u8; ipv4::MIN_HEADER_LEN];
        h[ipv4::VERSION_IHL] = 0x45;
        let total = (ipv4::MIN_HEADER_LEN + l4.len()) as u16;
        h[ipv4::TOTAL_LEN..ipv4::TOTAL_LEN + 2].copy_from_slice(&total.to_be_bytes());
        h[ipv4::FLAGS_FRAGMENT] = 0x40; // DF
        h[ipv4::TTL] = 64;
        h[ipv4::PROTOCOL] = proto;
        h[ipv4::SRC..ipv4::SRC + 4].copy_from_slice(&s.v4_octets());
        h[ipv4::DST..ipv4::DST + 4].copy_from_slice(&d.v4_octets());
        let c = checksum::checksum(&h);
        h[ipv4::CHECKSUM..ipv4::CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
        h
    } else {
        let mut h = vec![0u8; ipv6::HEADER_LEN];
        h[0] = 0x60;
        h[ipv6::PAYLOAD_LEN..ipv6::PAYLOAD_LEN + 2]
            .copy_from_slice(&(l4.len() as u16).to_be_bytes());
        h[ipv6::NEXT_HEADER] = proto;
        h[ipv6::HOP_LIMIT] = 64;
        h[ipv6::SRC..ipv6::SRC + 16].copy_from_slice(&s.0);
        h[ipv6::DST..ipv6::DST + 16].copy_from_slice(&d.0);
        h
    };
    p.extend_from_slice(&l4);
    p
}

/// An Ethernet frame from `src_mac` to `dst_mac` carrying the IP packet `ip`.
pub fn ethernet(src_mac: Mac, dst_mac: Mac, ip: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + ip.len());
    f.extend_from_slice(&dst_mac.0);
    f.extend_from_slice(&src_mac.0);
    let ty = if ip[0] >> 4 == 4 {
        ETHERTYPE_IPV4
    } else {
        ETHERTYPE_IPV6
    };
    f.extend_from_slice(&ty.to_be_bytes());
    f.extend_from_slice(ip);
    f
}

/// A TCP frame from the router to the balancer.
pub fn tcp_frame(src: SocketAddr, dst: SocketAddr, flags: u8, payload: &[u8]) -> Vec<u8> {
    let seg = tcp_segment(src.port(), dst.port(), flags, payload);
    ethernet(ROUTER_MAC, LB_MAC, &ip_packet(src.ip(), dst.ip(), TCP, seg))
}

/// A UDP frame from the router to the balancer.
pub fn udp_frame(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let dgram = udp_datagram(src.port(), dst.port(), payload);
    ethernet(
        ROUTER_MAC,
        LB_MAC,
        &ip_packet(src.ip(), dst.ip(), UDP, dgram),
    )
}

/// An ICMP (or ICMPv6) error from `src` to `dst` quoting the first `quote_len` bytes of the
/// IP packet `quoted`; `rest` is the 4 bytes after type, code and checksum (the MTU).
pub fn icmp_error(
    src: IpAddr,
    dst: IpAddr,
    ty: u8,
    code: u8,
    rest: u32,
    quoted: &[u8],
    quote_len: usize,
) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&rest.to_be_bytes());
    m.extend_from_slice(&quoted[..quote_len.min(quoted.len())]);
    let proto = if src.is_ipv4() { ICMP } else { ICMPV6 };
    ethernet(ROUTER_MAC, LB_MAC, &ip_packet(src, dst, proto, m))
}

/// The IP packet inside an Ethernet frame (without a VLAN tag).
pub fn ip_of(frame: &[u8]) -> &[u8] {
    &frame[14..]
}

/// Recomputes every checksum of `frame` in full (IPv4 header, TCP/UDP/ICMP, and the IPv4
/// header of a quoted packet) and says which one is wrong.
///
/// # Errors
/// A description of the first checksum that does not match.
pub fn verify_checksums(frame: &[u8]) -> Result<(), String> {
    let f = frame::parse(frame)
        .map_err(|r| format!("does not parse: {r:?}"))?
        .ok_or("not IP")?;
    let t = &f.tuple;
    if t.src.is_ipv4() {
        let h = &frame[f.l3..f.l4];
        if checksum::checksum(h) != 0 {
            return Err("IPv4 header checksum".into());
        }
    }
    let msg = &frame[f.l4..f.end];
    let at = checksum_offset(t.proto);
    let got = u16::from_be_bytes([msg[at], msg[at + 1]]);
    if !(t.proto == UDP && got == 0 && t.src.is_ipv4()) {
        let mut zeroed = msg.to_vec();
        zeroed[at..at + 2].fill(0);
        let mut want = upper_checksum(&t.src, &t.dst, t.proto, &zeroed);
        if t.proto == UDP && want == 0 {
            want = 0xffff;
        }
        if got != want {
            return Err(format!(
                "proto {} checksum {got:#06x}, want {want:#06x}",
                t.proto
            ));
        }
    }
    if matches!(f.kind, frame::Kind::Icmp)
        && t.src.is_ipv4()
        && let Ok(Some(q)) = icmp::quote(msg, false)
        && checksum::checksum(&msg[q.ip..q.l4]) != 0
    {
        return Err("quoted IPv4 header checksum".into());
    }
    Ok(())
}
