//! Our XDP program, built as raw eBPF instructions and loaded with `bpf(2)`: no compiler, no
//! object file, no libbpf. It hands a frame to the `AF_XDP` socket of the queue it arrived on
//! when the frame is IPv4 or IPv6 to one of our addresses (a VIP or a local SNAT address), and
//! passes everything else (ARP, neighbour discovery, the host's own traffic such as health
//! probes and their answers) to the kernel:
//!
//! ```text
//! key = ipv4 ? ::ffff:dst : ipv6 ? dst : PASS      // 16 bytes, as crate::flow::Addr
//! if !destinations[key] return XDP_PASS
//! return bpf_redirect_map(&sockets, ctx->rx_queue_index, XDP_PASS)   // PASS when no socket
//! ```
//!
//! [`Program::attach`] creates both maps, loads the program with the maps' descriptors patched
//! into its `BPF_LD_IMM64` instructions, and attaches it with a BPF link (`BPF_LINK_CREATE`,
//! kernel 5.9+): the link is a file descriptor, so the program is detached when the
//! [`Program`] is dropped, and also when the process dies however it dies.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::flow::Addr;

/// `bpf(2)` commands (linux/bpf.h `enum bpf_cmd`).
mod cmd {
    pub(super) const MAP_CREATE: libc::c_long = 0;
    pub(super) const MAP_UPDATE_ELEM: libc::c_long = 2;
    pub(super) const MAP_DELETE_ELEM: libc::c_long = 3;
    pub(super) const PROG_LOAD: libc::c_long = 5;
    pub(super) const LINK_CREATE: libc::c_long = 28;
}

const MAP_TYPE_HASH: u32 = 1;
const MAP_TYPE_XSKMAP: u32 = 17;
const PROG_TYPE_XDP: u32 = 6;
/// `enum bpf_attach_type`: `BPF_XDP`.
const ATTACH_XDP: u32 = 37;
/// linux/if_link.h `XDP_FLAGS_*`.
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
/// `enum xdp_action`.
const XDP_PASS: i32 = 2;
/// Helpers (`enum bpf_func_id`).
const FN_MAP_LOOKUP_ELEM: i32 = 1;
const FN_REDIRECT_MAP: i32 = 51;
/// `struct xdp_md` offsets.
const MD_DATA: i16 = 0;
const MD_DATA_END: i16 = 4;
const MD_RX_QUEUE_INDEX: i16 = 16;

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

/// The loaded and attached program, its two maps and its link. Dropping it detaches the
/// program. Sockets MUST be registered ([`crate::io::xdp::open`]) for frames to reach them.
#[derive(Debug)]
pub struct Program {
    /// Closing the link detaches the program; it is declared (and dropped) first.
    _link: OwnedFd,
    _prog: OwnedFd,
    sockets: OwnedFd,
    destinations: OwnedFd,
    present: BTreeSet<Addr>,
    ifindex: u32,
    mode: Mode,
}

fn bpf<T>(command: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, fully initialised `bpf_attr` prefix of the size passed; the
    // kernel reads (and for some commands writes) only within it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command,
            std::ptr::from_mut(attr),
            size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn fd(raw: libc::c_long) -> OwnedFd {
    // SAFETY: `bpf(2)` returned a fresh descriptor that nobody else owns.
    unsafe { OwnedFd::from_raw_fd(raw as RawFd) }
}

fn name16(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, b) in out.iter_mut().zip(name.bytes().take(15)) {
        *o = b;
    }
    out
}

