//! The fast path's XDP instructions: the prologue that forwards established flows itself.
//! It runs before the `AF_XDP` redirect program ([`dataplane_common::packet_io::xdp`]) and
//! falls through to it (with the context back in `R1`) for everything it does not forward.
//!
//! ```text
//! eth(14) ipv4(20) udp(8) in bounds, ethertype 0x0800, ver/ihl 0x45, no MF, offset 0
//! proto 17, or proto 6 with 20 bytes of TCP header and none of SYN|FIN|RST
//! key = saddr, daddr, sport, dport, proto (16 bytes, as on the wire)
//! v = flows[key] or fall through
//! if v.flags & NAT: ip.check = ~fold(~ip.check + v.ip_delta); saddr, daddr = v...
//!                   l4 check likewise (UDP: 0 stays 0, 0 becomes 0xffff); sport, dport = v...
//! dst mac, src mac = v...
//! v.packets += 1; v.bytes += data_end - data     (atomic adds)
//! return XDP_TX
//! ```
//!
//! [`super::entry`] is the model of this program; the root-only tests run both on the same
//! frames (`BPF_PROG_TEST_RUN`) and compare.

use super::entry::{NAT, SLOW_TCP_FLAGS, off};
use dataplane_common::packet_io::xdp::bpf::{Asm, action, func, op, reg};
use std::os::fd::RawFd;

/// Labels: above the redirect program's, which follows in the same assembler.
const SLOW: u16 = 1000;
const KEY: u16 = 1001;
const MACS: u16 = 1002;
const UDP: u16 = 1003;
const UDP_STORE: u16 = 1004;
const PORTS: u16 = 1005;

/// Opcodes the shared encoder does not name.
mod more_op {
    /// `lock *(u64 *)(r_dst + off) += r_src` (`BPF_STX | BPF_ATOMIC | BPF_DW`, `imm` `BPF_ADD`).
    pub(super) const ATOMIC_ADD_DW: u8 = 0xdb;
}

const ETH: i16 = 14;
const IP: i16 = ETH;
const L4: i16 = IP + 20;

fn at(o: usize) -> i16 {
    i16::try_from(o).expect("invariant: value offsets are small")
}

/// `R4 = ~fold(~R4 + R5)`, the loaded-order checksum update of [`super::delta::apply`];
/// clobbers `R3`.
fn checksum(a: &mut Asm) {
    use reg::{R3, R4, R5};
    a.i(op::XOR_K, R4, 0, 0, 0xffff);
    a.i(op::ADD_X, R4, R5, 0, 0);
    a.i(op::MOV_X, R3, R4, 0, 0);
    a.i(op::RSH_K, R3, 0, 0, 16);
    a.i(op::AND_K, R4, 0, 0, 0xffff);
    a.i(op::ADD_X, R4, R3, 0, 0);
    a.i(op::XOR_K, R4, 0, 0, 0xffff);
}

