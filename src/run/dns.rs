//! `dataplane dns`: the DNS server on its own.

use super::http;
use crate::config::{Config, DnsConfig};
use crate::shutdown::Shutdown;
use anyhow::Context;
use dataplane_common::store::{self, Store};
use dataplane_common::telemetry::Telemetry;
use dns::respond::Options;
use dns::server::{Server, Settings};
use std::sync::Arc;

pub(crate) async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let store = match &config.store.url {
        Some(url) => Some(
            store::open(url)
                .await
                .with_context(|| format!("cannot open the store {url}"))?,
        ),
        None => None,
    };
    let telemetry = Telemetry::new();
    let metrics = http::serve(
        config.dns.metrics_listen,
        telemetry.clone(),
        axum::Router::new(),
        None,
        shutdown.clone(),
    )
    .await?;
    let server = start(&config.dns, store, &telemetry).await?;
    tracing::info!(addrs = ?server.addrs, %metrics, workers = workers(&config.dns), io = ?config.dns.io, "dns answering");
    let revision = server.synced().await;
    tracing::info!(revision, "store data loaded");
    telemetry.set_ready(true);
    shutdown.wait().await;
    telemetry.set_ready(false);
    tokio::task::spawn_blocking(move || server.stop()).await?;
    Ok(())
}

fn workers(config: &DnsConfig) -> usize {
    config
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// Starts the DNS server.
pub(crate) async fn start(
    config: &DnsConfig,
    store: Option<Arc<dyn Store>>,
    telemetry: &Telemetry,
) -> anyhow::Result<Server> {
    let options = Options {
        udp_payload: config.udp_payload,
        client_prefix_v4: config.client_prefix_v4,
        client_prefix_v6: config.client_prefix_v6,
        sticky_entries: config.sticky_entries,
        fail_back: config.fail_back,
        fail_open: config.fail_open,
    };
    let rrl = config.rrl.map(|r| dns::rrl::Settings {
        rate: r.rate,
        slip: r.slip,
        prefix_v4: r.prefix_v4,
        prefix_v6: r.prefix_v6,
        ..dns::rrl::Settings::default()
    });
    let settings = Settings {
        listen: config.listen.clone(),
        zone_files: config.zone_files.clone(),
        workers: workers(config),
        backend: config.io,
        options,
        rrl,
        cluster_domain: Some(config.cluster_domain.clone()),
        release_memory: Some(crate::allocator::release),
    };
    Ok(Server::start(settings, store, telemetry).await?)
}
