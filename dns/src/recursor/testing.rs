//! A simulated network for [`Resolution`]: servers are closures from query to reply (the
//! project's own authoritative core, or hand-written fakes), time is a [`ManualClock`], and
//! every query asked is logged.

use super::cache::{self, Cache};
use super::resolve::{Answer, Resolution, Settings, Stats, Step, Verdict};
use crate::authority::Catalog;
use crate::respond::{Options, Outcome, Responder, Transport};
use crate::wire::message::Message;
use dataplane_common::clock::{Clock, ManualClock};
use dataplane_common::zonefile;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

pub(crate) type Handler = Box<dyn FnMut(&[u8]) -> Option<Vec<u8>>>;

/// A hand-written datagram delivered before the real reply (spoofing attempts).
pub(crate) type Spoof = Box<dyn FnMut(&[u8]) -> (SocketAddr, Vec<u8>)>;

pub(crate) struct Net {
    servers: HashMap<SocketAddr, Handler>,
    pub(crate) clock: ManualClock,
    pub(crate) cache: Cache,
    /// (server, question name in text, type) of every query sent.
    pub(crate) log: Vec<(SocketAddr, String, u16)>,
    /// Verdicts of every datagram handed in.
    pub(crate) verdicts: Vec<Verdict>,
    pub(crate) spoof: Option<Spoof>,
    /// What the last resolution driven saw.
    pub(crate) stats: Stats,
}

pub(crate) fn addr(s: &str) -> SocketAddr {
    format!("{s}:53").parse().expect("test address")
}

/// Wire form of a presentation name.
pub(crate) fn wire(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for l in name.split('.').filter(|l| !l.is_empty()) {
        out.push(l.len() as u8);
        out.extend_from_slice(l.as_bytes());
    }
    out.push(0);
    out
}

/// An authoritative server for these zone texts, by this project's responder.
pub(crate) fn authority(zones: &[&str]) -> Handler {
    let mut all = Vec::new();
    for z in zones {
        all.extend(zonefile::parse(z, None).expect("test zone parses"));
    }
    let catalog = Catalog::build(all, &HashSet::new());
    let mut responder = Responder::new(1, Options::default());
    let clock = ManualClock::new();
    Box::new(move |q| {
        let mut out = vec![0u8; 4096];
        match responder.handle_query(
            &catalog,
            clock.now(),
            addr("10.9.9.9"),
            Transport::Udp,
            q,
            &mut out,
        ) {
            Outcome::Reply { len, .. } => Some(out[..len].to_vec()),
            _ => None,
        }
    })
}

impl Net {
    pub(crate) fn new() -> Self {
        Self {
            servers: HashMap::new(),
            clock: ManualClock::new(),
            cache: Cache::new(cache::Settings::default(), 7),
            log: Vec::new(),
            verdicts: Vec::new(),
            spoof: None,
            stats: Stats::default(),
        }
    }

    pub(crate) fn server(&mut self, at: &str, handler: Handler) {
        self.servers.insert(addr(at), handler);
    }

    pub(crate) fn kill(&mut self, at: &str) {
        self.servers.remove(&addr(at));
    }

    /// Drives `r` to the end; a missing server times out (the clock moves on).
    pub(crate) fn drive(&mut self, mut r: Resolution) -> Answer {
        let mut buf = [0u8; 512];
        let mut id = 0x1000u16;
        loop {
            id = id.wrapping_add(7919);
            match r.poll(self.clock.now(), &self.cache, id, &mut buf) {
                Step::Done(a) => {
                    self.stats = r.stats();
                    return a;
                }
                Step::Send {
                    server,
                    len,
                    tcp: _,
                    deadline,
                } => {
                    let q = buf[..len].to_vec();
                    let m = Message::parse(&q).expect("the resolver writes valid queries");
                    self.log
                        .push((server, crate::wire::name::to_text(&m.qname), m.qtype));
                    self.clock.advance(Duration::from_millis(1));
                    if let Some(spoof) = &mut self.spoof {
                        let (from, bytes) = spoof(&q);
                        let v = r.handle_response(self.clock.now(), &self.cache, from, &bytes);
                        self.verdicts.push(v);
                    }
                    let reply = self.servers.get_mut(&server).and_then(|h| h(&q));
                    match reply {
                        Some(reply) => {
                            let v =
                                r.handle_response(self.clock.now(), &self.cache, server, &reply);
                            self.verdicts.push(v);
                            if v == Verdict::Ignored {
                                r.handle_timeout(deadline);
                            }
                        }
                        None => {
                            let now = self.clock.now();
                            self.clock.advance(deadline.saturating_duration_since(now));
                            r.handle_timeout(self.clock.now());
                        }
                    }
                }
            }
        }
    }

    pub(crate) fn recursive(&mut self, settings: &Settings, qname: &str, qtype: u16) -> Answer {
        let r = Resolution::recursive(
            self.clock.now(),
            settings.clone(),
            &self.cache,
            &wire(qname),
            qtype,
        );
        self.drive(r)
    }
}
