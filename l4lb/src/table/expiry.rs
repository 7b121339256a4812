//! When sessions end: a TCP state machine seen from the middle, per-state idle timeouts, and
//! an incremental sweep that visits a bounded number of slots per call.
//!
//! The balancer sees both directions for full-NAT and only the client's for DR, so the
//! machine is deliberately coarse: it only needs to tell "opening", "open" and "closing"
//! apart to choose a timeout. A session expires when it has been idle (no packet) for its
//! state's timeout. Lookups also treat an expired session as gone, so the sweep only bounds
//! memory; it is not needed for correctness.

use super::Table;
use super::session::{Session, SessionId};
use crate::packet::tcp::{ACK, FIN, RST, SYN};
use crate::tick::{self, Tick};
use std::time::Duration;

/// A session's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum State {
    /// A free slot.
    #[default]
    Free,
    /// TCP: the client's SYN was seen, nothing back yet.
    SynSent,
    /// TCP: the real server's SYN-ACK was seen.
    SynRecv,
    /// TCP: the handshake completed (or, for DR, the client sent an ACK).
    Established,
    /// TCP: the client sent a FIN.
    ClientFin,
    /// TCP: the real server sent a FIN.
    RealFin,
    /// TCP: both sides sent a FIN, or either sent a RST.
    Closed,
    /// UDP: no states, one timeout.
    Udp,
}

/// Which side sent a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The client (towards the VIP).
    FromClient,
    /// The real server (towards the local address).
    FromReal,
}

impl State {
    /// The state of a new TCP session whose first packet has `flags`: a SYN opens, anything
    /// else (allowed for DR only) is taken as mid-flow.
    pub fn open_tcp(flags: u8) -> Self {
        if flags & (SYN | ACK) == SYN {
            Self::SynSent
        } else {
            Self::Established
        }
    }

    /// The state after a TCP segment with `flags` from `dir`.
    #[must_use]
    pub fn on_tcp(self, dir: Direction, flags: u8) -> Self {
        use Direction::{FromClient, FromReal};
        if flags & RST != 0 {
            return Self::Closed;
        }
        if flags & FIN != 0 {
            return match (self, dir) {
                (Self::RealFin, FromClient) | (Self::ClientFin, FromReal) | (Self::Closed, _) => {
                    Self::Closed
                }
                (_, FromClient) => Self::ClientFin,
                (_, FromReal) => Self::RealFin,
            };
        }
        match (self, dir) {
            (Self::SynSent, FromReal) if flags & (SYN | ACK) == SYN | ACK => Self::SynRecv,
            (Self::SynSent | Self::SynRecv, FromClient) if flags & (SYN | ACK) == ACK => {
                Self::Established
            }
            (s, _) => s,
        }
    }
}

/// Idle timeouts per state, in ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// [`State::SynSent`] and [`State::SynRecv`]: short, so SYN floods do not fill the table.
    pub opening: Tick,
    /// [`State::Established`]: long.
    pub established: Tick,
    /// [`State::ClientFin`] and [`State::RealFin`]: short.
    pub closing: Tick,
    /// [`State::Closed`]: short; long enough for the last ACK and stray retransmissions.
    pub closed: Tick,
    /// [`State::Udp`].
    pub udp: Tick,
}

impl Default for Timeouts {
    /// SYN 10 s, established 15 min, FIN 30 s, closed 10 s, UDP 5 min (close to IPVS).
    fn default() -> Self {
        Self {
            opening: tick::ticks(Duration::from_secs(10)),
            established: tick::ticks(Duration::from_secs(900)),
            closing: tick::ticks(Duration::from_secs(30)),
            closed: tick::ticks(Duration::from_secs(10)),
            udp: tick::ticks(Duration::from_secs(300)),
        }
    }
}

