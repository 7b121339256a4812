//! The rewrites a balancer does to a frame in place.
//!
//! - Full-NAT ([`full_nat`]): source and destination address and port are replaced in both
//!   directions (client→VIP becomes local→real server; the reply is translated back). The IPv4
//!   header checksum and the TCP/UDP checksum are updated incrementally (RFC 1624): the cost
//!   does not depend on the payload length.
//! - DR ([`set_macs`]): only the MACs change; the real server holds the VIP and answers the
//!   client directly.
//! - ICMP errors about a translated flow ([`icmp_nat`]): outer addresses and the quoted
//!   packet are translated; the ICMP checksum is recomputed in full (errors are rare and the
//!   quote may be cut short anywhere).
//!
//! Nothing here decides what to rewrite to; the datapath does.

use super::checksum::{self, Delta};
use super::eth::{self, Mac};
use super::frame::{Frame, Kind};
use super::icmp::{self, Quote};
use super::{ipv4, ipv6, tcp, udp};
use crate::flow::{Addr, ICMPV6, TCP, Tuple};

#[inline]
fn read_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

#[inline]
fn write_u16(buf: &mut [u8], at: usize, v: u16) {
    buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
fn write_addr(buf: &mut [u8], at: usize, a: &Addr) {
    if a.is_ipv4() {
        buf[at..at + 4].copy_from_slice(&a.0[12..]);
    } else {
        buf[at..at + 16].copy_from_slice(&a.0);
    }
}

/// Offsets of the source and destination address in an IP header of `a`'s family.
#[inline]
fn addr_offsets(a: &Addr) -> (usize, usize) {
    if a.is_ipv4() {
        (ipv4::SRC, ipv4::DST)
    } else {
        (ipv6::SRC, ipv6::DST)
    }
}

/// Offset of the checksum in a transport header.
#[inline]
fn l4_checksum_offset(proto: u8) -> usize {
    if proto == TCP {
        tcp::CHECKSUM
    } else {
        udp::CHECKSUM
    }
}

/// Rewrites the IP addresses at `ip` from `from` to `to` (same family), fixing the IPv4
/// header checksum. Returns the address part of the change, for transport checksums.
#[inline]
fn rewrite_addrs(buf: &mut [u8], ip: usize, from: (&Addr, &Addr), to: (&Addr, &Addr)) -> Delta {
    debug_assert_eq!(from.0.is_ipv4(), to.0.is_ipv4(), "no NAT46/64");
    let mut d = Delta::default();
    d.replace_addr(from.0, to.0);
    d.replace_addr(from.1, to.1);
    let (src, dst) = addr_offsets(to.0);
    write_addr(buf, ip + src, to.0);
    write_addr(buf, ip + dst, to.1);
    if to.0.is_ipv4() {
        let c = read_u16(buf, ip + ipv4::CHECKSUM);
        write_u16(buf, ip + ipv4::CHECKSUM, d.apply(c));
    }
    d
}

/// Updates a TCP or UDP checksum at `at` by `d`. A UDP checksum of 0 means "none" over IPv4
/// and stays 0; a computed 0 is sent as 0xffff (RFC 768).
#[inline]
fn update_l4_checksum(buf: &mut [u8], at: usize, proto: u8, d: Delta) {
    let old = read_u16(buf, at);
    if proto == TCP {
        write_u16(buf, at, d.apply(old));
    } else if old != 0 {
        let new = d.apply(old);
        write_u16(buf, at, if new == 0 { 0xffff } else { new });
    }
}

/// Full-NAT: rewrites the TCP or UDP packet parsed as `f` so that its tuple becomes `to`.
/// `to` MUST be in the same address family as `f.tuple`, and `f` MUST be TCP or UDP.
///
/// Both directions are this one function: client→VIP becomes local→real server with
/// `to = (local, real)`, and the reply real→local becomes VIP→client with `to` the client
/// tuple reversed.
pub fn full_nat(buf: &mut [u8], f: &Frame, to: &Tuple) {
    debug_assert!(matches!(f.kind, Kind::Tcp { .. } | Kind::Udp));
    let from = &f.tuple;
    let mut d = rewrite_addrs(buf, f.l3, (&from.src, &from.dst), (&to.src, &to.dst));
    d.replace_u16(from.src_port, to.src_port);
    d.replace_u16(from.dst_port, to.dst_port);
    write_u16(buf, f.l4 + tcp::SRC_PORT, to.src_port);
    write_u16(buf, f.l4 + tcp::DST_PORT, to.dst_port);
    update_l4_checksum(buf, f.l4 + l4_checksum_offset(from.proto), from.proto, d);
}

/// DR: sets the source and destination MACs and changes nothing else.
pub fn set_macs(buf: &mut [u8], src: Mac, dst: Mac) {
    buf[eth::SRC..eth::SRC + 6].copy_from_slice(&src.0);
    buf[eth::DST..eth::DST + 6].copy_from_slice(&dst.0);
}

/// Translates an ICMP error `f` quoting `q`: the outer addresses become `outer` (source,
/// destination) and the quoted packet's tuple becomes `inner`, all in the same family.
///
/// The quoted IPv4 header checksum and the quoted transport checksum (when the quote
/// reaches it) are updated incrementally; the ICMP checksum is recomputed in full.
pub fn icmp_nat(buf: &mut [u8], f: &Frame, q: &Quote, outer: (&Addr, &Addr), inner: &Tuple) {
    rewrite_addrs(buf, f.l3, (&f.tuple.src, &f.tuple.dst), outer);
    let ip = f.l4 + q.ip;
    let from = &q.tuple;
    let mut d = rewrite_addrs(buf, ip, (&from.src, &from.dst), (&inner.src, &inner.dst));
    d.replace_u16(from.src_port, inner.src_port);
    d.replace_u16(from.dst_port, inner.dst_port);
    let l4 = f.l4 + q.l4;
    write_u16(buf, l4 + tcp::SRC_PORT, inner.src_port);
    write_u16(buf, l4 + tcp::DST_PORT, inner.dst_port);
    let at = l4 + l4_checksum_offset(from.proto);
    if at + 2 <= f.end {
        update_l4_checksum(buf, at, from.proto, d);
    }
    let msg = f.l4..f.end;
    write_u16(buf, f.l4 + icmp::CHECKSUM, 0);
    let acc = if f.is_ipv6() {
        let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
        checksum::pseudo_header(outer.0, outer.1, ICMPV6, len)
    } else {
        0
    };
    let c = checksum::finish(checksum::add(acc, &buf[msg]));
    write_u16(buf, f.l4 + icmp::CHECKSUM, c);
}
