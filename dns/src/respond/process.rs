//! One query in, one reply out: validation, EDNS, lookup, and the reply's sections.
//!
//! Wire behaviour, with the RFC it follows:
//! - never answer a response (QR=1) or a packet shorter than a header: [`Outcome::Drop`];
//! - opcode other than QUERY: NOTIMP; QDCOUNT != 1 or an unreadable question: FORMERR
//!   (header only, RFC 1035 section 4.1.1);
//! - EDNS (RFC 6891): an OPT in the query gets one back with our payload size; version > 0 gets
//!   BADVERS; the client's payload size (at least 512, at most ours) bounds UDP replies;
//! - a reply that does not fit: TC=1 and the question alone (RFC 1035 section 4.2.1, RFC 7766);
//! - class other than IN or ANY, zone transfers: REFUSED; names outside every zone: REFUSED,
//!   unless recursion is on, the client is allowed and RD is set: then a cache hit is copied
//!   out (RA set) and a miss is [`Outcome::Recurse`];
//! - AA on authoritative data, not on referrals; negative answers carry the zone SOA with
//!   TTL min(SOA TTL, SOA minimum) (RFC 2308 section 3);
//! - ANY gets one set (RFC 8482 section 4.1).

use super::options::Options;
use super::pick::{Picker, Picks};
use super::writer::{OPT_LEN, Owner, Section, Writer, bare};
use crate::authority::{Catalog, End, ZoneData, lookup};
use crate::recursor::Front;
use crate::recursor::cache::Lookup;
use crate::wire::edns::{self, Opt};
use crate::wire::header::{
    AA, CD, Header, OPCODE_QUERY, OPCODE_SHIFT, QR, RA, RCODE_MASK, RD, TC, rcode,
};
use crate::wire::name::NameBuf;
use crate::wire::question::Question;
use crate::wire::{CLASS_ANY, CLASS_IN, Error, TYPE_AXFR, TYPE_IXFR, TYPE_OPT};
use dataplane_common::model::AnswerPolicy;
use std::net::SocketAddr;
use std::time::Instant;

/// The transport a query came over, which bounds the reply's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP: at most 512 octets without EDNS, else the client's payload size capped by ours.
    Udp,
    /// TCP (RFC 7766): the whole output buffer, at most 65535 octets. The caller adds the
    /// two-octet length prefix.
    Tcp,
}

/// Why a packet got no reply at all. `Copy` and dense, to index a per-worker counter array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Shorter than a header: nothing to echo.
    TooShort = 0,
    /// QR=1: a response; answering it could loop between servers.
    IsResponse = 1,
    /// The caller's output buffer is smaller than [`Responder::MIN_OUT`].
    NoBuffer = 2,
}

impl DropReason {
    /// How many reasons there are.
    pub const COUNT: usize = 3;
    /// Every reason, by index.
    pub const ALL: [Self; Self::COUNT] = [Self::TooShort, Self::IsResponse, Self::NoBuffer];

    /// Metric labels, by index.
    pub const NAMES: [&'static str; Self::COUNT] = ["too_short", "is_response", "no_buffer"];

    /// A dense index below [`Self::COUNT`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// A stable label for metrics.
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self.index()]
    }
}

/// What became of one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A reply is in `out[..len]`.
    Reply {
        /// Its length.
        len: usize,
        /// The QTYPE asked (0 when the question could not be read).
        qtype: u16,
        /// The full rcode, extended bits included (16 is BADVERS).
        rcode: u8,
        /// Whether TC is set.
        truncated: bool,
        /// The answer policy of the set answered, when it had a choice to make.
        policy: Option<AnswerPolicy>,
    },
    /// No reply yet: a recursive query that missed the cache; hand it to the resolver, which
    /// replies when resolution completes.
    Recurse {
        /// The QTYPE asked.
        qtype: u16,
    },
    /// No reply.
    Drop(DropReason),
}

/// Per-worker answering state: round-robin counters, a bounded sticky table and an RNG seeded
/// by the caller. Each worker owns one; they share a [`Catalog`].
///
/// Call [`Self::handle_query`] once per query; there is nothing to poll.
#[derive(Debug)]
pub struct Responder {
    options: Options,
    picker: Picker,
    recursion: Option<Front>,
    prefetch: bool,
}

/// What the sections said.
struct Answered {
    rcode: u8,
    authoritative: bool,
    policy: Option<AnswerPolicy>,
}

impl Responder {
    /// The smallest output buffer accepted: a full-size UDP reply without EDNS.
    pub const MIN_OUT: usize = 512;

