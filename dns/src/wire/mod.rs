//! The DNS message wire format (RFC 1035 section 4), read in place and written into caller buffers.
//!
//! Readers take `&[u8]` and return offsets and small `Copy` values; nothing allocates. Writers
//! take `&mut [u8]` and a position and fail with [`Error::NoSpace`] rather than grow anything.
//! This module knows nothing about zones, policies or clients: that is `authority` and `respond`.

pub mod edns;
pub mod error;
pub mod header;
pub mod message;
pub mod name;
pub mod question;

pub use error::Error;

/// Class IN (RFC 1035 section 3.2.4).
pub const CLASS_IN: u16 = 1;
/// QCLASS `*` (RFC 1035 section 3.2.5).
pub const CLASS_ANY: u16 = 255;
/// QTYPE `*` (RFC 1035 section 3.2.3; answered minimally per RFC 8482).
pub const TYPE_ANY: u16 = 255;
/// The OPT pseudo-type (RFC 6891 section 6.1.1).
pub const TYPE_OPT: u16 = 41;
/// Incremental zone transfer (RFC 1995).
pub const TYPE_IXFR: u16 = 251;
/// Full zone transfer (RFC 5936).
pub const TYPE_AXFR: u16 = 252;

/// Reads a big-endian `u16` at `at`.
///
/// # Errors
/// [`Error::UnexpectedEnd`] when `buf` ends first.
#[inline]
pub fn read_u16(buf: &[u8], at: usize) -> Result<u16, Error> {
    match buf.get(at..at + 2) {
        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
        None => Err(Error::UnexpectedEnd),
    }
}

/// Writes `bytes` at `pos`, returning the position after them.
///
/// # Errors
/// [`Error::NoSpace`] when `out` is too short.
#[inline]
pub fn put(out: &mut [u8], pos: usize, bytes: &[u8]) -> Result<usize, Error> {
    let end = pos + bytes.len();
    match out.get_mut(pos..end) {
        Some(dst) => {
            dst.copy_from_slice(bytes);
            Ok(end)
        }
        None => Err(Error::NoSpace),
    }
}
