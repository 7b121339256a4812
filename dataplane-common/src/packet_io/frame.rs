//! Where the headers of an Ethernet frame start: Ethernet (with at most one 802.1Q tag), IPv4
//! or IPv6 (stepping over hop-by-hop, routing and destination-options headers), and which
//! transport follows. Offsets only, read from the caller's buffer: no copy, no allocation.
//!
//! This is the little the backends and a frame-level server (dns over `AF_XDP`) need; l4lb's
//! datapath has its own, richer accessors.

/// Offset of the EtherType (or the 802.1Q TPID when tagged).
pub const ETHERTYPE: usize = 12;
/// Length of an untagged Ethernet header.
pub const ETH_LEN: usize = 14;
/// Length of one 802.1Q tag.
pub const VLAN_TAG_LEN: usize = 4;
/// The 802.1Q TPID.
pub const TPID_8021Q: u16 = 0x8100;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Length of the fixed IPv6 header.
pub const IPV6_LEN: usize = 40;
/// IP protocol numbers.
pub const TCP: u8 = 6;
/// UDP's protocol number.
pub const UDP: u8 = 17;
/// IPv6 extension headers (RFC 8200 §4).
const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const DESTINATION_OPTIONS: u8 = 60;
/// At most this many extension headers are stepped over; a longer chain is [`Layout::proto`] 0.
pub const MAX_EXTENSION_HEADERS: usize = 4;

/// Where the headers of an IP frame are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Where the IP header starts (after Ethernet and its tag).
    pub l3: usize,
    /// Where the transport header starts.
    pub l4: usize,
    /// Where the IP packet ends (link-layer padding may follow).
    pub end: usize,
    /// IPv6 rather than IPv4.
    pub ipv6: bool,
    /// The transport protocol (the last next-header for IPv6); 0 when the IPv6 extension
    /// header chain is longer than [`MAX_EXTENSION_HEADERS`].
    pub proto: u8,
    /// An IPv4 fragment, or an IPv6 packet with a fragment header: ports unknown.
    pub fragment: bool,
}

/// Why a frame is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than its Ethernet header (and tag).
    Ethernet,
    /// A bad or truncated IPv4 header.
    Ipv4,
    /// A bad or truncated IPv6 header or extension header chain.
    Ipv6,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The layout of `frame`; `Ok(None)` when it is not IP (ARP and the like).
///
/// # Errors
/// The first header that is truncated or malformed.
pub fn parse(frame: &[u8]) -> Result<Option<Layout>, Malformed> {
    if frame.len() < ETH_LEN {
        return Err(Malformed::Ethernet);
    }
    let (ethertype, l3) = match u16_at(frame, ETHERTYPE) {
        TPID_8021Q if frame.len() < ETH_LEN + VLAN_TAG_LEN => return Err(Malformed::Ethernet),
        TPID_8021Q => (u16_at(frame, ETH_LEN + 2), ETH_LEN + VLAN_TAG_LEN),
        t => (t, ETH_LEN),
    };
    let ip = &frame[l3..];
    match ethertype {
        ETHERTYPE_IPV4 => {
            if ip.len() < 20 || ip[0] >> 4 != 4 {
                return Err(Malformed::Ipv4);
            }
            let header = usize::from(ip[0] & 0x0f) * 4;
            let total = usize::from(u16_at(ip, 2));
            if header < 20 || total < header || total > ip.len() {
                return Err(Malformed::Ipv4);
            }
            Ok(Some(Layout {
                l3,
                l4: l3 + header,
                end: l3 + total,
                ipv6: false,
                proto: ip[9],
                // More Fragments, or a non-zero offset.
                fragment: u16_at(ip, 6) & 0x3fff != 0,
            }))
        }
        ETHERTYPE_IPV6 => {
            if ip.len() < IPV6_LEN || ip[0] >> 4 != 6 {
                return Err(Malformed::Ipv6);
            }
            let end = IPV6_LEN + usize::from(u16_at(ip, 4));
            if end > ip.len() {
                return Err(Malformed::Ipv6);
            }
            let (mut next, mut at) = (ip[6], IPV6_LEN);
            let mut steps = 0;
            while matches!(next, HOP_BY_HOP | ROUTING | DESTINATION_OPTIONS) {
                if steps == MAX_EXTENSION_HEADERS {
                    next = 0;
                    break;
                }
                if at + 2 > end {
                    return Err(Malformed::Ipv6);
                }
                next = ip[at];
                at += (usize::from(ip[at + 1]) + 1) * 8;
                steps += 1;
            }
            if at > end {
                return Err(Malformed::Ipv6);
            }
            Ok(Some(Layout {
                l3,
                l4: l3 + at,
                end: l3 + end,
                ipv6: true,
                proto: next,
                fragment: next == FRAGMENT,
            }))
        }
        _ => Ok(None),
    }
}

