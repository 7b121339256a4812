//! A whole message read into owned records, and queries written from scratch: what a resolver
//! needs from the responses of other servers (RFC 1035 section 4.1).
//!
//! Unlike the query path ([`super::question`], [`super::edns`]), which reads in place, a
//! response from upstream is read once into [`Rr`]s whose names, owner and RDATA alike, are
//! uncompressed and lower-cased: the form bailiwick checks compare and the cache re-encodes.
//! This allocates; it runs once per upstream response, never per cache hit.

use super::header::{self, Header, HeaderMut};
use super::name::NameBuf;
use super::{CLASS_IN, Error, TYPE_OPT, put, read_u16};

/// A (lower-case) resource record with its names uncompressed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rr {
    /// The owner, uncompressed wire form, lower-case.
    pub owner: Box<[u8]>,
    /// TYPE.
    pub rtype: u16,
    /// CLASS.
    pub class: u16,
    /// TTL, seconds (values with the top bit set read as 0, RFC 2181 section 8).
    pub ttl: u32,
    /// RDATA, with the names of NS, CNAME, PTR, MX, SOA and SRV uncompressed.
    pub rdata: Box<[u8]>,
}

/// TYPE A.
pub const TYPE_A: u16 = 1;
/// TYPE NS.
pub const TYPE_NS: u16 = 2;
/// TYPE CNAME.
pub const TYPE_CNAME: u16 = 5;
/// TYPE SOA.
pub const TYPE_SOA: u16 = 6;
/// TYPE PTR.
pub const TYPE_PTR: u16 = 12;
/// TYPE MX.
pub const TYPE_MX: u16 = 15;
/// TYPE AAAA.
pub const TYPE_AAAA: u16 = 28;
/// TYPE SRV.
pub const TYPE_SRV: u16 = 33;
/// TYPE DNAME.
pub const TYPE_DNAME: u16 = 39;

impl Rr {
    /// The target name of NS, CNAME, PTR and DNAME records (uncompressed, lower-case).
    pub fn target(&self) -> Option<&[u8]> {
        match self.rtype {
            TYPE_NS | TYPE_CNAME | TYPE_PTR | TYPE_DNAME => Some(&self.rdata),
            _ => None,
        }
    }

    /// The address of an A or AAAA record.
    pub fn address(&self) -> Option<std::net::IpAddr> {
        match (self.rtype, self.rdata.len()) {
            (TYPE_A, 4) => Some(<[u8; 4]>::try_from(&self.rdata[..]).ok()?.into()),
            (TYPE_AAAA, 16) => Some(<[u8; 16]>::try_from(&self.rdata[..]).ok()?.into()),
            _ => None,
        }
    }

    /// The negative-caching TTL of an SOA record: min(TTL, MINIMUM) (RFC 2308 section 5).
    pub fn soa_negative_ttl(&self) -> Option<u32> {
        if self.rtype != TYPE_SOA || self.rdata.len() < 20 {
            return None;
        }
        let m = &self.rdata[self.rdata.len() - 4..];
        Some(self.ttl.min(u32::from_be_bytes([m[0], m[1], m[2], m[3]])))
    }
}

/// A message read whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// The ID.
    pub id: u16,
    /// The flags word.
    pub flags: u16,
    /// The question's name (lower-case), when there is exactly one question.
    pub qname: Box<[u8]>,
    /// QTYPE.
    pub qtype: u16,
    /// QCLASS.
    pub qclass: u16,
    /// The answer section.
    pub answer: Vec<Rr>,
    /// The authority section.
    pub authority: Vec<Rr>,
    /// The additional section, OPT left out.
    pub additional: Vec<Rr>,
    /// The extended rcode bits of an OPT record, if any.
    pub ext_rcode: u8,
}

impl Message {
    /// Reads `msg`, which MUST hold exactly one question.
    ///
    /// # Errors
    /// Any [`Error`] of a malformed or truncated message; [`Error::BadOpt`] for a question count
    /// other than one.
    pub fn parse(msg: &[u8]) -> Result<Self, Error> {
        let h = Header::new(msg)?;
        if h.qdcount() != 1 {
            return Err(Error::BadOpt);
        }
        let mut name = NameBuf::new();
        let mut pos = name.read(msg, header::LEN)?;
        let qname = name.as_bytes().into();
        let qtype = read_u16(msg, pos)?;
        let qclass = read_u16(msg, pos + 2)?;
        pos += 4;
        let mut m = Self {
            id: h.id(),
            flags: h.flags(),
            qname,
            qtype,
            qclass,
            ..Self::default()
        };
        for (count, section) in [(h.ancount(), 0), (h.nscount(), 1), (h.arcount(), 2)] {
            for _ in 0..count {
                let (rr, end) = read_rr(msg, pos, &mut name)?;
                pos = end;
                match section {
                    0 => m.answer.push(rr),
                    1 => m.authority.push(rr),
                    _ if rr.rtype == TYPE_OPT => m.ext_rcode = (rr.ttl >> 24) as u8,
                    _ => m.additional.push(rr),
                }
            }
        }
        Ok(m)
    }

    /// The rcode, extended bits included.
    pub fn rcode(&self) -> u16 {
        (u16::from(self.ext_rcode) << 4) | (self.flags & header::RCODE_MASK)
    }
}

