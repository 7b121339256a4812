//! Forward upstreams' health: consecutive failures, with a cool-off once an upstream crosses
//! [`FALL`]. Shared by every resolution (atomics, no lock); `now` comes from the caller.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Consecutive failures that mark an upstream down.
pub const FALL: u32 = 3;
/// How long a down upstream is tried only after the others.
pub const COOL_OFF: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Upstream {
    addr: SocketAddr,
    fails: AtomicU32,
    /// Nanoseconds after `epoch` until which it counts as down.
    down_until: AtomicU64,
    answered: AtomicU64,
    failed: AtomicU64,
}

/// One upstream's state, for telemetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// The upstream.
    pub addr: SocketAddr,
    /// Not in its cool-off.
    pub up: bool,
    /// Failures since its last success.
    pub consecutive_failures: u32,
    /// Exchanges that succeeded, ever.
    pub answered: u64,
    /// Exchanges that failed (timeout, error, SERVFAIL or REFUSED), ever.
    pub failed: u64,
}

/// The health of a fixed set of upstreams.
#[derive(Debug)]
pub struct Health {
    epoch: Instant,
    upstreams: Vec<Upstream>,
}

impl Health {
    /// Every upstream starts healthy.
    pub fn new(epoch: Instant, addrs: impl IntoIterator<Item = SocketAddr>) -> Self {
        let mut upstreams: Vec<Upstream> = Vec::new();
        for addr in addrs {
            if !upstreams.iter().any(|u| u.addr == addr) {
                upstreams.push(Upstream {
                    addr,
                    fails: AtomicU32::new(0),
                    down_until: AtomicU64::new(0),
                    answered: AtomicU64::new(0),
                    failed: AtomicU64::new(0),
                });
            }
        }
        Self { epoch, upstreams }
    }

    fn at(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Whether `addr` is down at `now`.
    pub fn is_down(&self, now: Instant, addr: SocketAddr) -> bool {
        let t = self.at(now);
        self.upstreams
            .iter()
            .any(|u| u.addr == addr && u.down_until.load(Ordering::Relaxed) > t)
    }

    /// `list` with the healthy upstreams first, each group in its given order.
    pub fn order(&self, now: Instant, list: &[SocketAddr]) -> Vec<SocketAddr> {
        let (mut up, down): (Vec<_>, Vec<_>) = list.iter().partition(|a| !self.is_down(now, **a));
        up.extend(down);
        up
    }

    /// Every upstream's state at `now`.
    pub fn report(&self, now: Instant) -> impl Iterator<Item = Report> + '_ {
        let t = self.at(now);
        self.upstreams.iter().map(move |u| Report {
            addr: u.addr,
            up: u.down_until.load(Ordering::Relaxed) <= t,
            consecutive_failures: u.fails.load(Ordering::Relaxed),
            answered: u.answered.load(Ordering::Relaxed),
            failed: u.failed.load(Ordering::Relaxed),
        })
    }

    /// Records one exchange with `addr`.
    pub fn record(&self, now: Instant, addr: SocketAddr, ok: bool) {
        let Some(u) = self.upstreams.iter().find(|u| u.addr == addr) else {
            return;
        };
        let total = if ok { &u.answered } else { &u.failed };
        total.fetch_add(1, Ordering::Relaxed);
        if ok {
            u.fails.store(0, Ordering::Relaxed);
            u.down_until.store(0, Ordering::Relaxed);
        } else if u.fails.fetch_add(1, Ordering::Relaxed) + 1 >= FALL {
            let until = self.at(now + COOL_OFF);
            u.down_until.store(until, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane_common::clock::{Clock, ManualClock};

    #[test]
    fn failing_upstreams_go_last_until_they_recover() {
        let now = ManualClock::new().now();
        let a: SocketAddr = "127.0.0.1:53".parse().unwrap();
        let b: SocketAddr = "127.0.0.2:53".parse().unwrap();
        let h = Health::new(now, [a, b]);
        assert_eq!(h.order(now, &[a, b]), [a, b]);
        for _ in 0..FALL {
            h.record(now, a, false);
        }
        assert_eq!(h.order(now, &[a, b]), [b, a]);
        assert_eq!(h.order(now + COOL_OFF, &[a, b]), [a, b]);
        let r: Vec<Report> = h.report(now).collect();
        assert_eq!(
            (r[0].up, r[0].consecutive_failures, r[0].failed),
            (false, FALL, 3)
        );
        assert!(r[1].up);
        h.record(now, a, true);
        assert!(!h.is_down(now, a));
        let r: Vec<Report> = h.report(now).collect();
        assert_eq!(
            (r[0].up, r[0].consecutive_failures, r[0].answered),
            (true, 0, 1)
        );
    }
}
