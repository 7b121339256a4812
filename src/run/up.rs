//! `dataplane up`: every part on one machine, on the embedded store, with no other set-up.

use super::http;
use crate::config::Config;
use crate::shutdown::Shutdown;
use anyhow::Context;
use dataplane_common::model::{Name, Soa, Zone, encode, keys};
use dataplane_common::store::{self, Compare, Op, Store, Txn};
use dataplane_common::telemetry::Telemetry;
use std::sync::Arc;

pub(crate) async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let url = format!("embedded:{}", config.up.data_dir.display());
    let store = store::open(&url)
        .await
        .with_context(|| format!("cannot open the embedded store {url}"))?;
    seed_cluster_zone(store.as_ref(), &config.dns.cluster_domain).await?;
    let telemetry = Telemetry::new();

    let api = control::api::router(Arc::clone(&store), config.api.auth(), &telemetry);
    let http_addr = http::serve(
        config.up.http_listen,
        telemetry.clone(),
        api,
        config.api.tls.clone(),
        shutdown.clone(),
    )
    .await?;

    let mut dns_config = config.dns.clone();
    dns_config.listen = vec![config.up.dns_listen];
    dns_config.zone_files.clone_from(&config.up.zone_files);
    let dns = super::dns::start(&dns_config, Some(Arc::clone(&store)), &telemetry).await?;
    dns.synced().await;
    let dns_addr = dns.addrs[0];
    let (ip, port) = (dns_addr.ip(), dns_addr.port());

    // Registers this node under a lease (name, role, addresses, version).
    let _node = {
        use dataplane_common::node::{self, Registration, Role};
        let mut r = Registration::new(format!("{}-up", node::host_name("dataplane")), Role::Up);
        (r.addresses.metrics, r.addresses.service) = (Some(http_addr), vec![http_addr, dns_addr]);
        node::spawn(Arc::clone(&store), r, node::DEFAULT_TTL)
    };
    let zone = dns_config.cluster_domain.as_str().trim_end_matches('.');
    println!("dataplane is up (store: {url})");
    println!("  http     http://{http_addr}   try: curl -s http://{http_addr}/metrics | head");
    println!("  dns      {dns_addr}   try: dig @{ip} -p {port} SOA {zone}");
    println!("                                also: dig @{ip} -p {port} www.example.test");
    let scheme = if config.api.tls.is_some() {
        "https"
    } else {
        "http"
    };
    println!(
        "  api      {scheme}://{http_addr}/api/v1   try: cargo run -p control --bin dpctl -- records list   (OpenAPI: /api/openapi.json)"
    );
    println!(
        "  control  the Kubernetes watch is not started by up (no Kubernetes here): see `dataplane control`"
    );
    println!("  l4lb     not started by up (it needs an interface of its own): see `dataplane lb`");
    println!("Ctrl-C stops it.");
    telemetry.set_ready(true);

    shutdown.wait().await;
    telemetry.set_ready(false);
    tokio::task::spawn_blocking(move || dns.stop()).await?;
    println!("dataplane stopped");
    Ok(())
}

/// Writes the cluster zone's SOA once, so that the DNS server is authoritative for it before
/// control has written any record. An existing zone is left alone.
async fn seed_cluster_zone(store: &dyn Store, origin: &Name) -> anyhow::Result<()> {
    let ns = origin.prepend("ns").context("cluster domain too long")?;
    let zone = Zone {
        origin: origin.clone(),
        ttl: 30,
        soa: Soa {
            mname: ns.clone(),
            rname: origin
                .prepend("hostmaster")
                .context("cluster domain too long")?,
            serial: 1,
            refresh: 7200,
            retry: 1800,
            expire: 86400,
            minimum: 30,
        },
        ns: vec![ns],
    };
    let key = keys::zone(origin);
    store
        .txn(Txn {
            compares: vec![Compare {
                key: key.clone(),
                mod_revision: 0,
            }],
            ops: vec![Op::Put {
                key,
                value: encode(&zone),
                lease: None,
            }],
        })
        .await
        .context("cannot seed the cluster zone")?;
    Ok(())
}
