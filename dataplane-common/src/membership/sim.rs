//! 1,000 members over an in-memory network with virtual time (foca's
//! `AccumulatingRuntime`, no sockets): how long until every live member knows of a death.

use super::{Id, Member, config, member};
use foca::{AccumulatingRuntime, Member as Update, OwnedNotification, Timer};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

enum Event {
    Timer(usize, Timer<Id>),
    Packet(usize, bytes::Bytes),
}

/// The network: members, a queue of events by virtual time, one-way latency.
struct Sim {
    members: Vec<Member>,
    alive: Vec<bool>,
    index: HashMap<SocketAddr, usize>,
    queue: BinaryHeap<Reverse<(Duration, u64)>>,
    events: HashMap<u64, Event>,
    seq: u64,
    now: Duration,
    rt: AccumulatingRuntime<Id>,
    /// When each member first heard that the watched member is down.
    down_seen: Vec<Option<Duration>>,
    watched: Option<Id>,
    packets: u64,
}

fn id(i: usize) -> Id {
    let i = u32::try_from(i).expect("small");
    Id {
        addr: SocketAddr::from((Ipv4Addr::from(0x0a00_0000 + i), 7946)),
        incarnation: 0,
    }
}

impl Sim {
    fn new(n: usize) -> Self {
        let cfg = config(u32::try_from(n).expect("small"));
        let members: Vec<Member> = (0..n)
            .map(|i| member(id(i), cfg.clone(), i as u64 + 1))
            .collect();
        let mut sim = Self {
            index: (0..n).map(|i| (id(i).addr, i)).collect(),
            alive: vec![true; n],
            members,
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            seq: 0,
            now: Duration::ZERO,
            rt: AccumulatingRuntime::new(),
            down_seen: vec![None; n],
            watched: None,
            packets: 0,
        };
        // Seeded from the registry: every member knows every other from the start.
        for i in 0..n {
            let others = (0..n).filter(|j| *j != i).map(|j| Update::alive(id(j)));
            sim.members[i]
                .apply_many(others, false, &mut sim.rt)
                .expect("seed");
            sim.drain(i);
        }
        sim
    }

    fn push(&mut self, at: Duration, e: Event) {
        self.seq += 1;
        self.events.insert(self.seq, e);
        self.queue.push(Reverse((at, self.seq)));
    }

    /// Moves what member `i` emitted into the queue.
    fn drain(&mut self, i: usize) {
        while let Some((to, data)) = self.rt.to_send() {
            if let Some(&j) = self.index.get(&to.addr) {
                // 0.5 to 1.5 ms one way.
                let jitter = Duration::from_micros(500 + (self.seq * 7919) % 1000);
                self.packets += 1;
                self.push(self.now + jitter, Event::Packet(j, data));
            }
        }
        while let Some((after, t)) = self.rt.to_schedule() {
            self.push(self.now + after, Event::Timer(i, t));
        }
        while let Some(n) = self.rt.to_notify() {
            if let OwnedNotification::MemberDown(d) = n
                && Some(d) == self.watched
                && self.down_seen[i].is_none()
            {
                self.down_seen[i] = Some(self.now);
            }
        }
    }

    /// Runs events until virtual time `until`.
    fn run_until(&mut self, until: Duration) {
        while let Some(Reverse((at, seq))) = self.queue.peek().copied() {
            if at > until {
                break;
            }
            self.queue.pop();
            self.now = at;
            let event = self.events.remove(&seq).expect("invariant: queued");
            let (i, result) = match event {
                Event::Timer(i, t) if self.alive[i] => {
                    (i, self.members[i].handle_timer(t, &mut self.rt))
                }
                Event::Packet(i, data) if self.alive[i] => {
                    (i, self.members[i].handle_data(&data, &mut self.rt))
                }
                _ => continue,
            };
            result.expect("foca accepts its own messages");
            self.drain(i);
        }
        self.now = until;
    }

    fn converged(&self) -> bool {
        (0..self.members.len()).all(|i| !self.alive[i] || self.down_seen[i].is_some())
    }
}

#[test]
fn a_death_among_1000_members_is_known_to_all_within_seconds() {
    let n = 1000;
    let mut sim = Sim::new(n);
    sim.run_until(Duration::from_secs(3));
    let victim = 500;
    sim.alive[victim] = false;
    sim.watched = Some(id(victim));
    let killed = sim.now;
    let step = Duration::from_millis(250);
    while !sim.converged() && sim.now < killed + Duration::from_secs(30) {
        let next = sim.now + step;
        sim.run_until(next);
    }
    assert!(
        sim.converged(),
        "not every member learnt of the death in 30 s"
    );
    let seen: Vec<Duration> = sim
        .down_seen
        .iter()
        .flatten()
        .map(|t| *t - killed)
        .collect();
    let first = seen.iter().min().copied().unwrap_or_default();
    let all = seen.iter().max().copied().unwrap_or_default();
    let mut sorted = seen.clone();
    sorted.sort();
    let p50 = sorted[sorted.len() / 2];
    println!(
        "figure: {n} members, death first declared after {first:?}, median {p50:?}, all {} live members after {all:?}; {} packets in {:?} of virtual time",
        seen.len(),
        sim.packets,
        sim.now
    );
    assert_eq!(seen.len(), n - 1);
    assert!(all < Duration::from_secs(15), "{all:?}");
}
