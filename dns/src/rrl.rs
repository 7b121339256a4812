//! Response rate limiting (RRL), as Knot and BIND do it: responses to one client prefix are
//! limited to a rate; past it, most are dropped and every `slip`-th is sent truncated (TC
//! set, no answer) so that a real client retries over TCP while a spoofed victim of a
//! reflection attack gets little.
//!
//! PURE: a fixed table of token buckets indexed by a hash of the client prefix; collisions
//! share a bucket (they err on the side of limiting). One limiter per worker, so the rate
//! is per worker: with SO_REUSEPORT a client's queries spread over workers, so the
//! effective limit is up to `workers x rate` (documented in the config).

use std::net::IpAddr;
use std::time::Instant;

/// What to do with one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Within the rate: send it.
    Send,
    /// Over the rate: send a truncated reply instead (TC=1, header and question only).
    Slip,
    /// Over the rate: send nothing.
    Drop,
}

/// RRL settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Responses per second per client prefix.
    pub rate: u32,
    /// Every `slip`-th limited response is sent truncated; 0 never, 1 always.
    pub slip: u32,
    /// IPv4 clients are grouped by this prefix length.
    pub prefix_v4: u8,
    /// IPv6 clients are grouped by this prefix length.
    pub prefix_v6: u8,
    /// Buckets (rounded up to a power of two).
    pub buckets: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            rate: 20,
            slip: 2,
            prefix_v4: 24,
            prefix_v6: 56,
            buckets: 1 << 16,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Whole-second tick of the last refill.
    second: u64,
    /// Responses left this second.
    tokens: u32,
    /// Limited responses so far (for slip).
    limited: u32,
}

/// One worker's limiter.
#[derive(Debug)]
pub struct Limiter {
    settings: Settings,
    epoch: Instant,
    buckets: Box<[Bucket]>,
    mask: usize,
}

impl Limiter {
    /// A limiter whose time starts at `epoch`.
    pub fn new(settings: Settings, epoch: Instant) -> Self {
        let n = settings.buckets.max(1).next_power_of_two();
        Self {
            settings,
            epoch,
            buckets: vec![Bucket::default(); n].into_boxed_slice(),
            mask: n - 1,
        }
    }

    /// Decides what to do with one response to `client` at `now`.
    pub fn check(&mut self, now: Instant, client: IpAddr) -> Action {
        let second = now.saturating_duration_since(self.epoch).as_secs() + 1;
        let slot = (prefix_hash(client, &self.settings) as usize) & self.mask;
        let b = &mut self.buckets[slot];
        if b.second != second {
            *b = Bucket {
                second,
                tokens: self.settings.rate,
                limited: 0,
            };
        }
        if b.tokens > 0 {
            b.tokens -= 1;
            return Action::Send;
        }
        b.limited = b.limited.wrapping_add(1);
        match self.settings.slip {
            0 => Action::Drop,
            s if b.limited.is_multiple_of(s) => Action::Slip,
            _ => Action::Drop,
        }
    }
}

/// Cuts a reply down to its header and question with TC set, for a slipped response.
/// Returns the new length (the old one if the reply is not well-formed, which ours always is).
pub fn slip(reply: &mut [u8], len: usize) -> usize {
    const HEADER: usize = 12;
    let mut i = HEADER;
    loop {
        let Some(&label) = reply.get(i) else {
            return len;
        };
        match label {
            0 => {
                i += 1;
                break;
            }
            l if l & 0xC0 == 0xC0 => {
                i += 2;
                break;
            }
            l => i += usize::from(l) + 1,
        }
    }
    let end = i + 4; // QTYPE and QCLASS
    if end > len || reply.len() < HEADER {
        return len;
    }
    reply[2] |= 0x02; // TC
    reply[6..12].fill(0); // ANCOUNT, NSCOUNT, ARCOUNT
    end
}

fn prefix_hash(client: IpAddr, s: &Settings) -> u64 {
    let (bits, len): (u128, u8) = match client {
        IpAddr::V4(a) => (u128::from(u32::from(a)) << 96, s.prefix_v4.min(32)),
        IpAddr::V6(a) => (u128::from(a), s.prefix_v6.min(128)),
    };
    let masked = if len == 0 {
        0
    } else {
        bits & (u128::MAX << (128 - u32::from(len)))
    };
    let family = u128::from(client.is_ipv6());
    // A fixed 64-bit mix (splitmix64 over both halves): the same on every run.
    let mut x = (masked as u64) ^ ((masked >> 64) as u64).rotate_left(29) ^ (family << 63) as u64;
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane_common::clock::{Clock, ManualClock};
    use std::time::Duration;

    #[test]
    fn limits_per_prefix_per_second_and_slips() {
        let clock = ManualClock::new();
        let settings = Settings {
            rate: 5,
            slip: 2,
            ..Settings::default()
        };
        let mut rrl = Limiter::new(settings, clock.now());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let same_24: IpAddr = "192.0.2.200".parse().unwrap();
        let other: IpAddr = "198.51.100.1".parse().unwrap();
        let actions: Vec<Action> = (0..9).map(|_| rrl.check(clock.now(), a)).collect();
        assert_eq!(&actions[..5], &[Action::Send; 5]);
        assert_eq!(
            &actions[5..],
            &[Action::Drop, Action::Slip, Action::Drop, Action::Slip]
        );
        assert_eq!(
            rrl.check(clock.now(), same_24),
            Action::Drop,
            "the /24 shares the budget"
        );
        assert_eq!(
            rrl.check(clock.now(), other),
            Action::Send,
            "another prefix has its own"
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            rrl.check(clock.now(), a),
            Action::Send,
            "the budget refills every second"
        );
    }

    #[test]
    fn slip_keeps_header_and_question() {
        let mut reply = vec![0xab, 0xcd, 0x84, 0x00, 0, 1, 0, 1, 0, 0, 0, 1];
        reply.extend_from_slice(&[3, b'w', b'w', b'w', 0, 0, 1, 0, 1]);
        let question_end = reply.len();
        reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 0, 0, 1]);
        let len = reply.len();
        assert_eq!(slip(&mut reply, len), question_end);
        assert_eq!(reply[2] & 0x02, 0x02, "TC set");
        assert_eq!(&reply[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn slip_zero_never_answers_and_one_always_truncates() {
        let clock = ManualClock::new();
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        for (slip, expect) in [(0, Action::Drop), (1, Action::Slip)] {
            let mut rrl = Limiter::new(
                Settings {
                    rate: 1,
                    slip,
                    ..Settings::default()
                },
                clock.now(),
            );
            assert_eq!(rrl.check(clock.now(), ip), Action::Send);
            assert_eq!(rrl.check(clock.now(), ip), expect);
        }
    }
}
