//! Packet I/O: the batch interface and its backends live in
//! [`dataplane_common::packet_io`] (dns uses them too); re-exported here, with l4lb's own
//! `AF_PACKET` fanout steering ([`steering`]).

pub use dataplane_common::packet_io::{LinkStats, Rx, Tx, af_packet, mem, xdp};

pub mod steering;

#[cfg(test)]
mod tests;
