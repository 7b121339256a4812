//! RFC 1035 master files (section 5) into model zones and record sets.
//!
//! Supported: `$ORIGIN`, `$TTL` (with BIND-style units such as `1h30m`), relative names and `@`,
//! a blank owner meaning the previous owner, parentheses across lines, `;` comments, quoted
//! strings with `\X` and `\DDD` escapes, an optional class (IN only) and an optional TTL in
//! either order, and the types A, AAAA, CNAME, SRV, MX, TXT, NS, PTR and SOA.
//! Not supported: `$INCLUDE`, `$GENERATE`, other classes, other types (they are errors, not
//! silently dropped).
//!
//! Each SOA starts a zone; the records after it belong to it. NS records at a zone's apex are
//! listed in [`Zone::ns`] and kept as a record set too. Errors carry the line where the failing
//! entry starts. The tokenizer borrows from the text and reuses one token buffer, so loading
//! allocates only for the values it produces.

use crate::model::{AnswerPolicy, MAX_TTL, Name, RData, RecordSet, RecordType, Soa, Zone};
use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Why a master file could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct Error {
    /// The line (from 1) where the failing entry starts.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// A zone and its record sets, as loaded.
pub type Loaded = Vec<(Zone, Vec<RecordSet>)>;

/// Parses a master file. `origin` is the initial `$ORIGIN` (a file may set its own).
///
/// # Errors
/// The first bad entry, with its line: syntax, an unknown type or class, a bad name, address
/// or number, a record before the first SOA, or no SOA at all.
pub fn parse(text: &str, origin: Option<&Name>) -> Result<Loaded, Error> {
    let mut p = Parser {
        origin: origin.cloned(),
        default_ttl: None,
        last_ttl: None,
        last_owner: None,
        zones: Vec::new(),
    };
    let mut lexer = Lexer {
        bytes: text.as_bytes(),
        text,
        pos: 0,
        line: 1,
    };
    let mut toks = Vec::with_capacity(16);
    while let Some(entry) = lexer.next_entry(&mut toks)? {
        p.entry(&entry, &toks).map_err(|reason| Error {
            line: entry.line,
            reason,
        })?;
    }
    if p.zones.is_empty() {
        return Err(Error {
            line: lexer.line,
            reason: "no SOA record: a file must define a zone".to_owned(),
        });
    }
    Ok(p.zones.into_iter().map(|z| (z.zone, z.sets)).collect())
}

#[derive(Debug, Clone, Copy)]
enum Tok<'a> {
    Word(&'a str),
    /// The contents between the quotes, escapes not yet processed.
    Quoted(&'a str),
}

struct Entry {
    line: usize,
    blank_owner: bool,
}

struct Lexer<'a> {
    bytes: &'a [u8],
    text: &'a str,
    pos: usize,
    line: usize,
}

impl<'a> Lexer<'a> {
    fn err(&self, line: usize, reason: &str) -> Error {
        Error {
            line,
            reason: reason.to_owned(),
        }
    }

    /// Reads the next entry's tokens into `toks` (cleared first).
    fn next_entry(&mut self, toks: &mut Vec<Tok<'a>>) -> Result<Option<Entry>, Error> {
        toks.clear();
        let mut depth = 0u32;
        let mut start_line = self.line;
        let mut blank_owner = false;
        let mut at_line_start = true;
        loop {
            let Some(&b) = self.bytes.get(self.pos) else {
                if depth > 0 {
                    return Err(self.err(start_line, "unbalanced `(`"));
                }
                return Ok((!toks.is_empty()).then_some(Entry {
                    line: start_line,
                    blank_owner,
                }));
            };
            match b {
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                    if depth == 0 {
                        if !toks.is_empty() {
                            return Ok(Some(Entry {
                                line: start_line,
                                blank_owner,
                            }));
                        }
                        at_line_start = true;
                        blank_owner = false;
                    }
                }
                b' ' | b'\t' | b'\r' => {
                    if at_line_start && toks.is_empty() && depth == 0 {
                        blank_owner = true;
                    }
                    at_line_start = false;
                    self.pos += 1;
                }
                b';' => {
                    while self.bytes.get(self.pos).is_some_and(|&c| c != b'\n') {
                        self.pos += 1;
                    }
                }
                b'(' => {
                    depth += 1;
                    at_line_start = false;
                    self.pos += 1;
                }
                b')' => {
                    if depth == 0 {
                        return Err(self.err(self.line, "`)` without `(`"));
                    }
                    depth -= 1;
                    self.pos += 1;
                }
                b'"' => {
                    if toks.is_empty() {
                        start_line = self.line;
                    }
                    at_line_start = false;
                    let open_line = self.line;
                    let start = self.pos + 1;
                    let mut i = start;
                    loop {
                        match self.bytes.get(i) {
                            None => return Err(self.err(open_line, "unterminated quoted string")),
                            Some(b'\\') => i += 2,
                            Some(b'"') => break,
                            Some(b'\n') => {
                                self.line += 1;
                                i += 1;
                            }
                            Some(_) => i += 1,
                        }
                    }
                    toks.push(Tok::Quoted(&self.text[start..i]));
                    self.pos = i + 1;
                }
                _ => {
                    if toks.is_empty() {
                        start_line = self.line;
                        if at_line_start {
                            blank_owner = false;
                        }
                    }
                    at_line_start = false;
                    let start = self.pos;
                    let mut i = start;
                    while let Some(&c) = self.bytes.get(i) {
                        match c {
                            b' ' | b'\t' | b'\r' | b'\n' | b';' | b'(' | b')' | b'"' => break,
                            b'\\' => i += 2,
                            _ => i += 1,
                        }
                    }
                    let i = i.min(self.bytes.len());
                    toks.push(Tok::Word(&self.text[start..i]));
                    self.pos = i;
                }
            }
        }
    }
}

