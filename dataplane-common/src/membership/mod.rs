//! Gossip membership (SWIM, with the `foca` crate): every node knows within seconds when
//! another dies, without asking the store.
//!
//! foca is itself sans-IO: it takes bytes and timer events and emits packets, timers and
//! notifications through a runtime. Here:
//!
//! - [`Id`]: a member's identity (its gossip address and an incarnation that a restarted
//!   node bumps, so it is not mistaken for its dead predecessor).
//! - [`config`]: the timers for a fleet of a given size.
//! - [`udp`]: the runtime over a tokio UDP socket; it publishes the live members.
//! - [`join`]: seeds from the store's registrations, then [`udp::start`]; what the
//!   daemons call.
//! - `sim` (tests): the same members over an in-memory network with virtual time, for the
//!   1,000-member convergence measurement.
//!
//! Members are seeded from the store's node registrations (their `addresses.gossip`), so a
//! fleet starts converged; gossip keeps it so without the store.

pub mod join;
pub mod udp;

#[cfg(test)]
mod sim;

use foca::{Identity, NoCustomBroadcast, PostcardCodec};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::num::{NonZeroU8, NonZeroU32, NonZeroUsize};
use std::time::Duration;

/// A member: where it listens, and which life of that address it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Id {
    /// Its gossip address.
    pub addr: SocketAddr,
    /// Bumped when it rejoins under the same address.
    pub incarnation: u16,
}

impl Identity for Id {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(Self {
            addr: self.addr,
            incarnation: self.incarnation.wrapping_add(1),
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.incarnation > adversary.incarnation
    }
}

/// A member's SWIM state machine.
pub type Member = foca::Foca<Id, PostcardCodec, SmallRng, NoCustomBroadcast>;

/// A member with `config`, its RNG seeded with `seed`.
pub fn member(id: Id, config: foca::Config, seed: u64) -> Member {
    foca::Foca::new(id, config, SmallRng::seed_from_u64(seed), PostcardCodec)
}

/// Timers for a LAN fleet of about `size` members: a probe a second, a suspect declared
/// down after 3 s (foca's default, 4 × log10(size) probe periods, is 12 s at 1,000; we
/// trade a little tolerance to packet loss for detection within seconds), updates
/// retransmitted 4 × log10(size) times.
pub fn config(size: u32) -> foca::Config {
    let mut c = foca::Config::new_lan(NonZeroU32::new(size.max(1)).expect("invariant: max(1)"));
    c.probe_period = Duration::from_secs(1);
    c.probe_rtt = Duration::from_millis(400);
    c.suspect_to_down_after = Duration::from_secs(3);
    c.num_indirect_probes = NonZeroUsize::new(3).expect("invariant: 3");
    c.max_transmissions = c
        .max_transmissions
        .max(NonZeroU8::new(6).expect("invariant: 6"));
    c
}

/// A faster `config` for tests on loopback (probe every 200 ms, down after 600 ms).
pub fn fast_config(size: u32) -> foca::Config {
    let mut c = config(size);
    c.probe_period = Duration::from_millis(200);
    c.probe_rtt = Duration::from_millis(80);
    c.suspect_to_down_after = Duration::from_millis(600);
    c.periodic_gossip = Some(foca::PeriodicParams {
        frequency: Duration::from_millis(50),
        num_members: NonZeroUsize::new(3).expect("invariant: 3"),
    });
    c
}