/// Appends the fast path for map `flows` to `a`. On entry `R1` is the context; on a miss
/// it falls through past its end with `R1` the context again.
pub fn emit(a: &mut Asm, flows: RawFd) {
    use reg::{FP, R0, R1, R2, R4, R5, R6, R7, R8, R9};
    // R6 context, R7 data, R9 data_end (kept across the lookup), R8 the protocol.
    a.untagged_ipv4(i32::from(L4) + 8, SLOW);
    a.i(op::LDX_B, R8, R7, IP + 9, 0);
    a.jump(op::JEQ_K, R8, 0, 17, KEY);
    a.jump(op::JNE_K, R8, 0, 6, SLOW);
    a.i(op::MOV_X, R4, R7, 0, 0);
    a.i(op::ADD_K, R4, 0, 0, i32::from(L4) + 20);
    a.jump(op::JGT_X, R4, R9, 0, SLOW);
    a.i(op::LDX_B, R4, R7, L4 + 13, 0);
    a.jump(op::JSET_K, R4, 0, i32::from(SLOW_TCP_FLAGS), SLOW);

    a.label(KEY);
    a.i(op::LDX_W, R4, R7, IP + 12, 0);
    a.i(op::STX_W, FP, R4, -16, 0);
    a.i(op::LDX_W, R4, R7, IP + 16, 0);
    a.i(op::STX_W, FP, R4, -12, 0);
    a.i(op::LDX_W, R4, R7, L4, 0);
    a.i(op::STX_W, FP, R4, -8, 0);
    a.i(op::STX_W, FP, R8, -4, 0);
    a.map(R1, flows);
    a.i(op::MOV_X, R2, FP, 0, 0);
    a.i(op::ADD_K, R2, 0, 0, -16);
    a.i(op::CALL, 0, 0, 0, func::MAP_LOOKUP_ELEM);
    a.jump(op::JEQ_K, R0, 0, 0, SLOW);

    a.i(op::LDX_B, R4, R0, at(off::FLAGS), 0);
    a.i(op::AND_K, R4, 0, 0, i32::from(NAT));
    a.jump(op::JEQ_K, R4, 0, 0, MACS);
    // IPv4 header checksum, then the addresses.
    a.i(op::LDX_H, R4, R7, IP + 10, 0);
    a.i(op::LDX_H, R5, R0, at(off::IP_DELTA), 0);
    checksum(a);
    a.i(op::STX_H, R7, R4, IP + 10, 0);
    a.i(op::LDX_W, R4, R0, at(off::SRC_IP), 0);
    a.i(op::STX_W, R7, R4, IP + 12, 0);
    a.i(op::LDX_W, R4, R0, at(off::DST_IP), 0);
    a.i(op::STX_W, R7, R4, IP + 16, 0);
    // TCP or UDP checksum, then the ports.
    a.i(op::LDX_H, R5, R0, at(off::L4_DELTA), 0);
    a.jump(op::JEQ_K, R8, 0, 17, UDP);
    a.i(op::LDX_H, R4, R7, L4 + 16, 0);
    checksum(a);
    a.i(op::STX_H, R7, R4, L4 + 16, 0);
    a.jump(op::JA, 0, 0, 0, PORTS);
    a.label(UDP);
    a.i(op::LDX_H, R4, R7, L4 + 6, 0);
    a.jump(op::JEQ_K, R4, 0, 0, PORTS);
    checksum(a);
    a.jump(op::JNE_K, R4, 0, 0, UDP_STORE);
    a.i(op::MOV_K, R4, 0, 0, 0xffff);
    a.label(UDP_STORE);
    a.i(op::STX_H, R7, R4, L4 + 6, 0);
    a.label(PORTS);
    a.i(op::LDX_W, R4, R0, at(off::PORTS), 0);
    a.i(op::STX_W, R7, R4, L4, 0);

    a.label(MACS);
    a.i(op::LDX_W, R4, R0, at(off::DST_MAC), 0);
    a.i(op::STX_W, R7, R4, 0, 0);
    a.i(op::LDX_H, R4, R0, at(off::DST_MAC) + 4, 0);
    a.i(op::STX_H, R7, R4, 4, 0);
    a.i(op::LDX_H, R4, R0, at(off::SRC_MAC), 0);
    a.i(op::STX_H, R7, R4, 6, 0);
    a.i(op::LDX_W, R4, R0, at(off::SRC_MAC) + 2, 0);
    a.i(op::STX_W, R7, R4, 8, 0);
    // Counters: this entry's packets and bytes (atomic: every CPU may be here at once).
    a.i(op::MOV_K, R4, 0, 0, 1);
    a.i(more_op::ATOMIC_ADD_DW, R0, R4, at(off::PACKETS), 0);
    a.i(op::MOV_X, R4, R9, 0, 0);
    a.i(op::SUB_X, R4, R7, 0, 0);
    a.i(more_op::ATOMIC_ADD_DW, R0, R4, at(off::BYTES), 0);
    a.i(op::MOV_K, R0, 0, 0, action::TX);
    a.i(op::EXIT, 0, 0, 0, 0);

    a.label(SLOW);
    a.i(op::MOV_X, R1, R6, 0, 0);
}