struct ZoneState {
    zone: Zone,
    sets: Vec<RecordSet>,
    by_key: HashMap<(Name, RecordType), usize>,
}

struct Parser {
    origin: Option<Name>,
    default_ttl: Option<u32>,
    last_ttl: Option<u32>,
    last_owner: Option<Name>,
    zones: Vec<ZoneState>,
}

impl Parser {
    fn entry(&mut self, entry: &Entry, toks: &[Tok<'_>]) -> Result<(), String> {
        if let Tok::Word(w) = toks[0]
            && w.starts_with('$')
            && !entry.blank_owner
        {
            return self.directive(w, &toks[1..]);
        }
        let mut rest = toks;
        let owner = if entry.blank_owner {
            self.last_owner
                .clone()
                .ok_or("a blank owner needs a previous record")?
        } else {
            let name = self.name(word(&rest[0])?)?;
            rest = &rest[1..];
            name
        };
        let mut ttl = None;
        for _ in 0..2 {
            let Some(Tok::Word(w)) = rest.first() else {
                break;
            };
            if w.eq_ignore_ascii_case("IN") {
                rest = &rest[1..];
            } else if ["CH", "HS", "CS"].iter().any(|c| w.eq_ignore_ascii_case(c)) {
                return Err(format!("class {w} is not supported (only IN)"));
            } else if w.as_bytes()[0].is_ascii_digit() {
                ttl = Some(parse_ttl(w)?);
                rest = &rest[1..];
            } else {
                break;
            }
        }
        let Some(kind) = rest.first() else {
            return Err("missing record type".to_owned());
        };
        let kind = word(kind)?;
        let rtype: RecordType = kind.parse().map_err(|e: String| e)?;
        let rdata = &rest[1..];
        let ttl = match ttl.or(self.default_ttl).or(self.last_ttl) {
            Some(t) => t,
            None => return Err("no TTL: give one or set $TTL".to_owned()),
        };
        if ttl > MAX_TTL {
            return Err(format!("TTL {ttl} is above {MAX_TTL} (RFC 2181)"));
        }
        self.last_ttl = Some(ttl);
        self.last_owner = Some(owner.clone());
        if rtype == RecordType::Soa {
            return self.soa(owner, ttl, rdata);
        }
        let data = self.rdata(rtype, rdata)?;
        let Some(z) = self.zones.last_mut() else {
            return Err("the first record must be the zone's SOA".to_owned());
        };
        if let RData::Ns { host } = &data
            && owner == z.zone.origin
            && !z.zone.ns.contains(host)
        {
            z.zone.ns.push(host.clone());
        }
        z.add(owner, rtype, ttl, data)
    }

    fn directive(&mut self, name: &str, args: &[Tok<'_>]) -> Result<(), String> {
        let arg = || -> Result<&str, String> {
            match args {
                [t] => word(t),
                _ => Err(format!("{name} takes one argument")),
            }
        };
        if name.eq_ignore_ascii_case("$ORIGIN") {
            let text = arg()?;
            let origin = match &self.origin {
                Some(o) => Name::from_relative(text, o),
                None => text.parse(),
            };
            self.origin = Some(origin.map_err(|e| format!("$ORIGIN {text}: {e}"))?);
            Ok(())
        } else if name.eq_ignore_ascii_case("$TTL") {
            let t = parse_ttl(arg()?)?;
            if t > MAX_TTL {
                return Err(format!("TTL {t} is above {MAX_TTL} (RFC 2181)"));
            }
            self.default_ttl = Some(t);
            Ok(())
        } else {
            Err(format!("directive {name} is not supported"))
        }
    }

    fn name(&self, text: &str) -> Result<Name, String> {
        let r = if text.ends_with('.') {
            text.parse()
        } else {
            let origin = self
                .origin
                .as_ref()
                .ok_or_else(|| format!("relative name `{text}` without $ORIGIN"))?;
            Name::from_relative(text, origin)
        };
        r.map_err(|e| format!("name `{text}`: {e}"))
    }

    fn soa(&mut self, owner: Name, ttl: u32, rdata: &[Tok<'_>]) -> Result<(), String> {
        let [mname, rname, serial, refresh, retry, expire, minimum] = rdata else {
            return Err("SOA needs mname rname serial refresh retry expire minimum".to_owned());
        };
        let soa = Soa {
            mname: self.name(word(mname)?)?,
            rname: self.name(word(rname)?)?,
            serial: number(word(serial)?)?,
            refresh: parse_ttl(word(refresh)?)?,
            retry: parse_ttl(word(retry)?)?,
            expire: parse_ttl(word(expire)?)?,
            minimum: parse_ttl(word(minimum)?)?,
        };
        if self.zones.iter().any(|z| z.zone.origin == owner) {
            return Err(format!("a second SOA for {owner}"));
        }
        self.zones.push(ZoneState {
            zone: Zone {
                origin: owner,
                ttl,
                soa,
                ns: Vec::new(),
            },
            sets: Vec::new(),
            by_key: HashMap::new(),
        });
        Ok(())
    }

    fn rdata(&self, rtype: RecordType, t: &[Tok<'_>]) -> Result<RData, String> {
        let arity = |n: usize| {
            if t.len() == n {
                Ok(())
            } else {
                Err(format!(
                    "{} takes {n} fields, found {}",
                    rtype.as_str(),
                    t.len()
                ))
            }
        };
        Ok(match rtype {
            RecordType::A => {
                arity(1)?;
                let w = word(&t[0])?;
                RData::A {
                    address: w
                        .parse::<Ipv4Addr>()
                        .map_err(|_| format!("bad IPv4 address `{w}`"))?,
                }
            }
            RecordType::Aaaa => {
                arity(1)?;
                let w = word(&t[0])?;
                RData::Aaaa {
                    address: w
                        .parse::<Ipv6Addr>()
                        .map_err(|_| format!("bad IPv6 address `{w}`"))?,
                }
            }
            RecordType::Cname => {
                arity(1)?;
                RData::Cname {
                    target: self.name(word(&t[0])?)?,
                }
            }
            RecordType::Ns => {
                arity(1)?;
                RData::Ns {
                    host: self.name(word(&t[0])?)?,
                }
            }
            RecordType::Ptr => {
                arity(1)?;
                RData::Ptr {
                    target: self.name(word(&t[0])?)?,
                }
            }
            RecordType::Mx => {
                arity(2)?;
                RData::Mx {
                    preference: number(word(&t[0])?)?,
                    exchange: self.name(word(&t[1])?)?,
                }
            }
            RecordType::Srv => {
                arity(4)?;
                RData::Srv {
                    priority: number(word(&t[0])?)?,
                    weight: number(word(&t[1])?)?,
                    port: number(word(&t[2])?)?,
                    target: self.name(word(&t[3])?)?,
                }
            }
            RecordType::Txt => {
                if t.is_empty() {
                    return Err("TXT needs at least one string".to_owned());
                }
                let mut strings = Vec::with_capacity(t.len());
                for tok in t {
                    let raw = match tok {
                        Tok::Word(w) | Tok::Quoted(w) => w,
                    };
                    let s = unescape(raw);
                    if s.len() > 255 {
                        return Err("a TXT string is longer than 255 octets".to_owned());
                    }
                    strings.push(s.into_owned());
                }
                RData::Txt { strings }
            }
            RecordType::Soa => unreachable!("SOA is handled by Parser::soa"),
        })
    }
}

impl ZoneState {
    fn add(&mut self, owner: Name, rtype: RecordType, ttl: u32, data: RData) -> Result<(), String> {
        // Files usually keep a set's records together: check the last set first.
        let i = match self.sets.last() {
            Some(last) if last.name == owner && last.record_type() == Some(rtype) => {
                Some(self.sets.len() - 1)
            }
            _ => self.by_key.get(&(owner.clone(), rtype)).copied(),
        };
        match i {
            Some(i) => {
                let set = &mut self.sets[i];
                if rtype == RecordType::Cname {
                    return Err(format!("a second CNAME at {owner}"));
                }
                // RFC 2181 section 5.2: one TTL per set; the lowest wins.
                set.ttl = set.ttl.min(ttl);
                if !set.records.contains(&data) {
                    set.records.push(data);
                }
            }
            None => {
                self.by_key.insert((owner.clone(), rtype), self.sets.len());
                self.sets.push(RecordSet {
                    name: owner,
                    ttl,
                    records: vec![data],
                    policy: AnswerPolicy::All,
                    affinity_timeout: None,
                    source: "user".to_owned(),
                });
            }
        }
        Ok(())
    }
}

fn word<'a>(t: &Tok<'a>) -> Result<&'a str, String> {
    match t {
        Tok::Word(w) => Ok(w),
        Tok::Quoted(q) => Err(format!("unexpected quoted string \"{q}\"")),
    }
}

fn number<T: std::str::FromStr>(w: &str) -> Result<T, String> {
    w.parse().map_err(|_| format!("bad number `{w}`"))
}

/// A TTL: seconds, or BIND units (`1w2d3h4m5s`).
fn parse_ttl(w: &str) -> Result<u32, String> {
    let bad = || format!("bad TTL `{w}`");
    if let Ok(v) = w.parse::<u32>() {
        return Ok(v);
    }
    let (mut total, mut cur, mut digits) = (0u64, 0u64, false);
    for c in w.bytes() {
        if c.is_ascii_digit() {
            cur = cur * 10 + u64::from(c - b'0');
            digits = true;
            if cur > u64::from(u32::MAX) {
                return Err(bad());
            }
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            b's' => 1,
            b'm' => 60,
            b'h' => 3600,
            b'd' => 86_400,
            b'w' => 604_800,
            _ => return Err(bad()),
        };
        if !digits {
            return Err(bad());
        }
        total += cur * unit;
        cur = 0;
        digits = false;
    }
    if digits {
        total += cur;
    }
    u32::try_from(total).map_err(|_| bad())
}

/// Processes `\X` and `\DDD` escapes (RFC 1035 section 5.1).
fn unescape(raw: &str) -> Cow<'_, str> {
    if !raw.contains('\\') {
        return Cow::Borrowed(raw);
    }
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            let d = &b[i + 1..b.len().min(i + 4)];
            if d.len() == 3 && d.iter().all(u8::is_ascii_digit) {
                let v = u32::from(d[0] - b'0') * 100
                    + u32::from(d[1] - b'0') * 10
                    + u32::from(d[2] - b'0');
                out.push(v.min(255) as u8);
                i += 4;
            } else {
                out.push(b[i + 1]);
                i += 2;
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests;
