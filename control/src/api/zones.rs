//! `/api/v1/zones`: the zones dataplane is authoritative for.
//!
//! A zone has no `source`: the cluster zone control seeds is edited like any other.
//! Deleting a zone leaves its record sets in place (dns serves nothing outside a zone).

use super::Api;
use super::error::ApiError;
use super::extract::{JsonBody, Params, Precondition, QueryParams};
use super::object;
use super::page::{self, Items, PageQuery};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use dataplane_common::model::{Name, Zone, keys};

/// What a 404 or 409 calls the object.
const WHAT: &str = "zone at this origin";

/// A zone origin from the path; 400 naming `origin` when it is not a name.
pub(crate) fn origin_param(text: &str) -> Result<Name, ApiError> {
    text.parse()
        .map_err(|e| ApiError::bad_parameter("origin", format!("not a domain name: {e}")))
}

fn location(origin: &Name) -> String {
    format!("/api/v1/zones/{origin}")
}

/// `GET /api/v1/zones`.
pub(crate) async fn list(
    State(api): State<Api>,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<Items<Zone>>, ApiError> {
    page::list(&*api.store, keys::ZONES, &query, |_, _: &Zone| true).await
}

/// `POST /api/v1/zones`: creates; 409 when the origin has a zone.
pub(crate) async fn create(
    State(api): State<Api>,
    JsonBody(zone): JsonBody<Zone>,
) -> Result<Response, ApiError> {
    let revision = object::create(&*api.store, &keys::zone(&zone.origin), &zone, WHAT).await?;
    Ok(object::created(&zone, revision, &location(&zone.origin)))
}

/// `GET /api/v1/zones/{origin}`.
pub(crate) async fn get(
    State(api): State<Api>,
    Params(origin): Params<String>,
) -> Result<Response, ApiError> {
    let origin = origin_param(&origin)?;
    let (zone, revision) = object::read::<Zone>(&*api.store, &keys::zone(&origin), WHAT).await?;
    Ok(object::respond(StatusCode::OK, &zone, revision))
}

/// `PUT /api/v1/zones/{origin}`: creates, or replaces per `If-Match`.
pub(crate) async fn put(
    State(api): State<Api>,
    Params(origin): Params<String>,
    headers: HeaderMap,
    JsonBody(zone): JsonBody<Zone>,
) -> Result<Response, ApiError> {
    let origin = origin_param(&origin)?;
    if zone.origin != origin {
        return Err(ApiError::invalid(
            "origin",
            format!("is `{}` but the path names `{origin}`", zone.origin),
        ));
    }
    let precondition = Precondition::from_headers(&headers);
    let (revision, created) = object::put(
        &*api.store,
        &keys::zone(&origin),
        &zone,
        &precondition,
        WHAT,
    )
    .await?;
    Ok(if created {
        object::created(&zone, revision, &location(&origin))
    } else {
        object::respond(StatusCode::OK, &zone, revision)
    })
}

/// `DELETE /api/v1/zones/{origin}`.
pub(crate) async fn delete(
    State(api): State<Api>,
    Params(origin): Params<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let origin = origin_param(&origin)?;
    let precondition = Precondition::from_headers(&headers);
    object::delete(&*api.store, &keys::zone(&origin), &precondition, WHAT).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
