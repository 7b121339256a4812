//! The Internet checksum (RFC 1071) and the TCP/UDP checksum of a whole frame, for the
//! backends (finishing a checksum left to offload) and for servers that build frames.
//!
//! A one's-complement sum is kept in a `u64` accumulator of 32-bit big-endian words (2¹⁶ ≡ 1
//! modulo 2¹⁶−1, so summing 32-bit words is the same sum) and folded to 16 bits at the end.

use super::frame::{self, Layout, TCP, UDP};

//= https://www.rfc-editor.org/rfc/rfc1071#section-1
//# (1) Adjacent octets to be checksummed are paired to form 16-bit integers, and the 1's
//# complement sum of these 16-bit integers is formed.

/// Adds `data` to a one's-complement accumulator. `data` MUST start at an even offset of the
/// checksummed whole; a trailing odd byte is padded with a zero byte.
#[inline]
pub fn add(mut acc: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut i = 0;
    if rest.len() >= 2 {
        acc += u64::from(u16::from_be_bytes([rest[0], rest[1]]));
        i = 2;
    }
    if let Some(&b) = rest.get(i) {
        acc += u64::from(b) << 8;
    }
    acc
}

/// Folds an accumulator to 16 bits with end-around carry.
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum of an accumulated sum: its folded one's complement.
#[inline]
pub fn finish(acc: u64) -> u16 {
    !fold(acc)
}

/// The checksum of `data` alone.
pub fn checksum(data: &[u8]) -> u16 {
    finish(add(0, data))
}

/// Offset of the checksum in a TCP header.
const TCP_CHECKSUM: usize = 16;
/// Offset of the checksum in a UDP header.
const UDP_CHECKSUM: usize = 6;

//= https://www.rfc-editor.org/rfc/rfc793#section-3.1
//# The checksum also covers a 96 bit pseudo header conceptually prefixed to the TCP header.
//# This pseudo header contains the Source Address, the Destination Address, the Protocol,
//# and TCP length.

/// The TCP or UDP checksum of the IP packet `layout` describes in `frame`, computed in full
/// over the pseudo-header (RFC 793, RFC 768; RFC 8200 §8.1) and the transport header and
/// payload, with the checksum field itself counted as zero. A UDP result of zero is
/// returned as `0xffff` (RFC 768: zero means "no checksum").
///
/// `layout` MUST come from [`frame::parse`] of `frame` and its transport header MUST be in
/// bounds (`l4 + 8 <= end` for UDP, `l4 + 20 <= end` for TCP).
pub fn transport(frame: &[u8], layout: &Layout) -> u16 {
    let at = layout.l4
        + if layout.proto == TCP {
            TCP_CHECKSUM
        } else {
            UDP_CHECKSUM
        };
    let len = (layout.end - layout.l4) as u64;
    let mut acc = add(add(0, layout.src(frame)), layout.dst(frame));
    acc += len + u64::from(layout.proto);
    acc = add(acc, &frame[layout.l4..at]);
    acc = add(acc, &frame[at + 2..layout.end]);
    let c = finish(acc);
    //= https://www.rfc-editor.org/rfc/rfc768
    //# If the computed checksum is zero, it is transmitted as all ones.
    if layout.proto == UDP && c == 0 {
        0xffff
    } else {
        c
    }
}

/// Computes the TCP or UDP checksum of `frame` in full and writes it, for a frame whose
/// checksum was left to be finished by a NIC (Linux `CHECKSUM_PARTIAL`, which `AF_PACKET`
/// reports as `TP_STATUS_CSUMNOTREADY`: such a frame holds only the pseudo-header sum, and
/// the incremental updates of a rewrite would carry the error along). Returns whether it
/// wrote one; anything else (not TCP or UDP, a fragment, malformed) is left alone.
pub fn complete(frame: &mut [u8]) -> bool {
    let Ok(Some(l)) = frame::parse(frame) else {
        return false;
    };
    let (at, header) = match l.proto {
        TCP => (TCP_CHECKSUM, 20),
        UDP => (UDP_CHECKSUM, 8),
        _ => return false,
    };
    if l.fragment || l.l4 + header > l.end {
        return false;
    }
    if l.proto == TCP && usize::from(frame[l.l4 + 12] >> 4) * 4 < header {
        return false;
    }
    let c = transport(frame, &l);
    frame[l.l4 + at..l.l4 + at + 2].copy_from_slice(&c.to_be_bytes());
    true
}

/// Whether the TCP or UDP checksum of the packet `layout` describes verifies (a UDP checksum
/// of zero over IPv4 means none and verifies).
pub fn verify_transport(frame: &[u8], layout: &Layout) -> bool {
    let at = layout.l4
        + if layout.proto == TCP {
            TCP_CHECKSUM
        } else {
            UDP_CHECKSUM
        };
    let stored = u16::from_be_bytes([frame[at], frame[at + 1]]);
    if layout.proto == UDP && stored == 0 && !layout.ipv6 {
        return true;
    }
    stored == transport(frame, layout)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A UDP/IPv4 frame to 192.0.2.2:53 with a valid IPv4 header checksum.
    fn captured() -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&[
            0x45, 0, 0, 33, 0, 1, 0x40, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
        ]);
        let ip = checksum(&f[14..34]);
        f[24..26].copy_from_slice(&ip.to_be_bytes());
        f.extend_from_slice(&[0x9c, 0x40, 0, 53, 0, 13, 0, 0, b'h', b'e', b'l', b'l', b'o']);
        f
    }

    #[test]
    fn the_whole_packet_sums_to_zero_after_complete() {
        let mut f = captured();
        f[40..42].copy_from_slice(&[0x12, 0x34]);
        let l = frame::parse(&f).unwrap().unwrap();
        assert!(!verify_transport(&f, &l));
        assert!(complete(&mut f));
        assert!(verify_transport(&f, &l));
        // Independently: pseudo-header + UDP segment (with its checksum) folds to all ones.
        let mut acc = add(add(0, &f[26..30]), &f[30..34]);
        acc += 17 + 13;
        assert_eq!(fold(add(acc, &f[34..])), 0xffff);
        let mut arp = vec![0u8; 60];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(!complete(&mut arp));
        let mut fragment = captured();
        fragment[20] = 0x20; // More Fragments
        assert!(!complete(&mut fragment));
    }
}
