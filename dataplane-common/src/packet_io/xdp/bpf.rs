//! The `bpf(2)` calls and the eBPF assembler our XDP programs are built with: no compiler, no
//! object file, no libbpf. Programs are short enough to write as instructions; the verifier
//! checks them at load time (its log comes back in the error).
//!
//! Everything here is generic: [`super::Program`] (redirect to the `AF_XDP` sockets) is one
//! user, and a program of another crate (l4lb's fast path) can be another.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `bpf(2)` commands (linux/bpf.h `enum bpf_cmd`).
mod cmd {
    pub(super) const MAP_CREATE: libc::c_long = 0;
    pub(super) const MAP_LOOKUP_ELEM: libc::c_long = 1;
    pub(super) const MAP_UPDATE_ELEM: libc::c_long = 2;
    pub(super) const MAP_DELETE_ELEM: libc::c_long = 3;
    pub(super) const PROG_LOAD: libc::c_long = 5;
    pub(super) const PROG_TEST_RUN: libc::c_long = 10;
    pub(super) const MAP_LOOKUP_AND_DELETE_ELEM: libc::c_long = 21;
    pub(super) const MAP_UPDATE_BATCH: libc::c_long = 26;
    pub(super) const LINK_CREATE: libc::c_long = 28;
}

/// Map types (`enum bpf_map_type`).
pub mod map_type {
    /// `BPF_MAP_TYPE_HASH`.
    pub const HASH: u32 = 1;
    /// `BPF_MAP_TYPE_ARRAY`.
    pub const ARRAY: u32 = 2;
    /// `BPF_MAP_TYPE_PERCPU_HASH`.
    pub const PERCPU_HASH: u32 = 5;
    /// `BPF_MAP_TYPE_PERCPU_ARRAY`.
    pub const PERCPU_ARRAY: u32 = 6;
    /// `BPF_MAP_TYPE_LRU_HASH`.
    pub const LRU_HASH: u32 = 9;
    /// `BPF_MAP_TYPE_DEVMAP`.
    pub const DEVMAP: u32 = 14;
    /// `BPF_MAP_TYPE_XSKMAP`.
    pub const XSKMAP: u32 = 17;
}

/// `BPF_PROG_TYPE_XDP`.
pub const PROG_TYPE_XDP: u32 = 6;
/// `enum bpf_attach_type`: `BPF_XDP`.
pub const ATTACH_XDP: u32 = 37;
/// linux/if_link.h `XDP_FLAGS_SKB_MODE`: generic XDP.
pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// linux/if_link.h `XDP_FLAGS_DRV_MODE`: native XDP.
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// `enum xdp_action`.
pub mod action {
    /// `XDP_ABORTED`.
    pub const ABORTED: i32 = 0;
    /// `XDP_DROP`.
    pub const DROP: i32 = 1;
    /// `XDP_PASS`.
    pub const PASS: i32 = 2;
    /// `XDP_TX`: back out of the interface it came in on.
    pub const TX: i32 = 3;
    /// `XDP_REDIRECT`.
    pub const REDIRECT: i32 = 4;
}

/// Helper functions (`enum bpf_func_id`).
pub mod func {
    /// `bpf_map_lookup_elem(map, key)`.
    pub const MAP_LOOKUP_ELEM: i32 = 1;
    /// `bpf_map_update_elem(map, key, value, flags)`.
    pub const MAP_UPDATE_ELEM: i32 = 2;
    /// `bpf_map_delete_elem(map, key)`.
    pub const MAP_DELETE_ELEM: i32 = 3;
    /// `bpf_ktime_get_ns()`.
    pub const KTIME_GET_NS: i32 = 5;
    /// `bpf_get_smp_processor_id()`.
    pub const GET_SMP_PROCESSOR_ID: i32 = 8;
    /// `bpf_xdp_adjust_head(ctx, delta)`.
    pub const XDP_ADJUST_HEAD: i32 = 44;
    /// `bpf_redirect_map(map, key, flags)`.
    pub const REDIRECT_MAP: i32 = 51;
    /// `bpf_xdp_adjust_tail(ctx, delta)`.
    pub const XDP_ADJUST_TAIL: i32 = 65;
    /// `bpf_xdp_get_buff_len(ctx)`.
    pub const XDP_GET_BUFF_LEN: i32 = 188;
    /// `bpf_xdp_load_bytes(ctx, offset, buf, len)`.
    pub const XDP_LOAD_BYTES: i32 = 189;
    /// `bpf_xdp_store_bytes(ctx, offset, buf, len)`.
    pub const XDP_STORE_BYTES: i32 = 190;
}

