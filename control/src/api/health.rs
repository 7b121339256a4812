//! `/api/v1/health`: what the health checkers decided, per address (read-only: the
//! checkers write it).

use super::Api;
use super::error::ApiError;
use super::extract::{Params, QueryParams};
use super::object;
use super::page::{self, Items, PageQuery};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use dataplane_common::model::{Health, keys};
use std::net::IpAddr;

/// `GET /api/v1/health`.
pub(crate) async fn list(
    State(api): State<Api>,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<Items<Health>>, ApiError> {
    page::list(&*api.store, keys::HEALTH, &query, |_, _: &Health| true).await
}

/// `GET /api/v1/health/{address}`.
pub(crate) async fn get(
    State(api): State<Api>,
    Params(address): Params<String>,
) -> Result<Response, ApiError> {
    let address: IpAddr = address
        .parse()
        .map_err(|_| ApiError::bad_parameter("address", "not an IPv4 or IPv6 address"))?;
    let (health, revision) = object::read::<Health>(
        &*api.store,
        &keys::health(address),
        "health state for this address",
    )
    .await?;
    Ok(object::respond(StatusCode::OK, &health, revision))
}
