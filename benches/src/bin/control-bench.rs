//! control-bench: how fast Kubernetes changes reach DNS answers, and what an initial sync costs.
//!
//! Starts a real etcd (Debian `etcd-server`) on loopback, writes N Services and N
//! EndpointSlices (E endpoints each) exactly as kube-apiserver stores them (protobuf), runs
//! the control plane and a DNS server in this process against it, and prints:
//! - initial sync: seconds from control's start until every derived key is published, the
//!   process's resident memory growth during it, and the CPU-seconds of control and etcd;
//! - restart: a new control (a restart, or a new leader) against the store already in line,
//!   until its first full reconcile is done (it writes nothing);
//! - propagation: for C changes of a Service's ClusterIP in the Kubernetes etcd, the time until
//!   the DNS server answers the new address (polled every 0.5 ms over UDP): p50, p99, max.
//!
//! `cargo run --release -p benches --bin control-bench -- SERVICES ENDPOINTS_PER_SERVICE CHANGES`
//! (defaults 10000 10 200; CHANGES 0 measures the initial sync only). The process uses the
//! daemon's allocator (mimalloc), so that the memory figures are the daemon's.
//!
//! Figures on a 2-vCPU VM whose hypervisor steals 20-35% of its CPU time, so wall times
//! move run to run and the CPU-seconds printed are the steadier measure: 100,000 Services /
//! 1,000,000 endpoints (400,000 keys) sync in 6.0-12.2 s (median 8.5 s over 19 runs, 18 of
//! them under 10 s), control using 3.7-5.8 CPU-seconds and etcd 6.3-11, with a 775-790 MiB
//! peak, into an etcd run with `--max-txn-ops 1024` (the default here; `MAX_TXN_OPS=128`,
//! etcd's own default, gives 9.4-10.3 s with etcd at 11-12 CPU-seconds); a restart against
//! the synced store (a new leader: 0 keys written) takes 4.6-7.7 s. Before translation on
//! every core, the compact stored encoding, only headless Services under services/ and
//! endpoints/, and no transparent huge pages, the same sync took 21-31 s (600,000 keys,
//! control about 10 CPU-seconds and etcd about 30) and peaked at 1.18 GiB. At 10,000
//! Services propagation p50 is 12-16 ms, p99 27-44 ms.

use control::kube::testing::{endpoint, port, protobuf_service, protobuf_slice, service, slice};
use dataplane_common::clock::{Clock, SystemClock};
use dataplane_common::store::testing::EtcdServer;
use dataplane_common::store::{self, Op, Store, Txn};
use dataplane_common::telemetry::Telemetry;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A `/proc/self/status` figure in MiB: `VmRSS` (now) or `VmHWM` (the peak so far).
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Field `n` (numbered from 1, as in proc(5)) of `/proc/PID/stat`.
fn stat_field(pid: &str, n: usize) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces), the third one first.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after
        .split_whitespace()
        .nth(n - 3)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// The CPU seconds (user and system) process `pid` used so far.
fn cpu_seconds(pid: &str) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (stat_field(pid, 14) + stat_field(pid, 15)) / ticks
}

/// The minor page faults of this process so far: each is a page the kernel zeroes, which
/// on this VM costs far more than the bytes suggest.
fn minor_faults() -> f64 {
    stat_field("self", 10)
}

fn rss_mib() -> f64 {
    status_mib("VmRSS:")
}

/// A distinct address per Service up to 131,072 Services (two second-octet values per
/// generation), so that no two Services share a VIP or a PTR name.
fn cluster_ip(i: usize, generation: u8) -> String {
    format!(
        "10.{}.{}.{}",
        96 + 2 * usize::from(generation) + ((i >> 16) & 1),
        (i >> 8) & 0xff,
        i & 0xff
    )
}

fn pod_ip(i: usize, j: usize) -> String {
    let n = i * 16 + j;
    format!(
        "10.{}.{}.{}",
        128 + ((n >> 16) & 0x3f),
        (n >> 8) & 0xff,
        n & 0xff
    )
}

async fn write_all(kube: &Arc<dyn Store>, ops: Vec<Op>) {
    for chunk in ops.chunks(100) {
        let txn = Txn {
            compares: Vec::new(),
            ops: chunk.to_vec(),
        };
        assert!(kube.txn(txn).await.expect("etcd write").succeeded);
    }
}

fn service_op(i: usize, generation: u8) -> Op {
    let name = format!("svc{i}");
    let ns = format!("ns{}", i % 100);
    let svc = service(
        &ns,
        &name,
        &[&cluster_ip(i, generation)],
        vec![port("http", "TCP", 80, None)],
    );
    Op::Put {
        key: format!("/registry/services/specs/{ns}/{name}"),
        value: protobuf_service(&svc),
        lease: None,
    }
}