#[repr(C)]
#[derive(Default)]
struct MapCreate {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
    _pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct MapElem {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct LinkCreate {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

fn map_create(
    map_type: u32,
    key: u32,
    value: u32,
    entries: u32,
    name: &str,
) -> io::Result<OwnedFd> {
    let mut attr = MapCreate {
        map_type,
        key_size: key,
        value_size: value,
        max_entries: entries,
        map_name: name16(name),
        ..MapCreate::default()
    };
    bpf(cmd::MAP_CREATE, &mut attr).map(fd)
}

fn map_update(map: &OwnedFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut attr = MapElem {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value: value.as_ptr() as u64,
        ..MapElem::default()
    };
    bpf(cmd::MAP_UPDATE_ELEM, &mut attr).map(drop)
}

fn map_delete(map: &OwnedFd, key: &[u8]) -> io::Result<()> {
    let mut attr = MapElem {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        ..MapElem::default()
    };
    bpf(cmd::MAP_DELETE_ELEM, &mut attr).map(drop)
}

/// One eBPF instruction (`struct bpf_insn`): opcode, `dst | src << 4`, offset, immediate.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Insn {
    pub(crate) code: u8,
    pub(crate) regs: u8,
    pub(crate) off: i16,
    pub(crate) imm: i32,
}

/// eBPF opcodes used here (linux/bpf.h, linux/bpf_common.h).
pub(crate) mod op {
    pub(crate) const LDX_W: u8 = 0x61;
    pub(crate) const LDX_H: u8 = 0x69;
    pub(crate) const LDX_DW: u8 = 0x79;
    pub(crate) const STX_W: u8 = 0x63;
    pub(crate) const STX_DW: u8 = 0x7b;
    pub(crate) const ST_W: u8 = 0x62;
    pub(crate) const ST_DW: u8 = 0x7a;
    pub(crate) const MOV_X: u8 = 0xbf;
    pub(crate) const MOV_K: u8 = 0xb7;
    pub(crate) const ADD_K: u8 = 0x07;
    pub(crate) const JA: u8 = 0x05;
    pub(crate) const JEQ_K: u8 = 0x15;
    pub(crate) const JNE_K: u8 = 0x55;
    pub(crate) const JGT_X: u8 = 0x2d;
    pub(crate) const LD_IMM64: u8 = 0x18;
    pub(crate) const CALL: u8 = 0x85;
    pub(crate) const EXIT: u8 = 0x95;
}

/// `src_reg` of a `BPF_LD_IMM64` whose immediate is a map's file descriptor.
const PSEUDO_MAP_FD: u8 = 1;

/// A tiny assembler: jumps name a label, resolved by [`Asm::finish`].
#[derive(Default)]
struct Asm {
    code: Vec<(Insn, Option<u8>)>,
    labels: Vec<(u8, usize)>,
}

impl Asm {
    fn i(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) {
        let regs = dst | src << 4;
        self.code.push((
            Insn {
                code,
                regs,
                off,
                imm,
            },
            None,
        ));
    }
    fn jump(&mut self, code: u8, dst: u8, src: u8, imm: i32, to: u8) {
        self.i(code, dst, src, 0, imm);
        self.code.last_mut().expect("invariant: just pushed").1 = Some(to);
    }
    fn map(&mut self, dst: u8, map: RawFd) {
        self.i(op::LD_IMM64, dst, PSEUDO_MAP_FD, 0, map);
        self.i(0, 0, 0, 0, 0);
    }
    fn label(&mut self, l: u8) {
        self.labels.push((l, self.code.len()));
    }
    fn finish(self) -> Vec<Insn> {
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
            .map(|(i, (insn, to))| match to {
                Some(l) => Insn {
                    off: i16::try_from(at(*l) as isize - i as isize - 1)
                        .expect("invariant: the program is short"),
                    ..*insn
                },
                None => *insn,
            })
            .collect()
    }
}

/// The program (see the module doc), for the given map descriptors.
pub(crate) fn instructions(destinations: RawFd, sockets: RawFd) -> Vec<Insn> {
    const PASS: u8 = 0;
    const V4: u8 = 1;
    const LOOKUP: u8 = 2;
    // Registers.
    const R0: u8 = 0;
    const R1: u8 = 1;
    const R2: u8 = 2;
    const R3: u8 = 3;
    const R4: u8 = 4;
    const R6: u8 = 6;
    const FP: u8 = 10;
    // Loads of the packet are in network order; the ethertype is compared as the host
    // (little-endian) `u16` those two bytes make.
    let eth_ipv4 = i32::from(u16::from_le_bytes(0x0800u16.to_be_bytes()));
    let eth_ipv6 = i32::from(u16::from_le_bytes(0x86ddu16.to_be_bytes()));
    // `::ffff:` as the little-endian `u32` at key bytes 8..12.
    let mapped = i32::from_le_bytes([0, 0, 0xff, 0xff]);
    let mut a = Asm::default();
    a.i(op::MOV_X, R6, R1, 0, 0);
    a.i(op::LDX_W, R2, R6, MD_DATA, 0);
    a.i(op::LDX_W, R3, R6, MD_DATA_END, 0);
    // Ethernet + IPv4 header in bounds?
    a.i(op::MOV_X, R4, R2, 0, 0);
    a.i(op::ADD_K, R4, 0, 0, 14 + 20);
    a.jump(op::JGT_X, R4, R3, 0, PASS);
    a.i(op::LDX_H, R4, R2, 12, 0);
    a.jump(op::JEQ_K, R4, 0, eth_ipv4, V4);
    a.jump(op::JNE_K, R4, 0, eth_ipv6, PASS);
    // IPv6: the key is the destination address (bytes 38..54).
    a.i(op::MOV_X, R4, R2, 0, 0);
    a.i(op::ADD_K, R4, 0, 0, 14 + 40);
    a.jump(op::JGT_X, R4, R3, 0, PASS);
    a.i(op::LDX_DW, R4, R2, 14 + 24, 0);
    a.i(op::STX_DW, FP, R4, -16, 0);
    a.i(op::LDX_DW, R4, R2, 14 + 32, 0);
    a.i(op::STX_DW, FP, R4, -8, 0);
    a.jump(op::JA, 0, 0, 0, LOOKUP);
    // IPv4: the key is `::ffff:` and the destination address (bytes 30..34).
    a.label(V4);
    a.i(op::ST_DW, FP, 0, -16, 0);
    a.i(op::ST_W, FP, 0, -8, mapped);
    a.i(op::LDX_W, R4, R2, 14 + 16, 0);
    a.i(op::STX_W, FP, R4, -4, 0);
    a.label(LOOKUP);
    a.map(R1, destinations);
    a.i(op::MOV_X, R2, FP, 0, 0);
    a.i(op::ADD_K, R2, 0, 0, -16);
    a.i(op::CALL, 0, 0, 0, FN_MAP_LOOKUP_ELEM);
    a.jump(op::JEQ_K, R0, 0, 0, PASS);
    // Ours: to this queue's socket, or to the kernel if the queue has none.
    a.map(R1, sockets);
    a.i(op::LDX_W, R2, R6, MD_RX_QUEUE_INDEX, 0);
    a.i(op::MOV_K, R3, 0, 0, XDP_PASS);
    a.i(op::CALL, 0, 0, 0, FN_REDIRECT_MAP);
    a.i(op::EXIT, 0, 0, 0, 0);
    a.label(PASS);
    a.i(op::MOV_K, R0, 0, 0, XDP_PASS);
    a.i(op::EXIT, 0, 0, 0, 0);
    a.finish()
}

fn load(insns: &[Insn], expected_attach_type: u32) -> io::Result<OwnedFd> {
    let license = c"GPL";
    let mut attr = ProgLoad {
        prog_type: PROG_TYPE_XDP,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name16("l4lb_xsk"),
        expected_attach_type,
        ..ProgLoad::default()
    };
    match bpf(cmd::PROG_LOAD, &mut attr) {
        Ok(raw) => Ok(fd(raw)),
        Err(e)
            if e.raw_os_error() == Some(libc::EACCES) || e.raw_os_error() == Some(libc::EINVAL) =>
        {
            // Load again with the verifier's log, for the error message.
            let mut log = vec![0u8; 1 << 16];
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            let _ = bpf(cmd::PROG_LOAD, &mut attr);
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            Err(io::Error::new(
                e.kind(),
                format!("{e}; verifier: {}", String::from_utf8_lossy(&log[..end])),
            ))
        }
        Err(e) => Err(e),
    }
}

fn link(prog: &OwnedFd, ifindex: u32, flags: u32) -> io::Result<OwnedFd> {
    let mut attr = LinkCreate {
        prog_fd: prog.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type: ATTACH_XDP,
        flags,
    };
    bpf(cmd::LINK_CREATE, &mut attr).map(fd)
}

impl Program {
    /// Creates the maps, loads the program and attaches it to `interface`.
    ///
    /// # Errors
    /// When a map or the program cannot be made (not root: `CAP_BPF` and `CAP_NET_ADMIN` are
    /// needed), the verifier refuses it, or it cannot be attached (another XDP program is
    /// there, no such interface, [`Attach::Native`] on a driver without XDP).
    pub fn attach(interface: &str, attach: Attach) -> io::Result<Self> {
        let name = CString::new(interface)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad interface name"))?;
        // SAFETY: `name` is a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        let destinations = map_create(MAP_TYPE_HASH, 16, 1, MAX_DESTINATIONS, "l4lb_dests")?;
        let sockets = map_create(MAP_TYPE_XSKMAP, 4, 4, MAX_QUEUES, "l4lb_xsks")?;
        let insns = instructions(destinations.as_raw_fd(), sockets.as_raw_fd());
        let prog = load(&insns, ATTACH_XDP).or_else(|_| load(&insns, 0))?;
        let (link, mode) = match attach {
            Attach::Native => (link(&prog, ifindex, XDP_FLAGS_DRV_MODE)?, Mode::Native),
            Attach::Generic => (link(&prog, ifindex, XDP_FLAGS_SKB_MODE)?, Mode::Generic),
            Attach::Auto => match link(&prog, ifindex, XDP_FLAGS_DRV_MODE) {
                Ok(l) => (l, Mode::Native),
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => return Err(e),
                Err(_) => (link(&prog, ifindex, XDP_FLAGS_SKB_MODE)?, Mode::Generic),
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
        let want: BTreeSet<Addr> = addresses.into_iter().map(Addr::from).collect();
        let mut changed = 0;
        for gone in self.present.difference(&want).copied().collect::<Vec<_>>() {
            map_delete(&self.destinations, &gone.0)?;
            self.present.remove(&gone);
            changed += 1;
        }
        for new in want.difference(&self.present).copied().collect::<Vec<_>>() {
            map_update(&self.destinations, &new.0, &[1])?;
            self.present.insert(new);
            changed += 1;
        }
        Ok(changed)
    }

    /// Frames arriving on `queue` go to the socket `xsk` from now on.
    pub(crate) fn register(&self, queue: u32, xsk: &OwnedFd) -> io::Result<()> {
        let fd = xsk.as_raw_fd() as u32;
        map_update(&self.sockets, &queue.to_ne_bytes(), &fd.to_ne_bytes())
    }
}