impl Timeouts {
    /// The idle timeout of `state`.
    #[inline]
    pub fn of(&self, state: State) -> Tick {
        match state {
            State::Free => 0,
            State::SynSent | State::SynRecv => self.opening,
            State::Established => self.established,
            State::ClientFin | State::RealFin => self.closing,
            State::Closed => self.closed,
            State::Udp => self.udp,
        }
    }

    /// Whether `s` has been idle for its state's timeout at `now`.
    #[inline]
    pub fn is_expired(&self, s: &Session, now: Tick) -> bool {
        tick::since(now, s.last_seen) >= self.of(s.state)
    }
}

impl Table {
    /// Visits up to `max_slots` slab slots from where the last call stopped and removes the
    /// sessions found expired at `now`, handing each to `on_expired`. Returns how many were
    /// removed. Calling it with a budget of B slots per T ticks visits every slot once per
    /// `capacity / B × T` ticks.
    pub fn sweep(&mut self, now: Tick, max_slots: u32, on_expired: impl FnMut(&Session)) -> u32 {
        self.sweep_with(now, max_slots, |_, _| false, on_expired)
    }

    /// [`Table::sweep`], except that an expired session for which `keep` says `true` stays
    /// (the fast path's sessions: their packets may have gone by in the kernel, so their
    /// counters are read first; see [`crate::fastpath`]).
    pub fn sweep_with(
        &mut self,
        now: Tick,
        max_slots: u32,
        mut keep: impl FnMut(SessionId, &Session) -> bool,
        mut on_expired: impl FnMut(&Session),
    ) -> u32 {
        let cap = self.capacity();
        let mut removed = 0;
        for _ in 0..max_slots.min(cap) {
            let id = SessionId(self.sweep_cursor);
            self.sweep_cursor = if self.sweep_cursor + 1 == cap {
                0
            } else {
                self.sweep_cursor + 1
            };
            let s = self.get(id);
            if s.is_live() && self.timeouts.is_expired(s, now) && !keep(id, s) {
                let s = self.remove(id);
                on_expired(&s);
                removed += 1;
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::Direction::{FromClient, FromReal};
    use super::*;

    #[test]
    fn full_nat_handshake_and_close() {
        let mut s = State::open_tcp(SYN);
        assert_eq!(s, State::SynSent);
        s = s.on_tcp(FromReal, SYN | ACK);
        assert_eq!(s, State::SynRecv);
        s = s.on_tcp(FromClient, ACK);
        assert_eq!(s, State::Established);
        s = s.on_tcp(FromClient, ACK);
        assert_eq!(s, State::Established);
        s = s.on_tcp(FromClient, FIN | ACK);
        assert_eq!(s, State::ClientFin);
        s = s.on_tcp(FromClient, FIN | ACK); // retransmitted
        assert_eq!(s, State::ClientFin);
        s = s.on_tcp(FromReal, FIN | ACK);
        assert_eq!(s, State::Closed);
    }

    #[test]
    fn dr_sees_only_the_client_and_rst_closes() {
        let s = State::open_tcp(SYN).on_tcp(FromClient, ACK);
        assert_eq!(s, State::Established);
        assert_eq!(State::open_tcp(ACK), State::Established);
        assert_eq!(s.on_tcp(FromReal, RST | ACK), State::Closed);
    }

    #[test]
    fn timeouts_follow_the_state() {
        let t = Timeouts {
            opening: 5,
            established: 100,
            closing: 7,
            closed: 3,
            udp: 50,
        };
        let mut s = Session {
            state: State::SynSent,
            last_seen: u32::MAX - 1, // ages wrap
            ..Session::FREE
        };
        assert!(!t.is_expired(&s, 2));
        assert!(t.is_expired(&s, 3));
        s.state = State::Established;
        assert!(!t.is_expired(&s, 97));
        assert!(t.is_expired(&s, 98));
        s.state = State::Udp;
        assert!(t.is_expired(&s, 48));
        s.state = State::Closed;
        assert!(t.is_expired(&s, 1));
        assert!(!t.is_expired(&s, 0));
    }
}
