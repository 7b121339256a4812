//! TCP headers (RFC 9293).

use crate::drop::DropReason;

/// Offset of the source port.
pub const SRC_PORT: usize = 0;
/// Offset of the destination port.
pub const DST_PORT: usize = 2;
/// Offset of the data offset (high nibble, in 32-bit words).
pub const DATA_OFFSET: usize = 12;
/// Offset of the flags.
pub const FLAGS: usize = 13;
/// Offset of the checksum.
pub const CHECKSUM: usize = 16;
/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// FIN flag.
pub const FIN: u8 = 0x01;
/// SYN flag.
pub const SYN: u8 = 0x02;
/// RST flag.
pub const RST: u8 = 0x04;
/// ACK flag.
pub const ACK: u8 = 0x10;

/// A zero-copy view of a TCP header at the start of `buf` (the segment).
#[derive(Debug)]
pub struct Tcp<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Tcp<T> {
    /// The header at the start of the segment `buf`.
    ///
    /// # Errors
    /// [`DropReason::TcpTruncated`] or [`DropReason::TcpMalformed`].
    pub fn new_checked(buf: T) -> Result<Self, DropReason> {
        let b = buf.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(DropReason::TcpTruncated);
        }
        let off = usize::from(b[DATA_OFFSET] >> 4) * 4;
        if off < MIN_HEADER_LEN || off > b.len() {
            return Err(DropReason::TcpMalformed);
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

    /// The flags byte ([`FIN`], [`SYN`], [`RST`], [`ACK`], ...).
    pub fn flags(&self) -> u8 {
        self.buf.as_ref()[FLAGS]
    }

    /// The checksum.
    pub fn checksum(&self) -> u16 {
        self.u16_at(CHECKSUM)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_data_offset() {
        let mut s = [0u8; 24];
        s[12] = 0x50;
        s[13] = SYN;
        assert_eq!(Tcp::new_checked(&s[..]).unwrap().flags(), SYN);
        assert_eq!(
            Tcp::new_checked(&s[..19]).unwrap_err(),
            DropReason::TcpTruncated
        );
        s[12] = 0x40;
        assert_eq!(
            Tcp::new_checked(&s[..]).unwrap_err(),
            DropReason::TcpMalformed
        );
        s[12] = 0x70;
        assert_eq!(
            Tcp::new_checked(&s[..]).unwrap_err(),
            DropReason::TcpMalformed
        );
    }
}
