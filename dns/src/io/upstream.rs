//! The resolver's sockets: drives [`Resolution`]s against real servers, and the service that
//! takes cache misses from the workers and replies to the clients when resolution completes.
//!
//! Each upstream query gets a fresh UDP socket bound to a random port and a random ID, both
//! from the OS CSPRNG (RFC 5452 section 9.2), and is connected to the server so the kernel
//! drops datagrams from other sources; the state machine checks source, ID and question again.
//! A truncated reply is retried over TCP. Questions already being resolved are not resolved
//! twice: later askers wait for the first resolution. Every exchange and resolution is counted
//! in [`Metrics`].

use crate::recursor::cache::{Entry, Lookup};
use crate::recursor::health::Health;
use crate::recursor::metrics::{self, Exchange, Metrics};
use crate::recursor::reply::Asked;
use crate::recursor::resolve::{Answer, Resolution, Stats, Step, Verdict};
use crate::recursor::{Cache, Front, Mode, Settings};
use crate::respond::Transport;
use dataplane_common::clock::{Clock, SystemClock};
use dataplane_common::telemetry::Telemetry;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Misses queued between the workers and the resolver; beyond it a miss is dropped (the
/// client retries).
pub const QUEUE: usize = 4096;

/// A cache miss handed over by a worker.
#[derive(Debug)]
pub struct Miss {
    /// Who asked.
    pub client: SocketAddr,
    /// The query, as received.
    pub query: Box<[u8]>,
    /// The worker's socket to reply from; `None` for a prefetch (resolve and cache only).
    pub socket: Option<Arc<StdUdpSocket>>,
}

/// Where a resolved answer goes.
#[derive(Debug)]
enum Waiter {
    Udp(Miss),
    Tcp(oneshot::Sender<Resolved>),
}

/// What a resolution left for its waiters.
#[derive(Debug, Clone)]
enum Resolved {
    Entry { entry: Arc<Entry>, stale: bool },
    Failed,
}

type Key = (Box<[u8]>, u16);

/// The resolver shared by the service and the TCP connections.
#[derive(Debug)]
pub struct Resolver {
    settings: Settings,
    cache: Arc<Cache>,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    payload: u16,
    inflight: Mutex<HashMap<Key, Vec<Waiter>>>,
    slots: Semaphore,
}

impl Resolver {
    /// A resolver filling `cache`; replies advertise `payload` octets of EDNS. Its metrics
    /// (and the cache's) are registered in `telemetry`.
    pub fn new(
        settings: Settings,
        cache: Arc<Cache>,
        payload: u16,
        telemetry: &Telemetry,
    ) -> Arc<Self> {
        let health = Arc::new(Health::new(
            SystemClock.now(),
            settings
                .forward
                .iter()
                .flat_map(|z| z.upstreams.iter().copied()),
        ));
        let metrics = Metrics::register(telemetry, &cache, &health, SystemClock);
        let slots = Semaphore::new(settings.max_inflight.max(1));
        Arc::new(Self {
            settings,
            cache,
            health,
            metrics,
            payload,
            inflight: Mutex::new(HashMap::new()),
            slots,
        })
    }

    /// The workers' way to the cache: take one per worker with [`Front::worker`].
    pub fn front(&self) -> Front {
        Front::new(
            Arc::clone(&self.cache),
            Arc::new(self.settings.allow.clone()),
            &self.metrics,
        )
    }

    /// The workers' end of a miss queue whose other end is [`Self::serve`]'s.
    pub fn handoff(&self, tx: mpsc::Sender<Miss>) -> Handoff {
        Handoff {
            tx,
            metrics: Some(Arc::clone(&self.metrics)),
        }
    }

    /// Takes misses from the workers until `shutdown` resolves.
    pub async fn serve(
        self: Arc<Self>,
        mut misses: mpsc::Receiver<Miss>,
        shutdown: impl Future<Output = ()> + Send,
    ) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                m = misses.recv() => match m {
                    Some(m) => {
                        let Ok(asked) = Asked::read(&m.query, Transport::Udp, self.payload) else {
                            continue;
                        };
                        if m.socket.is_none() {
                            self.metrics.prefetch();
                        }
                        self.dispatch(&asked, Waiter::Udp(m));
                    }
                    None => return,
                },
            }
        }
    }

    /// Resolves `query` (over TCP) and writes the reply into `out`; returns its length.
    pub async fn answer(self: &Arc<Self>, query: &[u8], out: &mut [u8]) -> Option<usize> {
        let asked = Asked::read(query, Transport::Tcp, self.payload).ok()?;
        let (tx, rx) = oneshot::channel();
        self.dispatch(&asked, Waiter::Tcp(tx));
        let resolved = rx.await.unwrap_or(Resolved::Failed);
        Some(self.render(&asked, &resolved, query, out))
    }

    fn dispatch(self: &Arc<Self>, asked: &Asked, waiter: Waiter) {
        let key: Key = (asked.qname.as_bytes().into(), asked.qtype);
        {
            let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(w) = inflight.get_mut(&key) {
                w.push(waiter);
                return;
            }
            inflight.insert(key.clone(), vec![waiter]);
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let resolved = {
                let _slot = this.slots.acquire().await;
                this.resolve(&key.0, key.1).await
            };
            let waiters = this
                .inflight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key)
                .unwrap_or_default();
            if matches!(resolved, Resolved::Failed) {
                this.cache.prefetch_done(&key.0, key.1);
            }
            let mut out = vec![0u8; 4096];
            for w in waiters {
                match w {
                    Waiter::Tcp(tx) => {
                        let _ = tx.send(resolved.clone());
                    }
                    Waiter::Udp(Miss {
                        client,
                        query,
                        socket: Some(socket),
                    }) => {
                        let Ok(asked) = Asked::read(&query, Transport::Udp, this.payload) else {
                            continue;
                        };
                        let len = this.render(&asked, &resolved, &query, &mut out);
                        if len > 0
                            && let Err(e) = socket.send_to(&out[..len], client)
                        {
                            tracing::debug!(error = %e, %client, "reply after resolution failed");
                        }
                    }
                    Waiter::Udp(_) => {}
                }
            }
        });
    }

    /// Resolves (`qname`, `qtype`), caches the answer, and falls back to a stale entry.
    async fn resolve(&self, qname: &[u8], qtype: u16) -> Resolved {
        let started = SystemClock.now();
        let (answer, stats) = self.run(qname, qtype).await;
        let now = SystemClock.now();
        let (resolved, how) = self.keep(now, qname, qtype, &answer);
        self.metrics
            .resolved(how, now.saturating_duration_since(started), &stats);
        resolved
    }

    /// Caches `answer`; when resolution failed, falls back to what the cache still has.
    fn keep(
        &self,
        now: Instant,
        qname: &[u8],
        qtype: u16,
        answer: &Answer,
    ) -> (Resolved, metrics::Resolved) {
        if !answer.failed()
            && let Ok(e) = Entry::build(
                now,
                self.cache.settings(),
                qname,
                qtype,
                answer.rcode,
                [
                    &answer.sections[0],
                    &answer.sections[1],
                    &answer.sections[2],
                ],
            )
        {
            let how = if answer.rcode == crate::wire::header::rcode::NXDOMAIN {
                metrics::Resolved::Nxdomain
            } else {
                metrics::Resolved::Noerror
            };
            let entry = self.cache.insert(now, e);
            return (
                Resolved::Entry {
                    entry,
                    stale: false,
                },
                how,
            );
        }
        //= https://www.rfc-editor.org/rfc/rfc8767#section-4
        //# If ... the resolver is unable to refresh the data, it SHOULD answer with
        //# stale data if available
        match self.cache.get(now, qname, qtype) {
            // Another resolution (or a failed prefetch's original) left a fresh one.
            Lookup::Fresh { entry, .. } => (
                Resolved::Entry {
                    entry,
                    stale: false,
                },
                metrics::Resolved::Servfail,
            ),
            Lookup::Stale(entry) => (
                Resolved::Entry { entry, stale: true },
                metrics::Resolved::Stale,
            ),
            Lookup::Miss => (Resolved::Failed, metrics::Resolved::Servfail),
        }
    }

    /// Drives one resolution over the network.
    async fn run(&self, qname: &[u8], qtype: u16) -> (Answer, Stats) {
        let now = SystemClock.now();
        let settings = self.settings.resolve.clone();
        let forward = self.settings.forward_zone(qname);
        let mut r = match (forward, self.settings.mode) {
            (Some(z), _) => Resolution::forward(
                now,
                settings,
                self.health.order(now, &z.upstreams),
                qname,
                qtype,
            ),
            (None, Mode::Recursive) => {
                Resolution::recursive(now, settings, &self.cache, qname, qtype)
            }
            (None, Mode::Forward) => Resolution::forward(now, settings, Vec::new(), qname, qtype),
        };
        let mut buf = [0u8; 512];
        loop {
            let id = random_u16();
            match r.poll(SystemClock.now(), &self.cache, id, &mut buf) {
                Step::Done(answer) => return (answer, r.stats()),
                Step::Send {
                    server,
                    len,
                    tcp,
                    deadline,
                } => {
                    let ok = if tcp {
                        self.exchange_tcp(&mut r, server, &buf[..len], deadline)
                            .await
                    } else {
                        self.exchange_udp(&mut r, server, &buf[..len], deadline)
                            .await
                    };
                    let ok = match ok {
                        Ok(v) => v,
                        Err(e) => {
                            tracing::debug!(error = %e, %server, "upstream query failed");
                            self.metrics.exchange(tcp, Exchange::Error);
                            r.handle_timeout(SystemClock.now());
                            false
                        }
                    };
                    self.health.record(SystemClock.now(), server, ok);
                }
            }
        }
    }

    async fn exchange_udp(
        &self,
        r: &mut Resolution,
        server: SocketAddr,
        query: &[u8],
        deadline: Instant,
    ) -> io::Result<bool> {
        let socket = bind_random(server).await?;
        socket.connect(server).await?;
        socket.send(query).await?;
        let mut buf = [0u8; 4096];
        let until = tokio::time::Instant::from_std(deadline);
        loop {
            let Ok(got) = tokio::time::timeout_at(until, socket.recv_from(&mut buf)).await else {
                self.metrics.exchange(false, Exchange::Timeout);
                r.handle_timeout(SystemClock.now());
                return Ok(false);
            };
            let (n, from) = got?;
            let (outcome, ok) =
                match r.handle_response(SystemClock.now(), &self.cache, from, &buf[..n]) {
                    Verdict::Ignored => {
                        self.metrics.ignored();
                        continue;
                    }
                    Verdict::Accepted => (Exchange::Answer, true),
                    Verdict::Truncated => (Exchange::Truncated, true),
                    Verdict::Lame => (Exchange::Lame, false),
                };
            self.metrics.exchange(false, outcome);
            return Ok(ok);
        }
    }

    async fn exchange_tcp(
        &self,
        r: &mut Resolution,
        server: SocketAddr,
        query: &[u8],
        deadline: Instant,
    ) -> io::Result<bool> {
        let until = tokio::time::Instant::from_std(deadline);
        let exchange = async {
            let mut s = TcpStream::connect(server).await?;
            let len = u16::try_from(query.len()).unwrap_or(u16::MAX);
            let mut msg = len.to_be_bytes().to_vec();
            msg.extend_from_slice(query);
            s.write_all(&msg).await?;
            let mut len = [0u8; 2];
            s.read_exact(&mut len).await?;
            let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
            s.read_exact(&mut reply).await?;
            io::Result::Ok(reply)
        };
        let Ok(reply) = tokio::time::timeout_at(until, exchange).await else {
            self.metrics.exchange(true, Exchange::Timeout);
            r.handle_timeout(SystemClock.now());
            return Ok(false);
        };
        let reply = reply?;
        let (outcome, ok) = match r.handle_response(SystemClock.now(), &self.cache, server, &reply)
        {
            Verdict::Accepted | Verdict::Truncated => (Exchange::Answer, true),
            Verdict::Ignored => {
                // One reply per connection: a wrong one ends the exchange.
                self.metrics.ignored();
                r.handle_timeout(SystemClock.now());
                (Exchange::Error, false)
            }
            Verdict::Lame => (Exchange::Lame, false),
        };
        self.metrics.exchange(true, outcome);
        Ok(ok)
    }

    /// The client's reply for what resolution left.
    fn render(&self, asked: &Asked, resolved: &Resolved, query: &[u8], out: &mut [u8]) -> usize {
        match resolved {
            Resolved::Entry { entry, stale } => {
                if *stale {
                    self.metrics.stale_served();
                }
                asked
                    .write(entry, SystemClock.now(), query, out, *stale)
                    .len
            }
            Resolved::Failed => asked.servfail(query, out),
        }
    }
}