    /// A responder whose shuffles start from `seed` (give each worker its own).
    pub fn new(seed: u64, options: Options) -> Self {
        let picker = Picker::new(seed, &options);
        Self {
            options,
            picker,
            recursion: None,
            prefetch: false,
        }
    }

    /// Answers names outside the zones for allowed clients: from the shared cache, else with
    /// [`Outcome::Recurse`].
    pub fn with_recursion(mut self, front: Front) -> Self {
        self.recursion = Some(front);
        self
    }

    /// Whether the last query was a cache hit due for a prefetch: the caller hands it to the
    /// resolver in the background as well (it has been answered already).
    pub fn poll_prefetch(&mut self) -> bool {
        std::mem::take(&mut self.prefetch)
    }

    /// Its options.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Answers one query from `client` with a reply written into `out` (which the caller owns;
    /// 65535 octets for TCP, e.g. 4096 for UDP).
    pub fn handle_query(
        &mut self,
        catalog: &Catalog,
        now: Instant,
        client: SocketAddr,
        transport: Transport,
        query: &[u8],
        out: &mut [u8],
    ) -> Outcome {
        let Ok(h) = Header::new(query) else {
            return Outcome::Drop(DropReason::TooShort);
        };
        //= https://www.rfc-editor.org/rfc/rfc1035#section-7.3
        //# Response processing ... [a server never answers a response]
        if h.is_response() {
            return Outcome::Drop(DropReason::IsResponse);
        }
        if out.len() < Self::MIN_OUT {
            return Outcome::Drop(DropReason::NoBuffer);
        }
        let id = h.id();
        let opcode = h.opcode();
        let echoed = QR | (u16::from(opcode) << OPCODE_SHIFT) | (h.flags() & (RD | CD));
        if opcode != OPCODE_QUERY {
            return header_only(out, id, echoed, rcode::NOTIMP, 0);
        }
        if h.qdcount() != 1 {
            return header_only(out, id, echoed, rcode::FORMERR, 0);
        }
        let mut qname = NameBuf::new();
        let Ok(q) = Question::parse(query, &mut qname) else {
            return header_only(out, id, echoed, rcode::FORMERR, 0);
        };
        let Ok(client_opt) = Opt::find(query, q.end, &h) else {
            return header_only(out, id, echoed, rcode::FORMERR, q.qtype);
        };

        let wanted = match (transport, client_opt) {
            (Transport::Tcp, _) => usize::from(u16::MAX),
            (Transport::Udp, None) => usize::from(edns::MIN_PAYLOAD),
            (Transport::Udp, Some(o)) => usize::from(
                o.udp_payload
                    .max(edns::MIN_PAYLOAD)
                    .min(self.options.udp_payload.max(edns::MIN_PAYLOAD)),
            ),
        };
        let reserve = if client_opt.is_some() { OPT_LEN } else { 0 };
        let limit = wanted.min(out.len()) - reserve;
        let mut reply_opt = client_opt.map(|o| Opt {
            udp_payload: self.options.udp_payload,
            ext_rcode: 0,
            version: 0,
            dnssec_ok: o.dnssec_ok,
        });
        let Ok(mut w) = Writer::new(out, limit, query, q.end) else {
            return Outcome::Drop(DropReason::NoBuffer);
        };

        let mut answered = refusal(rcode::REFUSED);
        let mut truncated = false;
        if client_opt.is_some_and(|o| o.version > 0) {
            //= https://www.rfc-editor.org/rfc/rfc6891#section-6.1.3
            //# If a responder does not implement the VERSION level of the
            //# request, then it MUST respond with RCODE=BADVERS.
            answered = refusal(rcode::BADVERS);
        } else if q.qtype == TYPE_OPT {
            answered = refusal(rcode::FORMERR);
        } else if (q.qclass == CLASS_IN || q.qclass == CLASS_ANY)
            && q.qtype != TYPE_AXFR
            && q.qtype != TYPE_IXFR
            && let Some(zone) = catalog.find(qname.as_bytes())
        {
            let ctx = Query {
                qname: qname.as_bytes(),
                qtype: q.qtype,
                client,
                now,
            };
            if self
                .answer(&mut w, catalog, zone, &ctx, &mut answered)
                .is_err()
            {
                w.truncate();
                truncated = true;
            }
        }
        let recursing = self
            .recursion
            .as_ref()
            .is_some_and(|f| f.allows(client.ip()));
        // Outside every zone: recursion for allowed clients that ask for it, else REFUSED.
        if answered.rcode == rcode::REFUSED
            && !answered.authoritative
            && q.qclass == CLASS_IN
            && h.flags() & RD != 0
            && !matches!(q.qtype, TYPE_AXFR | TYPE_IXFR | TYPE_OPT)
            && client_opt.is_none_or(|o| o.version == 0)
            && catalog.find(qname.as_bytes()).is_none()
            && recursing
            && let Some(front) = self.recursion.as_ref()
        {
            return match front.lookup(now, qname.as_bytes(), q.qtype) {
                Lookup::Fresh { entry, prefetch } => {
                    self.prefetch = prefetch;
                    let s = entry.write(now, query, out, limit, reply_opt, false);
                    Outcome::Reply {
                        len: s.len,
                        qtype: q.qtype,
                        rcode: s.rcode,
                        truncated: s.truncated,
                        policy: None,
                    }
                }
                Lookup::Stale(_) | Lookup::Miss => Outcome::Recurse { qtype: q.qtype },
            };
        }
        if let Some(o) = reply_opt.as_mut() {
            o.ext_rcode = answered.rcode >> 4;
        }
        let mut flags = echoed | u16::from(answered.rcode) & RCODE_MASK;
        //= https://www.rfc-editor.org/rfc/rfc1035#section-4.1.1
        //# RA Recursion Available - this be set or cleared in a response, and denotes
        //# whether recursive query support is available in the name server.
        if recursing {
            flags |= RA;
        }
        if answered.authoritative {
            flags |= AA;
        }
        if truncated {
            flags |= TC;
        }
        let len = w.finish(id, flags, reply_opt);
        Outcome::Reply {
            len,
            qtype: q.qtype,
            rcode: answered.rcode,
            truncated,
            policy: answered.policy,
        }
    }