/// `struct xdp_md` field offsets.
pub mod xdp_md {
    /// `data`: where the frame starts.
    pub const DATA: i16 = 0;
    /// `data_end`: where it ends.
    pub const DATA_END: i16 = 4;
    /// `data_meta`.
    pub const DATA_META: i16 = 8;
    /// `ingress_ifindex`.
    pub const INGRESS_IFINDEX: i16 = 12;
    /// `rx_queue_index`.
    pub const RX_QUEUE_INDEX: i16 = 16;
}

/// One eBPF instruction (`struct bpf_insn`): opcode, `dst | src << 4`, offset, immediate.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// The opcode ([`op`]).
    pub code: u8,
    /// Destination register in the low nibble, source register in the high one.
    pub regs: u8,
    /// The offset (of a memory access, or of a jump, in instructions).
    pub off: i16,
    /// The immediate.
    pub imm: i32,
}

/// eBPF opcodes (linux/bpf.h, linux/bpf_common.h): class | size/source | operation.
pub mod op {
    /// `r_dst = *(u8 *)(r_src + off)`.
    pub const LDX_B: u8 = 0x71;
    /// `r_dst = *(u16 *)(r_src + off)`.
    pub const LDX_H: u8 = 0x69;
    /// `r_dst = *(u32 *)(r_src + off)`.
    pub const LDX_W: u8 = 0x61;
    /// `r_dst = *(u64 *)(r_src + off)`.
    pub const LDX_DW: u8 = 0x79;
    /// `*(u8 *)(r_dst + off) = r_src`.
    pub const STX_B: u8 = 0x73;
    /// `*(u16 *)(r_dst + off) = r_src`.
    pub const STX_H: u8 = 0x6b;
    /// `*(u32 *)(r_dst + off) = r_src`.
    pub const STX_W: u8 = 0x63;
    /// `*(u64 *)(r_dst + off) = r_src`.
    pub const STX_DW: u8 = 0x7b;
    /// `*(u8 *)(r_dst + off) = imm`.
    pub const ST_B: u8 = 0x72;
    /// `*(u16 *)(r_dst + off) = imm`.
    pub const ST_H: u8 = 0x6a;
    /// `*(u32 *)(r_dst + off) = imm`.
    pub const ST_W: u8 = 0x62;
    /// `*(u64 *)(r_dst + off) = imm`.
    pub const ST_DW: u8 = 0x7a;
    /// `r_dst = r_src` (64-bit).
    pub const MOV_X: u8 = 0xbf;
    /// `r_dst = imm` (64-bit, sign-extended).
    pub const MOV_K: u8 = 0xb7;
    /// `r_dst += imm`.
    pub const ADD_K: u8 = 0x07;
    /// `r_dst += r_src`.
    pub const ADD_X: u8 = 0x0f;
    /// `r_dst -= imm`.
    pub const SUB_K: u8 = 0x17;
    /// `r_dst -= r_src`.
    pub const SUB_X: u8 = 0x1f;
    /// `r_dst &= imm`.
    pub const AND_K: u8 = 0x57;
    /// `r_dst |= imm`.
    pub const OR_K: u8 = 0x47;
    /// `r_dst <<= imm`.
    pub const LSH_K: u8 = 0x67;
    /// `r_dst >>= imm` (logical).
    pub const RSH_K: u8 = 0x77;
    /// `r_dst ^= imm`.
    pub const XOR_K: u8 = 0xa7;
    /// Byte swap `r_dst` to big endian, `imm` bits (16, 32, 64).
    pub const BE: u8 = 0xdc;
    /// Jump always.
    pub const JA: u8 = 0x05;
    /// Jump if `r_dst == imm`.
    pub const JEQ_K: u8 = 0x15;
    /// Jump if `r_dst == r_src`.
    pub const JEQ_X: u8 = 0x1d;
    /// Jump if `r_dst != imm`.
    pub const JNE_K: u8 = 0x55;
    /// Jump if `r_dst != r_src`.
    pub const JNE_X: u8 = 0x5d;
    /// Jump if `r_dst > imm` (unsigned).
    pub const JGT_K: u8 = 0x25;
    /// Jump if `r_dst > r_src` (unsigned).
    pub const JGT_X: u8 = 0x2d;
    /// Jump if `r_dst >= imm` (unsigned).
    pub const JGE_K: u8 = 0x35;
    /// Jump if `r_dst < imm` (unsigned).
    pub const JLT_K: u8 = 0xa5;
    /// Jump if `r_dst > imm` (signed).
    pub const JSGT_K: u8 = 0x65;
    /// Jump if the low 32 bits of `r_dst` `!= imm` (`BPF_JMP32`).
    pub const JNE32_K: u8 = 0x56;
    /// Jump if `r_dst & imm != 0`.
    pub const JSET_K: u8 = 0x45;
    /// `r_dst = imm64` over two instructions (the second carries the high half).
    pub const LD_IMM64: u8 = 0x18;
    /// Call helper `imm`.
    pub const CALL: u8 = 0x85;
    /// Return `r0`.
    pub const EXIT: u8 = 0x95;
}

