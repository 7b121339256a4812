//! The datapath's side of the XDP fast path ([`crate::fastpath`]): which sessions go into the
//! map and when, what comes back from it. PURE: it only queues [`Intent`]s and takes reports.

use super::{Datapath, account_gone};
use crate::counters::Counters;
use crate::fastpath::{self, Entry, Intent, Intents, Key, Totals, Value};
use crate::table::{Session, SessionId, State};
use crate::tick::{self, Tick};
use crate::vips::Vips;
use dataplane_common::model::ForwardingMode;

/// What the fast path has done, as far as this worker knows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FastPathStats {
    /// Packets the XDP program forwarded (folded in so far).
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Sessions whose entries were asked to be installed.
    pub installs: u64,
    /// Sessions whose entries were asked to be removed.
    pub removals: u64,
    /// Map operations that failed (reported by the I/O edge).
    pub errors: u64,
}

/// A worker's fast-path state: its queue and where its poll is.
#[derive(Debug)]
pub(super) struct FastPath {
    intents: Intents,
    poll: Tick,
    cursor: u32,
    polled: Tick,
    stats: FastPathStats,
}

impl FastPath {
    pub(super) fn new(config: fastpath::Config, now: Tick) -> Self {
        Self {
            intents: Intents::with_capacity(config.queue),
            poll: config.poll.max(1),
            cursor: 0,
            polled: now,
            stats: FastPathStats::default(),
        }
    }

    /// After a snapshot swap, for each session (`before` under `old`, `s` under `new`):
    /// if its entries would now say something else (a real server's MAC changed, a DR real
    /// server left), they are removed, and its next packet through user space installs new
    /// ones.
    pub(super) fn remapped(&mut self, old: &Vips, new: &Vips, before: &Session, s: &mut Session) {
        if !s.fast {
            return;
        }
        let was = entries(old, before);
        if was == entries(new, s) {
            return;
        }
        if let Some((client, real)) = was {
            self.intents.push(Intent::Remove {
                client: client.key,
                real: real.map(|e| e.key),
                vip: s.vip,
                real_server: s.real_server,
                folded: s.folded,
            });
            self.stats.removals += 1;
        }
        s.fast = false;
        s.folded = Totals::default();
    }

    /// Queues the removal of `s`'s entries, if it has any.
    pub(super) fn gone(&mut self, vips: &Vips, s: &Session) {
        if !s.fast {
            return;
        }
        if let Some((client, real)) = entries(vips, s) {
            self.intents.push(Intent::Remove {
                client: client.key,
                real: real.map(|e| e.key),
                vip: s.vip,
                real_server: s.real_server,
                folded: s.folded,
            });
            self.stats.removals += 1;
        }
    }
}

/// A session's entries under snapshot `vips`: its client direction, and for full-NAT its
/// reply direction; `None` when it cannot be fast-pathed (IPv6; a DR real server gone).
fn entries(vips: &Vips, s: &Session) -> Option<(Entry, Option<Entry>)> {
    let link = vips.link();
    let client = Key::of(&s.client)?;
    match s.mode {
        ForwardingMode::FullNat => {
            let real = Key::of(&s.real)?;
            let to_real = s.real.reversed();
            let real_mac = vips.real_mac(s.real_server, &s.real.src);
            Some((
                Entry {
                    key: client,
                    value: Value::nat(&s.client, &to_real, link.mac, real_mac),
                },
                Some(Entry {
                    key: real,
                    value: Value::nat(&s.real, &s.client.reversed(), link.mac, link.gateway),
                }),
            ))
        }
        ForwardingMode::Dr => {
            let r = vips.real_servers().get(s.real_server as usize)?;
            Some((
                Entry {
                    key: client,
                    value: Value::dr(link.mac, r.mac),
                },
                None,
            ))
        }
    }
}

/// Adds `added` to a VIP's and a real server's traffic.
fn count(counters: &mut Counters, vip: u32, real_server: u32, added: Totals) {
    for c in [
        counters.vips.get_mut(vip as usize),
        counters.real_servers.get_mut(real_server as usize),
    ]
    .into_iter()
    .flatten()
    {
        c.packets += added.packets;
        c.bytes += added.bytes;
    }
}

impl Datapath {
    /// Moves the queued fast-path intents to the end of `into`, in order. The caller MUST
    /// carry them out in that order, [`Intent::Poll`] and [`Intent::Remove`] ending in
    /// [`Datapath::fast_path_report`] and [`Datapath::fast_path_removed`].
    pub fn take_fast_path_intents(&mut self, into: &mut Vec<Intent>) {
        if let Some(f) = &mut self.fast {
            f.intents.drain_into(into);
        }
    }

    /// Whether intents are queued.
    pub fn has_fast_path_intents(&self) -> bool {
        self.fast.as_ref().is_some_and(|f| !f.intents.is_empty())
    }

