//! `AF_PACKET` with memory-mapped rings: a `TPACKET_V3` receive ring (block based: the
//! kernel fills a block with many frames and hands it over whole) and a transmit ring, on one
//! socket bound to one interface.
//!
//! - `PACKET_QDISC_BYPASS`: frames we send go straight to the driver (the interface is
//!   dedicated to the balancer; there is no qdisc policy to honour).
//! - `PACKET_IGNORE_OUTGOING`: the receive ring does not see what the host (or we) send.
//! - No allocation and no system call per frame: a batch is the frames of ready blocks, a
//!   flush is one `send` that walks the transmit ring.
//! - Frames whose checksum the sender left to offload (`TP_STATUS_CSUMNOTREADY`, as on veth)
//!   get it computed before the worker sees them ([`checksum::complete`]).
//!
//! Several workers on one interface join a `PACKET_FANOUT_CBPF` group ([`Fanout`]) whose
//! classic BPF program, given by the user of the backend, picks the worker of each frame
//! (l4lb's steers a full-NAT reply to the worker that owns its local port).
//!
//! The host stack still receives every frame (a packet socket is a tap, not a hook): the
//! interface SHOULD have no address for the VIPs and local addresses, and forwarding SHOULD
//! be off on it, so that the host drops what the balancer handles.

use super::LinkStats;
use super::checksum;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// How the rings are sized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The interface to bind.
    pub interface: String,
    /// Receive block size in bytes: a multiple of the page size, larger than any frame.
    pub block_size: u32,
    /// Receive blocks.
    pub blocks: u32,
    /// A block that is not full is handed over after this long (the latency floor when
    /// traffic is light; the kernel rounds it up to a jiffy).
    pub retire: Duration,
    /// Transmit slots.
    pub tx_frames: u32,
    /// Transmit slot size in bytes (header included): a power of two, at least 2048.
    pub tx_frame_size: u32,
}

impl Config {
    /// Rings for `interface`: 4 MiB to receive, 1024 transmit slots of 2 KiB.
    pub fn new(interface: &str) -> Self {
        Self {
            interface: interface.to_owned(),
            block_size: 1 << 18,
            blocks: 16,
            retire: Duration::from_millis(1),
            tx_frames: 1024,
            tx_frame_size: 2048,
        }
    }
}

/// Where a frame starts in a transmit slot: after the aligned `tpacket3_hdr`.
const TX_DATA: usize = (size_of::<libc::tpacket3_hdr>() + libc::TPACKET_ALIGNMENT - 1)
    & !(libc::TPACKET_ALIGNMENT - 1);
/// Offsets in a block descriptor (`tpacket_block_desc` then `tpacket_hdr_v1`).
const BLOCK_STATUS: usize = 8;
const BLOCK_NUM_PKTS: usize = 12;
const BLOCK_FIRST_PKT: usize = 16;

/// The socket and its mapping, shared by the two halves.
#[derive(Debug)]
struct Mapped {
    fd: OwnedFd,
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; `RxRing` and `TxRing` each touch only their own
// part of it (and the kernel's), so moving the owner between threads is sound.
unsafe impl Send for Mapped {}
// SAFETY: as above; `Mapped` itself offers no access to the memory.
unsafe impl Sync for Mapped {}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly the mapping made in `open`, and both halves (which
        // hold the only pointers into it) are gone, since they own this `Arc`.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

/// The receive half: a `TPACKET_V3` ring of blocks.
#[derive(Debug)]
pub struct RxRing {
    mapped: Arc<Mapped>,
    ring: NonNull<u8>,
    block_size: usize,
    blocks: usize,
    /// The block being read.
    block: usize,
    /// Frames of it already handed over, and the offset of the next.
    done: u32,
    offset: usize,
    stats: LinkStats,
}

/// The transmit half: fixed slots, each a `tpacket3_hdr` and a frame.
#[derive(Debug)]
pub struct TxRing {
    mapped: Arc<Mapped>,
    ring: NonNull<u8>,
    frame_size: usize,
    frames: usize,
    next: usize,
    queued: usize,
}

// SAFETY: each half owns its region of the mapping exclusively (disjoint from the other's);
// the `Arc<Mapped>` keeps the mapping alive as long as either half exists.
unsafe impl Send for RxRing {}
// SAFETY: as above.
unsafe impl Send for TxRing {}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn set_option<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live `T` of the given size for the duration of the call.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(value).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    check(ret).map(drop)
}

fn interface_request(
    fd: &OwnedFd,
    interface: &str,
    request: libc::c_ulong,
) -> io::Result<libc::ifreq> {
    let name = interface.as_bytes();
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad interface name",
        ));
    }
    // SAFETY: `ifreq` is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    // SAFETY: `req` is a valid `ifreq` the kernel reads the name from and writes into.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), request, &mut req) })?;
    Ok(req)
}

