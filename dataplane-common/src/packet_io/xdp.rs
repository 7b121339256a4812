//! `AF_XDP`: one socket per receive queue, its UMEM (the frame memory the kernel and we share)
//! and its four single-producer single-consumer rings, all memory-mapped.
//!
//! ```text
//!             fill ──▶ kernel ──▶ rx      (receive: frames 0..F/2 circulate here)
//!  we ──▶     tx   ──▶ kernel ──▶ completion ──▶ free list   (transmit: frames F/2..F)
//! ```
//!
//! - The receive half ([`Rx`]) owns the fill and RX rings and the first half of the UMEM;
//!   the transmit half ([`Tx`]) owns the TX and completion rings and the second half, so the
//!   two halves share nothing mutable and can live on different threads.
//! - Ring discipline (linux `net/xdp/xsk_queue.h`): a producer writes its descriptors, then
//!   publishes its index with Release; a consumer reads the producer index with Acquire, reads
//!   the descriptors, then publishes its own index with Release (the entries may be reused
//!   from then on). Indexes are free-running `u32`s; a slot is `index & (size - 1)`.
//! - A frame handed to the datapath is rewritten in place in the UMEM; [`Tx::push`] copies it
//!   into a transmit frame (the [`super::Tx`] contract is a copy), and the receive frame
//!   goes straight back to the fill ring. [`Duplex`] is the other way to use a socket, for a
//!   server that answers each frame with one frame: the reply leaves from the request's own
//!   frame, no copy (dns).
//! - Binding tries `XDP_ZEROCOPY` first and falls back to `XDP_COPY` (veth, most virtual
//!   devices); both with `XDP_USE_NEED_WAKEUP`, so the kernel is only kicked when it asks.
//! - Only frames the [`Program`] redirects arrive: IPv4/IPv6 to our addresses (and, with a
//!   [`Filter::Udp`], only UDP to one port). Everything else goes to the kernel, which, unlike
//!   with `AF_PACKET`, does NOT see our frames.
//! - No checksum offload information comes with a frame: frames from a local sender with
//!   `CHECKSUM_PARTIAL` (veth with TX checksum offload on) arrive with an unfinished checksum.
//!   On real NICs frames come from the wire, complete.

pub mod bpf;
mod duplex;
mod program;

pub use duplex::{Duplex, open_duplex};
pub use program::{Attach, Filter, MAX_DESTINATIONS, MAX_QUEUES, Mode, Program};

use super::LinkStats;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// How a socket is sized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The interface.
    pub interface: String,
    /// The receive queue to bind.
    pub queue: u32,
    /// UMEM frames, half to receive and half to transmit: a power of two, at least 64.
    pub frames: u32,
    /// UMEM frame size: 2048 or 4096 (a frame holds up to this less 256 bytes of headroom).
    pub frame_size: u32,
    /// Try zero-copy before copy mode.
    pub zero_copy: bool,
}

impl Config {
    /// Queue `queue` of `interface`: 4096 frames of 2 KiB (8 MiB), zero-copy if possible.
    pub fn new(interface: &str, queue: u32) -> Self {
        Self {
            interface: interface.to_owned(),
            queue,
            frames: 4096,
            frame_size: 2048,
            zero_copy: true,
        }
    }
}

/// How a socket got bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bind {
    /// The driver DMAs straight into the UMEM.
    ZeroCopy,
    /// The kernel copies each frame between its buffers and the UMEM.
    Copy,
}

/// The UMEM: anonymous memory registered with the socket.
#[derive(Debug)]
struct Umem {
    base: NonNull<u8>,
    len: usize,
}

