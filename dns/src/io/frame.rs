//! The frame layer of the `AF_XDP` path, pure: an Ethernet frame holding a UDP query in, where
//! its payload and client are; then the reply frame written over the query frame, in place.
//!
//! The reply swaps the MAC addresses, the IP addresses and the ports, keeps any 802.1Q tag,
//! sets the lengths, a fresh TTL (hop limit), the IPv4 header checksum and the UDP checksum
//! (required for IPv6, computed for IPv4 too). A query's own UDP checksum is not verified:
//! the NIC has checked the frame's FCS, and on veth a local sender leaves the checksum to
//! offload (`CHECKSUM_PARTIAL`), so it is unfinished (Knot's XDP mode does not verify either).

use dataplane_common::packet_io::checksum;
use dataplane_common::packet_io::frame::{self, Layout, Malformed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;

/// Length of a UDP header.
pub const UDP_HEADER: usize = 8;
/// TTL (IPv4) and hop limit (IPv6) of a reply, as Linux's default.
const TTL: u8 = 64;

/// Why a frame got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    /// A truncated Ethernet header.
    Ethernet,
    /// A bad or truncated IPv4 header.
    Ipv4,
    /// A bad or truncated IPv6 header.
    Ipv6,
    /// Not IPv4 or IPv6.
    NotIp,
    /// Not UDP.
    NotUdp,
    /// A fragment (the kernel reassembles those; our program passes them).
    Fragment,
    /// IPv4 options or IPv6 extension headers (not echoed into a reply).
    Options,
    /// A bad UDP length, or a zero checksum over IPv6 (RFC 8200 §8.1).
    Udp,
    /// Not to the served port.
    Port,
    /// From a multicast or broadcast address: never answered.
    Source,
    /// A query larger than the worker's query buffer.
    TooLarge,
}

impl Drop {
    /// Metric label values, in declaration order.
    pub const NAMES: [&'static str; 11] = [
        "ethernet",
        "ipv4",
        "ipv6",
        "not_ip",
        "not_udp",
        "fragment",
        "options",
        "udp",
        "port",
        "source",
        "too_large",
    ];
}

/// Where a query frame's parts are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The IP and transport headers.
    pub layout: Layout,
    /// The client's address and port.
    pub client: SocketAddr,
    /// The DNS message, within the frame.
    pub payload: Range<usize>,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Finds the DNS query in `frame`, a UDP datagram to `port`.
///
/// # Errors
/// Why it is not one we answer.
pub fn query(frame: &[u8], port: u16) -> Result<Query, Drop> {
    let layout = match frame::parse(frame) {
        Ok(Some(l)) => l,
        Ok(None) => return Err(Drop::NotIp),
        Err(Malformed::Ethernet) => return Err(Drop::Ethernet),
        Err(Malformed::Ipv4) => return Err(Drop::Ipv4),
        Err(Malformed::Ipv6) => return Err(Drop::Ipv6),
    };
    if layout.fragment {
        return Err(Drop::Fragment);
    }
    if layout.proto != frame::UDP {
        return Err(Drop::NotUdp);
    }
    let fixed = if layout.ipv6 { frame::IPV6_LEN } else { 20 };
    if layout.l4 - layout.l3 != fixed {
        return Err(Drop::Options);
    }
    let l4 = layout.l4;
    if l4 + UDP_HEADER > layout.end {
        return Err(Drop::Udp);
    }
    let udp_len = usize::from(u16_at(frame, l4 + 4));
    if udp_len < UDP_HEADER || l4 + udp_len > layout.end {
        return Err(Drop::Udp);
    }
    //= https://www.rfc-editor.org/rfc/rfc8200#section-8.1
    //# IPv6 receivers must discard UDP packets containing a zero checksum
    if layout.ipv6 && u16_at(frame, l4 + 6) == 0 {
        return Err(Drop::Udp);
    }
    if u16_at(frame, l4 + 2) != port {
        return Err(Drop::Port);
    }
    let src = layout.src(frame);
    let ip = if layout.ipv6 {
        let a: [u8; 16] = src.try_into().expect("invariant: 16 bytes");
        IpAddr::V6(Ipv6Addr::from(a))
    } else {
        let a: [u8; 4] = src.try_into().expect("invariant: 4 bytes");
        IpAddr::V4(Ipv4Addr::from(a))
    };
    let unicast = match ip {
        IpAddr::V4(a) => !(a.is_multicast() || a.is_broadcast() || a.is_unspecified()),
        IpAddr::V6(a) => !(a.is_multicast() || a.is_unspecified()),
    };
    if !unicast {
        return Err(Drop::Source);
    }
    Ok(Query {
        layout,
        client: SocketAddr::new(ip, u16_at(frame, l4)),
        payload: l4 + UDP_HEADER..l4 + udp_len,
    })
}

/// Turns the query frame in `buf` into the reply frame, whose DNS message (`len` octets) the
/// caller has already written at `q.payload.start`. Returns the reply frame's length.
///
/// `q` MUST come from [`query`] over the same frame, and `buf` MUST hold the whole reply.
pub fn reply(buf: &mut [u8], q: &Query, len: usize) -> usize {
    let Layout { l3, l4, ipv6, .. } = q.layout;
    let end = q.payload.start + len;
    let udp_len = (UDP_HEADER + len) as u16;
    let (macs, _) = buf.split_at_mut(12);
    let (dst, src) = macs.split_at_mut(6);
    dst.swap_with_slice(src);
    if ipv6 {
        let (s, d) = buf[l3 + 8..l3 + 40].split_at_mut(16);
        s.swap_with_slice(d);
        buf[l3 + 4..l3 + 6].copy_from_slice(&udp_len.to_be_bytes());
        buf[l3 + 7] = TTL;
    } else {
        let (s, d) = buf[l3 + 12..l3 + 20].split_at_mut(4);
        s.swap_with_slice(d);
        buf[l3 + 2..l3 + 4].copy_from_slice(&((l4 - l3) as u16 + udp_len).to_be_bytes());
        // No fragment offset, no More Fragments; Don't Fragment as it was.
        buf[l3 + 6] &= 0x40;
        buf[l3 + 7] = 0;
        buf[l3 + 8] = TTL;
        buf[l3 + 10..l3 + 12].fill(0);
        let c = checksum::checksum(&buf[l3..l4]);
        buf[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    }
    let (sport, dport) = buf[l4..l4 + 4].split_at_mut(2);
    sport.swap_with_slice(dport);
    buf[l4 + 4..l4 + 6].copy_from_slice(&udp_len.to_be_bytes());
    let layout = Layout { end, ..q.layout };
    let c = checksum::transport(buf, &layout);
    buf[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
    end
}

#[cfg(test)]
pub(crate) mod tests;
