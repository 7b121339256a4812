//! `dataplane lb`: the L4 load balancer on one interface, fed by the store.

use super::http;
use crate::config::{Config, LbConfig};
use crate::shutdown::Shutdown;
use anyhow::Context;
use dataplane_common::clock::{Clock, SystemClock};
use dataplane_common::telemetry::Telemetry;
use dataplane_common::{node, store};
use l4lb::fastpath::Flows;
use l4lb::health::{self, Probe, Thresholds};
use l4lb::io::af_packet;
use l4lb::io::steering;
use l4lb::io::xdp::{self, Attach, Filter, Program};
use l4lb::io::{Rx, Tx};
use l4lb::packet::Mac;
use l4lb::server::{Server, Settings, neighbours};
use l4lb::vips::{Link, Vips};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// How often the XDP program's destinations are compared with the served snapshot.
const DESTINATIONS_EVERY: Duration = Duration::from_millis(50);

pub(crate) async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let lb = &config.lb;
    let interface = lb.interface.as_deref().context("no interface")?;
    let (_, mac, mtu) = af_packet::interface(interface)
        .with_context(|| format!("cannot use interface {interface}"))?;
    let mac = Mac(mac);
    let gateway = gateway(lb, interface)?;
    match lb.io {
        crate::cli::LbIo::AfPacket => {
            let workers = lb
                .workers
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
            let links = open(lb, interface, mtu, workers)?;
            serve(
                &config, interface, mac, gateway, links, None, None, shutdown,
            )
            .await
        }
        crate::cli::LbIo::Xdp => {
            let queues = rx_queues(interface);
            let workers = lb.workers.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map_or(1, usize::from)
                    .min(queues)
            });
            let (program, flows, links) = open_xdp(lb, interface, workers)?;
            serve(
                &config,
                interface,
                mac,
                gateway,
                links,
                Some(program),
                flows,
                shutdown,
            )
            .await
        }
    }
}

/// Opens the store, starts the balancer on `links` and runs until `shutdown`. With `program`
/// (AF_XDP), keeps its destinations equal to the served VIPs and local addresses, and drops
/// it (detaching it from the interface) after the workers stopped. With `flows`, the workers
/// put established sessions in the program's fast path.
#[allow(clippy::too_many_arguments)]
async fn serve<R, T>(
    config: &Config,
    interface: &str,
    mac: Mac,
    gateway: Mac,
    links: Vec<(R, T)>,
    mut program: Option<Program>,
    flows: Option<Arc<Flows>>,
    shutdown: Shutdown,
) -> anyhow::Result<()>
where
    R: Rx + Send + 'static,
    T: Tx + Send + 'static,
{
    let lb = &config.lb;
    let url = config.store.url.as_deref().context("no store URL")?;
    let workers = links.len();
    let store = store::open(url)
        .await
        .with_context(|| format!("cannot open the store {url}"))?;
    let telemetry = Telemetry::new();
    let metrics = http::serve(
        lb.metrics_listen,
        telemetry.clone(),
        axum::Router::new(),
        None,
        shutdown.clone(),
    )
    .await?;
    let settings = Settings {
        link: Link { mac, gateway },
        local: lb.local_addresses.clone(),
        datapath: l4lb::Config {
            table: l4lb::table::Config {
                capacity: lb.sessions_per_worker,
                seed: seed(),
                ..l4lb::table::Config::default()
            },
            ..l4lb::Config::default()
        },
        neighbours: Some((interface.to_owned(), lb.neighbour_refresh)),
        handoff: program.is_some(),
        fast_path: flows,
        health: lb.health.as_ref().map(|h| health::Settings {
            interval: h.interval,
            timeout: h.timeout,
            thresholds: Thresholds {
                rise: h.rise,
                fall: h.fall,
            },
            probe: h
                .http_path
                .clone()
                .map_or(Probe::Tcp, |path| Probe::Http { path }),
            node: h.node_name.clone().unwrap_or_else(host_name),
        }),
    };
    let server = Server::start(settings, links, Arc::clone(&store), &telemetry)
        .context("cannot start the balancer's workers")?;
    tracing::info!(%interface, ?mac, ?gateway, workers, %metrics, health = lb.health.is_some(), "lb balancing");
    let revision = server.synced().await;
    tracing::info!(
        revision,
        vips = server.vips().vips().len(),
        "store data loaded"
    );
    let gossip = super::gossip::join(config, Some(&*store), &telemetry, &shutdown).await?;
    // Registers this node under a lease (name, role, addresses, version, applied revision),
    // its applied revision following every snapshot swapped in.
    let _node = {
        let mut r = node::Registration::new(format!("{}-lb", host_name()), node::Role::Lb);
        (r.addresses.metrics, r.applied_revision) = (Some(metrics), Some(revision));
        r.addresses.gossip = gossip.as_ref().map(|g| g.addr);
        let mut node = node::spawn(Arc::clone(&store), r, node::DEFAULT_TTL);
        node.follow_applied(server.applied());
        node
    };
    telemetry.set_ready(true);
    let stop = shutdown.wait();
    tokio::pin!(stop);
    let mut served: Option<Arc<Vips>> = None;
    loop {
        if let Some(p) = program.as_mut() {
            sync_destinations(p, &server, lb, &mut served);
        }
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(DESTINATIONS_EVERY), if program.is_some() => {}
        }
    }
    telemetry.set_ready(false);
    tokio::task::spawn_blocking(move || server.stop()).await?;
    drop(program);
    if let Some(g) = gossip {
        g.join().await;
    }
    Ok(())
}

