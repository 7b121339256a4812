//! `dataplane lb`: the L4 load balancer on one interface, fed by the store.

use super::http;
use crate::config::{Config, LbConfig};
use crate::shutdown::Shutdown;
use anyhow::Context;
use dataplane_common::clock::{Clock, SystemClock};
use dataplane_common::store;
use dataplane_common::telemetry::Telemetry;
use l4lb::health::{self, Probe, Thresholds};
use l4lb::io::af_packet::{self, Fanout};
use l4lb::packet::Mac;
use l4lb::server::{Server, Settings, neighbours};
use l4lb::vips::Link;
use std::net::IpAddr;

pub(crate) async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let lb = &config.lb;
    let url = config.store.url.as_deref().context("no store URL")?;
    let interface = lb.interface.as_deref().context("no interface")?;
    let (_, mac, mtu) = af_packet::interface(interface)
        .with_context(|| format!("cannot use interface {interface}"))?;
    let gateway = gateway(lb, interface)?;
    let workers = lb
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let links = open(lb, interface, mtu, workers)?;
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
    let server = Server::start(settings, links, store, &telemetry)
        .context("cannot start the balancer's workers")?;
    tracing::info!(%interface, ?mac, ?gateway, workers, %metrics, health = lb.health.is_some(), "lb balancing");
    let revision = server.synced().await;
    tracing::info!(
        revision,
        vips = server.vips().vips().len(),
        "store data loaded"
    );
    telemetry.set_ready(true);
    shutdown.wait().await;
    telemetry.set_ready(false);
    tokio::task::spawn_blocking(move || server.stop()).await?;
    Ok(())
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
        Fanout::new(group, workers as u16, &lb.local_addresses)
    });
    (0..workers)
        .map(|w| {
            af_packet::open(&ring, fanout.as_ref()).with_context(|| {
                format!("cannot open AF_PACKET socket {w} on {interface} (this needs root or CAP_NET_RAW)")
            })
        })
        .collect()
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
