//! The data a server is authoritative for, indexed for answering.
//!
//! - [`zone`]: one zone as nodes keyed by lower-case wire name, each record pre-encoded so a
//!   reply is assembled by copying bytes.
//! - [`catalog`]: every zone plus the addresses marked down, built once into an immutable value
//!   that workers share; the zone for a name is found by longest suffix.
//! - [`lookup`]: what a zone says about one name and type (answer, CNAME chain, wildcard,
//!   referral, NXDOMAIN, NODATA).
//!
//! Nothing here reads the wire of a query, writes a reply, or picks among addresses: that is
//! `respond`. Nothing here changes after it is built: a reload builds a new [`Catalog`].

pub mod catalog;
pub mod lookup;
pub mod zone;

pub use catalog::Catalog;
pub use lookup::{End, Lookup, MAX_CHAIN, lookup};
pub use zone::{Node, Record, RrSet, ZoneData};

#[cfg(test)]
pub(crate) mod testing;
