//! IPv4 headers (RFC 791).

use crate::drop::DropReason;

/// Offset of version (high nibble) and IHL (low nibble, in 32-bit words).
pub const VERSION_IHL: usize = 0;
/// Offset of the total length.
pub const TOTAL_LEN: usize = 2;
/// Offset of flags (high 3 bits) and fragment offset (low 13 bits).
pub const FLAGS_FRAGMENT: usize = 6;
/// Offset of the TTL.
pub const TTL: usize = 8;
/// Offset of the protocol.
pub const PROTOCOL: usize = 9;
/// Offset of the header checksum.
pub const CHECKSUM: usize = 10;
/// Offset of the source address.
pub const SRC: usize = 12;
/// Offset of the destination address.
pub const DST: usize = 16;
/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// The More Fragments flag in the flags/fragment-offset field.
pub const MORE_FRAGMENTS: u16 = 0x2000;
/// The fragment-offset mask.
pub const FRAGMENT_OFFSET: u16 = 0x1fff;

/// A zero-copy view of an IPv4 header at the start of `buf`.
#[derive(Debug)]
pub struct Ipv4<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv4<T> {
    /// The header at the start of `buf`, checked against the whole packet: `buf` MUST hold at
    /// least `total_len` bytes (more is link-layer padding).
    ///
    /// # Errors
    /// [`DropReason::Ipv4Truncated`] or [`DropReason::Ipv4Malformed`].
    pub fn new_checked(buf: T) -> Result<Self, DropReason> {
        let ip = Self::new_quoted(buf)?;
        let total = usize::from(ip.total_len());
        if total < ip.header_len() {
            return Err(DropReason::Ipv4Malformed);
        }
        if total > ip.buf.as_ref().len() {
            return Err(DropReason::Ipv4Truncated);
        }
        Ok(ip)
    }

    /// A header quoted in an ICMP error: the header must be whole, the payload may be cut.
    ///
    /// # Errors
    /// [`DropReason::Ipv4Truncated`] or [`DropReason::Ipv4Malformed`].
    pub fn new_quoted(buf: T) -> Result<Self, DropReason> {
        let b = buf.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(DropReason::Ipv4Truncated);
        }
        if b[VERSION_IHL] >> 4 != 4 || usize::from(b[VERSION_IHL] & 0x0f) * 4 < MIN_HEADER_LEN {
            return Err(DropReason::Ipv4Malformed);
        }
        if usize::from(b[VERSION_IHL] & 0x0f) * 4 > b.len() {
            return Err(DropReason::Ipv4Truncated);
        }
        Ok(Self { buf })
    }

    fn u16_at(&self, at: usize) -> u16 {
        let b = self.buf.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    fn addr_at(&self, at: usize) -> [u8; 4] {
        let b = self.buf.as_ref();
        [b[at], b[at + 1], b[at + 2], b[at + 3]]
    }

    /// Header length in bytes, options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buf.as_ref()[VERSION_IHL] & 0x0f) * 4
    }

    /// Total length of the packet in bytes.
    pub fn total_len(&self) -> u16 {
        self.u16_at(TOTAL_LEN)
    }

    /// Whether this is a fragment (More Fragments set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        self.u16_at(FLAGS_FRAGMENT) & (MORE_FRAGMENTS | FRAGMENT_OFFSET) != 0
    }

    /// The payload protocol.
    pub fn protocol(&self) -> u8 {
        self.buf.as_ref()[PROTOCOL]
    }

    /// The header checksum.
    pub fn checksum(&self) -> u16 {
        self.u16_at(CHECKSUM)
    }

    /// The source address.
    pub fn src(&self) -> [u8; 4] {
        self.addr_at(SRC)
    }

    /// The destination address.
    pub fn dst(&self) -> [u8; 4] {
        self.addr_at(DST)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4<T> {
    /// Sets the source address; the checksum is the caller's job.
    pub fn set_src(&mut self, a: [u8; 4]) {
        self.buf.as_mut()[SRC..SRC + 4].copy_from_slice(&a);
    }

    /// Sets the destination address; the checksum is the caller's job.
    pub fn set_dst(&mut self, a: [u8; 4]) {
        self.buf.as_mut()[DST..DST + 4].copy_from_slice(&a);
    }

    /// Sets the header checksum.
    pub fn set_checksum(&mut self, c: u16) {
        self.buf.as_mut()[CHECKSUM..CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
    }

    /// Recomputes the header checksum in full.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let len = self.header_len();
        let c = super::checksum::checksum(&self.buf.as_ref()[..len]);
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> [u8; 24] {
        let mut h = [0u8; 24];
        h[0] = 0x45;
        h[2..4].copy_from_slice(&24u16.to_be_bytes());
        h[9] = 6;
        h[12..16].copy_from_slice(&[10, 0, 0, 1]);
        h[16..20].copy_from_slice(&[10, 0, 0, 2]);
        h
    }

    #[test]
    fn parses_and_rejects_by_reason() {
        let h = header();
        let ip = Ipv4::new_checked(&h[..]).unwrap();
        assert_eq!(
            (ip.header_len(), ip.protocol(), ip.src()),
            (20, 6, [10, 0, 0, 1])
        );
        assert!(!ip.is_fragment());
        assert_eq!(
            Ipv4::new_checked(&h[..19]).unwrap_err(),
            DropReason::Ipv4Truncated
        );
        assert_eq!(
            Ipv4::new_checked(&h[..22]).unwrap_err(),
            DropReason::Ipv4Truncated
        );
        let mut bad = h;
        bad[0] = 0x44;
        assert_eq!(
            Ipv4::new_checked(&bad[..]).unwrap_err(),
            DropReason::Ipv4Malformed
        );
        bad[0] = 0x65;
        assert_eq!(
            Ipv4::new_checked(&bad[..]).unwrap_err(),
            DropReason::Ipv4Malformed
        );
        bad = h;
        bad[2..4].copy_from_slice(&10u16.to_be_bytes());
        assert_eq!(
            Ipv4::new_checked(&bad[..]).unwrap_err(),
            DropReason::Ipv4Malformed
        );
        bad = h;
        bad[6] = 0x20;
        assert!(Ipv4::new_checked(&bad[..]).unwrap().is_fragment());
    }

    #[test]
    fn fill_checksum_verifies() {
        let mut h = header();
        let mut ip = Ipv4::new_checked(&mut h[..]).unwrap();
        ip.fill_checksum();
        assert_eq!(super::super::checksum::checksum(&h[..20]), 0);
    }
}
