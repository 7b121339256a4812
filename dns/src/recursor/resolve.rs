//! One client question resolved, sans I/O: a state machine that says "ask server X question Q"
//! and consumes what comes back.
//!
//! Call order, for one [`Resolution`]:
//! 1. [`Resolution::poll`] with a fresh random ID and a buffer: it returns [`Step::Send`]
//!    (a query written into the buffer, the server, TCP or UDP, a deadline) or [`Step::Done`].
//! 2. For each datagram that arrives before the deadline, [`Resolution::handle_response`]; it
//!    returns [`Verdict::Ignored`] for anything that does not match the server, ID and question
//!    asked (keep waiting), otherwise the query is over.
//! 3. At the deadline with no match, [`Resolution::handle_timeout`].
//! 4. Back to 1 until `Done`.
//!
//! Two modes. **Forward**: the servers are recursive upstreams, asked with RD; their answer is
//! the answer. **Recursive**: iterative resolution (RFC 1034 section 5.3.3) from the closest
//! cached delegation or the root hints, following referrals (bailiwick-checked, with their
//! glue), glueless delegations (a nested resolution of the server's address), CNAME chains
//! (bounded, loops detected) and, optionally, QNAME minimisation (RFC 9156).
//!
//! Every client question has a [`Budget`]: upstream queries, referrals, wall time. Running out
//! is SERVFAIL. The cache is read for delegations and written with what nested resolutions and
//! referrals learn; the answer itself is the caller's to cache.

use super::bailiwick::{self, Referral};
use super::cache::{Cache, Delegation, Entry};
use crate::wire::TYPE_ANY;
use crate::wire::header::{OPCODE_MASK, QR, RD, TC, rcode};
use crate::wire::message::{
    Message, Rr, TYPE_A, TYPE_AAAA, TYPE_CNAME, TYPE_NS, TYPE_SOA, write_query,
};
use crate::wire::{CLASS_IN, edns};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How much one client question may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Upstream queries sent.
    pub queries: u32,
    /// Referrals followed.
    pub referrals: u32,
    /// Wall time from the first query.
    pub time: Duration,
    /// CNAMEs followed.
    pub cnames: usize,
    /// Nested resolutions of name server addresses (glueless delegations), deepest.
    pub depth: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            queries: 48,
            referrals: 16,
            time: Duration::from_secs(5),
            cnames: 8,
            depth: 3,
        }
    }
}

/// How a resolution goes about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// One upstream query's timeout.
    pub timeout: Duration,
    /// Times each server address is tried before giving up on a zone.
    pub rounds: u32,
    /// The per-question budget.
    pub budget: Budget,
    /// Ask each server only for one label more than its zone (RFC 9156).
    pub qname_minimisation: bool,
    /// The port of servers learned from referrals (53 but in tests).
    pub port: u16,
    /// Where iterative resolution starts when nothing is cached: the root's servers.
    pub root_hints: Vec<SocketAddr>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(800),
            rounds: 2,
            budget: Budget::default(),
            qname_minimisation: false,
            port: 53,
            root_hints: Vec::new(),
        }
    }
}

/// What to do next.
#[derive(Debug)]
pub enum Step {
    /// Send the query written into the caller's buffer (`buf[..len]`) to `server`; wait until
    /// `deadline` at the latest.
    Send {
        /// Where.
        server: SocketAddr,
        /// The query's length.
        len: usize,
        /// Over TCP (after a truncated reply) rather than UDP.
        tcp: bool,
        /// When to give up and call [`Resolution::handle_timeout`].
        deadline: Instant,
    },
    /// Finished.
    Done(Answer),
}

/// What became of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not the reply awaited (source, ID or question differ, or unreadable): keep waiting.
    Ignored,
    /// The reply, used.
    Accepted,
    /// The reply, truncated (TC) over UDP: the next poll asks the same server over TCP.
    Truncated,
    /// The reply, from a server that could not answer (SERVFAIL, REFUSED, a lame referral):
    /// count it against the server.
    Lame,
}