/// The interface's index, MAC address and MTU, as the kernel of the caller's network namespace
/// knows them.
///
/// # Errors
/// When there is no such interface.
pub fn interface(name: &str) -> io::Result<(u32, [u8; 6], u32)> {
    // SAFETY: plain socket creation; the result is checked.
    let raw =
        check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let c = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad interface name"))?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    let hw = interface_request(&fd, name, libc::SIOCGIFHWADDR)?;
    // SAFETY: SIOCGIFHWADDR filled the `ifru_hwaddr` member.
    let data = unsafe { hw.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (m, d) in mac.iter_mut().zip(data) {
        *m = d as u8;
    }
    let mtu = interface_request(&fd, name, libc::SIOCGIFMTU)?;
    // SAFETY: SIOCGIFMTU filled the `ifru_mtu` member.
    let mtu = unsafe { mtu.ifr_ifru.ifru_mtu };
    Ok((index, mac, mtu as u32))
}

/// Opens a socket on `config.interface` with both rings. With `fanout`, joins that group
/// (`PACKET_FANOUT_CBPF`) and installs its steering program; workers MUST join in worker
/// order, as the group's member index is the worker's.
///
/// # Errors
/// When the socket, a ring, the mapping or the binding fails (not root, no such interface,
/// a kernel older than 4.20).
pub fn open(config: &Config, fanout: Option<&Fanout>) -> io::Result<(RxRing, TxRing)> {
    let (index, _, _) = interface(&config.interface)?;
    // SAFETY: plain socket creation; the result is checked. Protocol 0: nothing is received
    // until `bind`, after the rings exist.
    let raw =
        check(unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let sol = libc::SOL_PACKET;
    set_option(
        &fd,
        sol,
        libc::PACKET_VERSION,
        &(libc::tpacket_versions::TPACKET_V3 as libc::c_int),
    )?;
    set_option(&fd, sol, libc::PACKET_QDISC_BYPASS, &1 as &libc::c_int)?;
    set_option(&fd, sol, libc::PACKET_IGNORE_OUTGOING, &1 as &libc::c_int)?;

    let page = 4096u32;
    let block_size = config.block_size.max(page).next_multiple_of(page);
    let rx_frame = 2048u32;
    let rx = libc::tpacket_req3 {
        tp_block_size: block_size,
        tp_block_nr: config.blocks.max(2),
        tp_frame_size: rx_frame,
        tp_frame_nr: block_size / rx_frame * config.blocks.max(2),
        tp_retire_blk_tov: config.retire.as_millis().clamp(1, 1000) as u32,
        tp_sizeof_priv: 0,
        tp_feature_req_word: 0,
    };
    set_option(&fd, sol, libc::PACKET_RX_RING, &rx)?;
    let frame_size = config.tx_frame_size.max(2048).next_power_of_two();
    // Transmit blocks hold whole slots, so the slots are contiguous.
    let tx_block = frame_size.max(page);
    let per_block = tx_block / frame_size;
    let tx_blocks = config.tx_frames.max(per_block).div_ceil(per_block);
    let tx = libc::tpacket_req3 {
        tp_block_size: tx_block,
        tp_block_nr: tx_blocks,
        tp_frame_size: frame_size,
        tp_frame_nr: tx_blocks * per_block,
        tp_retire_blk_tov: 0,
        tp_sizeof_priv: 0,
        tp_feature_req_word: 0,
    };
    set_option(&fd, sol, libc::PACKET_TX_RING, &tx)?;

    let rx_len = rx.tp_block_size as usize * rx.tp_block_nr as usize;
    let tx_len = tx.tp_block_size as usize * tx.tp_block_nr as usize;
    // SAFETY: maps the rings the kernel just allocated for this socket: RX then TX, as
    // packet(7) lays them out. The result is checked.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            rx_len + tx_len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let base = NonNull::new(base.cast::<u8>()).expect("invariant: mmap does not return null");
    let mapped = Arc::new(Mapped {
        fd,
        base,
        len: rx_len + tx_len,
    });

    // SAFETY: `sockaddr_ll` is plain old data; all zeroes is valid.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    addr.sll_ifindex = index as i32;
    // SAFETY: `addr` is a valid `sockaddr_ll` of the given length.
    check(unsafe {
        libc::bind(
            mapped.fd.as_raw_fd(),
            std::ptr::from_ref(&addr).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })?;
    if let Some(f) = fanout {
        let arg = u32::from(f.group)
            | ((libc::PACKET_FANOUT_CBPF | libc::PACKET_FANOUT_FLAG_IGNORE_OUTGOING) << 16);
        set_option(&mapped.fd, sol, libc::PACKET_FANOUT, &arg)?;
        let prog = libc::sock_fprog {
            len: f.program.len() as u16,
            filter: f.program.as_ptr().cast_mut(),
        };
        set_option(&mapped.fd, sol, libc::PACKET_FANOUT_DATA, &prog)?;
    }

    let rx_ring = RxRing {
        mapped: Arc::clone(&mapped),
        ring: base,
        block_size: rx.tp_block_size as usize,
        blocks: rx.tp_block_nr as usize,
        block: 0,
        done: 0,
        offset: 0,
        stats: LinkStats::default(),
    };
    // SAFETY: `rx_len` is within the mapping; the TX ring starts there.
    let tx_base = unsafe { base.add(rx_len) };
    let tx_ring = TxRing {
        mapped,
        ring: tx_base,
        frame_size: frame_size as usize,
        frames: tx.tp_frame_nr as usize,
        next: 0,
        queued: 0,
    };
    Ok((rx_ring, tx_ring))
}

/// A status word in the shared ring, as an atomic.
///
/// # Safety
/// `at` MUST point to an aligned `u32` inside a live mapping that only the kernel and this
/// ring half access.
unsafe fn status<'a>(at: *mut u8) -> &'a AtomicU32 {
    // SAFETY: guaranteed by the caller; the kernel writes this word with its own barriers.
    unsafe { AtomicU32::from_ptr(at.cast()) }
}

impl RxRing {
    fn block_ptr(&self) -> *mut u8 {
        // SAFETY: `block < blocks`, so the block lies inside the RX part of the mapping.
        unsafe { self.ring.as_ptr().add(self.block * self.block_size) }
    }

    fn wait(&self, timeout: Duration) -> io::Result<bool> {
        super::wait_readable(
            self.mapped.fd.as_raw_fd(),
            libc::POLLIN | libc::POLLERR,
            timeout,
        )
    }
}

impl super::Rx for RxRing {
    /// What the ring counted, with the kernel's drop count read (and reset) now.
    fn stats(&mut self) -> LinkStats {
        // SAFETY: `tpacket_stats_v3` is plain old data; all zeroes is valid.
        let mut s: libc::tpacket_stats_v3 = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: `s` and `len` are valid for the kernel to write.
        let ret = unsafe {
            libc::getsockopt(
                self.mapped.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                std::ptr::from_mut(&mut s).cast(),
                &mut len,
            )
        };
        if ret == 0 {
            self.stats.kernel_drops += u64::from(s.tp_drops);
        }
        self.stats
    }

    fn rx<F: FnMut(&mut [u8])>(
        &mut self,
        timeout: Duration,
        max: usize,
        mut on_frame: F,
    ) -> io::Result<usize> {
        let mut n = 0;
        let mut waited = false;
        while n < max {
            let block = self.block_ptr();
            // SAFETY: the block descriptor's status word is inside this block, aligned.
            let block_status = unsafe { status(block.add(BLOCK_STATUS)) };
            if block_status.load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                if n > 0 || waited || timeout.is_zero() {
                    break;
                }
                waited = true;
                if !self.wait(timeout)? {
                    break;
                }
                continue;
            }
            // SAFETY: the block is ours (TP_STATUS_USER) until we give it back; the kernel
            // wrote the descriptor before setting the status (Acquire above).
            let (count, first) = unsafe {
                (
                    block.add(BLOCK_NUM_PKTS).cast::<u32>().read(),
                    block.add(BLOCK_FIRST_PKT).cast::<u32>().read() as usize,
                )
            };
            if self.done == 0 {
                self.offset = first;
            }
            while self.done < count && n < max {
                // SAFETY: the kernel laid out `count` headers in this block, each followed by
                // its frame at `tp_mac`, chained by `tp_next_offset`; all inside the block.
                let hdr = unsafe { block.add(self.offset).cast::<libc::tpacket3_hdr>().read() };
                self.done += 1;
                self.offset += hdr.tp_next_offset as usize;
                if hdr.tp_snaplen < hdr.tp_len {
                    self.stats.truncated += 1;
                    continue;
                }
                let start = self.offset - hdr.tp_next_offset as usize + usize::from(hdr.tp_mac);
                if start + hdr.tp_snaplen as usize > self.block_size {
                    self.stats.truncated += 1;
                    continue;
                }
                // SAFETY: checked above to lie inside the block, which we own until release;
                // no other reference to these bytes exists while `on_frame` runs.
                let frame = unsafe {
                    std::slice::from_raw_parts_mut(block.add(start), hdr.tp_snaplen as usize)
                };
                if hdr.tp_status & libc::TP_STATUS_CSUMNOTREADY != 0 {
                    checksum::complete(frame);
                }
                on_frame(frame);
                n += 1;
            }
            if self.done >= count {
                block_status.store(libc::TP_STATUS_KERNEL, Ordering::Release);
                self.block = (self.block + 1) % self.blocks;
                self.done = 0;
            }
        }
        Ok(n)
    }
}

impl TxRing {
    fn slot(&self, i: usize) -> *mut u8 {
        // SAFETY: `i < frames`; slots are contiguous in the TX part of the mapping.
        unsafe { self.ring.as_ptr().add(i * self.frame_size) }
    }

    /// Frames queued and not yet flushed.
    pub fn queued(&self) -> usize {
        self.queued
    }
}

impl super::Tx for TxRing {
    fn push(&mut self, frame: &[u8]) -> bool {
        if frame.len() > self.frame_size - TX_DATA {
            return false;
        }
        let slot = self.slot(self.next);
        let hdr = slot.cast::<libc::tpacket3_hdr>();
        // SAFETY: `tp_status` is the sixth u32 of the slot's header, aligned.
        let st = unsafe { status(slot.add(std::mem::offset_of!(libc::tpacket3_hdr, tp_status))) };
        let s = st.load(Ordering::Acquire);
        if s != libc::TP_STATUS_AVAILABLE && s != libc::TP_STATUS_WRONG_FORMAT {
            return false; // still queued or being sent: the ring is full
        }
        // SAFETY: the slot is ours while its status is AVAILABLE (or WRONG_FORMAT); the frame
        // fits (checked above). The status is published last, with Release.
        unsafe {
            std::ptr::copy_nonoverlapping(frame.as_ptr(), slot.add(TX_DATA), frame.len());
            (*hdr).tp_next_offset = 0;
            (*hdr).tp_len = frame.len() as u32;
            (*hdr).tp_snaplen = frame.len() as u32;
        }
        st.store(libc::TP_STATUS_SEND_REQUEST, Ordering::Release);
        self.next = (self.next + 1) % self.frames;
        self.queued += 1;
        true
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.queued == 0 {
            return Ok(());
        }
        self.queued = 0;
        // SAFETY: a zero-length send on our own socket: the kernel walks the TX ring.
        let ret = unsafe {
            libc::send(
                self.mapped.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
            )
        };
        if ret < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN | libc::ENOBUFS) => Ok(()),
                _ => Err(e),
            };
        }
        Ok(())
    }
}

/// A fanout group and the classic BPF program that picks a member for each frame.
#[derive(Debug, Clone)]
pub struct Fanout {
    /// The group id (unique per interface and process).
    pub group: u16,
    /// The program; its return value modulo the group size is the member.
    pub program: Vec<libc::sock_filter>,
}
