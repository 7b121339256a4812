//! EDNS(0) (RFC 6891): finding the OPT pseudo-record in a query and writing ours.
//!
//! Only the fixed fields are read (payload size, extended rcode, version, DO); options such as
//! cookies or client subnet are skipped, not interpreted.

use super::header::Header;
use super::{Error, TYPE_OPT, name, put, read_u16};

/// The payload size we advertise: the DNS flag day 2020 value, which avoids IP fragmentation.
pub const PAYLOAD: u16 = 1232;
/// The smallest payload a client can ask for (RFC 6891 section 6.2.3).
pub const MIN_PAYLOAD: u16 = 512;
/// The length of an OPT record with no options.
pub const RR_LEN: usize = 11;
/// The DO bit in the OPT TTL field (RFC 3225).
const DO: u32 = 0x8000;

/// The fixed fields of an OPT record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opt {
    /// The requestor's UDP payload size (the CLASS field).
    pub udp_payload: u16,
    /// The upper eight bits of the 12-bit rcode.
    pub ext_rcode: u8,
    /// The EDNS version.
    pub version: u8,
    /// DNSSEC OK.
    pub dnssec_ok: bool,
}

impl Opt {
    /// Finds the OPT record of the message whose question ends at `from`, skipping the answer
    /// and authority sections.
    ///
    /// # Errors
    /// A malformed record, or [`Error::BadOpt`] for a second OPT or one not owned by the root
    /// (RFC 6891 section 6.1.1: both are FORMERR).
    pub fn find(msg: &[u8], from: usize, header: &Header<'_>) -> Result<Option<Self>, Error> {
        let mut pos = from;
        for _ in 0..u32::from(header.ancount()) + u32::from(header.nscount()) {
            pos = skip_record(msg, pos)?;
        }
        let mut found = None;
        for _ in 0..header.arcount() {
            let owner_end = name::skip(msg, pos)?;
            let rtype = read_u16(msg, owner_end)?;
            if rtype == TYPE_OPT {
                if found.is_some() || owner_end != pos + 1 {
                    return Err(Error::BadOpt);
                }
                let class = read_u16(msg, owner_end + 2)?;
                let ttl_hi = read_u16(msg, owner_end + 4)?;
                let ttl_lo = read_u16(msg, owner_end + 6)?;
                let ttl = (u32::from(ttl_hi) << 16) | u32::from(ttl_lo);
                found = Some(Self {
                    udp_payload: class,
                    ext_rcode: (ttl >> 24) as u8,
                    version: (ttl >> 16) as u8,
                    dnssec_ok: ttl & DO != 0,
                });
            }
            pos = skip_record(msg, pos)?;
        }
        Ok(found)
    }

    /// Writes this OPT record, with no options, at `out[pos..]`.
    ///
    /// # Errors
    /// [`Error::NoSpace`].
    pub fn write(&self, out: &mut [u8], pos: usize) -> Result<usize, Error> {
        let ttl = (u32::from(self.ext_rcode) << 24)
            | (u32::from(self.version) << 16)
            | if self.dnssec_ok { DO } else { 0 };
        let mut rr = [0u8; RR_LEN];
        rr[1..3].copy_from_slice(&TYPE_OPT.to_be_bytes());
        rr[3..5].copy_from_slice(&self.udp_payload.to_be_bytes());
        rr[5..9].copy_from_slice(&ttl.to_be_bytes());
        put(out, pos, &rr)
    }
}

/// Skips one resource record, returning the offset after it.
fn skip_record(msg: &[u8], pos: usize) -> Result<usize, Error> {
    let owner_end = name::skip(msg, pos)?;
    let rdlen = usize::from(read_u16(msg, owner_end + 8)?);
    let end = owner_end + 10 + rdlen;
    if end > msg.len() {
        return Err(Error::UnexpectedEnd);
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::header;

    fn query_with(additional: &[&[u8]]) -> Vec<u8> {
        let mut msg = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, additional.len() as u8];
        msg.extend_from_slice(b"\x00\x00\x01\x00\x01");
        for rr in additional {
            msg.extend_from_slice(rr);
        }
        msg
    }

    #[test]
    fn round_trips_an_opt() {
        let opt = Opt {
            udp_payload: 4096,
            ext_rcode: 1,
            version: 0,
            dnssec_ok: true,
        };
        let mut rr = [0u8; RR_LEN];
        assert_eq!(opt.write(&mut rr, 0).unwrap(), RR_LEN);
        let msg = query_with(&[&rr]);
        let h = Header::new(&msg).unwrap();
        assert_eq!(Opt::find(&msg, header::LEN + 5, &h).unwrap(), Some(opt));
        let two = query_with(&[&rr, &rr]);
        let h = Header::new(&two).unwrap();
        assert_eq!(Opt::find(&two, header::LEN + 5, &h), Err(Error::BadOpt));
        let cut = &msg[..msg.len() - 1];
        let h = Header::new(cut).unwrap();
        assert_eq!(
            Opt::find(cut, header::LEN + 5, &h),
            Err(Error::UnexpectedEnd)
        );
    }
}
