//! The Internet checksum: full computation (RFC 1071, from [`dataplane_common::packet_io`]),
//! incremental update (RFC 1624) and the TCP/UDP/ICMPv6 pseudo-headers.
//!
//! A one's-complement sum is kept in a `u64` accumulator of 32-bit big-endian words (2¹⁶ ≡ 1
//! modulo 2¹⁶−1, so summing 32-bit words is the same sum) and folded to 16 bits at the end.

use crate::flow::Addr;

// The RFC 1071 sum and the completion of a checksum left to offload are shared with the
// packet I/O backends, which finish such checksums before the datapath sees a frame.
pub use dataplane_common::packet_io::checksum::{add, checksum, complete, finish, fold};

//= https://www.rfc-editor.org/rfc/rfc793#section-3.1
//# The checksum also covers a 96 bit pseudo header conceptually prefixed to the TCP header.
//# This pseudo header contains the Source Address, the Destination Address, the Protocol,
//# and TCP length.

/// The pseudo-header sum for an upper-layer checksum: IPv4 (RFC 793, RFC 768) or IPv6
/// (RFC 8200 §8.1), chosen by the address family of `src`.
#[inline]
pub fn pseudo_header(src: &Addr, dst: &Addr, proto: u8, len: u32) -> u64 {
    let acc = if src.is_ipv4() {
        add(add(0, &src.0[12..]), &dst.0[12..])
    } else {
        add(add(0, &src.0), &dst.0)
    };
    acc + u64::from(len) + u64::from(proto)
}

//= https://www.rfc-editor.org/rfc/rfc1624#section-3
//# HC' = ~(~HC + ~m + m')

/// The change to a checksummed region, accumulated field by field (RFC 1624, eqn. 3) and then
/// applied to any checksum that covers those fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delta(u64);

impl Delta {
    /// Records that the bytes `old` became `new`. Both MUST have the same even length and
    /// start at an even offset of the checksummed region.
    #[inline]
    pub fn replace(&mut self, old: &[u8], new: &[u8]) {
        debug_assert_eq!(old.len(), new.len());
        debug_assert_eq!(old.len() % 2, 0);
        for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
            self.0 += u64::from(!u16::from_be_bytes([o[0], o[1]]));
            self.0 += u64::from(u16::from_be_bytes([n[0], n[1]]));
        }
    }

    /// Records that the 16-bit field `old` became `new`.
    #[inline]
    pub fn replace_u16(&mut self, old: u16, new: u16) {
        self.0 += u64::from(!old) + u64::from(new);
    }

    /// Records that an address became another; for IPv4 only the low four bytes count.
    #[inline]
    pub fn replace_addr(&mut self, old: &Addr, new: &Addr) {
        if old.is_ipv4() {
            self.replace(&old.0[12..], &new.0[12..]);
        } else {
            self.replace(&old.0, &new.0);
        }
    }

    /// The sum of both changes.
    #[inline]
    #[must_use]
    pub fn and(self, other: Self) -> Self {
        Self(self.0 + other.0)
    }

    /// The checksum `hc` after the recorded changes.
    #[inline]
    pub fn apply(self, hc: u16) -> u16 {
        !fold(u64::from(!hc) + self.0)
    }
}

/// `hc` after a 16-bit field changed from `old` to `new`.
#[inline]
pub fn update_u16(hc: u16, old: u16, new: u16) -> u16 {
    let mut d = Delta::default();
    d.replace_u16(old, new);
    d.apply(hc)
}

/// `hc` after a 32-bit field (an IPv4 address) changed from `old` to `new`.
#[inline]
pub fn update_u32(hc: u16, old: [u8; 4], new: [u8; 4]) -> u16 {
    let mut d = Delta::default();
    d.replace(&old, &new);
    d.apply(hc)
}

/// `hc` after an IPv6 address changed from `old` to `new`.
#[inline]
pub fn update_ipv6(hc: u16, old: &[u8; 16], new: &[u8; 16]) -> u16 {
    let mut d = Delta::default();
    d.replace(old, new);
    d.apply(hc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 1071 §3, the worked example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(add(0, &data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(fold(add(0, &[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
    }

    /// A region with its checksum at bytes 0..2, computed in full.
    fn with_checksum(mut data: Vec<u8>) -> Vec<u8> {
        data[0] = 0;
        data[1] = 0;
        let c = checksum(&data);
        data[..2].copy_from_slice(&c.to_be_bytes());
        data
    }

    proptest! {
        /// Changing any even-aligned field and updating incrementally gives the checksum a
        /// full recomputation gives (and the region still verifies).
        #[test]
        fn incremental_matches_full(
            data in proptest::collection::vec(any::<u8>(), 4..200),
            at in any::<prop::sample::Index>(),
            width in prop_oneof![Just(2usize), Just(4), Just(16)],
            new in proptest::collection::vec(any::<u8>(), 16),
        ) {
            let data = with_checksum(data);
            let words = (data.len() - 2) / 2;
            prop_assume!(words * 2 >= width);
            let start = 2 + at.index(words - width / 2 + 1) * 2;
            let mut changed = data.clone();
            changed[start..start + width].copy_from_slice(&new[..width]);
            // All-zero data is the one case where full and incremental differ (+0 vs -0).
            prop_assume!(changed[2..].iter().any(|&b| b != 0));
            let hc = u16::from_be_bytes([data[0], data[1]]);
            let incremental = match width {
                2 => update_u16(
                    hc,
                    u16::from_be_bytes([data[start], data[start + 1]]),
                    u16::from_be_bytes([new[0], new[1]]),
                ),
                4 => update_u32(
                    hc,
                    data[start..start + 4].try_into().unwrap(),
                    new[..4].try_into().unwrap(),
                ),
                _ => update_ipv6(
                    hc,
                    data[start..start + 16].try_into().unwrap(),
                    new[..16].try_into().unwrap(),
                ),
            };
            let full = with_checksum(changed.clone());
            prop_assert_eq!(incremental, u16::from_be_bytes([full[0], full[1]]));
            changed[..2].copy_from_slice(&incremental.to_be_bytes());
            prop_assert_eq!(fold(add(0, &changed)), 0xffff);
        }

        /// Several changes summed into one `Delta` equal the changes applied one by one.
        #[test]
        fn delta_composes(hc in any::<u16>(), pairs in proptest::collection::vec(any::<(u16, u16)>(), 1..8)) {
            let mut d = Delta::default();
            let mut step = hc;
            for &(o, n) in &pairs {
                d.replace_u16(o, n);
                step = update_u16(step, o, n);
            }
            // Equal as one's-complement numbers: 0x0000 and 0xffff are the same value.
            let norm = |x: u16| if x == 0xffff { 0 } else { x };
            prop_assert_eq!(norm(d.apply(hc)), norm(step));
        }
    }

    #[test]
    fn complete_finishes_a_partial_checksum() {
        use crate::testing;
        let (c, v) = (
            "192.0.2.1:4000".parse().unwrap(),
            "198.51.100.1:80".parse().unwrap(),
        );
        for mut f in [
            testing::tcp_frame(c, v, crate::packet::tcp::SYN, b"hello"),
            testing::udp_frame(c, v, b"odd"),
        ] {
            let at = f.len() - if f[23] == 6 { 9 } else { 5 };
            f[at..at + 2].copy_from_slice(&[0x12, 0x34]);
            assert!(testing::verify_checksums(&f).is_err());
            assert!(complete(&mut f));
            testing::verify_checksums(&f).unwrap();
        }
        let mut arp = vec![0u8; 60];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(!complete(&mut arp));
    }
}
