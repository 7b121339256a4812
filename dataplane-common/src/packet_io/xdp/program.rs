//! Our XDP program, built as raw eBPF instructions ([`super::bpf`]) and loaded with
//! `bpf(2)`. It hands a frame to the `AF_XDP` socket of the queue it arrived on when the
//! [`Filter`] takes it, and passes everything else (ARP, neighbour discovery, ICMP, the
//! host's own traffic such as health probes and their answers) to the kernel:
//!
//! ```text
//! key = ipv4 ? ::ffff:dst : ipv6 ? dst : PASS      // 16 bytes, IPv4-mapped
//! if Udp { port } and !(udp && dport == port && !fragment && ipv4 has no options) return PASS
//! if !any_address && !destinations[key] return XDP_PASS
//! return bpf_redirect_map(&sockets, ctx->rx_queue_index, XDP_PASS)   // PASS when no socket
//! ```
//!
//! [`Program::attach`] creates both maps, loads the program with the maps' descriptors patched
//! into its `BPF_LD_IMM64` instructions, and attaches it with a BPF link: the program is
//! detached when the [`Program`] is dropped, and also when the process dies however it dies.

use super::bpf::{self, Asm, Insn, action, func, map_type, op, reg, wire16, xdp_md};
use std::collections::BTreeSet;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// How many destination addresses the program can match.
pub const MAX_DESTINATIONS: u32 = 4096;
/// Queues (sockets) the socket map can hold.
pub const MAX_QUEUES: u32 = 256;

/// Where the program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// In the driver (native XDP), else generic (`skb`) XDP.
    Auto,
    /// In the driver only.
    Native,
    /// In the stack after the `skb` is built (works on any interface, slower).
    Generic,
}

/// Where the program ended up running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Native (driver) XDP.
    Native,
    /// Generic (`skb`) XDP.
    Generic,
}

/// Which frames the program hands to the sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Every IPv4 or IPv6 frame to one of the destinations (l4lb: VIPs and SNAT addresses).
    Destinations,
    /// UDP datagrams to `port`, to one of the destinations, or to any address when
    /// `any_address` (a server listening on the unspecified address). Fragments and IPv4
    /// packets with options go to the kernel, which reassembles and delivers them to a socket.
    Udp {
        /// The destination port.
        port: u16,
        /// Skip the destination lookup.
        any_address: bool,
    },
}

/// The loaded and attached program, its two maps and its link. Dropping it detaches the
/// program. Sockets MUST be registered ([`super::open`]) for frames to reach them.
#[derive(Debug)]
pub struct Program {
    /// Closing the link detaches the program; it is declared (and dropped) first.
    _link: OwnedFd,
    _prog: OwnedFd,
    sockets: OwnedFd,
    destinations: OwnedFd,
    present: BTreeSet<[u8; 16]>,
    ifindex: u32,
    mode: Mode,
}

