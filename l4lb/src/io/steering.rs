//! The classic BPF program of l4lb's `AF_PACKET` fanout group: a full-NAT reply goes to the
//! worker that owns its local (SNAT) port ([`crate::ports`]), every other flow to a worker
//! chosen by its source, so that both directions of a session meet the worker that holds it.

use dataplane_common::packet_io::af_packet::Fanout;
use std::net::IpAddr;

/// A fanout group of `workers` sockets steered by [`steering`] for `local` addresses.
pub fn fanout(group: u16, workers: u16, local: &[IpAddr]) -> Fanout {
    Fanout {
        group,
        program: steering(workers, local),
    }
}

/// Classic BPF opcodes used by [`steering`] (linux/filter.h).
mod op {
    pub(super) const LD_W_ABS: u16 = 0x20;
    pub(super) const LD_H_ABS: u16 = 0x28;
    pub(super) const LD_B_ABS: u16 = 0x30;
    pub(super) const LD_H_IND: u16 = 0x48;
    pub(super) const LDX_B_MSH: u16 = 0xb1;
    pub(super) const LDX_MEM: u16 = 0x61;
    pub(super) const ST: u16 = 0x02;
    pub(super) const JEQ_K: u16 = 0x15;
    pub(super) const JSET_K: u16 = 0x45;
    pub(super) const SUB_K: u16 = 0x14;
    pub(super) const MOD_K: u16 = 0x94;
    pub(super) const XOR_X: u16 = 0xac;
    pub(super) const RET_K: u16 = 0x06;
    pub(super) const RET_A: u16 = 0x16;
}

/// A jump target while assembling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum To {
    Next,
    Label(u8),
}

/// A tiny assembler with forward labels.
#[derive(Debug, Default)]
struct Asm {
    code: Vec<(u16, To, To, u32)>,
    labels: Vec<(u8, usize)>,
}

impl Asm {
    fn op(&mut self, code: u16, k: u32) {
        self.code.push((code, To::Next, To::Next, k));
    }
    fn jump(&mut self, code: u16, k: u32, jt: To, jf: To) {
        self.code.push((code, jt, jf, k));
    }
    fn label(&mut self, l: u8) {
        self.labels.push((l, self.code.len()));
    }
    fn finish(self) -> Vec<libc::sock_filter> {
        let at = |l: u8| {
            self.labels
                .iter()
                .find(|(x, _)| *x == l)
                .map(|(_, i)| *i)
                .expect("invariant: every label is placed")
        };
        self.code
            .iter()
            .enumerate()
            .map(|(i, &(code, jt, jf, k))| {
                let rel = |t: To| match t {
                    To::Next => 0,
                    To::Label(l) => {
                        let d = at(l) - i - 1;
                        u8::try_from(d).expect("invariant: jumps stay within 255 instructions")
                    }
                };
                libc::sock_filter {
                    code,
                    jt: rel(jt),
                    jf: rel(jf),
                    k,
                }
            })
            .collect()
    }
}

