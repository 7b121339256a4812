//! Packet headers and rewrites. PURE: bytes in, bytes changed in place; no state.
//!
//! Each protocol has one file with its named wire offsets and a zero-copy view over
//! `AsRef<[u8]>` (read) and `AsMut<[u8]>` (write). [`frame::parse`] runs them in order and
//! returns offsets plus the flow's tuple; every failure is a [`DropReason`](crate::DropReason).
//! [`rewrite`] changes the frame for full-NAT and DR, with checksums from [`checksum`].
//! This layer does not decide anything: what is a VIP and where a flow goes is the
//! datapath's business.

pub mod checksum;
pub mod eth;
pub mod frame;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod rewrite;
pub mod tcp;
pub mod udp;

pub use eth::{Ethernet, Mac};
pub use frame::{Frame, Kind, parse};
pub use ipv4::Ipv4;
pub use ipv6::Ipv6;
pub use tcp::Tcp;
pub use udp::Udp;