/// Which limit of the [`Budget`] a resolution ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Upstream queries.
    Queries,
    /// Referrals followed.
    Referrals,
    /// Wall time.
    Time,
    /// CNAMEs followed.
    Cnames,
    /// Nesting of glueless server address resolutions.
    Depth,
}

impl Limit {
    /// Metric label values, by discriminant.
    pub const NAMES: [&'static str; 5] = ["queries", "referrals", "time", "cnames", "depth"];
}

/// What a resolution saw on its way, for telemetry: the caller reads it with
/// [`Resolution::stats`] once it is done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Answer records outside the answering server's zone, dropped.
    pub rejected_answers: u32,
    /// Referrals sideways or upwards (not below the referring server's zone), refused.
    pub rejected_referrals: u32,
    /// Glue outside the referring server's zone, dropped.
    pub rejected_glue: u32,
    /// The budget limit it ran into, if any (the last one).
    pub exhausted: Option<Limit>,
}

/// The outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The rcode; SERVFAIL when resolution failed.
    pub rcode: u8,
    /// Answer (CNAME chain first), authority (SOA of negative answers), additional.
    pub sections: [Vec<Rr>; 3],
}

impl Answer {
    fn servfail() -> Self {
        Self {
            rcode: rcode::SERVFAIL,
            sections: Default::default(),
        }
    }

    /// Whether resolution failed.
    pub fn failed(&self) -> bool {
        self.rcode == rcode::SERVFAIL
    }
}

#[derive(Debug, Clone)]
struct Server {
    name: Box<[u8]>,
    addrs: Vec<SocketAddr>,
    /// No address could be found for it.
    failed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// The client's question.
    Client,
    /// The address of server `index` of the frame below.
    Address(usize),
}

/// One question being resolved: the client's, or a name server's address.
#[derive(Debug)]
struct Frame {
    /// The question as asked (the cache key of the result).
    question: Box<[u8]>,
    qtype: u16,
    /// The name now looked for (the question, or the end of the CNAME chain so far).
    qname: Box<[u8]>,
    chain: Vec<Rr>,
    cut: Box<[u8]>,
    cut_ttl: u32,
    servers: Vec<Server>,
    tried: Vec<SocketAddr>,
    round: u32,
    /// With QNAME minimisation: labels of `qname` asked for (0: the full name).
    minimised: usize,
    purpose: Purpose,
}

#[derive(Debug)]
struct Waiting {
    server: SocketAddr,
    id: u16,
    qname: Box<[u8]>,
    qtype: u16,
    tcp: bool,
}

/// One client question being resolved. See the module doc for the call order.
#[derive(Debug)]
pub struct Resolution {
    settings: Settings,
    forward: bool,
    started: Instant,
    queries: u32,
    referrals: u32,
    frames: Vec<Frame>,
    waiting: Option<Waiting>,
    tcp_retry: Option<SocketAddr>,
    done: Option<Answer>,
    stats: Stats,
}

const ROOT: &[u8] = b"\x00";

impl Resolution {
    /// Resolves (`qname`, `qtype`) iteratively, from the closest delegation in `cache` or the
    /// root hints. `qname` is a lower-case uncompressed wire name.
    pub fn recursive(
        now: Instant,
        settings: Settings,
        cache: &Cache,
        qname: &[u8],
        qtype: u16,
    ) -> Self {
        let mut r = Self::empty(now, settings, false);
        let frame = r.start(now, cache, qname, qtype, Purpose::Client);
        r.frames.push(frame);
        r
    }

    /// Asks `upstreams` (recursive servers, in the order given: the caller puts healthy ones
    /// first) for (`qname`, `qtype`) with RD set.
    pub fn forward(
        now: Instant,
        settings: Settings,
        upstreams: Vec<SocketAddr>,
        qname: &[u8],
        qtype: u16,
    ) -> Self {
        let mut r = Self::empty(now, settings, true);
        r.frames.push(Frame {
            question: qname.into(),
            qtype,
            qname: qname.into(),
            chain: Vec::new(),
            cut: ROOT.into(),
            cut_ttl: 0,
            servers: vec![Server {
                name: ROOT.into(),
                addrs: upstreams,
                failed: false,
            }],
            tried: Vec::new(),
            round: 0,
            minimised: 0,
            purpose: Purpose::Client,
        });
        r
    }