impl Drop for Umem {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping made in `open`; the socket that registered it is closed
        // (it is dropped before this, see `Shared`) and both halves are gone.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

/// The socket and the UMEM, shared by the two halves. The socket is closed before the UMEM
/// is unmapped (field order).
#[derive(Debug)]
struct Shared {
    fd: OwnedFd,
    umem: Umem,
    bind: Bind,
}

// SAFETY: the UMEM is plain memory split between the halves (see the module doc); `Shared`
// itself gives no access to it.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

/// One mapped ring: producer, consumer, flags and `size` entries of `T`.
///
/// Invariants: `size` MUST be a power of two; `cached_prod - cached_cons <= size` for the
/// side we are (wrapping arithmetic).
#[derive(Debug)]
struct Ring<T> {
    map: NonNull<u8>,
    map_len: usize,
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    entries: NonNull<T>,
    mask: u32,
    /// Our copy of the index we own (as producer or consumer), and of the other.
    cached_prod: u32,
    cached_cons: u32,
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `Ring::map`; only this ring points into it.
        unsafe {
            libc::munmap(self.map.as_ptr().cast(), self.map_len);
        }
    }
}

impl<T: Copy> Ring<T> {
    /// Maps the ring at `pgoff` of `fd`, laid out as `off` says.
    fn map(
        fd: &OwnedFd,
        pgoff: libc::off_t,
        off: &libc::xdp_ring_offset,
        size: u32,
    ) -> io::Result<Self> {
        debug_assert!(size.is_power_of_two());
        let map_len = off.desc as usize + size as usize * size_of::<T>();
        // SAFETY: maps the ring the kernel allocated for this socket at its documented page
        // offset; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                pgoff,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let map = NonNull::new(p.cast::<u8>()).expect("invariant: mmap does not return null");
        // SAFETY: the kernel's offsets lie inside the mapping and are aligned for their types.
        let at = |o: u64| unsafe { map.add(o as usize) };
        let ring = Self {
            map,
            map_len,
            producer: at(off.producer).cast(),
            consumer: at(off.consumer).cast(),
            flags: at(off.flags).cast(),
            entries: at(off.desc).cast(),
            mask: size - 1,
            cached_prod: 0,
            cached_cons: 0,
        };
        Ok(ring)
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: an aligned u32 inside the live mapping, shared with the kernel.
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { self.consumer.as_ref() }
    }

    fn needs_wakeup(&self) -> bool {
        // SAFETY: as above.
        let flags = unsafe { self.flags.as_ref() };
        flags.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    fn slot(&self, index: u32) -> *mut T {
        // SAFETY: `index & mask < size`: inside the entries.
        unsafe { self.entries.as_ptr().add((index & self.mask) as usize) }
    }

    // Consumer side (RX, completion).

    /// Entries ready to consume (reads the kernel's producer index, Acquire).
    fn peek(&mut self) -> u32 {
        if self.cached_prod == self.cached_cons {
            self.cached_prod = self.producer().load(Ordering::Acquire);
        }
        self.cached_prod.wrapping_sub(self.cached_cons)
    }

    /// The entry at the consumer index plus `i` (`i < peek()`).
    fn read(&self, i: u32) -> T {
        // SAFETY: the kernel published this entry (Acquire in `peek`) and will not touch it
        // before we release it.
        unsafe { self.slot(self.cached_cons.wrapping_add(i)).read() }
    }

    /// Gives `n` consumed entries back (Release: our reads happen before the kernel reuses).
    fn release(&mut self, n: u32) {
        self.cached_cons = self.cached_cons.wrapping_add(n);
        self.consumer().store(self.cached_cons, Ordering::Release);
    }

    // Producer side (fill, TX).

    /// Free entries (reads the kernel's consumer index, Acquire, unless the cached view
    /// already shows the ring empty). Callers ask for room for a whole batch, so a stale
    /// "a few free" is not good enough: refresh whenever anything is in use.
    fn free(&mut self) -> u32 {
        let size = self.mask + 1;
        let free = size - self.cached_prod.wrapping_sub(self.cached_cons);
        if free == size {
            return free;
        }
        self.cached_cons = self.consumer().load(Ordering::Acquire);
        size - self.cached_prod.wrapping_sub(self.cached_cons)
    }

    /// Writes an entry at our producer index and advances it (locally: [`Ring::submit`]
    /// publishes). The caller MUST have checked [`Ring::free`].
    fn write(&mut self, entry: T) {
        debug_assert!(self.cached_prod.wrapping_sub(self.cached_cons) <= self.mask);
        // SAFETY: the slot is free (the kernel consumed it: Acquire in `free`).
        unsafe { self.slot(self.cached_prod).write(entry) };
        self.cached_prod = self.cached_prod.wrapping_add(1);
    }

    /// Publishes the entries written (Release: they are visible before the index).
    fn submit(&mut self) {
        self.producer().store(self.cached_prod, Ordering::Release);
    }
}

/// The receive half: fill and RX rings over the first half of the UMEM.
#[derive(Debug)]
pub struct Rx {
    fill: Ring<u64>,
    rx: Ring<libc::xdp_desc>,
    shared: Arc<Shared>,
    stats: LinkStats,
}

/// The transmit half: TX and completion rings over the second half of the UMEM.
#[derive(Debug)]
pub struct Tx {
    tx: Ring<libc::xdp_desc>,
    completion: Ring<u64>,
    /// Transmit frames (UMEM offsets) that are ours to fill.
    free: Vec<u64>,
    frame_size: u32,
    queued: u32,
    shared: Arc<Shared>,
}

// SAFETY: each half owns its rings and its half of the UMEM exclusively; the rest is the
// kernel's, reached only through the rings' atomics.
unsafe impl Send for Rx {}
// SAFETY: as above.
unsafe impl Send for Tx {}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn set_option<T>(fd: &OwnedFd, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live `T` of the given size for the duration of the call.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            name,
            std::ptr::from_ref(value).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    check(ret).map(drop)
}

fn get_option<T>(fd: &OwnedFd, name: libc::c_int, value: &mut T) -> io::Result<()> {
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for the kernel to write.
    let ret = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            name,
            std::ptr::from_mut(value).cast(),
            &mut len,
        )
    };
    check(ret).map(drop)
}

