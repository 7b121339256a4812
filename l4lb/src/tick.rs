//! The datapath's unit of time.
//!
//! The caller passes `now` as a count of ticks since any fixed epoch; a tick is one millisecond.
//! Sessions keep the low 32 bits ([`Tick`]) and compare them with wrapping subtraction, which
//! is exact for any age below 2³² ticks (49 days): far longer than any timeout, and the expiry
//! sweep visits every slot much more often than that.

use std::time::Duration;

/// A tick in 32 bits, as sessions store it.
pub type Tick = u32;

/// Ticks in one second.
pub const TICKS_PER_SECOND: u64 = 1_000;

/// `d` in ticks, saturating at `u32::MAX`.
pub fn ticks(d: Duration) -> Tick {
    let t = d.as_millis().saturating_mul(u128::from(TICKS_PER_SECOND)) / 1_000;
    Tick::try_from(t).unwrap_or(Tick::MAX)
}

/// The low 32 bits of a caller's 64-bit tick count.
#[inline]
pub fn truncate(now: u64) -> Tick {
    now as Tick
}

/// Ticks elapsed from `then` to `now`, wrapping.
#[inline]
pub fn since(now: Tick, then: Tick) -> Tick {
    now.wrapping_sub(then)
}