    fn empty(now: Instant, settings: Settings, forward: bool) -> Self {
        Self {
            settings,
            forward,
            started: now,
            queries: 0,
            referrals: 0,
            frames: Vec::new(),
            waiting: None,
            tcp_retry: None,
            done: None,
            stats: Stats::default(),
        }
    }

    /// What it saw so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// A frame for `qname` starting at the closest cached delegation, else the root hints.
    fn start(
        &self,
        now: Instant,
        cache: &Cache,
        qname: &[u8],
        qtype: u16,
        purpose: Purpose,
    ) -> Frame {
        let mut f = Frame {
            question: qname.into(),
            qtype,
            qname: qname.into(),
            chain: Vec::new(),
            cut: ROOT.into(),
            cut_ttl: 0,
            servers: Vec::new(),
            tried: Vec::new(),
            round: 0,
            minimised: 0,
            purpose,
        };
        self.restart(now, cache, &mut f);
        f
    }

    /// Points `f` at the closest known servers for its current `qname`.
    fn restart(&self, now: Instant, cache: &Cache, f: &mut Frame) {
        match cache.closest_delegation(now, &f.qname) {
            Some(d) => {
                f.cut = d.zone.clone();
                f.cut_ttl = d.ttl;
                f.servers = d
                    .servers
                    .iter()
                    .map(|(name, addrs)| Server {
                        name: name.clone(),
                        addrs: addrs.clone(),
                        failed: false,
                    })
                    .collect();
            }
            None => {
                f.cut = ROOT.into();
                f.cut_ttl = 0;
                f.servers = vec![Server {
                    name: ROOT.into(),
                    addrs: self.settings.root_hints.clone(),
                    failed: false,
                }];
            }
        }
        f.tried.clear();
        f.round = 0;
        self.minimise_from_cut(f);
    }

    fn minimise_from_cut(&self, f: &mut Frame) {
        let want = bailiwick::labels(&f.cut) + 1;
        f.minimised = if self.settings.qname_minimisation && want < bailiwick::labels(&f.qname) {
            want
        } else {
            0
        };
    }

    /// The next step; `id` is the ID to use if a query is sent (random, from a CSPRNG), and the
    /// query is written into `buf` (at least 512 octets).
    pub fn poll(&mut self, now: Instant, cache: &Cache, id: u16, buf: &mut [u8]) -> Step {
        if let Some(done) = self.done.take() {
            return Step::Done(done);
        }
        self.waiting = None;
        let budget = self.settings.budget;
        let deadline = self.started + budget.time;
        let exhausted = if now >= deadline {
            Some(Limit::Time)
        } else if self.queries >= budget.queries {
            Some(Limit::Queries)
        } else if self.referrals > budget.referrals {
            Some(Limit::Referrals)
        } else {
            None
        };
        if exhausted.is_some() {
            self.stats.exhausted = exhausted;
            return Step::Done(Answer::servfail());
        }
        loop {
            let Some(f) = self.frames.last_mut() else {
                return Step::Done(Answer::servfail());
            };
            let (server, tcp) = match self.tcp_retry.take() {
                Some(s) => (Some(s), true),
                None => (next_address(f), false),
            };
            if let Some(server) = server {
                let (qname, qtype) = if f.minimised == 0 {
                    (f.qname.clone(), f.qtype)
                } else {
                    //= https://www.rfc-editor.org/rfc/rfc9156#section-3
                    //# (3) If CHILD is the same as QNAME ... resolve the original query ...
                    //# Otherwise, send a query ... for CHILD with a QTYPE of A
                    (bailiwick::suffix(&f.qname, f.minimised).into(), TYPE_A)
                };
                let flags = if self.forward { RD } else { 0 };
                let Ok(len) = write_query(buf, id, flags, &qname, qtype, edns::PAYLOAD) else {
                    return Step::Done(Answer::servfail());
                };
                self.queries += 1;
                self.waiting = Some(Waiting {
                    server,
                    id,
                    qname,
                    qtype,
                    tcp,
                });
                return Step::Send {
                    server,
                    len,
                    tcp,
                    deadline: (now + self.settings.timeout).min(deadline),
                };
            }
            // Every known address tried. Another round, a glueless server, or give up.
            if f.round + 1 < self.settings.rounds && !f.tried.is_empty() {
                f.round += 1;
                f.tried.clear();
                continue;
            }
            let depth = self.frames.len();
            let f = self.frames.last_mut().expect("invariant: checked above");
            let glueless = f
                .servers
                .iter()
                .position(|s| s.addrs.is_empty() && !s.failed && *s.name != *ROOT);
            if let Some(i) = glueless
                && depth <= budget.depth
                && !self.forward
            {
                f.servers[i].failed = true;
                let name = f.servers[i].name.clone();
                // A server whose address needs itself (or an outer question) is a loop.
                if self.frames.iter().any(|g| *g.qname == *name) {
                    continue;
                }
                let sub = self.start(now, cache, &name, TYPE_A, Purpose::Address(i));
                self.frames.push(sub);
                continue;
            }
            if glueless.is_some() && !self.forward {
                self.stats.exhausted = Some(Limit::Depth);
            }
            if let Some(done) = self.finish(now, cache, rcode::SERVFAIL, Vec::new()) {
                return Step::Done(done);
            }
        }
    }

