//! `dataplane dns`: the DNS server on its own.

use super::http;
use crate::config::{Config, DnsConfig};
use crate::config::{RecursionConfig, RecursionMode};
use crate::shutdown::Shutdown;
use anyhow::Context;
use dataplane_common::store::{self, Store};
use dataplane_common::telemetry::Telemetry;
use dns::recursor::{self, ForwardZone, Mode, cache, resolve};
use dns::respond::Options;
use dns::server::{Server, Settings};
use std::sync::Arc;
use std::time::Duration;

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
    let server = start(&config.dns, store.clone(), &telemetry).await?;
    tracing::info!(addrs = ?server.addrs, %metrics, workers = workers(&config.dns), io = ?config.dns.io, "dns answering");
    let revision = server.synced().await;
    tracing::info!(revision, "store data loaded");
    let gossip = super::gossip::join(&config, store.as_deref(), &telemetry, &shutdown).await?;
    // Registers this node under a lease (name, role, addresses, version, applied revision),
    // its applied revision following every catalog swapped in.
    let _node = store.map(|s| {
        let mut r = dataplane_common::node::Registration::new(
            format!("{}-dns", dataplane_common::node::host_name("dataplane")),
            dataplane_common::node::Role::Dns,
        );
        (r.addresses.metrics, r.addresses.service) = (Some(metrics), server.addrs.clone());
        (r.applied_revision, r.addresses.gossip) =
            (Some(revision), gossip.as_ref().map(|g| g.addr));
        let mut node = dataplane_common::node::spawn(s, r, dataplane_common::node::DEFAULT_TTL);
        node.follow_applied(server.applied());
        node
    });
    telemetry.set_ready(true);
    shutdown.wait().await;
    telemetry.set_ready(false);
    tokio::task::spawn_blocking(move || server.stop()).await?;
    if let Some(g) = gossip {
        g.join().await;
    }
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
        xdp_answer_cache: config.xdp_answer_cache,
        options,
        rrl,
        cluster_domain: Some(config.cluster_domain.clone()),
        release_memory: Some(crate::allocator::release),
        recursion: config.recursion.as_ref().map(recursion),
    };
    Ok(Server::start(settings, store, telemetry).await?)
}

/// `[dns.recursion]` as the resolver's settings.
fn recursion(r: &RecursionConfig) -> recursor::Settings {
    let wire = |name: &dataplane_common::model::Name| {
        let mut out = Vec::new();
        dns::wire::name::encode(name, &mut out);
        out.make_ascii_lowercase();
        out.into_boxed_slice()
    };
    recursor::Settings {
        mode: match r.mode {
            RecursionMode::Recursive => Mode::Recursive,
            RecursionMode::Forward => Mode::Forward,
        },
        forward: r
            .forward
            .iter()
            .map(|f| ForwardZone {
                zone: wire(&f.zone),
                upstreams: f.upstreams.clone(),
            })
            .collect(),
        allow: recursor::Acl::new(r.allow.clone()),
        resolve: resolve::Settings {
            timeout: Duration::from_millis(r.timeout_ms),
            budget: resolve::Budget {
                time: Duration::from_millis(r.budget_ms),
                ..resolve::Budget::default()
            },
            qname_minimisation: r.qname_minimisation,
            port: r.port,
            root_hints: r.root_hints.clone(),
            ..resolve::Settings::default()
        },
        cache: cache::Settings {
            capacity: r.cache_size,
            min_ttl: r.min_ttl_secs,
            max_ttl: r.max_ttl_secs,
            negative_max_ttl: r.negative_max_ttl_secs,
            stale: Duration::from_secs(r.stale_secs),
            prefetch: r.prefetch,
        },
        max_inflight: r.max_inflight,
    }
}
