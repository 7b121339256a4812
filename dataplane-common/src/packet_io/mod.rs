//! Packet I/O: the batch interface every backend implements, and the backends.
//!
//! A backend moves Ethernet frames between a link and a worker, in batches, and does nothing
//! else: it does not decide or count traffic (the worker's pure core does: l4lb's datapath,
//! dns's frame server). One worker owns one [`Rx`] and one [`Tx`] (Knot's `udp_api_t`, s2n's
//! `Rx`/`Tx`): it receives a batch, lets the core rewrite each frame in place, queues the
//! frames to send, and flushes once per batch.
//!
//! - [`mem`]: in-memory queues, for tests and benches.
//! - [`af_packet`]: an `AF_PACKET` socket with a `TPACKET_V3` receive ring and a transmit ring.
//! - [`xdp`]: an `AF_XDP` socket per queue (UMEM and four rings), fed by our own XDP program;
//!   [`xdp::bpf`] is the `bpf(2)` and eBPF-assembler toolkit that program is built with.
//! - [`frame`] and [`checksum`]: the pure header layout and Internet checksum the backends
//!   (and frame-level servers) need.
//! - `testing` (feature `testing`): a throwaway network namespace with a veth pair.

pub mod af_packet;
pub mod checksum;
pub mod frame;
pub mod mem;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod xdp;

use std::io;
use std::time::Duration;

/// The receive half of a link.
pub trait Rx {
    /// Waits up to `timeout` for frames, then hands up to `max` received frames to
    /// `on_frame`, one by one and in arrival order. A frame may be rewritten in place; it is
    /// given back to the backend when `on_frame` returns (copy it to keep it). Returns how
    /// many frames were handed over (0 on timeout).
    ///
    /// # Errors
    /// When waiting on the link fails (not on timeout).
    fn rx<F: FnMut(&mut [u8])>(
        &mut self,
        timeout: Duration,
        max: usize,
        on_frame: F,
    ) -> io::Result<usize>;

    /// What the link counted so far.
    fn stats(&mut self) -> LinkStats {
        LinkStats::default()
    }
}

/// The transmit half of a link.
pub trait Tx {
    /// Queues a copy of `frame` for sending. Returns `false`, and queues nothing, when the
    /// transmit queue is full or the frame does not fit one slot.
    fn push(&mut self, frame: &[u8]) -> bool;

    /// Hands every queued frame to the link.
    ///
    /// # Errors
    /// When the link refuses them; they are dropped.
    fn flush(&mut self) -> io::Result<()>;
}

/// What a backend counted, for `/metrics`: events of the link, not of traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames the kernel dropped because the receive ring was full.
    pub kernel_drops: u64,
    /// Frames received truncated (longer than a ring slot) and dropped.
    pub truncated: u64,
}

/// Waits up to `timeout` for `events` on `fd`; returns whether they came. An interrupted
/// wait counts as a timeout: the caller's loop comes back.
fn wait_readable(
    fd: std::os::fd::RawFd,
    events: libc::c_short,
    timeout: Duration,
) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `pfd` is one valid pollfd.
    match unsafe { libc::poll(&mut pfd, 1, ms) } {
        n if n >= 0 => Ok(n > 0),
        _ => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            }
        }
    }
}