impl Layout {
    /// The source address bytes (4 or 16) in `frame`.
    pub fn src<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        if self.ipv6 {
            &frame[self.l3 + 8..self.l3 + 24]
        } else {
            &frame[self.l3 + 12..self.l3 + 16]
        }
    }

    /// The destination address bytes (4 or 16) in `frame`.
    pub fn dst<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        if self.ipv6 {
            &frame[self.l3 + 24..self.l3 + 40]
        } else {
            &frame[self.l3 + 16..self.l3 + 20]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_udp(vlan: bool) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        if vlan {
            f[12..14].copy_from_slice(&TPID_8021Q.to_be_bytes());
            f.extend_from_slice(&[0, 7, 0x08, 0x00]);
        } else {
            f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        }
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(20u16 + 8 + 3).to_be_bytes());
        ip[9] = UDP;
        ip[12..16].copy_from_slice(&[192, 0, 2, 1]);
        ip[16..20].copy_from_slice(&[192, 0, 2, 2]);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0, 53, 0, 53, 0, 11, 0, 0, b'a', b'b', b'c']);
        f.extend_from_slice(&[0; 4]); // link padding
        f
    }

    #[test]
    fn finds_the_headers_of_tagged_and_untagged_ipv4() {
        for vlan in [false, true] {
            let f = ipv4_udp(vlan);
            let l3 = if vlan { 18 } else { 14 };
            let l = parse(&f).unwrap().unwrap();
            assert_eq!(
                l,
                Layout {
                    l3,
                    l4: l3 + 20,
                    end: l3 + 31,
                    ipv6: false,
                    proto: UDP,
                    fragment: false
                }
            );
            assert_eq!(l.src(&f), [192, 0, 2, 1]);
            assert_eq!(l.dst(&f), [192, 0, 2, 2]);
        }
    }

    #[test]
    fn steps_over_ipv6_extension_headers() {
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        let mut ip = [0u8; 40];
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&(8u16 + 8).to_be_bytes());
        ip[6] = HOP_BY_HOP;
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[UDP, 0, 0, 0, 0, 0, 0, 0]);
        f.extend_from_slice(&[0; 8]);
        let l = parse(&f).unwrap().unwrap();
        assert_eq!(
            (l.l4, l.end, l.proto, l.ipv6),
            (14 + 48, 14 + 56, UDP, true)
        );
        f[14 + 40] = FRAGMENT;
        assert!(parse(&f).unwrap().unwrap().fragment);
    }

    #[test]
    fn truncated_and_malformed_headers_are_errors_and_non_ip_is_none() {
        let f = ipv4_udp(false);
        assert_eq!(parse(&f[..10]), Err(Malformed::Ethernet));
        assert_eq!(parse(&f[..30]), Err(Malformed::Ipv4));
        assert_eq!(
            parse(&f[..40]),
            Err(Malformed::Ipv4),
            "total length past the end"
        );
        let mut bad = f.clone();
        bad[14] = 0x44;
        assert_eq!(parse(&bad), Err(Malformed::Ipv4), "IHL below 5");
        let mut v6 = f.clone();
        v6[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        assert_eq!(parse(&v6), Err(Malformed::Ipv6));
        let mut arp = f;
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(parse(&arp), Ok(None));
        assert_eq!(parse(&ipv4_udp(true)[..16]), Err(Malformed::Ethernet));
    }
}
