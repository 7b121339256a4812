//! In-memory links for tests and benches: a [`Queue`] is a bounded FIFO of frames in
//! preallocated slots (no allocation per frame), shared by cloning. [`Rx`] receives from one
//! queue and [`Tx`] sends into another, so a test plays the wire: it pushes the frames a
//! worker receives and pops the frames it sent.

use std::io;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

/// Slots and their lengths; `head` is the oldest frame, `len` how many are queued.
#[derive(Debug)]
struct Slots {
    data: Vec<u8>,
    lens: Vec<usize>,
    head: usize,
    len: usize,
    /// Frames refused because the queue was full or the frame too big.
    refused: u64,
}

#[derive(Debug)]
struct Inner {
    slots: Mutex<Slots>,
    ready: Condvar,
    slot_size: usize,
}

/// A bounded FIFO of frames. Cloning shares it.
#[derive(Debug, Clone)]
pub struct Queue(Arc<Inner>);

impl Queue {
    /// A queue of `capacity` frames of at most `slot_size` bytes each.
    pub fn new(capacity: usize, slot_size: usize) -> Self {
        assert!(capacity > 0, "invariant: a queue holds at least one frame");
        Self(Arc::new(Inner {
            slots: Mutex::new(Slots {
                data: vec![0; capacity * slot_size],
                lens: vec![0; capacity],
                head: 0,
                len: 0,
                refused: 0,
            }),
            ready: Condvar::new(),
            slot_size,
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.0.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends a copy of `frame`; `false` if the queue is full or the frame too big.
    pub fn push(&self, frame: &[u8]) -> bool {
        let mut s = self.lock();
        let capacity = s.lens.len();
        if s.len == capacity || frame.len() > self.0.slot_size {
            s.refused += 1;
            return false;
        }
        let at = (s.head + s.len) % capacity;
        let start = at * self.0.slot_size;
        s.data[start..start + frame.len()].copy_from_slice(frame);
        s.lens[at] = frame.len();
        s.len += 1;
        drop(s);
        self.0.ready.notify_one();
        true
    }

    /// Removes the oldest frame, if any.
    pub fn pop(&self) -> Option<Vec<u8>> {
        let mut out = None;
        self.take(1, |f| out = Some(f.to_vec()));
        out
    }

    /// Removes every queued frame.
    pub fn drain(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        self.take(usize::MAX, |f| out.push(f.to_vec()));
        out
    }

    /// How many frames are queued.
    pub fn len(&self) -> usize {
        self.lock().len
    }

    /// Whether no frame is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Frames refused so far (queue full, or bigger than a slot).
    pub fn refused(&self) -> u64 {
        self.lock().refused
    }

    /// Hands up to `max` frames to `f`, oldest first, removing them.
    fn take(&self, max: usize, mut f: impl FnMut(&mut [u8])) -> usize {
        let mut guard = self.lock();
        let s = &mut *guard;
        let capacity = s.lens.len();
        let n = s.len.min(max);
        for _ in 0..n {
            let start = s.head * self.0.slot_size;
            let len = s.lens[s.head];
            f(&mut s.data[start..start + len]);
            s.head = (s.head + 1) % capacity;
            s.len -= 1;
        }
        n
    }

    /// Waits up to `timeout` until a frame is queued; returns whether one is.
    fn wait(&self, timeout: Duration) -> bool {
        let guard = self.lock();
        let (guard, _) = self
            .0
            .ready
            .wait_timeout_while(guard, timeout, |s| s.len == 0)
            .unwrap_or_else(PoisonError::into_inner);
        guard.len > 0
    }
}

/// Receives from a [`Queue`].
#[derive(Debug, Clone)]
pub struct Rx(Queue);

impl Rx {
    /// Receives what is pushed into `queue`.
    pub fn new(queue: Queue) -> Self {
        Self(queue)
    }
}

impl super::Rx for Rx {
    fn rx<F: FnMut(&mut [u8])>(
        &mut self,
        timeout: Duration,
        max: usize,
        on_frame: F,
    ) -> io::Result<usize> {
        if self.0.is_empty() && !timeout.is_zero() && !self.0.wait(timeout) {
            return Ok(0);
        }
        Ok(self.0.take(max, on_frame))
    }
}

/// Sends into a [`Queue`]. Frames are visible there as soon as they are pushed; `flush` does
/// nothing.
#[derive(Debug, Clone)]
pub struct Tx(Queue);

impl Tx {
    /// Sends into `queue`.
    pub fn new(queue: Queue) -> Self {
        Self(queue)
    }
}

impl super::Tx for Tx {
    fn push(&mut self, frame: &[u8]) -> bool {
        self.0.push(frame)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet_io::{Rx as _, Tx as _};

    #[test]
    fn frames_come_out_in_order_and_a_full_queue_refuses() {
        let q = Queue::new(3, 8);
        let (mut rx, mut tx) = (Rx::new(q.clone()), Tx::new(q.clone()));
        assert!(tx.push(b"one"));
        assert!(tx.push(b"two"));
        assert!(tx.push(b"three"));
        assert!(!tx.push(b"four"), "full");
        assert!(!Queue::new(1, 2).push(b"big"), "bigger than a slot");
        let mut got = Vec::new();
        let n = rx.rx(Duration::ZERO, 2, |f| got.push(f.to_vec())).unwrap();
        assert_eq!(n, 2);
        assert!(tx.push(b"four"), "room again, and the ring wraps");
        rx.rx(Duration::ZERO, 10, |f| got.push(f.to_vec())).unwrap();
        assert_eq!(got, [&b"one"[..], b"two", b"three", b"four"]);
        assert_eq!(q.refused(), 1);
    }

    #[test]
    fn rx_waits_for_a_frame_or_times_out() {
        let q = Queue::new(4, 64);
        let mut rx = Rx::new(q.clone());
        assert_eq!(rx.rx(Duration::from_millis(5), 8, |_| {}).unwrap(), 0);
        let pusher = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            q.push(b"late");
        });
        let mut got = Vec::new();
        let n = rx
            .rx(Duration::from_secs(5), 8, |f| got.push(f.to_vec()))
            .unwrap();
        pusher.join().unwrap();
        assert_eq!((n, got), (1, vec![b"late".to_vec()]));
    }
}