fn bind(fd: &OwnedFd, ifindex: u32, queue: u32, flags: u16) -> io::Result<()> {
    let addr = libc::sockaddr_xdp {
        sxdp_family: libc::AF_XDP as u16,
        sxdp_flags: flags | libc::XDP_USE_NEED_WAKEUP,
        sxdp_ifindex: ifindex,
        sxdp_queue_id: queue,
        sxdp_shared_umem_fd: 0,
    };
    // SAFETY: `addr` is a valid `sockaddr_xdp` of the given length.
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            std::ptr::from_ref(&addr).cast(),
            size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Opens an `AF_XDP` socket on `config.queue` of `config.interface` and registers it with
/// `program`, so that the frames the program picks on that queue arrive here.
///
/// # Errors
/// When the socket, the UMEM, a ring, the binding or the registration fails (not root, no
/// such interface or queue, a kernel without `AF_XDP`).
pub fn open(config: &Config, program: &Program) -> io::Result<(Rx, Tx)> {
    let frames = config.frames.max(64).next_power_of_two();
    let half = frames / 2;
    // Each ring holds every frame that can be in it, so none ever overflows.
    let s = socket(config, program, half, half)?;
    let rx = Rx {
        fill: s.fill,
        rx: s.rx,
        shared: Arc::clone(&s.shared),
        stats: LinkStats::default(),
    };
    let tx = Tx {
        tx: s.tx,
        completion: s.completion,
        free: (half..frames)
            .rev()
            .map(|i| u64::from(i) * u64::from(s.frame_size))
            .collect(),
        frame_size: s.frame_size,
        queued: 0,
        shared: s.shared,
    };
    Ok((rx, tx))
}

/// A bound and registered socket, before it is split into halves (or not).
struct Socket {
    fill: Ring<u64>,
    completion: Ring<u64>,
    rx: Ring<libc::xdp_desc>,
    tx: Ring<libc::xdp_desc>,
    shared: Arc<Shared>,
    frame_size: u32,
}

/// Makes the socket, its UMEM and four rings of `ring` entries each, puts the first
/// `fill_frames` frames in the fill ring, binds and registers it with `program`.
fn socket(config: &Config, program: &Program, ring: u32, fill_frames: u32) -> io::Result<Socket> {
    let frames = config.frames.max(64).next_power_of_two();
    let frame_size = config.frame_size.clamp(2048, 4096).next_power_of_two();
    debug_assert!(ring.is_power_of_two() && fill_frames <= ring && fill_frames <= frames);
    // SAFETY: plain socket creation; the result is checked.
    let raw = check(unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let len = frames as usize * frame_size as usize;
    // SAFETY: an anonymous private mapping; the result is checked.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let umem = Umem {
        base: NonNull::new(base.cast()).expect("invariant: mmap does not return null"),
        len,
    };
    let reg = libc::xdp_umem_reg {
        addr: base as u64,
        len: len as u64,
        chunk_size: frame_size,
        headroom: 0,
        flags: 0,
        tx_metadata_len: 0,
    };
    set_option(&fd, libc::XDP_UMEM_REG, &reg)?;
    set_option(&fd, libc::XDP_UMEM_FILL_RING, &ring)?;
    set_option(&fd, libc::XDP_UMEM_COMPLETION_RING, &ring)?;
    set_option(&fd, libc::XDP_RX_RING, &ring)?;
    set_option(&fd, libc::XDP_TX_RING, &ring)?;
    // SAFETY: plain old data; all zeroes is valid.
    let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
    get_option(&fd, libc::XDP_MMAP_OFFSETS, &mut off)?;
    let mut fill = Ring::<u64>::map(
        &fd,
        libc::XDP_UMEM_PGOFF_FILL_RING as libc::off_t,
        &off.fr,
        ring,
    )?;
    let completion = Ring::<u64>::map(
        &fd,
        libc::XDP_UMEM_PGOFF_COMPLETION_RING as libc::off_t,
        &off.cr,
        ring,
    )?;
    let rx = Ring::<libc::xdp_desc>::map(&fd, libc::XDP_PGOFF_RX_RING, &off.rx, ring)?;
    let tx = Ring::<libc::xdp_desc>::map(&fd, libc::XDP_PGOFF_TX_RING, &off.tx, ring)?;
    debug_assert_eq!(fill.free(), ring);
    for i in 0..fill_frames {
        fill.write(u64::from(i) * u64::from(frame_size));
    }
    fill.submit();

    let ifindex = program.ifindex();
    let bound = if config.zero_copy {
        match bind(&fd, ifindex, config.queue, libc::XDP_ZEROCOPY) {
            Ok(()) => Bind::ZeroCopy,
            Err(_) => {
                bind(&fd, ifindex, config.queue, libc::XDP_COPY)?;
                Bind::Copy
            }
        }
    } else {
        bind(&fd, ifindex, config.queue, libc::XDP_COPY)?;
        Bind::Copy
    };
    program.register(config.queue, &fd)?;
    Ok(Socket {
        fill,
        completion,
        rx,
        tx,
        shared: Arc::new(Shared {
            fd,
            umem,
            bind: bound,
        }),
        frame_size,
    })
}

impl Shared {
    /// Where the UMEM bytes `addr..addr + len` start, if they lie inside it. Making a slice
    /// of them is sound only for the frame's owner (per the ring protocol).
    fn frame(&self, addr: u64, len: usize) -> Option<*mut u8> {
        let start = usize::try_from(addr).ok()?;
        if start.checked_add(len)? > self.umem.len {
            return None;
        }
        // SAFETY: `start + len` is within the mapping (checked above).
        Some(unsafe { self.umem.base.as_ptr().add(start) })
    }

    /// Waits up to `timeout` until a frame is received; returns whether one is.
    fn wait(&self, timeout: Duration) -> io::Result<bool> {
        super::wait_readable(self.fd.as_raw_fd(), libc::POLLIN, timeout)
    }

    /// Makes the kernel take what `tx` holds (published already).
    fn send(&self, tx: &Ring<libc::xdp_desc>) -> io::Result<()> {
        if self.bind == Bind::Copy {
            // Copy mode sends only when kicked, and at most 32 frames per kick
            // (`TX_BATCH_SIZE` in net/xdp/xsk.c): kick until the kernel took them all.
            for _ in 0..=(tx.mask + 1) / 32 {
                if tx.consumer().load(Ordering::Acquire) == tx.cached_prod {
                    break;
                }
                self.kick(libc::MSG_DONTWAIT)?;
            }
            Ok(())
        } else if tx.needs_wakeup() {
            self.kick(libc::MSG_DONTWAIT)
        } else {
            Ok(())
        }
    }

    fn kick(&self, flags: libc::c_int) -> io::Result<()> {
        // SAFETY: a zero-length send on our own socket: the kernel looks at the TX ring.
        let ret = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                flags,
                std::ptr::null(),
                0,
            )
        };
        if ret < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::ENETDOWN) => Ok(()),
                _ => Err(e),
            };
        }
        Ok(())
    }
}