/// Classic BPF for `PACKET_FANOUT_CBPF` over `workers` sockets: a TCP or UDP frame to one of
/// the `local` addresses goes to `(dst_port - FIRST) % workers`, the owner of that port
/// ([`crate::ports::Partition::owner`]); any other TCP or UDP frame to a worker picked by its
/// source address and port, so that a client flow always meets the same worker. Everything
/// else (ARP, ICMP, fragments) goes to worker 0. IPv6 extension headers are not stepped over;
/// at most 16 local addresses per family are matched.
pub fn steering(workers: u16, local: &[IpAddr]) -> Vec<libc::sock_filter> {
    const V6: u8 = 1;
    const LOCAL4: u8 = 2;
    const LOCAL6: u8 = 3;
    const ZERO: u8 = 4;
    let n = u32::from(workers.max(1));
    let first = u32::from(crate::ports::FIRST);
    let v4: Vec<u32> = local
        .iter()
        .filter_map(|a| match a {
            IpAddr::V4(a) => Some(u32::from(*a)),
            IpAddr::V6(_) => None,
        })
        .take(16)
        .collect();
    let v6: Vec<[u32; 4]> = local
        .iter()
        .filter_map(|a| match a {
            IpAddr::V6(a) => {
                let o = a.octets();
                Some(std::array::from_fn(|i| {
                    u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]])
                }))
            }
            IpAddr::V4(_) => None,
        })
        .take(16)
        .collect();
    let mut a = Asm::default();
    a.op(op::LD_H_ABS, 12);
    a.jump(op::JEQ_K, 0x0800, To::Next, To::Label(V6));
    // IPv4: TCP or UDP, not a fragment.
    a.op(op::LD_B_ABS, 23);
    a.jump(op::JEQ_K, 6, To::Label(10), To::Next);
    a.jump(op::JEQ_K, 17, To::Next, To::Label(ZERO));
    a.label(10);
    a.op(op::LD_H_ABS, 20);
    a.jump(op::JSET_K, 0x1fff, To::Label(ZERO), To::Next);
    a.op(op::LDX_B_MSH, 14);
    a.op(op::LD_W_ABS, 30);
    for addr in &v4 {
        a.jump(op::JEQ_K, *addr, To::Label(LOCAL4), To::Next);
    }
    // A client flow: (source port ^ source address) % n.
    a.op(op::LD_H_IND, 14);
    a.op(op::ST, 0);
    a.op(op::LD_W_ABS, 26);
    a.op(op::LDX_MEM, 0);
    a.op(op::XOR_X, 0);
    a.op(op::MOD_K, n);
    a.op(op::RET_A, 0);
    a.label(LOCAL4);
    a.op(op::LD_H_IND, 16);
    a.op(op::SUB_K, first);
    a.op(op::MOD_K, n);
    a.op(op::RET_A, 0);
    // IPv6 (fixed header only).
    a.label(V6);
    a.jump(op::JEQ_K, 0x86dd, To::Next, To::Label(ZERO));
    a.op(op::LD_B_ABS, 20);
    a.jump(op::JEQ_K, 6, To::Label(11), To::Next);
    a.jump(op::JEQ_K, 17, To::Next, To::Label(ZERO));
    a.label(11);
    for (i, words) in v6.iter().enumerate() {
        let miss = To::Label(20 + i as u8);
        for (w, word) in words.iter().enumerate() {
            a.op(op::LD_W_ABS, 38 + 4 * w as u32);
            let hit = if w == 3 { To::Label(LOCAL6) } else { To::Next };
            a.jump(op::JEQ_K, *word, hit, miss);
        }
        a.label(20 + i as u8);
    }
    a.op(op::LD_H_ABS, 54);
    a.op(op::ST, 0);
    a.op(op::LD_W_ABS, 34);
    a.op(op::LDX_MEM, 0);
    a.op(op::XOR_X, 0);
    a.op(op::MOD_K, n);
    a.op(op::RET_A, 0);
    a.label(LOCAL6);
    a.op(op::LD_H_ABS, 56);
    a.op(op::SUB_K, first);
    a.op(op::MOD_K, n);
    a.op(op::RET_A, 0);
    a.label(ZERO);
    a.op(op::RET_K, 0);
    a.finish()
}

/// The worker [`steering`]'s program picks for `frame`, computed in Rust: for `AF_XDP`,
/// where a frame arrives on the queue the NIC hashed it to and the worker of that queue hands
/// it on to its owner. The same rules and the same answer as the program, bit for bit
/// (tested), so that `AF_PACKET` and `AF_XDP` workers agree on who owns a session.
pub fn owner(frame: &[u8], workers: u16, local: &[IpAddr]) -> u16 {
    let n = u32::from(workers.max(1));
    let first = u32::from(crate::ports::FIRST);
    // Out-of-range loads end the program with 0, as in classic BPF.
    let h = |at: usize| {
        frame
            .get(at..at + 2)
            .map(|b| u32::from(u16::from_be_bytes([b[0], b[1]])))
    };
    let w = |at: usize| {
        frame
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let pick = || -> Option<u32> {
        match h(12)? {
            0x0800 => {
                if !matches!(frame.get(23)?, 6 | 17) || h(20)? & 0x1fff != 0 {
                    return Some(0);
                }
                let l4 = 14 + 4 * usize::from(frame.get(14)? & 0xf);
                let dst = w(30)?;
                let is_local = local
                    .iter()
                    .filter_map(|a| match a {
                        IpAddr::V4(a) => Some(u32::from(*a)),
                        IpAddr::V6(_) => None,
                    })
                    .take(16)
                    .any(|a| a == dst);
                Some(if is_local {
                    h(l4 + 2)?.wrapping_sub(first) % n
                } else {
                    (w(26)? ^ h(l4)?) % n
                })
            }
            0x86dd => {
                if !matches!(frame.get(20)?, 6 | 17) {
                    return Some(0);
                }
                let dst = frame.get(38..54)?;
                let is_local = local
                    .iter()
                    .filter_map(|a| match a {
                        IpAddr::V6(a) => Some(a.octets()),
                        IpAddr::V4(_) => None,
                    })
                    .take(16)
                    .any(|a| a == dst);
                Some(if is_local {
                    h(56)?.wrapping_sub(first) % n
                } else {
                    (w(34)? ^ h(54)?) % n
                })
            }
            _ => Some(0),
        }
    };
    pick().map_or(0, |o| o as u16)
}

#[cfg(test)]
mod tests;
