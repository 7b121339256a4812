//! The REST API over the project store: user zones, records and VIPs; health and nodes
//! read-only; the store's status. Its OpenAPI 3 document is served at `/api/openapi.json`.
//!
//! One file per resource ([`zones`], [`records`], [`vips`], [`health`], [`nodes`],
//! [`status`], [`inspect`], [`alerts`], [`silences`]); what they share: [`error`] (the one JSON error shape), [`auth`] (bearer
//! tokens with roles), [`extract`] (bodies, parameters, `If-Match`), [`object`] (guarded
//! writes: ETag = the key's `mod_revision`), [`page`] (`?limit=&continue=`), [`tls`].
//!
//! What it does not do: it keeps no state of its own (every request reads the store), and
//! it never writes an object derived from Kubernetes (403).

mod alerts;
pub mod auth;
pub mod error;
mod extract;
mod health;
mod inspect;
mod nodes;
mod object;
pub mod openapi;
pub mod page;
mod records;
mod silences;
mod status;
mod tls;
mod vips;
mod zones;

pub use auth::{Auth, Role, Secret, Token};
pub use error::ApiError;
pub use tls::TlsFiles;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use dataplane_common::store::Store;
use dataplane_common::telemetry::Telemetry;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::future::Future;
use std::sync::Arc;
use tracing::{info, warn};

/// What every handler reads.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    pub(crate) store: Arc<dyn Store>,
}

/// Requests by route and status class, for `/metrics`.
#[derive(Debug, Clone, Default)]
struct Metrics {
    requests: Family<[(&'static str, String); 2], Counter>,
}

impl Metrics {
    fn register(telemetry: &Telemetry) -> Self {
        let m = Self::default();
        telemetry.register(
            "control_api_requests",
            "API requests by route (the path template) and status class.",
            m.requests.clone(),
        );
        m
    }
}

async fn count(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let class = match response.status().as_u16() / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    };
    metrics
        .requests
        .get_or_create(&[("route", route), ("class", class.to_owned())])
        .inc();
    response
}

/// The API's routes under `/api`, to merge into the daemon's router.
///
/// `/api/openapi.json` is open to everyone; everything under `/api/v1` goes through
/// [`Auth::authorize`]. Metrics: `control_api_requests_total{route, class}`. The caller
/// checks `auth` first with [`Auth::validate`] (when loading its config).
pub fn router(store: Arc<dyn Store>, auth: Auth, telemetry: &Telemetry) -> Router {
    let metrics = Metrics::register(telemetry);
    if auth.tokens.is_empty() {
        warn!("the API has no tokens configured: reads are open, writes are refused");
    } else {
        let names: Vec<&str> = auth.tokens.iter().map(|t| t.name.as_str()).collect();
        info!(tokens = ?names, "API tokens loaded");
    }
    let v1 = Router::new()
        .route("/zones", get(zones::list).post(zones::create))
        .route(
            "/zones/{origin}",
            get(zones::get).put(zones::put).delete(zones::delete),
        )
        .route("/records", get(records::list).post(records::create))
        .route(
            "/records/{name}/{type}",
            get(records::get).put(records::put).delete(records::delete),
        )
        .route("/vips", get(vips::list).post(vips::create))
        .route(
            "/vips/{address}/{port}/{protocol}",
            get(vips::get).put(vips::put).delete(vips::delete),
        )
        .route("/health", get(health::list))
        .route("/health/{address}", get(health::get))
        .route("/nodes", get(nodes::list))
        .route("/status", get(status::get))
        .route("/inspect", get(inspect::list))
        .route("/alerts", get(alerts::list))
        .route("/silences", get(silences::list).post(silences::create))
        .route(
            "/silences/{id}",
            get(silences::get).delete(silences::delete),
        )
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::no_method)
        .with_state(Api { store })
        .layer(middleware::from_fn_with_state(Arc::new(auth), auth::layer))
        .layer(middleware::from_fn_with_state(metrics.clone(), count));
    // The metrics layer goes on each router (not around the nest), so that the route label
    // is the full path template and no request is counted twice.
    let api = Router::new()
        .route("/openapi.json", get(openapi::serve))
        .method_not_allowed_fallback(error::no_method)
        .route_layer(middleware::from_fn_with_state(metrics, count))
        .nest("/v1", v1)
        .fallback(error::no_route);
    Router::new().nest("/api", api)
}

/// Loads the certificate and key, to fail at start-up rather than at the first connection.
///
/// # Errors
/// When the files cannot be read or do not hold a usable certificate and key.
pub fn check_tls(files: &TlsFiles) -> std::io::Result<()> {
    tls::acceptor(files).map(|_| ())
}

/// Serves `router` on `listener` until `shutdown` completes, over TLS when `tls` is given.
///
/// # Errors
/// TLS files that cannot be loaded (before anything is served); the server's failure.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    tls: Option<TlsFiles>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match tls {
        None => {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(files) => {
            let listener = tls::Listener::new(listener, tls::acceptor(&files)?)?;
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}
