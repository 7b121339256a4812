//! `dataplane control`: Kubernetes Services and EndpointSlices from the cluster's etcd into
//! records and VIPs in the project's store; beside it, the inspector (`[inspect]`), the
//! alert loop (`[alert]`) and, with `[gossip] listen`, the gossip membership.

use super::http;
use crate::config::Config;
use crate::shutdown::Shutdown;
use anyhow::Context;
use dataplane_common::clock::{Clock, SystemClock};
use dataplane_common::health::{Probe, Thresholds};
use dataplane_common::store::{self, Etcd, Store, TlsFiles};
use dataplane_common::telemetry::Telemetry;
use std::sync::Arc;
use std::time::Duration;

pub(crate) async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let kube_url = config
        .control
        .kube_etcd
        .clone()
        .context("no Kubernetes etcd given")?;
    let endpoints: Vec<String> = kube_url.split(',').map(str::to_owned).collect();
    let c = &config.control;
    let tls = match (
        &c.kube_etcd_cafile,
        &c.kube_etcd_certfile,
        &c.kube_etcd_keyfile,
    ) {
        (Some(ca), Some(cert), Some(key)) => Some(TlsFiles {
            ca: ca.clone(),
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    let kube: Arc<dyn Store> = Arc::new(
        Etcd::connect_tls(&endpoints, tls.as_ref())
            .await
            .with_context(|| format!("cannot reach the Kubernetes etcd {kube_url}"))?,
    );
    let url = config
        .store
        .url
        .clone()
        .context("no store given (--store etcd://HOST:PORT or embedded:DIR)")?;
    let store = store::open(&url)
        .await
        .with_context(|| format!("cannot open the store {url}"))?;
    let telemetry = Telemetry::new();
    let metrics = http::serve(
        config.control.metrics_listen,
        telemetry.clone(),
        axum::Router::new(),
        None,
        shutdown.clone(),
    )
    .await?;
    let api = control::api::router(Arc::clone(&store), config.api.auth(), &telemetry);
    let api_addr = http::serve(
        config.api.listen,
        telemetry.clone(),
        api,
        config.api.tls.clone(),
        shutdown.clone(),
    )
    .await?;
    let settings = settings(&config)?;
    tracing::info!(kube = %kube_url, store = %url, %metrics, api = %api_addr, node = %settings.node_name, "control starting");
    telemetry.set_ready(true);
    let gossip = super::gossip::join(&config, Some(&*store), &telemetry, &shutdown).await?;
    // Registers this node under a lease (name, role, addresses, version).
    let _node = {
        let mut r = dataplane_common::node::Registration::new(
            settings.node_name.clone(),
            dataplane_common::node::Role::Control,
        );
        (r.addresses.metrics, r.addresses.service) = (Some(metrics), vec![api_addr]);
        r.addresses.gossip = gossip.as_ref().map(|g| g.addr);
        dataplane_common::node::spawn(Arc::clone(&store), r, dataplane_common::node::DEFAULT_TTL)
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    if config.inspect.enabled {
        let live = gossip.as_ref().map(|g| g.live.clone());
        tokio::spawn(control::inspect::run::run(
            inspect_settings(&config, &settings.node_name),
            Arc::clone(&store),
            Arc::clone(&clock),
            live,
            shutdown.clone().wait(),
        ));
    }
    // Delivery is off while `[alert]` names no receiver; the alerts are still evaluated
    // and published for the API.
    tokio::spawn(control::alert::run::run(
        config.alert.clone(),
        settings.node_name.clone(),
        Arc::clone(&store),
        clock,
        shutdown.clone().wait(),
    ));
    tracing::info!(
        inspect = config.inspect.enabled,
        interval = ?config.inspect.interval,
        receivers = config.alert.receivers.len(),
        rules = config.alert.rules.len(),
        "inspection and alerting started"
    );
    control::run(settings, kube, store, &telemetry, shutdown.wait()).await?;
    if let Some(g) = gossip {
        g.join().await;
    }
    Ok(())
}

/// `[inspect]` as the inspector's settings, run as `node`.
fn inspect_settings(config: &Config, node: &str) -> control::inspect::run::Settings {
    let i = &config.inspect;
    control::inspect::run::Settings {
        node: node.to_owned(),
        interval: i.interval,
        timeout: i.timeout,
        thresholds: Thresholds {
            rise: i.rise,
            fall: i.fall,
        },
        probe: i
            .http_path
            .clone()
            .map_or(Probe::Tcp, |path| Probe::Http { path }),
        dns_names: i.dns_names.clone(),
    }
}

/// The control plane's settings from the config.
pub(crate) fn settings(config: &Config) -> anyhow::Result<control::Settings> {
    let node_name = match &config.control.node_name {
        Some(n) => n.clone(),
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "dataplane".to_owned()),
    };
    let settings = control::Settings {
        kube_prefix: config.control.kube_prefix.clone(),
        cluster_domain: config.dns.cluster_domain.clone(),
        ttl: config.control.ttl,
        node_name,
        lease_ttl: Duration::from_secs(config.control.lease_ttl_secs),
    };
    settings.validate()?;
    Ok(settings)
}