/// Reads one record at `pos`; returns it and the offset after it.
fn read_rr(msg: &[u8], pos: usize, name: &mut NameBuf) -> Result<(Rr, usize), Error> {
    let owner_end = name.read(msg, pos)?;
    let owner: Box<[u8]> = name.as_bytes().into();
    let rtype = read_u16(msg, owner_end)?;
    let class = read_u16(msg, owner_end + 2)?;
    let ttl =
        (u32::from(read_u16(msg, owner_end + 4)?) << 16) | u32::from(read_u16(msg, owner_end + 6)?);
    //= https://www.rfc-editor.org/rfc/rfc2181#section-8
    //# Implementations should treat TTL values received with the most significant bit set
    //# as if the entire value received was zero.
    let ttl = if ttl & 0x8000_0000 != 0 { 0 } else { ttl };
    let rdlen = usize::from(read_u16(msg, owner_end + 8)?);
    let start = owner_end + 10;
    let end = start + rdlen;
    let raw = msg.get(start..end).ok_or(Error::UnexpectedEnd)?;
    let rdata = match rtype {
        TYPE_NS | TYPE_CNAME | TYPE_PTR | TYPE_DNAME => names(msg, start, end, 0, 1, name)?,
        TYPE_MX => names(msg, start, end, 2, 1, name)?,
        TYPE_SRV => names(msg, start, end, 6, 1, name)?,
        TYPE_SOA => names(msg, start, end, 0, 2, name)?,
        _ => raw.into(),
    };
    Ok((
        Rr {
            owner,
            rtype,
            class,
            ttl,
            rdata,
        },
        end,
    ))
}

/// RDATA of `msg[start..end]`: `fixed` octets, then `count` names (decompressed), then the rest.
fn names(
    msg: &[u8],
    start: usize,
    end: usize,
    fixed: usize,
    count: usize,
    name: &mut NameBuf,
) -> Result<Box<[u8]>, Error> {
    let mut out = Vec::with_capacity(end - start + 32);
    out.extend_from_slice(msg.get(start..start + fixed).ok_or(Error::UnexpectedEnd)?);
    let mut pos = start + fixed;
    for _ in 0..count {
        pos = name.read(&msg[..end], pos)?;
        out.extend_from_slice(name.as_bytes());
    }
    out.extend_from_slice(msg.get(pos..end).ok_or(Error::UnexpectedEnd)?);
    Ok(out.into())
}

/// Writes a query for (`qname`, `qtype`, IN) with `id` and `flags` at `out`, with an EDNS OPT
/// offering `payload` octets when `payload` is not 0. Returns its length.
///
/// # Errors
/// [`Error::NoSpace`].
pub fn write_query(
    out: &mut [u8],
    id: u16,
    flags: u16,
    qname: &[u8],
    qtype: u16,
    payload: u16,
) -> Result<usize, Error> {
    let mut h = HeaderMut::new(out)?;
    h.set_id(id);
    h.set_flags(flags);
    h.set_counts(1, 0, 0, u16::from(payload != 0));
    let mut pos = put(out, header::LEN, qname)?;
    pos = put(out, pos, &qtype.to_be_bytes())?;
    pos = put(out, pos, &CLASS_IN.to_be_bytes())?;
    if payload != 0 {
        let opt = super::edns::Opt {
            udp_payload: payload,
            ext_rcode: 0,
            version: 0,
            dnssec_ok: false,
        };
        pos = opt.write(out, pos)?;
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sections_and_decompresses_rdata_names() {
        // Question www.example. A; answer www CNAME web.example (compressed); authority SOA.
        let mut msg = vec![0xAB, 0xCD, 0x81, 0x80, 0, 1, 0, 1, 0, 1, 0, 0];
        msg.extend_from_slice(b"\x03WWW\x07example\x00\x00\x01\x00\x01");
        msg.extend_from_slice(b"\xC0\x0C\x00\x05\x00\x01\x00\x00\x00\x3C\x00\x06\x03web\xC0\x10");
        msg.extend_from_slice(b"\xC0\x10\x00\x06\x00\x01\x00\x00\x01\x00\x00\x1E");
        msg.extend_from_slice(b"\x02ns\xC0\x10\x02hm\xC0\x10");
        msg.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 30]);
        let m = Message::parse(&msg).unwrap();
        assert_eq!((m.id, m.qtype, m.rcode()), (0xABCD, 1, 0));
        assert_eq!(&*m.qname, b"\x03www\x07example\x00");
        assert_eq!(&*m.answer[0].owner, b"\x03www\x07example\x00");
        assert_eq!(m.answer[0].target(), Some(&b"\x03web\x07example\x00"[..]));
        assert_eq!(m.authority[0].soa_negative_ttl(), Some(30));
        assert_eq!(
            Message::parse(&msg[..msg.len() - 1]),
            Err(Error::UnexpectedEnd)
        );
    }

    #[test]
    fn writes_a_query_with_edns() {
        let mut out = [0u8; 64];
        let len = write_query(&mut out, 7, header::RD, b"\x01a\x00", 28, 1232).unwrap();
        let m = Message::parse(&out[..len]).unwrap();
        assert_eq!((m.id, m.flags, m.qtype, m.qclass), (7, header::RD, 28, 1));
        assert!(m.additional.is_empty());
    }
}
