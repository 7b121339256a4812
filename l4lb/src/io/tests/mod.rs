//! The moved backends ([`dataplane_common::packet_io`]) exercised with l4lb's frames, in a
//! throwaway network namespace (root only; skipped otherwise).

mod af_packet;
mod xdp;
