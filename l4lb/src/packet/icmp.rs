//! ICMP and ICMPv6 errors that quote a packet of a tracked flow: finding the inner tuple.
//!
//! Errors about a flow (fragmentation needed / packet too big, unreachable, time exceeded,
//! parameter problem) must reach the endpoint that sent the quoted packet, with the quote
//! translated the way that endpoint sent it, or path-MTU discovery breaks. This file only
//! finds the quote; [`super::rewrite::icmp_nat`] translates it.

use super::ipv4::Ipv4;
use super::ipv6::{self, Ipv6};
use crate::drop::DropReason;
use crate::flow::{Addr, TCP, Tuple, UDP};

/// Offset of the type.
pub const TYPE: usize = 0;
/// Offset of the code.
pub const CODE: usize = 1;
/// Offset of the checksum.
pub const CHECKSUM: usize = 2;
/// Length of the header; an error's quoted packet starts here.
pub const HEADER_LEN: usize = 8;
/// Bytes of the quoted transport header we need: both ports.
pub const QUOTED_PORTS_LEN: usize = 4;

/// ICMP destination unreachable.
pub const V4_DEST_UNREACHABLE: u8 = 3;
/// ICMP destination unreachable code: fragmentation needed and DF set (RFC 1191).
pub const V4_FRAGMENTATION_NEEDED: u8 = 4;
/// ICMP source quench (deprecated, still quoted).
pub const V4_SOURCE_QUENCH: u8 = 4;
/// ICMP time exceeded.
pub const V4_TIME_EXCEEDED: u8 = 11;
/// ICMP parameter problem.
pub const V4_PARAMETER_PROBLEM: u8 = 12;
/// ICMPv6 destination unreachable.
pub const V6_DEST_UNREACHABLE: u8 = 1;
/// ICMPv6 packet too big (RFC 8201).
pub const V6_PACKET_TOO_BIG: u8 = 2;
/// ICMPv6 time exceeded.
pub const V6_TIME_EXCEEDED: u8 = 3;
/// ICMPv6 parameter problem.
pub const V6_PARAMETER_PROBLEM: u8 = 4;

/// Whether an ICMP (or, if `ipv6`, ICMPv6) type is an error that quotes a packet.
pub fn is_error(ipv6: bool, ty: u8) -> bool {
    if ipv6 {
        matches!(
            ty,
            V6_DEST_UNREACHABLE | V6_PACKET_TOO_BIG | V6_TIME_EXCEEDED | V6_PARAMETER_PROBLEM
        )
    } else {
        matches!(
            ty,
            V4_DEST_UNREACHABLE | V4_SOURCE_QUENCH | V4_TIME_EXCEEDED | V4_PARAMETER_PROBLEM
        )
    }
}

/// The packet an ICMP error quotes; offsets are from the start of the ICMP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    /// The quoted packet's tuple, as its sender sent it.
    pub tuple: Tuple,
    /// Where the quoted IP header starts (always [`HEADER_LEN`]).
    pub ip: usize,
    /// Where the quoted transport header starts.
    pub l4: usize,
}

/// The TCP or UDP packet quoted by the ICMP message `msg`. `Ok(None)` if `msg` is not an
/// error, or quotes something other than the first fragment of a TCP or UDP packet.
///
/// # Errors
/// [`DropReason::IcmpTruncated`] or [`DropReason::IcmpMalformed`].
pub fn quote(msg: &[u8], ipv6: bool) -> Result<Option<Quote>, DropReason> {
    if msg.len() < HEADER_LEN {
        return Err(DropReason::IcmpTruncated);
    }
    if !is_error(ipv6, msg[TYPE]) {
        return Ok(None);
    }
    let inner = &msg[HEADER_LEN..];
    let truncated = |e| match e {
        DropReason::Ipv4Truncated | DropReason::Ipv6Truncated => DropReason::IcmpTruncated,
        _ => DropReason::IcmpMalformed,
    };
    let (src, dst, proto, l4) = if ipv6 {
        let ip = Ipv6::new_quoted(inner).map_err(truncated)?;
        match ip.upper_layer(inner.len()).map_err(truncated)? {
            Some((next, at)) if next != ipv6::FRAGMENT => {
                (Addr::v6(ip.src()), Addr::v6(ip.dst()), next, at)
            }
            _ => return Ok(None),
        }
    } else {
        let ip = Ipv4::new_quoted(inner).map_err(truncated)?;
        if ip.is_fragment() && ip.protocol() != 0 {
            // Only a first fragment carries ports; its offset field is 0 and MF is set.
            let b = inner;
            let offset = u16::from_be_bytes([b[6], b[7]]) & super::ipv4::FRAGMENT_OFFSET;
            if offset != 0 {
                return Ok(None);
            }
        }
        (
            Addr::v4(ip.src()),
            Addr::v4(ip.dst()),
            ip.protocol(),
            ip.header_len(),
        )
    };
    if proto != TCP && proto != UDP {
        return Ok(None);
    }
    let l4 = HEADER_LEN + l4;
    if msg.len() < l4 + QUOTED_PORTS_LEN {
        return Err(DropReason::IcmpTruncated);
    }
    let port = |at: usize| u16::from_be_bytes([msg[at], msg[at + 1]]);
    Ok(Some(Quote {
        tuple: Tuple {
            src,
            dst,
            src_port: port(l4),
            dst_port: port(l4 + 2),
            proto,
        },
        ip: HEADER_LEN,
        l4,
    }))
}
