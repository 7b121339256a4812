//! The other end of a veth: where the fast path's `XDP_TX` frames go on veth, and why it
//! needs a program of its own.
//!
//! A native XDP program on a veth sends `XDP_TX` frames into its peer's XDP ring, and the
//! kernel only schedules the peer to take them when the peer has an XDP program itself
//! (`veth_xdp_flush`): without one the frames wait until something else wakes the peer (or
//! are dropped, with its NAPI off), and connections stall. On a physical NIC none of this
//! applies. So on veth (tests, benches, a balancer in a container) the peer gets
//! [`attach_pass`]: a program that passes every frame on, costing one run per frame.

use dataplane_common::packet_io::xdp::bpf::{self, Asm, action, op, reg};
use std::io;
use std::os::fd::OwnedFd;

/// Attaches, in native mode, an XDP program that passes every frame to `interface` (in the
/// caller's network namespace). It stays while the returned link is open.
///
/// # Errors
/// When the program cannot be loaded or attached (not root, no such interface, another
/// program there).
pub fn attach_pass(interface: &str) -> io::Result<OwnedFd> {
    let mut a = Asm::default();
    a.i(op::MOV_K, reg::R0, 0, 0, action::PASS);
    a.i(op::EXIT, 0, 0, 0, 0);
    let prog = bpf::prog_load(&a.finish(), "xdp_pass", bpf::ATTACH_XDP)?;
    bpf::link_create(&prog, bpf::ifindex(interface)?, bpf::XDP_FLAGS_DRV_MODE)
}
