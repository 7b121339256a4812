//! One `AF_XDP` socket whose frames are answered in place, for a server that replies to each
//! request frame with one frame (dns):
//!
//! ```text
//!  fill ──▶ kernel ──▶ rx ──▶ rewritten in place ──▶ tx ──▶ kernel ──▶ completion ──┐
//!   ▲                     └──▶ no answer ─────────────────────────────────────────────┤
//!   └─────────────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Unlike [`super::Rx`]/[`super::Tx`], the UMEM is not split: every frame is a receive frame,
//! and a reply goes out from the very frame its request came in (no copy, no second frame),
//! then comes back through the completion ring to the fill ring. Every ring holds every
//! frame, so none overflows. One thread owns a [`Duplex`].

use super::{Bind, Config, LinkStats, Program, Ring, Shared, get_option, socket};
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// The socket, its UMEM and four rings.
#[derive(Debug)]
pub struct Duplex {
    fill: Ring<u64>,
    rx: Ring<libc::xdp_desc>,
    tx: Ring<libc::xdp_desc>,
    completion: Ring<u64>,
    shared: Arc<Shared>,
    frame_size: u32,
    stats: LinkStats,
}

// SAFETY: the rings and the UMEM are reached only through `&mut self` (and the kernel, through
// the rings' atomics), so moving the owner to another thread is sound.
unsafe impl Send for Duplex {}

/// Opens an `AF_XDP` socket on `config.queue` of `config.interface` for in-place answers and
/// registers it with `program`.
///
/// # Errors
/// As [`super::open`].
pub fn open_duplex(config: &Config, program: &Program) -> io::Result<Duplex> {
    let frames = config.frames.max(64).next_power_of_two();
    let s = socket(config, program, frames, frames)?;
    Ok(Duplex {
        fill: s.fill,
        rx: s.rx,
        tx: s.tx,
        completion: s.completion,
        shared: s.shared,
        frame_size: s.frame_size,
        stats: LinkStats::default(),
    })
}

impl Duplex {
    /// How the socket got bound.
    pub fn bind(&self) -> Bind {
        self.shared.bind
    }

    /// Gives the frames the kernel finished sending back to the fill ring.
    fn recycle(&mut self) {
        let done = self.completion.peek();
        if done == 0 {
            return;
        }
        let room = self.fill.free();
        debug_assert!(room >= done, "invariant: the fill ring holds every frame");
        for i in 0..done {
            self.fill.write(self.completion.read(i));
        }
        self.completion.release(done);
        self.fill.submit();
    }

    /// Waits up to `timeout` until frames are received; returns whether any are.
    ///
    /// # Errors
    /// When waiting on the socket fails.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<bool> {
        self.recycle();
        if self.rx.peek() > 0 {
            return Ok(true);
        }
        if self.fill.needs_wakeup() {
            // Zero-copy drivers stop when the fill ring ran dry; poll kicks them.
            let _ = self.shared.wait(Duration::ZERO);
        }
        if timeout.is_zero() || !self.shared.wait(timeout)? {
            return Ok(false);
        }
        Ok(self.rx.peek() > 0)
    }

    /// Hands up to `max` received frames to `answer`, one by one, without waiting. `answer`
    /// gets the frame's buffer (the frame and the room after it, to the end of its UMEM
    /// chunk) and the frame's length, and returns the length of the reply it wrote in place
    /// from the buffer's start, or `None` to send nothing. The replies are sent before this
    /// returns. Returns how many frames were handed over.
    ///
    /// # Errors
    /// When the kernel refuses to send (the replies are dropped; the frames are reused).
    pub fn serve<F: FnMut(&mut [u8], usize) -> Option<usize>>(
        &mut self,
        max: usize,
        mut answer: F,
    ) -> io::Result<usize> {
        self.recycle();
        let n = self.rx.peek().min(u32::try_from(max).unwrap_or(u32::MAX));
        if n == 0 {
            return Ok(0);
        }
        // Every frame is in exactly one ring or in our hands: both have room for these `n`.
        let (fill_room, tx_room) = (self.fill.free(), self.tx.free());
        debug_assert!(
            fill_room >= n && tx_room >= n,
            "invariant: rings hold every frame"
        );
        let chunk = u64::from(self.frame_size);
        let mut replies = 0;
        for i in 0..n {
            let desc = self.rx.read(i);
            let len = desc.len as usize;
            // Aligned mode: a chunk starts at a multiple of the frame size; the frame starts
            // after the kernel's headroom inside it.
            let room = (chunk - desc.addr % chunk) as usize;
            let reply = match self.shared.frame(desc.addr, room) {
                Some(at) if len <= room => {
                    // SAFETY: in bounds; the kernel handed this frame over in the RX ring, so
                    // it is ours alone until it goes to the TX or the fill ring below.
                    let buf = unsafe { std::slice::from_raw_parts_mut(at, room) };
                    answer(buf, len).filter(|&r| r > 0 && r <= room)
                }
                _ => {
                    self.stats.truncated += 1;
                    None
                }
            };
            match reply {
                Some(r) => {
                    self.tx.write(libc::xdp_desc {
                        addr: desc.addr,
                        len: r as u32,
                        options: 0,
                    });
                    replies += 1;
                }
                // Aligned mode: the kernel takes the chunk from any address inside it.
                None => self.fill.write(desc.addr),
            }
        }
        self.rx.release(n);
        self.fill.submit();
        let sent = if replies > 0 {
            self.tx.submit();
            self.shared.send(&self.tx)
        } else {
            Ok(())
        };
        self.recycle();
        sent.map(|()| n as usize)
    }

    /// What the kernel counted for this socket (cumulative), and the frames found truncated.
    pub fn stats(&mut self) -> LinkStats {
        // SAFETY: plain old data; all zeroes is valid.
        let mut s: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        if get_option(&self.shared.fd, libc::XDP_STATISTICS, &mut s).is_ok() {
            self.stats.kernel_drops = s.rx_dropped + s.rx_ring_full;
        }
        self.stats
    }
}

#[cfg(test)]
mod tests;