    /// The deadline passed with no matching reply.
    pub fn handle_timeout(&mut self, _now: Instant) {
        self.waiting = None;
    }

    /// A datagram (or TCP message) from `from`. See [`Verdict`].
    pub fn handle_response(
        &mut self,
        now: Instant,
        cache: &Cache,
        from: SocketAddr,
        msg: &[u8],
    ) -> Verdict {
        let Some(w) = &self.waiting else {
            return Verdict::Ignored;
        };
        if from != w.server {
            return Verdict::Ignored;
        }
        let Ok(m) = Message::parse(msg) else {
            return Verdict::Ignored;
        };
        //= https://www.rfc-editor.org/rfc/rfc5452#section-9.1
        //# resolvers MUST ... match the response to the query by ID, the question,
        //# and the address it was sent to
        if m.id != w.id
            || m.flags & QR == 0
            || m.flags & OPCODE_MASK != 0
            || *m.qname != *w.qname
            || m.qtype != w.qtype
            || m.qclass != CLASS_IN
        {
            return Verdict::Ignored;
        }
        let w = self.waiting.take().expect("invariant: checked above");
        if m.flags & TC != 0 && !w.tcp {
            self.tcp_retry = Some(w.server);
            return Verdict::Truncated;
        }
        let rc = m.rcode();
        if rc != u16::from(rcode::NOERROR) && rc != u16::from(rcode::NXDOMAIN) {
            return Verdict::Lame;
        }
        let rc = rc as u8;
        if self.forward {
            let soa = m
                .authority
                .into_iter()
                .filter(|r| r.rtype == TYPE_SOA)
                .collect();
            self.done = Some(Answer {
                rcode: rc,
                sections: [m.answer, soa, Vec::new()],
            });
            return Verdict::Accepted;
        }
        let Some(f) = self.frames.last_mut() else {
            return Verdict::Ignored;
        };
        if f.minimised != 0 {
            return self.minimised(now, cache, &w, &m);
        }
        self.full(now, cache, &m, rc)
    }

    /// A reply to a minimised query.
    fn minimised(&mut self, now: Instant, cache: &Cache, w: &Waiting, m: &Message) -> Verdict {
        let f = self
            .frames
            .last_mut()
            .expect("invariant: a frame is waiting");
        if let Some(r) = bailiwick::referral(&f.cut, &w.qname, &m.authority) {
            return self.follow(now, cache, r, m);
        }
        if stray_referral(m) {
            self.stats.rejected_referrals += 1;
        }
        let f = self
            .frames
            .last_mut()
            .expect("invariant: a frame is waiting");
        //= https://www.rfc-editor.org/rfc/rfc9156#section-2.3
        //# ... some broken name servers return NXDOMAIN for empty non-terminals ...
        // so an NXDOMAIN falls back to the full name rather than ending the resolution.
        if m.rcode() == u16::from(rcode::NXDOMAIN) {
            f.minimised = 0;
        } else {
            f.minimised += 1;
            if f.minimised >= bailiwick::labels(&f.qname) {
                f.minimised = 0;
            }
        }
        // The same servers are asked again, one label deeper.
        if let Some(last) = f.tried.pop() {
            f.tried.retain(|a| *a != last);
        }
        Verdict::Accepted
    }

