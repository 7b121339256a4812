//! Frames handed from the worker that received them to the worker that owns their session.
//!
//! With `AF_PACKET` the kernel's fanout program delivers each frame to its owner
//! ([`crate::io::steering`]). An `AF_XDP` socket receives only what the NIC hashed to its
//! queue, and the XDP program cannot redirect a frame to another queue's socket, so with
//! several queues a worker copies a frame it does not own into the owner's inbox and the
//! owner runs it through its datapath with its next batch. Every buffer is allocated up
//! front and goes round between an inbox and its free list: nothing is allocated per frame,
//! and a full inbox drops the frame and counts it (as a full NIC ring would).
//! Established flows that the XDP fast path forwards never come this way.

use crossbeam::queue::ArrayQueue;
use std::sync::atomic::{AtomicU64, Ordering};

/// One frame in flight between two workers.
#[derive(Debug)]
struct Parcel {
    len: usize,
    bytes: Box<[u8]>,
}

/// One worker's inbox and the buffers that feed it.
#[derive(Debug)]
struct Inbox {
    full: ArrayQueue<Parcel>,
    free: ArrayQueue<Parcel>,
}

/// The inboxes of all workers.
#[derive(Debug)]
pub struct Handoffs {
    inboxes: Vec<Inbox>,
    frame: usize,
    /// Frames handed on.
    pub sent: AtomicU64,
    /// Frames dropped because the owner's inbox was full (or the frame too long).
    pub dropped: AtomicU64,
}

impl Handoffs {
    /// Inboxes of `depth` frames of up to `frame` bytes for `workers` workers.
    pub fn new(workers: usize, depth: usize, frame: usize) -> Self {
        let inboxes = (0..workers)
            .map(|_| {
                let free = ArrayQueue::new(depth.max(1));
                while free
                    .push(Parcel {
                        len: 0,
                        bytes: vec![0; frame].into_boxed_slice(),
                    })
                    .is_ok()
                {}
                Inbox {
                    full: ArrayQueue::new(depth.max(1)),
                    free,
                }
            })
            .collect();
        Self {
            inboxes,
            frame,
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Copies `frame` into `owner`'s inbox; false (and counted) when it has no room.
    pub fn send(&self, owner: usize, frame: &[u8]) -> bool {
        let Some(inbox) = self.inboxes.get(owner) else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        let parcel = (frame.len() <= self.frame)
            .then(|| inbox.free.pop())
            .flatten();
        let Some(mut parcel) = parcel else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        parcel.bytes[..frame.len()].copy_from_slice(frame);
        parcel.len = frame.len();
        // The free list and the inbox hold the same buffers: there is always room.
        let _ = inbox.full.push(parcel);
        self.sent.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Runs `f` over the frames waiting in `owner`'s inbox (each as the datapath's mutable
    /// frame) and returns how many there were.
    pub fn drain(&self, owner: usize, mut f: impl FnMut(&mut [u8])) -> usize {
        let Some(inbox) = self.inboxes.get(owner) else {
            return 0;
        };
        let mut n = 0;
        while let Some(mut parcel) = inbox.full.pop() {
            f(&mut parcel.bytes[..parcel.len]);
            let _ = inbox.free.push(parcel);
            n += 1;
        }
        n
    }

    /// Whether `owner` has frames waiting.
    pub fn pending(&self, owner: usize) -> bool {
        self.inboxes.get(owner).is_some_and(|i| !i.full.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_reach_their_owner_in_order_and_a_full_inbox_drops_and_counts() {
        let h = Handoffs::new(2, 2, 16);
        assert!(h.send(1, b"one"));
        assert!(h.send(1, b"two"));
        assert!(!h.send(1, b"three"), "the inbox holds two");
        assert!(!h.send(0, &[0; 17]), "longer than a buffer");
        assert!(!h.send(5, b"x"), "no such worker");
        assert!(!h.pending(0));
        let mut got = Vec::new();
        assert_eq!(h.drain(1, |f| got.push(f.to_vec())), 2);
        assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(h.sent.load(Ordering::Relaxed), 2);
        assert_eq!(h.dropped.load(Ordering::Relaxed), 3);
        // The buffers went back: the inbox takes two more.
        assert!(h.send(1, b"three") && h.send(1, b"four"));
        assert_eq!(h.drain(1, |_| {}), 2);
    }

    #[test]
    fn many_senders_lose_nothing_that_fits() {
        let h = std::sync::Arc::new(Handoffs::new(1, 1024, 8));
        let senders: Vec<_> = (0..3u8)
            .map(|s| {
                let h = std::sync::Arc::clone(&h);
                std::thread::spawn(move || {
                    for i in 0..200u8 {
                        assert!(h.send(0, &[s, i]));
                    }
                })
            })
            .collect();
        for s in senders {
            s.join().unwrap();
        }
        let mut seen = vec![0u32; 3];
        h.drain(0, |f| seen[usize::from(f[0])] += 1);
        assert_eq!(seen, vec![200, 200, 200]);
    }
}