/// Runs control in this process against `kube` and `project`; stops when told.
fn start_control(
    kube: &Arc<dyn Store>,
    project: &Arc<dyn Store>,
    telemetry: &Telemetry,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<Result<(), control::Error>>,
) {
    let settings = control::Settings {
        kube_prefix: "/registry".into(),
        cluster_domain: "cluster.local.".parse().expect("name"),
        ttl: 30,
        node_name: "bench".into(),
        lease_ttl: Duration::from_secs(10),
    };
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let t = telemetry.clone();
    let (k, p) = (Arc::clone(kube), Arc::clone(project));
    let control = tokio::spawn(async move {
        control::run(settings, k, p, &t, async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        })
        .await
    });
    (stop_tx, control)
}

/// The value of the metric `name` (with its labels, if any) in `telemetry`, 0 when absent.
fn metric(telemetry: &Telemetry, name: &str) -> f64 {
    telemetry
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// A DNS A query for `name`, and the first A address in a reply.
fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = vec![0u8; 12];
    q[..2].copy_from_slice(&id.to_be_bytes());
    q[5] = 1;
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

fn first_a(reply: &[u8]) -> Option<Ipv4Addr> {
    // Our replies put a single A answer last; good enough for a benchmark probe.
    (reply.len() >= 16 && reply[7] >= 1).then(|| {
        Ipv4Addr::new(
            reply[reply.len() - 4],
            reply[reply.len() - 3],
            reply[reply.len() - 2],
            reply[reply.len() - 1],
        )
    })
}

/// When the sync loop last printed its progress.
struct Tick(std::time::Instant);

impl Tick {
    fn elapsed_since(&self, clock: &SystemClock) -> Duration {
        clock.now().duration_since(self.0)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!(
            "usage: control-bench [SERVICES [ENDPOINTS_PER_SERVICE [CHANGES]]] (defaults 10000 10 200)"
        );
        return;
    }
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (services, per, changes) = (
        args.first().copied().unwrap_or(10_000),
        args.get(1).copied().unwrap_or(10),
        args.get(2).copied().unwrap_or(200),
    );
    // control's info lines (what a first sync translated and published, and when) on stderr.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "control=info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let clock = SystemClock;
    // etcd's `--max-txn-ops`: the project store's etcd is best run with 1024 (README), which
    // control learns and fills its transactions to; `MAX_TXN_OPS=128` is etcd's default. (Not
    // `ETCD_...`: etcd takes those variables as flags, and refuses one shadowed by a flag.)
    let max_txn_ops = std::env::var("MAX_TXN_OPS").unwrap_or_else(|_| "1024".into());
    let etcd = EtcdServer::start_with(&["--max-txn-ops", &max_txn_ops]).await;
    let kube = store::open(&etcd.url()).await.expect("etcd");

    assert!(
        services <= 1 << 17,
        "at most 131072 Services (distinct cluster IPs)"
    );
    let started = clock.now();
    // Written in chunks as they are made, so that the bench's own copy of the Kubernetes data
    // does not weigh in the memory figures below.
    for chunk in (0..services).collect::<Vec<_>>().chunks(1000) {
        let mut ops: Vec<Op> = chunk.iter().map(|&i| service_op(i, 0)).collect();
        for &i in chunk {
            let (name, ns) = (format!("svc{i}"), format!("ns{}", i % 100));
            let eps = (0..per).map(|j| endpoint(&pod_ip(i, j), true)).collect();
            let s = slice(
                &ns,
                &format!("{name}-x"),
                &name,
                "IPv4",
                &[("http", 8080)],
                eps,
            );
            ops.push(Op::Put {
                key: format!("/registry/endpointslices/{ns}/{name}-x"),
                value: protobuf_slice(&s),
                lease: None,
            });
        }
        write_all(&kube, ops).await;
    }
    println!(
        "wrote {services} Services and {services} EndpointSlices ({} endpoints) to etcd in {:.1} s",
        services * per,
        clock.now().duration_since(started).as_secs_f64()
    );

    // Initial sync: control in this process, the project store on the same etcd.
    let project = store::open(&etcd.url()).await.expect("etcd");
    let telemetry = Telemetry::new();
    let before = rss_mib();
    let (stop_tx, control) = start_control(&kube, &project, &telemetry);
    let sync_started = clock.now();
    let etcd_pid = etcd.pid().map_or_else(String::new, |p| p.to_string());
    let cpu_before = (cpu_seconds("self"), cpu_seconds(&etcd_pid));
    let faults_before = minor_faults();
    // Every Service yields 4 keys: A, SRV and PTR record sets and its VIP.
    let expected = 4 * services as u64;
    let mut peak = before;
    let mut progress = Tick(clock.now());
    loop {
        peak = peak.max(rss_mib());
        let owned = metric(&telemetry, "control_publish_owned_keys") as u64;
        if owned >= expected {
            break;
        }
        if progress.elapsed_since(&clock) >= Duration::from_secs(5) {
            progress = Tick(clock.now());
            let publish: Vec<String> = telemetry
                .encode()
                .lines()
                .filter(|l| {
                    l.starts_with("control_publish_") || l.starts_with("control_kube_store_errors")
                })
                .map(str::to_owned)
                .collect();
            println!("  ... {owned} of {expected} keys; {}", publish.join("; "));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sync = clock.now().duration_since(sync_started);
    let cpu = (
        cpu_seconds("self") - cpu_before.0,
        cpu_seconds(&etcd_pid) - cpu_before.1,
    );
    println!(
        "initial sync: {:.2} s for {services} Services and {} endpoints ({expected} keys published); RSS {before:.0} -> {:.0} MiB (peak sampled {peak:.0} MiB, process high-water mark {:.0} MiB)",
        sync.as_secs_f64(),
        services * per,
        rss_mib(),
        status_mib("VmHWM:")
    );
    // Both etcd roles (the Kubernetes etcd listed, the project store written) are one etcd
    // here, on the same CPUs as control: the sync is bound by the sum of the two.
    println!(
        "initial sync CPU: control (this process) {:.1} s, etcd {:.1} s (etcd --max-txn-ops {max_txn_ops}); {:.0}k page faults in control",
        cpu.0,
        cpu.1,
        (minor_faults() - faults_before) / 1000.0
    );

    // A restart (or a new leader): the same cluster, the project store already in line. Done
    // when its first full reconcile is, which writes nothing.
    let _ = stop_tx.send(true);
    let _ = control.await;
    let telemetry = Telemetry::new();
    let restart_started = clock.now();
    let cpu_before = (cpu_seconds("self"), cpu_seconds(&etcd_pid));
    let (stop_tx, control) = start_control(&kube, &project, &telemetry);
    while metric(&telemetry, "control_publish_reconciles_total") < 1.0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "restart against the synced store: {:.2} s, {} keys written; CPU: control {:.1} s, etcd {:.1} s",
        clock.now().duration_since(restart_started).as_secs_f64(),
        metric(&telemetry, "control_publish_writes_total{op=\"put\"}"),
        cpu_seconds("self") - cpu_before.0,
        cpu_seconds(&etcd_pid) - cpu_before.1
    );

    // Propagation: a DNS server in this process follows the project store.
    let dns_telemetry = Telemetry::new();
    let settings = dns::server::Settings {
        listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        zone_files: Vec::new(),
        workers: 1,
        backend: dns::io::Backend::Mmsg,
        xdp_answer_cache: 0,
        options: dns::respond::Options::default(),
        rrl: None,
        cluster_domain: Some("cluster.local.".parse().expect("name")),
        release_memory: None,
        recursion: None,
    };
    let server = dns::server::Server::start(settings, Some(Arc::clone(&project)), &dns_telemetry)
        .await
        .expect("dns");
    server.synced().await;
    let addr = server.addrs[0];
    let socket = UdpSocket::bind("127.0.0.1:0").expect("socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let mut samples = Vec::with_capacity(changes);
    let mut buf = [0u8; 512];
    for c in 0..changes {
        let i = (c * 7919) % services;
        let name = format!("svc{i}.ns{}.svc.cluster.local", i % 100);
        let generation = 1 + (c % 8) as u8;
        let want: Ipv4Addr = cluster_ip(i, generation).parse().expect("ip");
        let written = clock.now();
        write_all(&kube, vec![service_op(i, generation)]).await;
        let mut id = 0u16;
        loop {
            id = id.wrapping_add(1);
            socket.send_to(&query(id, &name), addr).expect("send");
            if let Ok((n, _)) = socket.recv_from(&mut buf)
                && first_a(&buf[..n]) == Some(want)
            {
                break;
            }
            assert!(
                clock.now().duration_since(written) < Duration::from_secs(30),
                "{name} never changed"
            );
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        samples.push(clock.now().duration_since(written));
    }
    samples.sort();
    println!(
        "dns: {} catalog updates, the last took {:.2} ms",
        metric(&dns_telemetry, "dns_catalog_rebuilds_total"),
        metric(&dns_telemetry, "dns_catalog_build_microseconds") / 1e3
    );
    if samples.is_empty() {
        println!("propagation: no changes asked for");
    } else {
        println!(
            "propagation, Kubernetes etcd write -> changed DNS answer, {changes} changes over {services} Services: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            percentile(&samples, 0.5).as_secs_f64() * 1e3,
            percentile(&samples, 0.99).as_secs_f64() * 1e3,
            samples[samples.len() - 1].as_secs_f64() * 1e3
        );
    }
    let _ = stop_tx.send(true);
    let _ = control.await;
    tokio::task::spawn_blocking(move || server.stop())
        .await
        .expect("stop");
}
