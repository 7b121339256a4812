//! The HTTP endpoint every daemon serves: telemetry, plus the API where there is one.

use crate::shutdown::Shutdown;
use anyhow::Context;
use axum::Router;
use control::api::TlsFiles;
use dataplane_common::telemetry::{Telemetry, http};
use std::net::SocketAddr;

/// Binds `addr` and serves `router` plus /metrics, /healthz and /readyz until shutdown, over
/// TLS when `tls` is given. Returns the bound address (useful when `addr` has port 0).
pub(crate) async fn serve(
    addr: SocketAddr,
    telemetry: Telemetry,
    router: Router,
    tls: Option<TlsFiles>,
    shutdown: Shutdown,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for HTTP"))?;
    let bound = listener.local_addr()?;
    let app = router.merge(http::router(telemetry));
    // Load TLS files before returning, so that a bad certificate stops start-up.
    if let Some(files) = &tls {
        control::api::check_tls(files)
            .with_context(|| format!("cannot load the TLS certificate {}", files.cert.display()))?;
    }
    tokio::spawn(async move {
        if let Err(e) = control::api::serve(listener, app, tls, shutdown.wait()).await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    Ok(bound)
}
