//! Why a frame was dropped: a small `Copy` enum that indexes a per-worker counter array.
//!
//! Expected bad input is not an error: every parse failure and every refusal of the datapath
//! maps to exactly one reason here, and the caller counts it.

/// Why the datapath dropped a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Shorter than an Ethernet header (and its 802.1Q tag, if tagged).
    EthTruncated,
    /// Shorter than the IPv4 header or its total length.
    Ipv4Truncated,
    /// IPv4 version, header length or total length is inconsistent.
    Ipv4Malformed,
    /// An IPv4 or IPv6 fragment addressed to a VIP or SNAT address: fragments are not balanced.
    Fragment,
    /// Shorter than the IPv6 header, its payload length or an extension header.
    Ipv6Truncated,
    /// IPv6 version or payload length (jumbogram) is not supported.
    Ipv6Malformed,
    /// Shorter than the TCP header.
    TcpTruncated,
    /// The TCP data offset is below 5 words or past the end of the packet.
    TcpMalformed,
    /// Shorter than the UDP header.
    UdpTruncated,
    /// The UDP length is below 8 or past the end of the packet.
    UdpMalformed,
    /// An IPv6 UDP datagram with a zero checksum (RFC 8200 §8.1: receivers discard it).
    UdpZeroChecksum,
    /// An ICMP error shorter than its header or than the quoted headers.
    IcmpTruncated,
    /// The packet quoted by an ICMP error is not a well-formed IP header.
    IcmpMalformed,
    /// A TCP segment other than a SYN for a full-NAT VIP with no session: the real server
    /// cannot know the rewritten tuple, so forwarding it would only draw a reset.
    NoSession,
    /// The VIP has no real server that is up, weighted and in its address family.
    NoRealServer,
    /// The session table is full and no session is idle long enough to evict.
    TableFull,
    /// No free local (SNAT) port towards the chosen real server.
    PortsExhausted,
    /// No local (SNAT) address in the real server's address family.
    NoLocalAddress,
}

impl DropReason {
    /// How many reasons there are: the length of a counter array.
    pub const COUNT: usize = 18;

    /// Every reason, in counter-index order.
    pub const ALL: [Self; Self::COUNT] = [
        Self::EthTruncated,
        Self::Ipv4Truncated,
        Self::Ipv4Malformed,
        Self::Fragment,
        Self::Ipv6Truncated,
        Self::Ipv6Malformed,
        Self::TcpTruncated,
        Self::TcpMalformed,
        Self::UdpTruncated,
        Self::UdpMalformed,
        Self::UdpZeroChecksum,
        Self::IcmpTruncated,
        Self::IcmpMalformed,
        Self::NoSession,
        Self::NoRealServer,
        Self::TableFull,
        Self::PortsExhausted,
        Self::NoLocalAddress,
    ];

    /// Label values for a counter family, indexed by [`Self::index`].
    pub const NAMES: &'static [&'static str] = &[
        "eth_truncated",
        "ipv4_truncated",
        "ipv4_malformed",
        "fragment",
        "ipv6_truncated",
        "ipv6_malformed",
        "tcp_truncated",
        "tcp_malformed",
        "udp_truncated",
        "udp_malformed",
        "udp_zero_checksum",
        "icmp_truncated",
        "icmp_malformed",
        "no_session",
        "no_real_server",
        "table_full",
        "ports_exhausted",
        "no_local_address",
    ];

    /// Its slot in a counter array of length [`Self::COUNT`].
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Its label value.
    pub const fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_all_line_up_with_the_discriminants() {
        assert_eq!(DropReason::NAMES.len(), DropReason::COUNT);
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        assert_eq!(DropReason::TableFull.name(), "table_full");
    }
}