    /// A reply to the full question.
    fn full(&mut self, now: Instant, cache: &Cache, m: &Message, rc: u8) -> Verdict {
        let limit = self.settings.budget.cnames;
        let f = self
            .frames
            .last_mut()
            .expect("invariant: a frame is waiting");
        let cut = f.cut.clone();
        let inside = |r: &&Rr| r.class == CLASS_IN && bailiwick::is_at_or_below(&r.owner, &cut);
        let qtype = f.qtype;
        let mut cur = f.qname.clone();
        let stray = m.answer.iter().filter(|r| !inside(r)).count();
        self.stats.rejected_answers += u32::try_from(stray).unwrap_or(u32::MAX);
        loop {
            let finals: Vec<Rr> = m
                .answer
                .iter()
                .filter(inside)
                .filter(|r| *r.owner == *cur && (r.rtype == qtype || qtype == TYPE_ANY))
                .cloned()
                .collect();
            if !finals.is_empty() {
                f.chain.extend(finals);
                self.finish_push(now, cache, rcode::NOERROR, Vec::new());
                return Verdict::Accepted;
            }
            let cname = m
                .answer
                .iter()
                .filter(inside)
                .find(|r| *r.owner == *cur && r.rtype == TYPE_CNAME && qtype != TYPE_CNAME);
            let Some(c) = cname else { break };
            let target: Box<[u8]> = c.target().unwrap_or(ROOT).into();
            let looped = *target == *f.question || f.chain.iter().any(|r| *r.owner == *target);
            if looped || f.chain.len() >= limit {
                if !looped {
                    self.stats.exhausted = Some(Limit::Cnames);
                }
                self.finish_push(now, cache, rcode::SERVFAIL, Vec::new());
                return Verdict::Accepted;
            }
            f.chain.push(c.clone());
            cur = target;
        }
        let soa: Vec<Rr> = m
            .authority
            .iter()
            .filter(inside)
            .filter(|r| r.rtype == TYPE_SOA)
            .cloned()
            .collect();
        let authoritative = m.flags & crate::wire::header::AA != 0 || !soa.is_empty();
        if *cur != *f.qname {
            // A CNAME out of this zone, or to a name this reply says nothing about: resolve
            // the target from its own closest servers.
            let negative = rc == rcode::NXDOMAIN || !soa.is_empty();
            if bailiwick::is_at_or_below(&cur, &cut) && authoritative && negative {
                self.finish_push(now, cache, rc, soa);
                return Verdict::Accepted;
            }
            f.qname = cur;
            let mut f = self.frames.pop().expect("invariant: a frame is waiting");
            self.restart(now, cache, &mut f);
            self.frames.push(f);
            return Verdict::Accepted;
        }
        if rc == rcode::NXDOMAIN {
            if !authoritative {
                return Verdict::Lame;
            }
            self.finish_push(now, cache, rc, soa);
            return Verdict::Accepted;
        }
        if let Some(r) = bailiwick::referral(&cut, &f.qname, &m.authority) {
            return self.follow(now, cache, r, m);
        }
        if authoritative {
            //= https://www.rfc-editor.org/rfc/rfc2308#section-2.2
            //# NODATA is indicated by an answer with the RCODE set to NOERROR and no
            //# relevant answers in the answer section.
            self.finish_push(now, cache, rcode::NOERROR, soa);
            return Verdict::Accepted;
        }
        if stray_referral(m) {
            self.stats.rejected_referrals += 1;
        }
        Verdict::Lame
    }

