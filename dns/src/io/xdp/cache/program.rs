//! The answer cache's XDP instructions: a prologue that answers a stored question itself and
//! falls through (with the context back in `R1`) to the `AF_XDP` redirect for the rest.
//!
//! ```text
//! eth(14) ipv4(20) udp(8) dns header(12) in bounds; ethertype 0x0800, ver/ihl 0x45, no MF,
//! offset 0, proto 17, daddr and dport ours
//! key = generation[0], udp.len - 10, the message after its ID (zero padded)
//! v = answers[key] or fall through
//! shrink the frame's tail, or grow its head (the headers moved), to 44 + v.len octets;
//! store v's octets after the ID
//! swap MACs, addresses, ports; ip.len, flags (DF kept), TTL 64, ip checksum;
//! udp.len; udp checksum = fold(v.sum + pseudo header + ports + length + ID), 0 sent as ffff
//! counts[v.slot] += 1 (per CPU)
//! return XDP_TX
//! ```
//!
//! The root-only tests run it (`BPF_PROG_TEST_RUN`) against `frame::reply` over the pure
//! core's replies: the same bytes out.

use super::{KEY_BYTES, VALUE_BYTES};
use dataplane_common::packet_io::xdp::bpf::{Asm, action, func, op, reg, wire16, xdp_md};
use std::net::Ipv4Addr;
use std::os::fd::RawFd;

/// The maps the program reads.
pub(super) struct Maps {
    pub(super) answers: RawFd,
    pub(super) generation: RawFd,
    pub(super) counts: RawFd,
}

/// Labels: above the redirect program's, which follows in the same assembler.
const SLOW: u16 = 1000;
const STORE_UDP_SUM: u16 = 1001;
const SENT: u16 = 1002;
const GROW: u16 = 1003;
const BODY: u16 = 1004;

const IP: i16 = 14;
const UDP: i16 = IP + 20;
const DNS: i16 = UDP + 8;
/// The reply's octets go after the ID.
const AFTER_ID: i32 = DNS as i32 + 2;
/// The reply's IPv4 TTL, as `frame::reply` writes it.
const TTL: i32 = 64;

/// Stack: the key (generation, length, octets) at `KEY`, a map index at `INDEX`; once the
/// key is looked up, its space holds the headers while the frame grows at `HEADERS`.
const KEY: i16 = -(8 + KEY_BYTES as i16);
const INDEX: i16 = KEY - 8;
const HEADERS: i16 = -48;

/// `R2 = fold(R2)`, three times: enough for any sum of fewer than 2^16 words; clobbers `R3`.
fn fold(a: &mut Asm) {
    use reg::{R2, R3};
    for _ in 0..3 {
        a.i(op::MOV_X, R3, R2, 0, 0);
        a.i(op::RSH_K, R3, 0, 0, 16);
        a.i(op::AND_K, R2, 0, 0, 0xffff);
        a.i(op::ADD_X, R2, R3, 0, 0);
    }
}

/// `R0` = the first entry of the array `map`, or a jump to `miss`; clobbers `R1`-`R5`.
fn first_entry(a: &mut Asm, map: RawFd, miss: u16) {
    use reg::{FP, R0, R1, R2};
    a.i(op::ST_W, FP, 0, INDEX, 0);
    a.map(R1, map);
    a.i(op::MOV_X, R2, FP, 0, 0);
    a.i(op::ADD_K, R2, 0, 0, i32::from(INDEX));
    a.i(op::CALL, 0, 0, 0, func::MAP_LOOKUP_ELEM);
    a.jump(op::JEQ_K, R0, 0, 0, miss);
}

/// Calls `helper` (`bpf_xdp_load_bytes` or `bpf_xdp_store_bytes`) on the frame's first
/// [`AFTER_ID`] octets (headers and ID) and their copy on the stack at [`HEADERS`], with the
/// context in `R6`; clobbers `R0`-`R5`.
fn headers(a: &mut Asm, helper: i32) {
    use reg::{FP, R1, R2, R3, R4, R6};
    a.i(op::MOV_X, R1, R6, 0, 0);
    a.i(op::MOV_K, R2, 0, 0, 0);
    a.i(op::MOV_X, R3, FP, 0, 0);
    a.i(op::ADD_K, R3, 0, 0, i32::from(HEADERS));
    a.i(op::MOV_K, R4, 0, 0, AFTER_ID);
    a.i(op::CALL, 0, 0, 0, helper);
}

