//! UDP with `recvmmsg`/`sendmmsg`: one socket per worker thread (`SO_REUSEPORT`, so the kernel
//! spreads clients over workers), up to [`BATCH`] queries per system call each way, buffers
//! allocated once per worker. No allocation, lock or extra system call per query.

use super::upstream::Handoff;
use crate::authority::Catalog;
use crate::respond::Responder;
use crate::rrl::Limiter;
use dataplane_common::clock::{Clock, SystemClock};
use dataplane_common::snapshot::Snapshot;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Queries per system call.
pub const BATCH: usize = 64;
/// The largest UDP query read, and the largest reply written (EDNS payloads above it are capped).
const BUF: usize = 4096;
/// How often a blocked worker wakes to see whether it should stop.
const STOP_POLL: Duration = Duration::from_millis(200);
/// Socket buffers: room for bursts while a worker is busy.
const SOCKET_BUFFER: usize = 4 << 20;

/// Opens one worker's socket on `addr`, sharing the port with the other workers.
///
/// # Errors
/// When the address cannot be bound.
pub fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Best effort: a smaller buffer still works, it only drops bursts sooner.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.set_read_timeout(Some(STOP_POLL))?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// One worker's preallocated batch: buffers, addresses and the headers that point at them.
struct Batch {
    rx: Box<[[u8; BUF]; BATCH]>,
    tx: Box<[[u8; BUF]; BATCH]>,
    names: Box<[libc::sockaddr_storage; BATCH]>,
    iov: Box<[libc::iovec; BATCH]>,
    hdrs: Box<[libc::mmsghdr; BATCH]>,
    /// Reply lengths and the index of the query each reply answers.
    replies: [(usize, usize); BATCH],
}

impl Batch {
    fn new() -> Self {
        Self {
            rx: Box::new([[0; BUF]; BATCH]),
            tx: Box::new([[0; BUF]; BATCH]),
            // SAFETY: all-zero is a valid value for these plain C structs.
            names: Box::new(unsafe { std::mem::zeroed() }),
            // SAFETY: as above.
            iov: Box::new(unsafe { std::mem::zeroed() }),
            // SAFETY: as above.
            hdrs: Box::new(unsafe { std::mem::zeroed() }),
            replies: [(0, 0); BATCH],
        }
    }

    /// Receives up to BATCH datagrams; blocks for the first only.
    fn recv(&mut self, fd: i32) -> io::Result<usize> {
        for i in 0..BATCH {
            self.iov[i] = libc::iovec {
                iov_base: self.rx[i].as_mut_ptr().cast(),
                iov_len: BUF,
            };
            let hdr = &mut self.hdrs[i].msg_hdr;
            hdr.msg_name = (&raw mut self.names[i]).cast();
            hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_iov = &raw mut self.iov[i];
            hdr.msg_iovlen = 1;
            hdr.msg_control = std::ptr::null_mut();
            hdr.msg_controllen = 0;
            hdr.msg_flags = 0;
        }
        // SAFETY: every header points at buffers owned by `self` that outlive the call, with
        // lengths that match them.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Sends `count` replies, each to the address its query came from.
    fn send(&mut self, fd: i32, count: usize) -> io::Result<()> {
        for (slot, &(len, query)) in self.replies[..count].iter().enumerate() {
            self.iov[slot] = libc::iovec {
                iov_base: self.tx[slot].as_mut_ptr().cast(),
                iov_len: len,
            };
            let namelen = self.hdrs[query].msg_hdr.msg_namelen;
            let hdr = &mut self.hdrs[slot].msg_hdr;
            hdr.msg_name = (&raw mut self.names[query]).cast();
            hdr.msg_namelen = namelen;
            hdr.msg_iov = &raw mut self.iov[slot];
            hdr.msg_iovlen = 1;
        }
        let mut sent = 0;
        while sent < count {
            // SAFETY: headers 0..count point at reply buffers and addresses owned by `self`.
            let n = unsafe {
                libc::sendmmsg(fd, self.hdrs[sent..].as_mut_ptr(), (count - sent) as u32, 0)
            };
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            sent += n as usize;
        }
        Ok(())
    }
}

/// The source address of a received datagram.
pub(crate) fn peer(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in for AF_INET; sockaddr_storage is large
            // enough and suitably aligned for it.
            let sin = unsafe { &*(std::ptr::from_ref(storage).cast::<libc::sockaddr_in>()) };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*(std::ptr::from_ref(storage).cast::<libc::sockaddr_in6>()) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Serves one socket until `stop` is set: receive a batch, answer it, send the replies.
pub fn serve(worker: super::Worker) {
    let (socket, catalog, stop, mut answerer) = worker.split();
    let fd = socket.as_raw_fd();
    let clock = SystemClock;
    let mut batch = Batch::new();
    while !stop.load(Ordering::Relaxed) {
        let received = match batch.recv(fd) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "recvmmsg failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let now = clock.now();
        // One snapshot for the whole batch: never half an update, and one atomic load.
        let current = catalog.load();
        let mut replies = 0;
        for i in 0..received {
            let len = batch.hdrs[i].msg_len as usize;
            let Some(client) = peer(&batch.names[i]) else {
                continue;
            };
            if let Some(len) = answerer.answer(
                &current,
                now,
                client,
                &batch.rx[i][..len],
                &mut batch.tx[replies],
            ) {
                batch.replies[replies] = (len, i);
                replies += 1;
            }
        }
        drop(current);
        if replies > 0
            && let Err(e) = batch.send(fd, replies)
        {
            tracing::debug!(error = %e, "sendmmsg failed");
        }
        let elapsed = clock.now().saturating_duration_since(now);
        answerer.batch_latency(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }
}

/// Starts `workers` threads, each with its own socket on `addr`.
///
/// # Errors
/// When a socket cannot be bound.
pub fn spawn(
    addr: SocketAddr,
    workers: usize,
    catalog: &Arc<Snapshot<Catalog>>,
    responders: impl Fn(usize) -> (Responder, Option<Limiter>),
    metrics: &super::Metrics,
    stop: &Arc<AtomicBool>,
    handoff: Option<&Handoff>,
) -> io::Result<(SocketAddr, Vec<std::thread::JoinHandle<()>>)> {
    super::spawn_workers(
        addr, workers, "dns-udp", catalog, responders, metrics, stop, handoff, serve,
    )
}