    /// What the fast path did, as reported so far.
    pub fn fast_path_stats(&self) -> Option<FastPathStats> {
        self.fast.as_ref().map(|f| f.stats)
    }

    /// The answer to an [`Intent::Poll`] at `now_ticks`: `totals` is what the session's
    /// entries counted since they were installed. What is new is folded into the session
    /// (which was then seen now) and the counters; a session that is still expired after
    /// that is removed (and its entries with it).
    pub fn fast_path_report(
        &mut self,
        now_ticks: u64,
        session: SessionId,
        client: &Key,
        totals: Totals,
    ) {
        let now = tick::truncate(now_ticks);
        let Some(f) = &mut self.fast else { return };
        let Some(s) = self.table.slots().get(session.index()) else {
            return;
        };
        if !s.is_live() || !s.fast || Key::of(&s.client).as_ref() != Some(client) {
            return;
        }
        let s = self.table.get_mut(session);
        // Counters only grow while the entries live; anything else is not ours to fold.
        if totals.packets > s.folded.packets && totals.bytes >= s.folded.bytes {
            let added = totals.since(s.folded);
            s.folded = totals;
            s.last_seen = now;
            s.packets += added.packets;
            s.bytes += added.bytes;
            f.stats.packets += added.packets;
            f.stats.bytes += added.bytes;
            let (vip, rs) = (s.vip, s.real_server);
            count(&mut self.counters, vip, rs, added);
        }
        if self
            .table
            .timeouts()
            .is_expired(self.table.get(session), now)
        {
            let s = self.table.remove(session);
            self.counters.expired += 1;
            account_gone(&mut self.counters, &s);
            f.gone(&self.vips, &s);
        }
    }

    /// The answer to an [`Intent::Remove`]: what its entries counted after the session's
    /// last fold.
    pub fn fast_path_removed(&mut self, vip: u32, real_server: u32, added: Totals) {
        let Some(f) = &mut self.fast else { return };
        f.stats.packets += added.packets;
        f.stats.bytes += added.bytes;
        count(&mut self.counters, vip, real_server, added);
    }

    /// Counts `n` map operations that failed.
    pub fn fast_path_errors(&mut self, n: u64) {
        if let Some(f) = &mut self.fast {
            f.stats.errors += n;
        }
    }

    /// After a packet of session `id` went through user space: installs its entries once
    /// it is established (TCP) or at once (UDP).
    #[inline]
    pub(super) fn fast_install(&mut self, id: SessionId) {
        let Some(f) = &mut self.fast else { return };
        let s = self.table.get_mut(id);
        if s.fast || !matches!(s.state, State::Established | State::Udp) {
            return;
        }
        if let Some((client, real)) = entries(&self.vips, s) {
            s.fast = true;
            s.folded = Totals::default();
            f.intents.push(Intent::Install { client, real });
            f.stats.installs += 1;
        }
    }

    /// Queues the removal of a session just taken out of the table.
    #[inline]
    pub(super) fn fast_gone(&mut self, s: &Session) {
        if let Some(f) = &mut self.fast {
            f.gone(&self.vips, s);
        }
    }

    /// The sweep: like [`crate::table::Table::sweep`], but an expired session with entries is
    /// polled first (its report removes it if it is still idle), and every session with entries
    /// is polled once per poll interval.
    pub(super) fn fast_sweep(&mut self, now: Tick, max_slots: u32) -> u32 {
        let Some(f) = &mut self.fast else {
            return 0;
        };
        let counters = &mut self.counters;
        let intents = &mut f.intents;
        let n = self.table.sweep_with(
            now,
            max_slots,
            |id, s| {
                if s.fast {
                    poll(intents, id, s);
                }
                s.fast
            },
            |s| account_gone(counters, s),
        );
        // The poll: a whole lap of the table per poll interval.
        let elapsed = tick::since(now, f.polled);
        let cap = self.table.capacity();
        let budget = (u64::from(cap) * u64::from(elapsed) / u64::from(f.poll)).min(u64::from(cap));
        if budget > 0 {
            f.polled = now;
            let slots = self.table.slots();
            for _ in 0..budget {
                let id = SessionId(f.cursor);
                f.cursor = if f.cursor + 1 >= cap { 0 } else { f.cursor + 1 };
                let s = &slots[id.index()];
                if s.is_live() && s.fast {
                    poll(&mut f.intents, id, s);
                }
            }
        }
        n
    }
}

fn poll(intents: &mut Intents, id: SessionId, s: &Session) {
    if let Some(client) = Key::of(&s.client) {
        let real = match s.mode {
            ForwardingMode::FullNat => Key::of(&s.real),
            ForwardingMode::Dr => None,
        };
        intents.push(Intent::Poll {
            session: id,
            client,
            real,
        });
    }
}

#[cfg(test)]
mod tests;
