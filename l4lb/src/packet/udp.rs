//! UDP headers (RFC 768).

use crate::drop::DropReason;

/// Offset of the source port.
pub const SRC_PORT: usize = 0;
/// Offset of the destination port.
pub const DST_PORT: usize = 2;
/// Offset of the length.
pub const LENGTH: usize = 4;
/// Offset of the checksum.
pub const CHECKSUM: usize = 6;
/// Length of the header.
pub const HEADER_LEN: usize = 8;

/// A zero-copy view of a UDP header at the start of `buf` (the datagram).
#[derive(Debug)]
pub struct Udp<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Udp<T> {
    /// The header at the start of the datagram `buf`.
    ///
    /// # Errors
    /// [`DropReason::UdpTruncated`] or [`DropReason::UdpMalformed`].
    pub fn new_checked(buf: T) -> Result<Self, DropReason> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(DropReason::UdpTruncated);
        }
        let len = usize::from(u16::from_be_bytes([b[LENGTH], b[LENGTH + 1]]));
        if len < HEADER_LEN || len > b.len() {
            return Err(DropReason::UdpMalformed);
        }
        Ok(Self { buf })
    }

    fn u16_at(&self, at: usize) -> u16 {
        let b = self.buf.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    /// The source port.
    pub fn src_port(&self) -> u16 {
        self.u16_at(SRC_PORT)
    }

    /// The destination port.
    pub fn dst_port(&self) -> u16 {
        self.u16_at(DST_PORT)
    }

    /// The checksum; 0 over IPv4 means "none".
    pub fn checksum(&self) -> u16 {
        self.u16_at(CHECKSUM)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_length() {
        let mut d = [0u8; 12];
        d[4..6].copy_from_slice(&12u16.to_be_bytes());
        assert!(Udp::new_checked(&d[..]).is_ok());
        assert_eq!(
            Udp::new_checked(&d[..7]).unwrap_err(),
            DropReason::UdpTruncated
        );
        assert_eq!(
            Udp::new_checked(&d[..10]).unwrap_err(),
            DropReason::UdpMalformed
        );
        d[4..6].copy_from_slice(&4u16.to_be_bytes());
        assert_eq!(
            Udp::new_checked(&d[..]).unwrap_err(),
            DropReason::UdpMalformed
        );
    }
}
