//! UDP over io_uring: the alternative to [`super::mmsg`]. Each worker keeps [`SLOTS`]
//! receives in flight; a completed receive is answered into the slot's own reply buffer and
//! sent from there; a completed send re-arms the slot's receive. One `io_uring_enter` reaps
//! and submits many queries at once. Buffers are allocated once per worker.

use super::upstream::Handoff;
use crate::authority::Catalog;
use crate::respond::Responder;
use crate::rrl::Limiter;
use dataplane_common::clock::{Clock, SystemClock};
use dataplane_common::snapshot::Snapshot;
use io_uring::{IoUring, opcode, types};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Receives in flight per worker.
pub const SLOTS: usize = 64;
const BUF: usize = 4096;
/// How long a wait may block before the worker looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(200);
/// User data at or above this marks a send completion.
const SEND: u64 = 1 << 32;

/// One query's buffers and the kernel's headers that point at them. Never moved once armed.
struct Slot {
    rx: [u8; BUF],
    tx: [u8; BUF],
    addr: libc::sockaddr_storage,
    rx_iov: libc::iovec,
    tx_iov: libc::iovec,
    rx_msg: libc::msghdr,
    tx_msg: libc::msghdr,
}

struct Ring {
    ring: IoUring,
    fd: types::Fd,
    slots: Box<[Slot]>,
}

impl Ring {
    fn new(fd: i32) -> io::Result<Self> {
        let ring = IoUring::new((2 * SLOTS) as u32)?;
        // SAFETY: all-zero is a valid value for these plain C structs and byte arrays.
        let slots = (0..SLOTS)
            .map(|_| unsafe { std::mem::zeroed::<Slot>() })
            .collect();
        Ok(Self {
            ring,
            fd: types::Fd(fd),
            slots,
        })
    }

    fn arm_recv(&mut self, i: usize) -> io::Result<()> {
        let s = &mut self.slots[i];
        s.rx_iov = libc::iovec {
            iov_base: s.rx.as_mut_ptr().cast(),
            iov_len: BUF,
        };
        s.rx_msg.msg_name = (&raw mut s.addr).cast();
        s.rx_msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        s.rx_msg.msg_iov = &raw mut s.rx_iov;
        s.rx_msg.msg_iovlen = 1;
        let sqe = opcode::RecvMsg::new(self.fd, &raw mut s.rx_msg)
            .build()
            .user_data(i as u64);
        // SAFETY: the msghdr, iovec, buffer and address live in `self.slots`, which is neither
        // moved nor freed while the ring exists, and this slot has nothing else in flight.
        unsafe { self.ring.submission().push(&sqe) }
            .map_err(|_| io::Error::other("submission queue full"))
    }

    fn arm_send(&mut self, i: usize, len: usize) -> io::Result<()> {
        let s = &mut self.slots[i];
        s.tx_iov = libc::iovec {
            iov_base: s.tx.as_mut_ptr().cast(),
            iov_len: len,
        };
        s.tx_msg.msg_name = (&raw mut s.addr).cast();
        s.tx_msg.msg_namelen = s.rx_msg.msg_namelen;
        s.tx_msg.msg_iov = &raw mut s.tx_iov;
        s.tx_msg.msg_iovlen = 1;
        let sqe = opcode::SendMsg::new(self.fd, &raw const s.tx_msg)
            .build()
            .user_data(SEND | i as u64);
        // SAFETY: as in `arm_recv`; the receive of this slot has completed.
        unsafe { self.ring.submission().push(&sqe) }
            .map_err(|_| io::Error::other("submission queue full"))
    }
}

/// Serves one socket until `stop` is set.
///
/// # Errors
/// When the ring cannot be set up (io_uring disabled or unsupported).
pub fn serve(worker: super::Worker) -> io::Result<()> {
    let (socket, catalog, stop, mut answerer) = worker.split();
    let mut ring = Ring::new(socket.as_raw_fd())?;
    for i in 0..SLOTS {
        ring.arm_recv(i)?;
    }
    let clock = SystemClock;
    let timeout = types::Timespec::from(STOP_POLL);
    let args = types::SubmitArgs::new().timespec(&timeout);
    let mut done = [(0u64, 0i32); 2 * SLOTS];
    while !stop.load(Ordering::Relaxed) {
        match ring.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) => {}
            Err(e) => return Err(e),
        }
        let mut n = 0;
        for cqe in ring.ring.completion() {
            done[n] = (cqe.user_data(), cqe.result());
            n += 1;
        }
        if n == 0 {
            continue;
        }
        let now = clock.now();
        let current = catalog.load();
        for &(user_data, result) in &done[..n] {
            let i = (user_data & 0xffff_ffff) as usize;
            if user_data & SEND != 0 || result < 0 {
                ring.arm_recv(i)?;
                continue;
            }
            let slot = &mut ring.slots[i];
            let Some(client) = super::mmsg::peer(&slot.addr) else {
                ring.arm_recv(i)?;
                continue;
            };
            let query = &slot.rx[..result as usize];
            let reply = answerer.answer(&current, now, client, query, &mut slot.tx);
            match reply {
                Some(len) => ring.arm_send(i, len)?,
                None => ring.arm_recv(i)?,
            }
        }
        drop(current);
        let elapsed = clock.now().saturating_duration_since(now);
        answerer.batch_latency(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }
    Ok(())
}

/// Whether this kernel lets us create a ring (io_uring can be disabled by sysctl or seccomp).
pub fn available() -> bool {
    IoUring::new(2).is_ok()
}

/// Starts `workers` threads, each with its own socket and ring on `addr`.
///
/// # Errors
/// When a socket cannot be bound or io_uring is not available.
pub fn spawn(
    addr: SocketAddr,
    workers: usize,
    catalog: &Arc<Snapshot<Catalog>>,
    responders: impl Fn(usize) -> (Responder, Option<Limiter>),
    metrics: &super::Metrics,
    stop: &Arc<AtomicBool>,
    handoff: Option<&Handoff>,
) -> io::Result<(SocketAddr, Vec<std::thread::JoinHandle<()>>)> {
    if !available() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "io_uring is not available on this kernel",
        ));
    }
    super::spawn_workers(
        addr,
        workers,
        "dns-uring",
        catalog,
        responders,
        metrics,
        stop,
        handoff,
        |w| {
            if let Err(e) = serve(w) {
                tracing::error!(error = %e, "io_uring worker stopped");
            }
        },
    )
}