impl Rx {
    /// How the socket got bound.
    pub fn bind(&self) -> Bind {
        self.shared.bind
    }
}

impl super::Rx for Rx {
    fn rx<F: FnMut(&mut [u8])>(
        &mut self,
        timeout: Duration,
        max: usize,
        mut on_frame: F,
    ) -> io::Result<usize> {
        let mut ready = self.rx.peek();
        if ready == 0 {
            if self.fill.needs_wakeup() {
                // Zero-copy drivers stop when the fill ring ran dry; poll kicks them.
                let _ = self.shared.wait(Duration::ZERO);
            }
            if timeout.is_zero() || !self.shared.wait(timeout)? {
                return Ok(0);
            }
            ready = self.rx.peek();
        }
        let n = ready.min(u32::try_from(max).unwrap_or(u32::MAX));
        // The fill ring has room for every receive frame, so for these `n` too.
        let room = self.fill.free();
        debug_assert!(
            room >= n,
            "invariant: the fill ring holds every receive frame"
        );
        for i in 0..n {
            let desc = self.rx.read(i);
            let len = desc.len as usize;
            match self.shared.frame(desc.addr, len) {
                Some(at) => {
                    // SAFETY: in bounds; the kernel handed this frame over in the RX ring,
                    // so it is ours alone until it goes back to the fill ring below.
                    on_frame(unsafe { std::slice::from_raw_parts_mut(at, len) });
                }
                None => self.stats.truncated += 1,
            }
            // Aligned mode: the kernel takes the frame's start from any address inside it.
            self.fill.write(desc.addr);
        }
        self.rx.release(n);
        self.fill.submit();
        Ok(n as usize)
    }

