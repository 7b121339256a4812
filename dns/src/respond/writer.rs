//! Assembles one reply in the caller's buffer: sections and their counts, a size limit, name
//! compression. Knows nothing of lookups or policies.

use crate::authority::Record;
use crate::wire::edns::{self, Opt};
use crate::wire::header::{self, HeaderMut};
use crate::wire::name::Compressor;
use crate::wire::{Error, put};

/// A pointer to the question's name, which always sits right after the header.
const QNAME_POINTER: [u8; 2] = [0xC0, header::LEN as u8];

/// The three record sections.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Section {
    Answer = 0,
    Authority = 1,
    Additional = 2,
}

/// The owner of a record being written.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Owner<'a> {
    /// The question's name: written as a pointer to it.
    Query,
    /// Another name (lower-case, uncompressed wire), compressed against what is written.
    Name(&'a [u8]),
}

/// A reply being written.
///
/// Invariant: `limit + reserve <= out.len()`, and `pos <= limit`: records never use the space
/// reserved for the OPT record.
pub(crate) struct Writer<'o> {
    out: &'o mut [u8],
    pos: usize,
    limit: usize,
    counts: [u16; 3],
    comp: Compressor,
    question_end: usize,
}

impl<'o> Writer<'o> {
    /// A reply to `query` whose question ends at `question_end`, echoed byte for byte; records
    /// stop at `limit`, OPT (when `reserve_opt`) may follow up to `limit + edns::RR_LEN`.
    pub(crate) fn new(
        out: &'o mut [u8],
        limit: usize,
        query: &[u8],
        question_end: usize,
    ) -> Result<Self, Error> {
        let limit = limit.min(out.len());
        if question_end > limit {
            return Err(Error::NoSpace);
        }
        put(out, header::LEN, &query[header::LEN..question_end])?;
        let mut comp = Compressor::new();
        comp.remember(out, header::LEN);
        Ok(Self {
            out,
            pos: question_end,
            limit,
            counts: [0; 3],
            comp,
            question_end,
        })
    }

    /// Writes `owner` then the pre-encoded `record`.
    pub(crate) fn record(
        &mut self,
        section: Section,
        owner: Owner<'_>,
        record: &Record,
    ) -> Result<(), Error> {
        let owner_end = self.owner(owner)?;
        self.pos = put(&mut self.out[..self.limit], owner_end, record.wire())?;
        if record.target().is_some() {
            self.comp
                .remember(self.out, owner_end + 10 + record.target_offset());
        }
        self.counts[section as usize] += 1;
        Ok(())
    }

    /// Writes `owner` then `wire` (TYPE through RDATA).
    pub(crate) fn raw(
        &mut self,
        section: Section,
        owner: Owner<'_>,
        wire: &[u8],
    ) -> Result<(), Error> {
        let owner_end = self.owner(owner)?;
        self.pos = put(&mut self.out[..self.limit], owner_end, wire)?;
        self.counts[section as usize] += 1;
        Ok(())
    }

    fn owner(&mut self, owner: Owner<'_>) -> Result<usize, Error> {
        match owner {
            Owner::Query => put(&mut self.out[..self.limit], self.pos, &QNAME_POINTER),
            Owner::Name(name) => self.comp.write(&mut self.out[..self.limit], self.pos, name),
        }
    }

    /// Drops every record: the question alone remains.
    pub(crate) fn truncate(&mut self) {
        self.pos = self.question_end;
        self.counts = [0; 3];
        self.comp.clear();
        self.comp.remember(self.out, header::LEN);
    }

    /// Writes OPT (if any) and the header; returns the reply's length.
    pub(crate) fn finish(self, id: u16, flags: u16, opt: Option<Opt>) -> usize {
        let mut len = self.pos;
        let mut ar = self.counts[Section::Additional as usize];
        if let Some(opt) = opt {
            // The caller reserved the space: `limit + RR_LEN <= out.len()`.
            if let Ok(end) = opt.write(self.out, len) {
                len = end;
                ar += 1;
            }
        }
        let mut h = HeaderMut::new(self.out).expect("invariant: out holds the header");
        h.set_id(id);
        h.set_flags(flags);
        h.set_counts(
            1,
            self.counts[Section::Answer as usize],
            self.counts[Section::Authority as usize],
            ar,
        );
        len
    }
}

/// Writes a reply that is a header alone (no question): FORMERR and NOTIMP when the question
/// cannot be trusted. Returns its length.
pub(crate) fn bare(out: &mut [u8], id: u16, flags: u16) -> usize {
    let mut h = HeaderMut::new(out).expect("invariant: caller checked out holds a header");
    h.set_id(id);
    h.set_flags(flags);
    h.set_counts(0, 0, 0, 0);
    header::LEN
}

/// The space an OPT record takes.
pub(crate) const OPT_LEN: usize = edns::RR_LEN;