/// Points the XDP program at the served snapshot's VIPs and the local addresses, when the
/// snapshot changed since `served`.
fn sync_destinations(
    program: &mut Program,
    server: &Server,
    lb: &LbConfig,
    served: &mut Option<Arc<Vips>>,
) {
    let vips = server.vips();
    if served.as_ref().is_some_and(|s| Arc::ptr_eq(s, &vips)) {
        return;
    }
    let addresses = vips
        .vips()
        .iter()
        .map(|v| v.address.ip())
        .chain(lb.local_addresses.iter().copied());
    match program.set_destinations(addresses) {
        Ok(changed) if changed > 0 => {
            tracing::info!(changed, "XDP destinations follow the snapshot");
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "cannot update the XDP destinations"),
    }
    *served = Some(vips);
}

/// The gateway's MAC: configured, or the default route's next hop in the neighbour table.
fn gateway(lb: &LbConfig, interface: &str) -> anyhow::Result<Mac> {
    if let Some(m) = &lb.gateway_mac {
        return neighbours::mac(m).map_err(anyhow::Error::msg);
    }
    let gw = neighbours::default_gateway(interface)
        .with_context(|| format!("no default route through {interface}: give --gateway-mac"))?;
    neighbours::read(interface)
        .get(&IpAddr::V4(gw))
        .copied()
        .with_context(|| {
            format!("the gateway {gw} is not in the neighbour table: give --gateway-mac")
        })
}

/// One AF_PACKET socket per worker, in one fanout group when there are several.
fn open(
    lb: &LbConfig,
    interface: &str,
    mtu: u32,
    workers: usize,
) -> anyhow::Result<Vec<(af_packet::RxRing, af_packet::TxRing)>> {
    let mut ring = af_packet::Config::new(interface);
    // A slot holds its header and the largest frame (MTU, Ethernet header, one VLAN tag).
    ring.tx_frame_size = (mtu + 18 + 64).next_power_of_two().max(2048);
    let fanout = (workers > 1).then(|| {
        let group = (std::process::id() & 0xffff) as u16;
        steering::fanout(group, workers as u16, &lb.local_addresses)
    });
    (0..workers)
        .map(|w| {
            af_packet::open(&ring, fanout.as_ref()).with_context(|| {
                format!("cannot open AF_PACKET socket {w} on {interface} (this needs root or CAP_NET_RAW)")
            })
        })
        .collect()
}

/// The program, the fast path's map (when on) and one socket per worker.
type XdpLinks = (Program, Option<Arc<Flows>>, Vec<(xdp::Rx, xdp::Tx)>);

/// The interface's receive queues (1 when sysfs does not say).
fn rx_queues(interface: &str) -> usize {
    std::fs::read_dir(format!("/sys/class/net/{interface}/queues"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count()
        })
        .unwrap_or(0)
        .max(1)
}

/// Our XDP program on `interface` (native, else generic) and one AF_XDP socket on each of
/// queues `0..workers` (zero-copy if the driver can, else copy); a frame arrives on the
/// queue the NIC hashed it to and its worker hands it on to the session's owner
/// (`l4lb::server::handoff`). With the fast path on, the program forwards established flows
/// itself, on every queue (from the map returned): on veth its XDP_TX frames reach the peer
/// only if the peer runs an XDP program of its own (`l4lb::fastpath::peer`).
fn open_xdp(lb: &LbConfig, interface: &str, workers: usize) -> anyhow::Result<XdpLinks> {
    let flows = lb
        .xdp_fast_path
        .then(|| {
            Flows::create(
                lb.sessions_per_worker
                    .saturating_mul(2 * u32::try_from(workers.max(1)).unwrap_or(u32::MAX)),
            )
        })
        .transpose()
        .context("cannot create the XDP fast path's map")?
        .map(Arc::new);
    let prologue = |a: &mut xdp::bpf::Asm| {
        if let Some(f) = &flows {
            f.emit(a);
        }
    };
    let attach = match lb.xdp_mode {
        crate::cli::XdpMode::Auto => Attach::Auto,
        crate::cli::XdpMode::Native => Attach::Native,
        crate::cli::XdpMode::Generic => Attach::Generic,
    };
    let mut program = Program::attach_with(interface, attach, Filter::Destinations, &prologue)
        .with_context(|| {
            format!("cannot attach the XDP program to {interface} (this needs root, or CAP_BPF and CAP_NET_ADMIN)")
        })?;
    program
        .set_destinations(lb.local_addresses.iter().copied())
        .context("cannot set the XDP destinations")?;
    let links = (0..workers as u32)
        .map(|q| {
            xdp::open(&xdp::Config::new(interface, q), &program).with_context(|| {
                format!("cannot open an AF_XDP socket on {interface} queue {q} (one queue per worker; it has {})", rx_queues(interface))
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    tracing::info!(%interface, program = ?program.mode(), socket = ?links.first().map(|(rx, _)| rx.bind()), queues = workers, fast_path = flows.is_some(), "AF_XDP");
    Ok((program, flows, links))
}

/// A per-process session table seed: collisions should not be choosable from outside.
fn seed() -> u64 {
    let nanos = SystemClock
        .wall()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    (nanos as u64).rotate_left(17)
        ^ u64::from(std::process::id()).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "lb".to_owned())
}
