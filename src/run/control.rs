//! `dataplane control`: Kubernetes Services and EndpointSlices from the cluster's etcd into
//! records and VIPs in the project's store.

use super::http;
use crate::config::Config;
use crate::shutdown::Shutdown;
use anyhow::Context;
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
    // Registers this node under a lease (name, role, addresses, version).
    let _node = {
        let mut r = dataplane_common::node::Registration::new(
            settings.node_name.clone(),
            dataplane_common::node::Role::Control,
        );
        (r.addresses.metrics, r.addresses.service) = (Some(metrics), vec![api_addr]);
        dataplane_common::node::spawn(Arc::clone(&store), r, dataplane_common::node::DEFAULT_TTL)
    };
    control::run(settings, kube, store, &telemetry, shutdown.wait()).await?;
    Ok(())
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
