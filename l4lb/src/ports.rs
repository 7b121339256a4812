//! Local (SNAT) ports for full-NAT, partitioned between workers.
//!
//! A real server's reply is addressed to a local address and port, and the NIC or an XDP
//! program must steer it to the worker that owns the session. So each worker owns a fixed
//! share of the ports: worker `w` of `n` owns the ports `p` in [`FIRST`]`..=65535` with
//! `(p - FIRST) % n == w`. The owner of a reply is `(dst_port - FIRST) % n`, which is a
//! single ethtool ntuple rule per worker with a port mask when `n` is a power of two (`FIRST`
//! is a multiple of every such `n` up to 1024), or one line of an XDP program otherwise.
//! Interleaving rather than contiguous blocks keeps every worker's ports spread over the range.
//!
//! There is no free list: a port is free towards a real server exactly when no session's
//! real tuple (real server → local address:port) uses it, which the real index answers. So a
//! local address serves up to ~64 K / n concurrent sessions *per real server*, and nothing
//! leaks when sessions expire. Allocation walks a per-address cursor through the worker's
//! ports, least recently handed out first, giving up after [`MAX_TRIES`] ports in use.
//!
//! The local addresses SHOULD be dedicated to SNAT: the host's own connections would draw
//! from the same port range.

use crate::flow::Addr;

/// The first port handed out.
pub const FIRST: u16 = 1024;
/// Ports tried per local address before giving up on it.
pub const MAX_TRIES: u32 = 64;

/// Which ports one worker owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    worker: u16,
    workers: u16,
}

impl Partition {
    /// Worker `worker` of `workers`. `worker` MUST be below `workers`.
    pub fn new(worker: u16, workers: u16) -> Self {
        assert!(
            worker < workers,
            "invariant: worker index below worker count"
        );
        Self { worker, workers }
    }

    /// How many ports the worker owns.
    pub fn len(&self) -> u32 {
        (u32::from(u16::MAX - FIRST) + 1 - u32::from(self.worker)).div_ceil(u32::from(self.workers))
    }

    /// Whether the worker owns no port (more workers than ports).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The worker's `k`-th port; `k` MUST be below [`Self::len`].
    pub fn port(&self, k: u32) -> u16 {
        (u32::from(FIRST) + u32::from(self.worker) + k * u32::from(self.workers)) as u16
    }

    /// The worker that owns `port`, or `None` below [`FIRST`].
    pub fn owner(port: u16, workers: u16) -> Option<u16> {
        port.checked_sub(FIRST).map(|p| p % workers)
    }
}

/// One worker's port cursors, one per local address.
#[derive(Debug, Clone)]
pub struct LocalPorts {
    partition: Partition,
    cursors: Vec<u32>,
}

impl LocalPorts {
    /// Cursors for `addresses` local addresses.
    pub fn new(partition: Partition, addresses: usize) -> Self {
        Self {
            partition,
            cursors: vec![0; addresses],
        }
    }

    /// The worker's partition.
    pub fn partition(&self) -> Partition {
        self.partition
    }

    /// A local address and port from `addresses` (indexes into the snapshot's local list,
    /// with `local(i)` the address) for which `is_free(address, port)` holds.
    pub fn allocate(
        &mut self,
        addresses: &[u32],
        local: impl Fn(u32) -> Addr,
        mut is_free: impl FnMut(&Addr, u16) -> bool,
    ) -> Option<(Addr, u16)> {
        let len = self.partition.len();
        if len == 0 {
            return None;
        }
        for &a in addresses {
            let addr = local(a);
            let cursor = self.cursors.get_mut(a as usize)?;
            for _ in 0..MAX_TRIES.min(len) {
                let port = self.partition.port(*cursor);
                *cursor = (*cursor + 1) % len;
                if is_free(&addr, port) {
                    return Some((addr, port));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_cover_the_range_once() {
        let workers = 3;
        let mut seen = vec![0u8; 65_536];
        for w in 0..workers {
            let p = Partition::new(w, workers);
            for k in 0..p.len() {
                let port = p.port(k);
                assert_eq!(Partition::owner(port, workers), Some(w));
                seen[usize::from(port)] += 1;
            }
        }
        assert!(seen[..1024].iter().all(|&c| c == 0));
        assert!(seen[1024..].iter().all(|&c| c == 1));
    }

    #[test]
    fn skips_ports_in_use_and_gives_up() {
        let mut lp = LocalPorts::new(Partition::new(1, 4), 1);
        let a = Addr::v4([10, 9, 0, 1]);
        let got = lp.allocate(&[0], |_| a, |_, p| p != 1025);
        assert_eq!(got, Some((a, 1029)));
        assert_eq!(lp.allocate(&[0], |_| a, |_, _| false), None);
    }
}