/// A 16-bit value in network order as the little-endian `u16` a packet load yields.
pub fn wire16(v: u16) -> i32 {
    i32::from(u16::from_le_bytes(v.to_be_bytes()))
}

/// `src_reg` of a `BPF_LD_IMM64` whose immediate is a map's file descriptor.
pub const PSEUDO_MAP_FD: u8 = 1;

/// Registers: `R0` return value, `R1`–`R5` arguments (clobbered by calls), `R6`–`R9` kept
/// across calls, `FP` the read-only frame pointer (512 bytes of stack below it).
pub mod reg {
    /// Return value.
    pub const R0: u8 = 0;
    /// First argument (the context on entry).
    pub const R1: u8 = 1;
    /// Second argument.
    pub const R2: u8 = 2;
    /// Third argument.
    pub const R3: u8 = 3;
    /// Fourth argument.
    pub const R4: u8 = 4;
    /// Fifth argument.
    pub const R5: u8 = 5;
    /// Callee-saved.
    pub const R6: u8 = 6;
    /// Callee-saved.
    pub const R7: u8 = 7;
    /// Callee-saved.
    pub const R8: u8 = 8;
    /// Callee-saved.
    pub const R9: u8 = 9;
    /// The frame pointer.
    pub const FP: u8 = 10;
}

/// A tiny assembler: jumps name a label, resolved by [`Asm::finish`].
#[derive(Debug, Default)]
pub struct Asm {
    code: Vec<(Insn, Option<u16>)>,
    labels: Vec<(u16, usize)>,
}