/// Appends the answer cache's program to `a`: answers to `address`:`port` only, counters
/// in `slots` slots. On entry `R1` is the context; on a miss it falls through past its end
/// with `R1` the context again.
pub(super) fn emit(a: &mut Asm, maps: Maps, address: Ipv4Addr, port: u16, slots: usize) {
    use reg::{FP, R0, R1, R2, R3, R4, R5, R6, R7, R8, R9};
    let key_bytes = KEY + 8;
    // R6 context, R7 data, R9 data_end, R8 the stored reply.
    a.untagged_ipv4(i32::from(DNS) + 12, SLOW);
    a.i(op::LDX_B, R4, R7, IP + 9, 0);
    a.jump(op::JNE_K, R4, 0, 17, SLOW);
    a.i(op::LDX_W, R4, R7, IP + 16, 0);
    a.jump(
        op::JNE32_K,
        R4,
        0,
        i32::from_le_bytes(address.octets()),
        SLOW,
    );
    a.i(op::LDX_H, R4, R7, UDP + 2, 0);
    a.jump(op::JNE_K, R4, 0, wire16(port), SLOW);
    // A unicast client (multicast, broadcast and class E go the slow way, 0.0.0.0 too).
    a.i(op::LDX_B, R4, R7, IP + 12, 0);
    a.jump(op::JGE_K, R4, 0, 224, SLOW);
    a.i(op::LDX_W, R4, R7, IP + 12, 0);
    a.jump(op::JEQ_K, R4, 0, 0, SLOW);

    // The key: the current generation, then the message after its ID.
    first_entry(a, maps.generation, SLOW);
    a.i(op::LDX_W, R3, R0, 0, 0);
    a.i(op::STX_W, FP, R3, KEY, 0);
    for i in 0..(KEY_BYTES as i16 / 8) {
        a.i(op::ST_DW, FP, 0, key_bytes + 8 * i, 0);
    }
    a.i(op::LDX_H, R5, R7, UDP + 4, 0);
    a.i(op::BE, R5, 0, 0, 16);
    a.jump(op::JGT_K, R5, 0, 8 + 2 + KEY_BYTES as i32, SLOW);
    a.jump(op::JLT_K, R5, 0, 8 + super::MIN_MESSAGE as i32, SLOW);
    // The datagram fills the IP packet exactly, and the frame holds it.
    a.i(op::LDX_H, R3, R7, IP + 2, 0);
    a.i(op::BE, R3, 0, 0, 16);
    a.i(op::MOV_X, R4, R5, 0, 0);
    a.i(op::ADD_K, R4, 0, 0, 20);
    a.jump(op::JNE_X, R3, R4, 0, SLOW);
    a.i(op::MOV_X, R3, R7, 0, 0);
    a.i(op::ADD_K, R3, 0, 0, i32::from(UDP));
    a.i(op::ADD_X, R3, R5, 0, 0);
    a.jump(op::JGT_X, R3, R9, 0, SLOW);
    a.i(op::MOV_X, R4, R5, 0, 0);
    a.i(op::SUB_K, R4, 0, 0, 10);
    a.i(op::STX_W, FP, R4, KEY + 4, 0);
    a.i(op::MOV_X, R1, R6, 0, 0);
    a.i(op::MOV_K, R2, 0, 0, AFTER_ID);
    a.i(op::MOV_X, R3, FP, 0, 0);
    a.i(op::ADD_K, R3, 0, 0, i32::from(key_bytes));
    a.i(op::CALL, 0, 0, 0, func::XDP_LOAD_BYTES);
    a.jump(op::JNE_K, R0, 0, 0, SLOW);
    a.map(R1, maps.answers);
    a.i(op::MOV_X, R2, FP, 0, 0);
    a.i(op::ADD_K, R2, 0, 0, i32::from(KEY));
    a.i(op::CALL, 0, 0, 0, func::MAP_LOOKUP_ELEM);
    a.jump(op::JEQ_K, R0, 0, 0, SLOW);
    a.i(op::MOV_X, R8, R0, 0, 0);

    // The frame becomes 44 + len octets long, the stored octets after the ID.
    a.i(op::LDX_H, R5, R8, 0, 0);
    a.jump(op::JGT_K, R5, 0, VALUE_BYTES as i32, SLOW);
    a.jump(op::JLT_K, R5, 0, 10, SLOW);
    a.i(op::MOV_X, R1, R6, 0, 0);
    a.i(op::CALL, 0, 0, 0, func::XDP_GET_BUFF_LEN);
    a.i(op::LDX_H, R7, R8, 0, 0);
    a.i(op::ADD_K, R7, 0, 0, AFTER_ID);
    a.i(op::SUB_X, R7, R0, 0, 0);
    // R7: how much longer the reply is. Shorter (or as long): cut the tail. Longer: grow
    // at the head, which XDP guarantees room for (256 octets), where the tail of a copied
    // frame may have none; the headers and ID move to the new start.
    a.jump(op::JSGT_K, R7, 0, 0, GROW);
    a.i(op::MOV_X, R1, R6, 0, 0);
    a.i(op::MOV_X, R2, R7, 0, 0);
    a.i(op::CALL, 0, 0, 0, func::XDP_ADJUST_TAIL);
    a.jump(op::JNE_K, R0, 0, 0, SLOW);
    a.jump(op::JA, 0, 0, 0, BODY);
    a.label(GROW);
    headers(a, func::XDP_LOAD_BYTES);
    a.jump(op::JNE_K, R0, 0, 0, SLOW);
    a.i(op::MOV_X, R1, R6, 0, 0);
    a.i(op::MOV_K, R2, 0, 0, 0);
    a.i(op::SUB_X, R2, R7, 0, 0);
    a.i(op::CALL, 0, 0, 0, func::XDP_ADJUST_HEAD);
    a.jump(op::JNE_K, R0, 0, 0, SLOW);
    headers(a, func::XDP_STORE_BYTES);
    // Cannot fail (the frame is longer than that now); if it did, user space would drop
    // the frame as malformed.
    a.jump(op::JNE_K, R0, 0, 0, SLOW);
    a.label(BODY);
    a.i(op::LDX_H, R4, R8, 0, 0);
    a.jump(op::JGT_K, R4, 0, VALUE_BYTES as i32, SLOW);
    a.jump(op::JEQ_K, R4, 0, 0, SLOW);
    a.i(op::MOV_X, R1, R6, 0, 0);
    a.i(op::MOV_K, R2, 0, 0, AFTER_ID);
    a.i(op::MOV_X, R3, R8, 0, 0);
    a.i(op::ADD_K, R3, 0, 0, 8);
    a.i(op::CALL, 0, 0, 0, func::XDP_STORE_BYTES);
    // A failure here leaves the headers as they were and the datagram's length field too:
    // user space reads the query and ignores the tail.
    a.jump(op::JNE_K, R0, 0, 0, SLOW);
    a.i(op::LDX_W, R7, R6, xdp_md::DATA, 0);
    a.i(op::LDX_W, R9, R6, xdp_md::DATA_END, 0);
    a.i(op::MOV_X, R4, R7, 0, 0);
    a.i(op::ADD_K, R4, 0, 0, AFTER_ID);
    a.jump(op::JGT_X, R4, R9, 0, SLOW);

    // MACs swapped.
    a.i(op::LDX_W, R2, R7, 0, 0);
    a.i(op::LDX_H, R3, R7, 4, 0);
    a.i(op::LDX_W, R4, R7, 6, 0);
    a.i(op::LDX_H, R5, R7, 10, 0);
    a.i(op::STX_W, R7, R4, 0, 0);
    a.i(op::STX_H, R7, R5, 4, 0);
    a.i(op::STX_W, R7, R2, 6, 0);
    a.i(op::STX_H, R7, R3, 10, 0);
    // IPv4: addresses swapped, length, no fragment bits but DF, TTL, checksum.
    a.i(op::LDX_W, R2, R7, IP + 12, 0);
    a.i(op::LDX_W, R3, R7, IP + 16, 0);
    a.i(op::STX_W, R7, R3, IP + 12, 0);
    a.i(op::STX_W, R7, R2, IP + 16, 0);
    a.i(op::LDX_H, R5, R8, 0, 0);
    a.i(op::MOV_X, R4, R5, 0, 0);
    a.i(op::ADD_K, R4, 0, 0, 20 + 8 + 2);
    a.i(op::BE, R4, 0, 0, 16);
    a.i(op::STX_H, R7, R4, IP + 2, 0);
    a.i(op::LDX_B, R4, R7, IP + 6, 0);
    a.i(op::AND_K, R4, 0, 0, 0x40);
    a.i(op::STX_B, R7, R4, IP + 6, 0);
    a.i(op::ST_B, R7, 0, IP + 7, 0);
    a.i(op::ST_B, R7, 0, IP + 8, TTL);
    a.i(op::ST_H, R7, 0, IP + 10, 0);
    a.i(op::MOV_K, R2, 0, 0, 0);
    for w in 0..10 {
        a.i(op::LDX_H, R3, R7, IP + 2 * w, 0);
        a.i(op::ADD_X, R2, R3, 0, 0);
    }
    fold(a);
    a.i(op::XOR_K, R2, 0, 0, 0xffff);
    a.i(op::STX_H, R7, R2, IP + 10, 0);
    // UDP: ports swapped, length, checksum.
    a.i(op::LDX_H, R2, R7, UDP, 0);
    a.i(op::LDX_H, R3, R7, UDP + 2, 0);
    a.i(op::STX_H, R7, R3, UDP, 0);
    a.i(op::STX_H, R7, R2, UDP + 2, 0);
    a.i(op::MOV_X, R4, R5, 0, 0);
    a.i(op::ADD_K, R4, 0, 0, 8 + 2);
    a.i(op::BE, R4, 0, 0, 16);
    a.i(op::STX_H, R7, R4, UDP + 4, 0);
    a.i(op::LDX_W, R2, R8, 4, 0);
    a.i(op::ADD_K, R2, 0, 0, wire16(17));
    a.i(op::ADD_X, R2, R4, 0, 0);
    a.i(op::ADD_X, R2, R4, 0, 0);
    // The addresses (pseudo header), the ports, the ID.
    for at in [IP + 12, IP + 14, IP + 16, IP + 18, UDP, UDP + 2, DNS] {
        a.i(op::LDX_H, R3, R7, at, 0);
        a.i(op::ADD_X, R2, R3, 0, 0);
    }
    fold(a);
    a.i(op::XOR_K, R2, 0, 0, 0xffff);
    a.jump(op::JNE_K, R2, 0, 0, STORE_UDP_SUM);
    a.i(op::MOV_K, R2, 0, 0, 0xffff);
    a.label(STORE_UDP_SUM);
    a.i(op::STX_H, R7, R2, UDP + 6, 0);

    // Counted in its slot, on this CPU.
    first_entry(a, maps.counts, SENT);
    a.i(op::LDX_H, R2, R8, 2, 0);
    a.jump(op::JGE_K, R2, 0, slots as i32, SENT);
    a.i(op::LSH_K, R2, 0, 0, 3);
    a.i(op::ADD_X, R0, R2, 0, 0);
    a.i(op::LDX_DW, R3, R0, 0, 0);
    a.i(op::ADD_K, R3, 0, 0, 1);
    a.i(op::STX_DW, R0, R3, 0, 0);
    a.label(SENT);
    a.i(op::MOV_K, R0, 0, 0, action::TX);
    a.i(op::EXIT, 0, 0, 0, 0);

    a.label(SLOW);
    a.i(op::MOV_X, R1, R6, 0, 0);
}
