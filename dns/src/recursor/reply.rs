//! A client's reply to a recursive query, written from a cache entry or as SERVFAIL: the same
//! sizing rules as authoritative answers (512 octets without EDNS, else the client's payload
//! capped by ours; TCP up to 65535).

use super::cache::{Entry, Served};
use crate::respond::Transport;
use crate::wire::edns::{self, Opt};
use crate::wire::header::{self, CD, Header, HeaderMut, QR, RA, RD};
use crate::wire::name::NameBuf;
use crate::wire::question::Question;
use crate::wire::{Error, put};
use std::time::Instant;

/// What a query asks, read once.
#[derive(Debug, Clone)]
pub struct Asked {
    /// The lower-case question name.
    pub qname: NameBuf,
    /// QTYPE.
    pub qtype: u16,
    /// Where the question ends in the query.
    pub question_end: usize,
    /// The most octets the reply may use for records.
    pub limit: usize,
    /// Our OPT for the reply, when the client sent one.
    pub opt: Option<Opt>,
}

impl Asked {
    /// Reads `query` for a reply over `transport` with our payload size `payload`.
    ///
    /// # Errors
    /// Any wire error of the header, question or OPT.
    pub fn read(query: &[u8], transport: Transport, payload: u16) -> Result<Self, Error> {
        let h = Header::new(query)?;
        let mut qname = NameBuf::new();
        let q = Question::parse(query, &mut qname)?;
        let client = Opt::find(query, q.end, &h)?;
        let wanted = match (transport, client) {
            (Transport::Tcp, _) => usize::from(u16::MAX),
            (Transport::Udp, None) => usize::from(edns::MIN_PAYLOAD),
            (Transport::Udp, Some(o)) => usize::from(
                o.udp_payload
                    .max(edns::MIN_PAYLOAD)
                    .min(payload.max(edns::MIN_PAYLOAD)),
            ),
        };
        let reserve = if client.is_some() { edns::RR_LEN } else { 0 };
        Ok(Self {
            qname,
            qtype: q.qtype,
            question_end: q.end,
            limit: wanted - reserve,
            opt: client.map(|o| Opt {
                udp_payload: payload,
                ext_rcode: 0,
                version: 0,
                dnssec_ok: o.dnssec_ok,
            }),
        })
    }

    /// Writes the reply from `entry` into `out` (TTLs as of `now`, or the stale TTL).
    pub fn write(
        &self,
        entry: &Entry,
        now: Instant,
        query: &[u8],
        out: &mut [u8],
        stale: bool,
    ) -> Served {
        let limit = self.limit.min(out.len().saturating_sub(edns::RR_LEN));
        entry.write(now, query, out, limit, self.opt, stale)
    }

    /// Writes SERVFAIL (question echoed, OPT if asked) into `out`; returns its length.
    pub fn servfail(&self, query: &[u8], out: &mut [u8]) -> usize {
        let flags = Header::new(query).map_or(0, |h| h.flags() & (RD | CD));
        let Ok(mut len) = put(out, header::LEN, &query[header::LEN..self.question_end]) else {
            return 0;
        };
        let mut ar = 0;
        if let Some(opt) = self.opt
            && let Ok(end) = opt.write(out, len)
        {
            len = end;
            ar = 1;
        }
        let Ok(mut h) = HeaderMut::new(out) else {
            return 0;
        };
        h.set_id(u16::from_be_bytes([query[0], query[1]]));
        h.set_flags(QR | RA | flags | u16::from(header::rcode::SERVFAIL));
        h.set_counts(1, 0, 0, ar);
        len
    }
}