    /// Writes the sections for the query in `zone`, setting `answered` before writing so it
    /// holds even when the reply turns out not to fit.
    fn answer(
        &mut self,
        w: &mut Writer<'_>,
        catalog: &Catalog,
        zone: &ZoneData,
        q: &Query<'_>,
        answered: &mut Answered,
    ) -> Result<(), Error> {
        let found = lookup(zone, q.qname, q.qtype);
        *answered = Answered {
            rcode: match found.end {
                End::NxDomain => rcode::NXDOMAIN,
                _ => rcode::NOERROR,
            },
            authoritative: !matches!(found.end, End::Referral { .. }),
            policy: None,
        };
        let mut owner = Owner::Query;
        for set in found.chain() {
            for r in set.records() {
                w.record(Section::Answer, owner, r)?;
            }
            owner = set.records()[0].target().map_or(Owner::Query, Owner::Name);
        }
        match found.end {
            End::Answer(set) => {
                let mut picks = Picks::new();
                if !self
                    .picker
                    .pick(catalog, set, q.client.ip(), q.now, &mut picks)
                {
                    w.truncate();
                    *answered = refusal(rcode::SERVFAIL);
                    return Ok(());
                }
                answered.policy = (set.records().len() > 1).then_some(set.policy());
                for &i in picks.as_slice() {
                    w.record(Section::Answer, owner, &set.records()[usize::from(i)])?;
                }
            }
            //= https://www.rfc-editor.org/rfc/rfc2308#section-3
            //# Name servers authoritative for a zone MUST include the SOA record of
            //# the zone in the authority section of the response when reporting an
            //# NXDOMAIN or indicating that no data of the requested type exists.
            End::NoData | End::NxDomain => {
                w.raw(
                    Section::Authority,
                    Owner::Name(zone.origin()),
                    zone.negative_soa(),
                )?;
            }
            End::Referral { cut, ns } => {
                let cut_name = &q.qname[cut..];
                for r in ns.records() {
                    w.record(Section::Authority, Owner::Name(cut_name), r)?;
                }
                // Glue: addresses of the name servers that this zone holds.
                for r in ns.records() {
                    let Some(host) = r.target() else { continue };
                    let Some(node) = zone.contains(host).then(|| zone.node(host)).flatten() else {
                        continue;
                    };
                    for rtype in [1, 28] {
                        for g in node.rrset(rtype).map_or(&[][..], |s| s.records()) {
                            w.record(Section::Additional, Owner::Name(host), g)?;
                        }
                    }
                }
            }
            End::Outside | End::TooLong => {}
        }
        Ok(())
    }
}

/// The parts of a query that answering needs.
struct Query<'q> {
    qname: &'q [u8],
    qtype: u16,
    client: SocketAddr,
    now: Instant,
}

fn refusal(rcode: u8) -> Answered {
    Answered {
        rcode,
        authoritative: false,
        policy: None,
    }
}

fn header_only(out: &mut [u8], id: u16, echoed: u16, rcode: u8, qtype: u16) -> Outcome {
    let len = bare(out, id, echoed | u16::from(rcode));
    Outcome::Reply {
        len,
        qtype,
        rcode,
        truncated: false,
        policy: None,
    }
}