/// The 16-byte key of an address: IPv6 as is, IPv4 mapped (`::ffff:a.b.c.d`).
fn key(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// The program (see the module doc), for the given map descriptors.
#[cfg(test)]
pub(crate) fn instructions(destinations: RawFd, sockets: RawFd, filter: Filter) -> Vec<Insn> {
    instructions_after(&|_| {}, destinations, sockets, filter)
}

/// The program with `prologue` first (see [`Program::attach_with`]).
fn instructions_after(
    prologue: &dyn Fn(&mut Asm),
    destinations: RawFd,
    sockets: RawFd,
    filter: Filter,
) -> Vec<Insn> {
    const PASS: u16 = 0;
    const V4: u16 = 1;
    const LOOKUP: u16 = 2;
    const REDIRECT: u16 = 3;
    use reg::{FP, R0, R1, R2, R3, R4, R6};
    const ETH: i32 = 14;
    const UDP_LEN: i32 = 8;
    // `::ffff:` as the little-endian `u32` at key bytes 8..12.
    let mapped = i32::from_le_bytes([0, 0, 0xff, 0xff]);
    let (udp_port, any_address) = match filter {
        Filter::Destinations => (None, false),
        Filter::Udp { port, any_address } => (Some(port), any_address),
    };
    let after_filter = if any_address { REDIRECT } else { LOOKUP };
    let mut a = Asm::default();
    prologue(&mut a);
    a.i(op::MOV_X, R6, R1, 0, 0);
    a.i(op::LDX_W, R2, R6, xdp_md::DATA, 0);
    a.i(op::LDX_W, R3, R6, xdp_md::DATA_END, 0);
    // Ethernet + IPv4 header in bounds?
    a.i(op::MOV_X, R4, R2, 0, 0);
    a.i(op::ADD_K, R4, 0, 0, ETH + 20);
    a.jump(op::JGT_X, R4, R3, 0, PASS);
    a.i(op::LDX_H, R4, R2, 12, 0);
    a.jump(op::JEQ_K, R4, 0, wire16(0x0800), V4);
    a.jump(op::JNE_K, R4, 0, wire16(0x86dd), PASS);
    // IPv6: the key is the destination address (bytes 38..54).
    a.i(op::MOV_X, R4, R2, 0, 0);
    a.i(op::ADD_K, R4, 0, 0, ETH + 40);
    a.jump(op::JGT_X, R4, R3, 0, PASS);
    if let Some(port) = udp_port {
        a.i(op::MOV_X, R4, R2, 0, 0);
        a.i(op::ADD_K, R4, 0, 0, ETH + 40 + UDP_LEN);
        a.jump(op::JGT_X, R4, R3, 0, PASS);
        a.i(op::LDX_B, R4, R2, 14 + 6, 0);
        a.jump(op::JNE_K, R4, 0, 17, PASS);
        a.i(op::LDX_H, R4, R2, 14 + 40 + 2, 0);
        a.jump(op::JNE_K, R4, 0, wire16(port), PASS);
    }
    a.i(op::LDX_DW, R4, R2, 14 + 24, 0);
    a.i(op::STX_DW, FP, R4, -16, 0);
    a.i(op::LDX_DW, R4, R2, 14 + 32, 0);
    a.i(op::STX_DW, FP, R4, -8, 0);
    a.jump(op::JA, 0, 0, 0, after_filter);
    // IPv4: the key is `::ffff:` and the destination address (bytes 30..34).
    a.label(V4);
    if let Some(port) = udp_port {
        a.i(op::MOV_X, R4, R2, 0, 0);
        a.i(op::ADD_K, R4, 0, 0, ETH + 20 + UDP_LEN);
        a.jump(op::JGT_X, R4, R3, 0, PASS);
        // Version 4, no options; UDP; neither More Fragments nor an offset.
        a.i(op::LDX_B, R4, R2, 14, 0);
        a.jump(op::JNE_K, R4, 0, 0x45, PASS);
        a.i(op::LDX_B, R4, R2, 14 + 9, 0);
        a.jump(op::JNE_K, R4, 0, 17, PASS);
        a.i(op::LDX_H, R4, R2, 14 + 6, 0);
        a.i(op::AND_K, R4, 0, 0, wire16(0x3fff));
        a.jump(op::JNE_K, R4, 0, 0, PASS);
        a.i(op::LDX_H, R4, R2, 14 + 20 + 2, 0);
        a.jump(op::JNE_K, R4, 0, wire16(port), PASS);
    }
    a.i(op::ST_DW, FP, 0, -16, 0);
    a.i(op::ST_W, FP, 0, -8, mapped);
    a.i(op::LDX_W, R4, R2, 14 + 16, 0);
    a.i(op::STX_W, FP, R4, -4, 0);
    a.label(LOOKUP);
    if !any_address {
        a.map(R1, destinations);
        a.i(op::MOV_X, R2, FP, 0, 0);
        a.i(op::ADD_K, R2, 0, 0, -16);
        a.i(op::CALL, 0, 0, 0, func::MAP_LOOKUP_ELEM);
        a.jump(op::JEQ_K, R0, 0, 0, PASS);
    }
    // Ours: to this queue's socket, or to the kernel if the queue has none.
    a.label(REDIRECT);
    a.map(R1, sockets);
    a.i(op::LDX_W, R2, R6, xdp_md::RX_QUEUE_INDEX, 0);
    a.i(op::MOV_K, R3, 0, 0, action::PASS);
    a.i(op::CALL, 0, 0, 0, func::REDIRECT_MAP);
    a.i(op::EXIT, 0, 0, 0, 0);
    a.label(PASS);
    a.i(op::MOV_K, R0, 0, 0, action::PASS);
    a.i(op::EXIT, 0, 0, 0, 0);
    a.finish()
}

impl Program {
    /// Creates the maps, loads the program for [`Filter::Destinations`] and attaches it to
    /// `interface`.
    ///
    /// # Errors
    /// As [`Program::attach_filtered`].
    pub fn attach(interface: &str, attach: Attach) -> io::Result<Self> {
        Self::attach_filtered(interface, attach, Filter::Destinations)
    }

    /// Creates the maps, loads the program for `filter` and attaches it to `interface`.
    ///
    /// # Errors
    /// When a map or the program cannot be made (not root: `CAP_BPF` and `CAP_NET_ADMIN` are
    /// needed), the verifier refuses it, or it cannot be attached (another XDP program is
    /// there, no such interface, [`Attach::Native`] on a driver without XDP).
    pub fn attach_filtered(interface: &str, attach: Attach, filter: Filter) -> io::Result<Self> {
        Self::attach_with(interface, attach, filter, &|_| {})
    }

    /// [`Program::attach_filtered`], with `prologue` run first on every frame: another
    /// program (l4lb's fast path) that handles what it can itself and falls through, with
    /// the context back in `R1`, to the redirect. Its labels MUST be 1000 or above.
    ///
    /// # Errors
    /// As [`Program::attach_filtered`].
    pub fn attach_with(
        interface: &str,
        attach: Attach,
        filter: Filter,
        prologue: &dyn Fn(&mut Asm),
    ) -> io::Result<Self> {
        let ifindex = bpf::ifindex(interface)?;
        let destinations = bpf::map_create(map_type::HASH, 16, 1, MAX_DESTINATIONS, "xsk_dests")?;
        let sockets = bpf::map_create(map_type::XSKMAP, 4, 4, MAX_QUEUES, "xsk_sockets")?;
        let insns = instructions_after(
            prologue,
            destinations.as_raw_fd(),
            sockets.as_raw_fd(),
            filter,
        );
        let prog = bpf::prog_load(&insns, "xsk_redirect", bpf::ATTACH_XDP)
            .or_else(|_| bpf::prog_load(&insns, "xsk_redirect", 0))?;
        let (link, mode) = match attach {
            Attach::Native => (
                bpf::link_create(&prog, ifindex, bpf::XDP_FLAGS_DRV_MODE)?,
                Mode::Native,
            ),
            Attach::Generic => (
                bpf::link_create(&prog, ifindex, bpf::XDP_FLAGS_SKB_MODE)?,
                Mode::Generic,
            ),
            Attach::Auto => match bpf::link_create(&prog, ifindex, bpf::XDP_FLAGS_DRV_MODE) {
                Ok(l) => (l, Mode::Native),
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => return Err(e),
                Err(_) => (
                    bpf::link_create(&prog, ifindex, bpf::XDP_FLAGS_SKB_MODE)?,
                    Mode::Generic,
                ),
            },
        };
        Ok(Self {
            _link: link,
            _prog: prog,
            sockets,
            destinations,
            present: BTreeSet::new(),
            ifindex,
            mode,
        })
    }

    /// Where the program runs.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The interface's index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Makes `addresses` exactly the destinations handed to the sockets: adds the new ones,
    /// removes the ones gone. Returns how many changed.
    ///
    /// # Errors
    /// When the map refuses an update (more than [`MAX_DESTINATIONS`]); the addresses updated
    /// until then stay updated.
    pub fn set_destinations(
        &mut self,
        addresses: impl IntoIterator<Item = IpAddr>,
    ) -> io::Result<usize> {
        let want: BTreeSet<[u8; 16]> = addresses.into_iter().map(key).collect();
        let mut changed = 0;
        for gone in self.present.difference(&want).copied().collect::<Vec<_>>() {
            bpf::map_delete(&self.destinations, &gone)?;
            self.present.remove(&gone);
            changed += 1;
        }
        for new in want.difference(&self.present).copied().collect::<Vec<_>>() {
            bpf::map_update(&self.destinations, &new, &[1])?;
            self.present.insert(new);
            changed += 1;
        }
        Ok(changed)
    }

    /// Frames arriving on `queue` go to the socket `xsk` from now on.
    pub(crate) fn register(&self, queue: u32, xsk: &OwnedFd) -> io::Result<()> {
        let fd = xsk.as_raw_fd() as u32;
        bpf::map_update(&self.sockets, &queue.to_ne_bytes(), &fd.to_ne_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_jumps_inside_itself_and_carries_both_maps() {
        let filters = [
            Filter::Destinations,
            Filter::Udp {
                port: 53,
                any_address: false,
            },
            Filter::Udp {
                port: 5353,
                any_address: true,
            },
        ];
        for filter in filters {
            let prog = instructions(7, 9, filter);
            let is_jump = |i: &Insn| [op::JA, op::JEQ_K, op::JNE_K, op::JGT_X].contains(&i.code);
            for (pc, i) in prog.iter().enumerate() {
                if is_jump(i) {
                    let to = pc as isize + 1 + isize::from(i.off);
                    assert!(
                        to > pc as isize && (to as usize) < prog.len(),
                        "jump at {pc} ({filter:?})"
                    );
                }
            }
            let maps: Vec<(u8, i32)> = prog
                .iter()
                .filter(|i| i.code == op::LD_IMM64)
                .map(|i| (i.regs >> 4, i.imm))
                .collect();
            let want: &[(u8, i32)] = if filter
                == (Filter::Udp {
                    port: 5353,
                    any_address: true,
                }) {
                &[(1, 9)]
            } else {
                &[(1, 7), (1, 9)]
            };
            assert_eq!(maps, want, "destinations, then sockets ({filter:?})");
            assert_eq!(prog.last().map(|i| i.code), Some(op::EXIT));
            assert!(prog.len() < 80, "{}", prog.len());
        }
    }

    #[test]
    fn keys_are_ipv4_mapped() {
        let k = key("192.0.2.1".parse().unwrap());
        assert_eq!(k, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1]);
        assert_eq!(wire16(0x0800), 0x0008);
    }
}
