//! The 12-octet message header (RFC 1035 section 4.1.1): named offsets, flag bits and accessors.
//!
//! [`Header`] reads and [`HeaderMut`] writes; both are created only over buffers of at least
//! [`LEN`] octets, so their accessors cannot fail.

use super::Error;

/// The header's length.
pub const LEN: usize = 12;
/// Offset of the ID.
pub const ID: usize = 0;
/// Offset of the flags word.
pub const FLAGS: usize = 2;
/// Offset of QDCOUNT.
pub const QDCOUNT: usize = 4;
/// Offset of ANCOUNT.
pub const ANCOUNT: usize = 6;
/// Offset of NSCOUNT.
pub const NSCOUNT: usize = 8;
/// Offset of ARCOUNT.
pub const ARCOUNT: usize = 10;

/// Query (0) or response (1).
pub const QR: u16 = 0x8000;
/// The opcode bits.
pub const OPCODE_MASK: u16 = 0x7800;
/// The opcode's shift.
pub const OPCODE_SHIFT: u32 = 11;
/// Authoritative answer.
pub const AA: u16 = 0x0400;
/// Truncated.
pub const TC: u16 = 0x0200;
/// Recursion desired.
pub const RD: u16 = 0x0100;
/// Recursion available.
pub const RA: u16 = 0x0080;
/// Authentic data (RFC 4035).
pub const AD: u16 = 0x0020;
/// Checking disabled (RFC 4035).
pub const CD: u16 = 0x0010;
/// The low four bits of the response code.
pub const RCODE_MASK: u16 = 0x000F;

/// The standard query opcode.
pub const OPCODE_QUERY: u8 = 0;

/// Response codes (RFC 1035 section 4.1.1, RFC 6891 section 9).
pub mod rcode {
    /// No error.
    pub const NOERROR: u8 = 0;
    /// The query could not be interpreted.
    pub const FORMERR: u8 = 1;
    /// The server failed.
    pub const SERVFAIL: u8 = 2;
    /// The name does not exist.
    pub const NXDOMAIN: u8 = 3;
    /// The kind of query is not implemented.
    pub const NOTIMP: u8 = 4;
    /// Refused by policy.
    pub const REFUSED: u8 = 5;
    /// EDNS version not supported; needs the OPT extended rcode to be expressed.
    pub const BADVERS: u8 = 16;
}

/// A read-only view of a header.
#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    /// At least [`LEN`] octets.
    buf: &'a [u8],
}

impl<'a> Header<'a> {
    /// A view over the start of `msg`.
    ///
    /// # Errors
    /// [`Error::UnexpectedEnd`] when `msg` is shorter than a header.
    pub fn new(msg: &'a [u8]) -> Result<Self, Error> {
        if msg.len() < LEN {
            return Err(Error::UnexpectedEnd);
        }
        Ok(Self { buf: msg })
    }

    #[inline]
    fn u16_at(&self, at: usize) -> u16 {
        u16::from_be_bytes([self.buf[at], self.buf[at + 1]])
    }

    /// The ID.
    pub fn id(&self) -> u16 {
        self.u16_at(ID)
    }
    /// The whole flags word.
    pub fn flags(&self) -> u16 {
        self.u16_at(FLAGS)
    }
    /// Whether QR is set.
    pub fn is_response(&self) -> bool {
        self.flags() & QR != 0
    }
    /// The opcode.
    pub fn opcode(&self) -> u8 {
        ((self.flags() & OPCODE_MASK) >> OPCODE_SHIFT) as u8
    }
    /// QDCOUNT.
    pub fn qdcount(&self) -> u16 {
        self.u16_at(QDCOUNT)
    }
    /// ANCOUNT.
    pub fn ancount(&self) -> u16 {
        self.u16_at(ANCOUNT)
    }
    /// NSCOUNT.
    pub fn nscount(&self) -> u16 {
        self.u16_at(NSCOUNT)
    }
    /// ARCOUNT.
    pub fn arcount(&self) -> u16 {
        self.u16_at(ARCOUNT)
    }
}

/// A writable view of a header.
#[derive(Debug)]
pub struct HeaderMut<'a> {
    /// At least [`LEN`] octets.
    buf: &'a mut [u8],
}

impl<'a> HeaderMut<'a> {
    /// A view over the start of `out`.
    ///
    /// # Errors
    /// [`Error::NoSpace`] when `out` is shorter than a header.
    pub fn new(out: &'a mut [u8]) -> Result<Self, Error> {
        if out.len() < LEN {
            return Err(Error::NoSpace);
        }
        Ok(Self { buf: out })
    }

    #[inline]
    fn set_u16(&mut self, at: usize, v: u16) {
        self.buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the ID.
    pub fn set_id(&mut self, id: u16) {
        self.set_u16(ID, id);
    }
    /// Sets the whole flags word.
    pub fn set_flags(&mut self, flags: u16) {
        self.set_u16(FLAGS, flags);
    }
    /// Sets the four section counts.
    pub fn set_counts(&mut self, qd: u16, an: u16, ns: u16, ar: u16) {
        self.set_u16(QDCOUNT, qd);
        self.set_u16(ANCOUNT, an);
        self.set_u16(NSCOUNT, ns);
        self.set_u16(ARCOUNT, ar);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_fields() {
        let mut buf = [0u8; LEN];
        let mut h = HeaderMut::new(&mut buf).unwrap();
        h.set_id(0xBEEF);
        h.set_flags(QR | (4 << OPCODE_SHIFT) | RD | 3);
        h.set_counts(1, 2, 3, 4);
        let r = Header::new(&buf).unwrap();
        assert_eq!(r.id(), 0xBEEF);
        assert!(r.is_response());
        assert_eq!(r.opcode(), 4);
        assert_eq!(r.flags() & RCODE_MASK, 3);
        assert_eq!(
            (r.qdcount(), r.ancount(), r.nscount(), r.arcount()),
            (1, 2, 3, 4)
        );
        assert_eq!(Header::new(&buf[..11]).unwrap_err(), Error::UnexpectedEnd);
    }
}