impl Asm {
    /// Appends one instruction.
    pub fn i(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) {
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

    /// Appends a jump to label `to` (placed before or after with [`Asm::label`]).
    pub fn jump(&mut self, code: u8, dst: u8, src: u8, imm: i32, to: u16) {
        self.i(code, dst, src, 0, imm);
        self.code.last_mut().expect("invariant: just pushed").1 = Some(to);
    }

    /// Loads the map `map` (a file descriptor) into `dst` (two instructions).
    pub fn map(&mut self, dst: u8, map: RawFd) {
        self.i(op::LD_IMM64, dst, PSEUDO_MAP_FD, 0, map);
        self.i(0, 0, 0, 0, 0);
    }

    /// The start of a program over untagged IPv4 frames: `R6` = the context (from `R1`), `R7`
    /// = data, `R9` = data end; jumps to `miss` unless the frame holds `need` octets and is
    /// IPv4 without options, not a fragment. Clobbers `R4`.
    pub fn untagged_ipv4(&mut self, need: i32, miss: u16) {
        use reg::{R1, R4, R6, R7, R9};
        const IP: i16 = 14;
        self.i(op::MOV_X, R6, R1, 0, 0);
        self.i(op::LDX_W, R7, R6, xdp_md::DATA, 0);
        self.i(op::LDX_W, R9, R6, xdp_md::DATA_END, 0);
        self.i(op::MOV_X, R4, R7, 0, 0);
        self.i(op::ADD_K, R4, 0, 0, need);
        self.jump(op::JGT_X, R4, R9, 0, miss);
        self.i(op::LDX_H, R4, R7, 12, 0);
        self.jump(op::JNE_K, R4, 0, wire16(0x0800), miss);
        self.i(op::LDX_B, R4, R7, IP, 0);
        self.jump(op::JNE_K, R4, 0, 0x45, miss);
        self.i(op::LDX_H, R4, R7, IP + 6, 0);
        self.jump(op::JSET_K, R4, 0, wire16(0x3fff), miss);
    }

    /// Places label `l` at the next instruction.
    pub fn label(&mut self, l: u16) {
        self.labels.push((l, self.code.len()));
    }

    /// The instructions, with every jump resolved.
    ///
    /// # Panics
    /// When a jump names a label never placed, or jumps further than an `i16` reaches: both
    /// bugs in the program being assembled.
    pub fn finish(self) -> Vec<Insn> {
        let at = |l: u16| {
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

fn bpf<T>(command: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: every caller passes a valid, fully initialised `bpf_attr` prefix of the size
    // given (the `#[repr(C)]` structs below); the kernel reads (and for some commands writes)
    // only within it.
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

/// A kernel object name: at most 15 bytes and a NUL.
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

/// Creates a map ([`map_type`]) of `entries` entries with `key`- and `value`-byte keys and
/// values, named `name` (15 bytes at most are kept).
///
/// # Errors
/// When the kernel refuses (not root, an unknown type, too large).
pub fn map_create(
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

/// Sets `map[key] = value`. `key` and `value` MUST be exactly the map's key and value sizes
/// (the kernel reads that many bytes; for per-CPU maps `value` is one value per possible CPU).
///
/// # Errors
/// When the kernel refuses (the map is full, a bad descriptor).
pub fn map_update(map: &OwnedFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut attr = MapElem {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value: value.as_ptr() as u64,
        ..MapElem::default()
    };
    bpf(cmd::MAP_UPDATE_ELEM, &mut attr).map(drop)
}

/// Reads `map[key]` into `value`; `Ok(false)` when there is no such key. Sizes as for
/// [`map_update`].
///
/// # Errors
/// When the kernel refuses (a bad descriptor).
pub fn map_lookup(map: &OwnedFd, key: &[u8], value: &mut [u8]) -> io::Result<bool> {
    let mut attr = MapElem {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value: value.as_mut_ptr() as u64,
        ..MapElem::default()
    };
    match bpf(cmd::MAP_LOOKUP_ELEM, &mut attr) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes `map[key]`.
///
/// # Errors
/// When there is no such key (`ENOENT`) or the kernel refuses.
pub fn map_delete(map: &OwnedFd, key: &[u8]) -> io::Result<()> {
    let mut attr = MapElem {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        ..MapElem::default()
    };
    bpf(cmd::MAP_DELETE_ELEM, &mut attr).map(drop)
}

/// Reads `map[key]` into `value` and removes it, in one call (hash maps: kernel 5.14+);
/// `Ok(false)` when there is no such key. Sizes as for [`map_update`].
///
/// # Errors
/// When the kernel refuses (a bad descriptor, a map type without it).
pub fn map_lookup_and_delete(map: &OwnedFd, key: &[u8], value: &mut [u8]) -> io::Result<bool> {
    let mut attr = MapElem {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value: value.as_mut_ptr() as u64,
        ..MapElem::default()
    };
    match bpf(cmd::MAP_LOOKUP_AND_DELETE_ELEM, &mut attr) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

#[repr(C)]
#[derive(Default)]
struct MapBatch {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Sets `count` entries in one call (`BPF_MAP_UPDATE_BATCH`, kernel 5.6+): `keys` and
/// `values` hold them back to back, each exactly the map's key and value size. Returns how
/// many were set, which is `count` unless the error says why not.
///
/// # Errors
/// `(done, error)`: the first `done` entries were set, the next one was refused (the map is
/// full) or the kernel refused the call.
pub fn map_update_batch(
    map: &OwnedFd,
    keys: &[u8],
    values: &[u8],
    count: u32,
) -> Result<u32, (u32, io::Error)> {
    let mut attr = MapBatch {
        keys: keys.as_ptr() as u64,
        values: values.as_ptr() as u64,
        count,
        map_fd: map.as_raw_fd() as u32,
        ..MapBatch::default()
    };
    match bpf(cmd::MAP_UPDATE_BATCH, &mut attr) {
        Ok(_) => Ok(attr.count),
        Err(e) => Err((attr.count.min(count), e)),
    }
}

#[repr(C)]
#[derive(Default)]
struct TestRun {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
}

/// What [`prog_test_run`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestRunResult {
    /// The program's return value (of the last run).
    pub retval: u32,
    /// How many bytes of the frame it left (in `out`).
    pub len: usize,
    /// Mean nanoseconds per run, as the kernel timed it.
    pub duration_ns: u32,
}

/// Runs a loaded XDP program `repeat` times on `data` without any interface
/// (`BPF_PROG_TEST_RUN`); each run sees the frame as the previous one left it, which is
/// copied to `out` (which MUST be large enough).
///
/// # Errors
/// When the kernel refuses (not root, a frame too short).
pub fn prog_test_run(
    prog: &OwnedFd,
    data: &[u8],
    out: &mut [u8],
    repeat: u32,
) -> io::Result<TestRunResult> {
    let mut attr = TestRun {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: data.len() as u32,
        data_size_out: out.len() as u32,
        data_in: data.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat: repeat.max(1),
        ..TestRun::default()
    };
    bpf(cmd::PROG_TEST_RUN, &mut attr)?;
    Ok(TestRunResult {
        retval: attr.retval,
        len: attr.data_size_out as usize,
        duration_ns: attr.duration,
    })
}

/// Loads an XDP program (GPL, so that every helper is allowed) named `name`.
///
/// # Errors
/// When the verifier refuses it (its log is in the message) or the kernel does.
pub fn prog_load(insns: &[Insn], name: &str, expected_attach_type: u32) -> io::Result<OwnedFd> {
    let license = c"GPL";
    let mut attr = ProgLoad {
        prog_type: PROG_TYPE_XDP,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name16(name),
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

/// Attaches an XDP program to interface `ifindex` with a BPF link (`BPF_LINK_CREATE`, kernel
/// 5.9+; `flags` [`XDP_FLAGS_DRV_MODE`] or [`XDP_FLAGS_SKB_MODE`]). The link is a file
/// descriptor: closing it, or the process dying however it dies, detaches the program.
///
/// # Errors
/// When another program is attached (`EBUSY`), the mode is not supported, or no such
/// interface.
pub fn link_create(prog: &OwnedFd, ifindex: u32, flags: u32) -> io::Result<OwnedFd> {
    let mut attr = LinkCreate {
        prog_fd: prog.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type: ATTACH_XDP,
        flags,
    };
    bpf(cmd::LINK_CREATE, &mut attr).map(fd)
}

/// The index of interface `name` in the caller's network namespace.
///
/// # Errors
/// When there is no such interface.
pub fn ifindex(name: &str) -> io::Result<u32> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad interface name"))?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(index)
}
