//! IPv6 headers (RFC 8200), with the extension headers a balancer may step over.

use crate::drop::DropReason;

/// Offset of the payload length.
pub const PAYLOAD_LEN: usize = 4;
/// Offset of the next header.
pub const NEXT_HEADER: usize = 6;
/// Offset of the hop limit.
pub const HOP_LIMIT: usize = 7;
/// Offset of the source address.
pub const SRC: usize = 8;
/// Offset of the destination address.
pub const DST: usize = 24;
/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;
/// Next header: hop-by-hop options.
pub const HOP_BY_HOP: u8 = 0;
/// Next header: routing.
pub const ROUTING: u8 = 43;
/// Next header: fragment.
pub const FRAGMENT: u8 = 44;
/// Next header: destination options.
pub const DESTINATION_OPTIONS: u8 = 60;
/// The most extension headers stepped over before giving up (and passing the packet on).
pub const MAX_EXTENSION_HEADERS: usize = 4;

/// A zero-copy view of an IPv6 header at the start of `buf`.
#[derive(Debug)]
pub struct Ipv6<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv6<T> {
    /// The header at the start of `buf`, which MUST hold the whole payload (more is padding).
    ///
    /// # Errors
    /// [`DropReason::Ipv6Truncated`] or [`DropReason::Ipv6Malformed`] (wrong version, or a
    /// jumbogram's zero payload length).
    pub fn new_checked(buf: T) -> Result<Self, DropReason> {
        let ip = Self::new_quoted(buf)?;
        let len = usize::from(ip.payload_len());
        if len == 0 && ip.next_header() == HOP_BY_HOP {
            return Err(DropReason::Ipv6Malformed);
        }
        if HEADER_LEN + len > ip.buf.as_ref().len() {
            return Err(DropReason::Ipv6Truncated);
        }
        Ok(ip)
    }

    /// A header quoted in an ICMPv6 error: the fixed header must be whole.
    ///
    /// # Errors
    /// [`DropReason::Ipv6Truncated`] or [`DropReason::Ipv6Malformed`].
    pub fn new_quoted(buf: T) -> Result<Self, DropReason> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(DropReason::Ipv6Truncated);
        }
        if b[0] >> 4 != 6 {
            return Err(DropReason::Ipv6Malformed);
        }
        Ok(Self { buf })
    }

    /// The payload length in bytes (extension headers included).
    pub fn payload_len(&self) -> u16 {
        let b = self.buf.as_ref();
        u16::from_be_bytes([b[PAYLOAD_LEN], b[PAYLOAD_LEN + 1]])
    }

    /// The next header of the fixed header.
    pub fn next_header(&self) -> u8 {
        self.buf.as_ref()[NEXT_HEADER]
    }

    /// The source address.
    pub fn src(&self) -> [u8; 16] {
        self.buf.as_ref()[SRC..SRC + 16]
            .try_into()
            .unwrap_or_default()
    }

    /// The destination address.
    pub fn dst(&self) -> [u8; 16] {
        self.buf.as_ref()[DST..DST + 16]
            .try_into()
            .unwrap_or_default()
    }

    /// The upper-layer protocol and where it starts, after stepping over hop-by-hop, routing
    /// and destination-options headers. A fragment header is returned as [`FRAGMENT`].
    /// `None` if more than [`MAX_EXTENSION_HEADERS`] are chained.
    ///
    /// # Errors
    /// [`DropReason::Ipv6Truncated`] if an extension header runs past `end`.
    pub fn upper_layer(&self, end: usize) -> Result<Option<(u8, usize)>, DropReason> {
        let b = self.buf.as_ref();
        let mut next = self.next_header();
        let mut at = HEADER_LEN;
        for _ in 0..=MAX_EXTENSION_HEADERS {
            match next {
                HOP_BY_HOP | ROUTING | DESTINATION_OPTIONS => {
                    if at + 2 > end {
                        return Err(DropReason::Ipv6Truncated);
                    }
                    next = b[at];
                    at += (usize::from(b[at + 1]) + 1) * 8;
                }
                _ => {
                    return if at > end {
                        Err(DropReason::Ipv6Truncated)
                    } else {
                        Ok(Some((next, at)))
                    };
                }
            }
        }
        Ok(None)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6<T> {
    /// Sets the source address.
    pub fn set_src(&mut self, a: [u8; 16]) {
        self.buf.as_mut()[SRC..SRC + 16].copy_from_slice(&a);
    }

    /// Sets the destination address.
    pub fn set_dst(&mut self, a: [u8; 16]) {
        self.buf.as_mut()[DST..DST + 16].copy_from_slice(&a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_over_extension_headers() {
        let mut p = [0u8; 40 + 8 + 20];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&28u16.to_be_bytes());
        p[6] = HOP_BY_HOP;
        p[40] = 6; // next: TCP
        p[41] = 0; // 8 bytes
        let ip = Ipv6::new_checked(&p[..]).unwrap();
        assert_eq!(ip.upper_layer(p.len()).unwrap(), Some((6, 48)));
        assert_eq!(
            Ipv6::new_checked(&p[..60]).unwrap_err(),
            DropReason::Ipv6Truncated
        );
        p[0] = 0x40;
        assert_eq!(
            Ipv6::new_checked(&p[..]).unwrap_err(),
            DropReason::Ipv6Malformed
        );
    }
}