    /// What the kernel counted for this socket (cumulative).
    fn stats(&mut self) -> LinkStats {
        // SAFETY: plain old data; all zeroes is valid.
        let mut s: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        if get_option(&self.shared.fd, libc::XDP_STATISTICS, &mut s).is_ok() {
            self.stats.kernel_drops = s.rx_dropped + s.rx_ring_full;
        }
        self.stats
    }
}

impl Tx {
    /// How the socket got bound.
    pub fn bind(&self) -> Bind {
        self.shared.bind
    }

    /// Frames queued and not yet flushed.
    pub fn queued(&self) -> usize {
        self.queued as usize
    }

    /// Takes back the frames the kernel finished sending.
    fn reclaim(&mut self) {
        let done = self.completion.peek();
        for i in 0..done {
            self.free.push(self.completion.read(i));
        }
        if done > 0 {
            self.completion.release(done);
        }
    }
}

impl super::Tx for Tx {
    fn push(&mut self, frame: &[u8]) -> bool {
        if frame.len() > self.frame_size as usize {
            return false;
        }
        if self.free.is_empty() {
            self.reclaim();
        }
        let Some(addr) = self.free.pop() else {
            return false;
        };
        // A free frame means a free TX slot: the ring holds every transmit frame.
        debug_assert!(self.tx.free() > 0);
        let Some(dst) = self.shared.frame(addr, frame.len()) else {
            self.free.push(addr);
            return false;
        };
        // SAFETY: in bounds; `addr` came off the free list, so no ring holds the frame and
        // it is ours; `frame` is not in the UMEM's transmit half.
        unsafe { std::ptr::copy_nonoverlapping(frame.as_ptr(), dst, frame.len()) };
        self.tx.write(libc::xdp_desc {
            addr,
            len: frame.len() as u32,
            options: 0,
        });
        self.queued += 1;
        true
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.queued > 0 {
            self.queued = 0;
            self.tx.submit();
        }
        let result = self.shared.send(&self.tx);
        self.reclaim();
        result
    }
}