/// Random bytes from the OS CSPRNG.
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    if getrandom::fill(&mut b).is_err() {
        // The OS generator does not fail on Linux once booted; never fall back to a guessable
        // value silently.
        tracing::error!("getrandom failed");
    }
    b
}

fn random_u16() -> u16 {
    u16::from_be_bytes(random_bytes())
}

/// A UDP socket on a random port from 1024 up (RFC 5452 section 9.2), in `server`'s family.
async fn bind_random(server: SocketAddr) -> io::Result<UdpSocket> {
    let ip: IpAddr = match server {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    for _ in 0..16 {
        let port = 1024 + random_u16() % (u16::MAX - 1024);
        match UdpSocket::bind(SocketAddr::new(ip, port)).await {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(e),
        }
    }
    UdpSocket::bind(SocketAddr::new(ip, 0)).await
}

/// A worker's end of the miss queue.
#[derive(Debug, Clone)]
pub struct Handoff {
    tx: mpsc::Sender<Miss>,
    metrics: Option<Arc<Metrics>>,
}

impl Handoff {
    /// The workers' end of a queue whose other end [`Resolver::serve`] reads; drops are not
    /// counted (see [`Resolver::handoff`]).
    pub fn new(tx: mpsc::Sender<Miss>) -> Self {
        Self { tx, metrics: None }
    }

    /// Hands a miss over, to be answered from `socket` (or, with `None`, a prefetch that is
    /// only cached). Returns false when the queue is full (the query is dropped).
    pub fn miss(
        &self,
        client: SocketAddr,
        query: &[u8],
        socket: Option<&Arc<StdUdpSocket>>,
    ) -> bool {
        let sent = self
            .tx
            .try_send(Miss {
                client,
                query: query.into(),
                socket: socket.map(Arc::clone),
            })
            .is_ok();
        if !sent && let Some(m) = &self.metrics {
            m.dropped();
        }
        sent
    }
}
