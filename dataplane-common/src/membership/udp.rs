//! The membership over UDP: one tokio task owns the socket and the [`Member`]; foca's
//! timers are tokio sleeps that come back through a channel. The live members' addresses
//! are published on a watch channel after every change.

use super::{Id, Member};
use foca::{AccumulatingRuntime, Member as Update, OwnedNotification, Timer};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

/// A running member.
#[derive(Debug)]
pub struct Agent {
    /// The live members' gossip addresses (this one included), sorted.
    pub live: watch::Receiver<Vec<SocketAddr>>,
    /// The bound address.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Agent {
    /// Stops it at once (as a crash would: no leave message).
    pub fn kill(self) {
        self.task.abort();
    }

    /// Waits for it to end (after its shutdown future completed; it leaves the cluster).
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

/// Binds `bind`, seeds the membership with `seeds` (e.g. from the store's registrations)
/// and runs until `shutdown`, leaving the cluster then.
///
/// # Errors
/// When the socket cannot be bound.
pub async fn start(
    bind: SocketAddr,
    config: foca::Config,
    seeds: Vec<SocketAddr>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<Agent> {
    let socket = UdpSocket::bind(bind).await?;
    let addr = socket.local_addr()?;
    let id = Id {
        addr,
        incarnation: 0,
    };
    let seed = u64::from(addr.port()) ^ u64::from(std::process::id()) << 16;
    let member = super::member(id, config, seed);
    let (live_tx, live) = watch::channel(vec![addr]);
    let task = tokio::spawn(serve(socket, member, seeds, live_tx, shutdown));
    Ok(Agent { live, addr, task })
}

async fn serve(
    socket: UdpSocket,
    mut member: Member,
    seeds: Vec<SocketAddr>,
    live: watch::Sender<Vec<SocketAddr>>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut rt = AccumulatingRuntime::new();
    let (timers_tx, mut timers) = mpsc::unbounded_channel::<Timer<Id>>();
    let me = member.identity().addr;
    let updates = seeds.into_iter().filter(|a| *a != me).map(|addr| {
        Update::alive(Id {
            addr,
            incarnation: 0,
        })
    });
    if let Err(e) = member.apply_many(updates, true, &mut rt) {
        tracing::warn!(error = %e, "cannot seed the membership");
    }
    let mut buf = vec![0u8; 65_536];
    loop {
        drain(&socket, &mut rt, &timers_tx, &member, &live).await;
        let result = tokio::select! {
            () = &mut shutdown => {
                let _ = member.leave_cluster(&mut rt);
                drain(&socket, &mut rt, &timers_tx, &member, &live).await;
                return;
            }
            Some(t) = timers.recv() => member.handle_timer(t, &mut rt),
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, _)) => member.handle_data(&buf[..n], &mut rt),
                Err(e) => {
                    tracing::debug!(error = %e, "gossip receive failed");
                    Ok(())
                }
            },
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "gossip message refused");
        }
    }
}

/// Sends what foca queued, schedules its timers, publishes membership changes.
async fn drain(
    socket: &UdpSocket,
    rt: &mut AccumulatingRuntime<Id>,
    timers: &mpsc::UnboundedSender<Timer<Id>>,
    member: &Member,
    live: &watch::Sender<Vec<SocketAddr>>,
) {
    while let Some((to, data)) = rt.to_send() {
        if let Err(e) = socket.send_to(&data, to.addr).await {
            tracing::debug!(to = %to.addr, error = %e, "gossip send failed");
        }
    }
    while let Some((after, timer)) = rt.to_schedule() {
        let tx = timers.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = tx.send(timer);
        });
    }
    let mut changed = false;
    while let Some(n) = rt.to_notify() {
        match n {
            OwnedNotification::MemberUp(id) => {
                changed = true;
                tracing::debug!(member = %id.addr, "member up");
            }
            OwnedNotification::MemberDown(id) => {
                changed = true;
                tracing::info!(member = %id.addr, "member down");
            }
            _ => {}
        }
    }
    if changed {
        let mut now: Vec<SocketAddr> = member.iter_members().map(|m| m.id().addr).collect();
        now.push(member.identity().addr);
        now.sort();
        now.dedup();
        live.send_replace(now);
    }
}

/// How long [`super::fast_config`] members need to notice a death, with margin (tests).
pub const FAST_DETECTION_BOUND: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, SystemClock};

    #[tokio::test]
    async fn three_members_over_udp_see_a_killed_one_go_down() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut agents = Vec::new();
        let mut seeds = Vec::new();
        for _ in 0..3 {
            let a = start(
                any,
                super::super::fast_config(3),
                seeds.clone(),
                std::future::pending(),
            )
            .await
            .unwrap();
            seeds.push(a.addr);
            agents.push(a);
        }
        let all: Vec<SocketAddr> = {
            let mut v = seeds.clone();
            v.sort();
            v
        };
        for a in &mut agents {
            let mut live = a.live.clone();
            tokio::time::timeout(Duration::from_secs(5), live.wait_for(|l| *l == all))
                .await
                .expect("joined")
                .unwrap();
        }
        let victim = agents.pop().unwrap();
        let dead = victim.addr;
        victim.kill();
        let t = SystemClock.now();
        for a in &agents {
            let mut live = a.live.clone();
            tokio::time::timeout(FAST_DETECTION_BOUND, live.wait_for(|l| !l.contains(&dead)))
                .await
                .expect("the death was noticed")
                .unwrap();
        }
        println!(
            "figure: 3 UDP members, death known to all after {:?}",
            SystemClock.now() - t
        );
    }
}
