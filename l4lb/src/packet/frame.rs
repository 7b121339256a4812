//! One received frame, parsed once: where each header starts and the flow's tuple.

use super::eth::{ETHERTYPE_IPV4, ETHERTYPE_IPV6, Ethernet};
use super::ipv4::Ipv4;
use super::ipv6::{self, Ipv6};
use super::tcp::Tcp;
use super::udp::Udp;
use crate::drop::DropReason;
use crate::flow::{Addr, ICMP, ICMPV6, TCP, Tuple, UDP};

/// What the IP packet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A TCP segment with these flags.
    Tcp {
        /// The flags byte.
        flags: u8,
    },
    /// A UDP datagram.
    Udp,
    /// An ICMP or ICMPv6 message (error or not).
    Icmp,
    /// An IPv4 or IPv6 fragment: ports unknown.
    Fragment,
    /// Another protocol, or more IPv6 extension headers than we step over.
    Other,
}

/// A parsed frame: offsets into the caller's buffer and the tuple as it is on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Where the IP header starts.
    pub l3: usize,
    /// Where the transport (or ICMP) header starts.
    pub l4: usize,
    /// Where the IP packet ends (link-layer padding follows).
    pub end: usize,
    /// The tuple; ports are 0 unless TCP or UDP.
    pub tuple: Tuple,
    /// What it carries.
    pub kind: Kind,
}

impl Frame {
    /// Whether it is IPv6.
    #[inline]
    pub fn is_ipv6(&self) -> bool {
        !self.tuple.src.is_ipv4()
    }
}

/// Parses Ethernet, IP and TCP/UDP headers. `Ok(None)` for anything that is not IP.
///
/// # Errors
/// The [`DropReason`] of the first header that is truncated or malformed.
pub fn parse(frame: &[u8]) -> Result<Option<Frame>, DropReason> {
    let eth = Ethernet::new_checked(frame)?;
    let l3 = eth.payload_offset();
    let (src, dst, proto, l4, end, fragment) = match eth.ethertype() {
        ETHERTYPE_IPV4 => {
            let ip = Ipv4::new_checked(&frame[l3..])?;
            let end = l3 + usize::from(ip.total_len());
            let l4 = l3 + ip.header_len();
            (
                Addr::v4(ip.src()),
                Addr::v4(ip.dst()),
                ip.protocol(),
                l4,
                end,
                ip.is_fragment(),
            )
        }
        ETHERTYPE_IPV6 => {
            let ip = Ipv6::new_checked(&frame[l3..])?;
            let end = l3 + ipv6::HEADER_LEN + usize::from(ip.payload_len());
            let (src, dst) = (Addr::v6(ip.src()), Addr::v6(ip.dst()));
            match ip.upper_layer(end - l3)? {
                Some((next, at)) => (src, dst, next, l3 + at, end, next == ipv6::FRAGMENT),
                None => (src, dst, 0, end, end, false),
            }
        }
        _ => return Ok(None),
    };
    let mut tuple = Tuple {
        src,
        dst,
        src_port: 0,
        dst_port: 0,
        proto,
    };
    let kind = if fragment {
        Kind::Fragment
    } else {
        match proto {
            TCP => {
                let tcp = Tcp::new_checked(&frame[l4..end])?;
                tuple.src_port = tcp.src_port();
                tuple.dst_port = tcp.dst_port();
                Kind::Tcp { flags: tcp.flags() }
            }
            UDP => {
                let udp = Udp::new_checked(&frame[l4..end])?;
                //= https://www.rfc-editor.org/rfc/rfc8200#section-8.1
                //# IPv6 receivers must discard UDP packets containing a zero checksum
                if udp.checksum() == 0 && !src.is_ipv4() {
                    return Err(DropReason::UdpZeroChecksum);
                }
                tuple.src_port = udp.src_port();
                tuple.dst_port = udp.dst_port();
                Kind::Udp
            }
            ICMP if src.is_ipv4() => Kind::Icmp,
            ICMPV6 if !src.is_ipv4() => Kind::Icmp,
            _ => Kind::Other,
        }
    };
    Ok(Some(Frame {
        l3,
        l4,
        end,
        tuple,
        kind,
    }))
}
