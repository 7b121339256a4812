//! The HTTP endpoint every daemon serves: telemetry, plus the API where there is one.

use crate::shutdown::Shutdown;
use anyhow::Context;
use axum::Router;
use dataplane_common::telemetry::{Telemetry, http};
use std::net::SocketAddr;

/// Binds `addr` and serves `router` plus /metrics, /healthz and /readyz until shutdown.
/// Returns the bound address (useful when `addr` has port 0).
pub(crate) async fn serve(
    addr: SocketAddr,
    telemetry: Telemetry,
    router: Router,
    shutdown: Shutdown,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for HTTP"))?;
    let bound = listener.local_addr()?;
    let app = router.merge(http::router(telemetry));
    tokio::spawn(async move {
        if let Err(e) = http::serve(listener, app, shutdown.wait()).await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    Ok(bound)
}