    /// Moves the top frame down to the referred zone.
    fn follow(&mut self, now: Instant, cache: &Cache, r: Referral, m: &Message) -> Verdict {
        self.referrals += 1;
        let port = self.settings.port;
        let mut f = self.frames.pop().expect("invariant: a frame is waiting");
        let stray = m
            .additional
            .iter()
            .filter(|g| matches!(g.rtype, TYPE_A | TYPE_AAAA))
            .filter(|g| !bailiwick::is_at_or_below(&g.owner, &f.cut))
            .count();
        self.stats.rejected_glue += u32::try_from(stray).unwrap_or(u32::MAX);
        let servers: Vec<Server> =
            r.ns.iter()
                .map(|ns| Server {
                    name: ns.clone(),
                    addrs: bailiwick::glue(&f.cut, ns, &m.additional)
                        .map(|ip| SocketAddr::new(ip, port))
                        .collect(),
                    failed: false,
                })
                .collect();
        cache.insert_delegation(
            now,
            Delegation {
                zone: r.zone.clone(),
                servers: servers
                    .iter()
                    .map(|s| (s.name.clone(), s.addrs.clone()))
                    .collect(),
                ttl: r.ttl,
            },
        );
        f.cut = r.zone;
        f.cut_ttl = r.ttl;
        f.servers = servers;
        f.tried.clear();
        f.round = 0;
        self.minimise_from_cut(&mut f);
        self.frames.push(f);
        Verdict::Accepted
    }

    /// [`Self::finish`] from inside a handler: keeps the final answer for the next poll.
    fn finish_push(&mut self, now: Instant, cache: &Cache, rc: u8, authority: Vec<Rr>) {
        if let Some(done) = self.finish(now, cache, rc, authority) {
            self.done = Some(done);
        }
    }

    /// Ends the top frame with `rc`. The client's frame yields the answer; a nested one hands
    /// its addresses to the frame below (and caches its answer).
    fn finish(
        &mut self,
        now: Instant,
        cache: &Cache,
        rc: u8,
        authority: Vec<Rr>,
    ) -> Option<Answer> {
        let f = self.frames.pop()?;
        let Purpose::Address(i) = f.purpose else {
            if rc == rcode::SERVFAIL {
                return Some(Answer::servfail());
            }
            return Some(Answer {
                rcode: rc,
                sections: [f.chain, authority, Vec::new()],
            });
        };
        if rc != rcode::SERVFAIL
            && let Ok(e) = Entry::build(
                now,
                cache.settings(),
                &f.question,
                f.qtype,
                rc,
                [&f.chain, &authority, &[]],
            )
        {
            cache.insert(now, e);
        }
        let port = self.settings.port;
        let parent = self.frames.last_mut()?;
        let addrs: Vec<SocketAddr> = f
            .chain
            .iter()
            .filter(|r| *r.owner == *f.qname && matches!(r.rtype, TYPE_A | TYPE_AAAA))
            .filter_map(Rr::address)
            .map(|ip| SocketAddr::new(ip, port))
            .collect();
        if let Some(s) = parent.servers.get_mut(i)
            && !addrs.is_empty()
        {
            s.addrs = addrs;
            s.failed = false;
            cache.insert_delegation(
                now,
                Delegation {
                    zone: parent.cut.clone(),
                    servers: parent
                        .servers
                        .iter()
                        .map(|s| (s.name.clone(), s.addrs.clone()))
                        .collect(),
                    ttl: parent.cut_ttl,
                },
            );
        }
        None
    }
}

/// Whether a reply that is no usable referral still looks like one: NS records in a
/// non-authoritative authority section, pointing sideways or upwards.
fn stray_referral(m: &Message) -> bool {
    m.flags & crate::wire::header::AA == 0
        && m.authority.iter().any(|r| r.rtype == TYPE_NS)
        && !m.authority.iter().any(|r| r.rtype == TYPE_SOA)
}

/// The first address of the frame's servers not tried yet this round; marks it tried.
fn next_address(f: &mut Frame) -> Option<SocketAddr> {
    let a = f
        .servers
        .iter()
        .flat_map(|s| s.addrs.iter())
        .find(|a| !f.tried.contains(a))
        .copied()?;
    f.tried.push(a);
    Some(a)
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
