//! `/api/v1/silences`: silences of alerts (label matchers with a time range). Created with
//! POST (the API assigns the id), listed, read and deleted; a silence is not edited (delete
//! it and create another).

use super::Api;
use super::error::ApiError;
use super::extract::{JsonBody, Params, Precondition, QueryParams};
use super::object;
use super::page::{self, Items, PageQuery};
use crate::alert::SILENCES;
use crate::alert::silence::Silence;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use dataplane_common::clock::{Clock, SystemClock};
use dataplane_common::model::Validate;

const WHAT: &str = "silence";

/// `GET /api/v1/silences`.
pub(crate) async fn list(
    State(api): State<Api>,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<Items<Silence>>, ApiError> {
    page::list(&*api.store, SILENCES, &query, |_, _: &Silence| true).await
}

/// `POST /api/v1/silences`: creates; the id is assigned (any given is refused).
pub(crate) async fn create(
    State(api): State<Api>,
    JsonBody(mut silence): JsonBody<Silence>,
) -> Result<Response, ApiError> {
    if !silence.id.is_empty() {
        return Err(ApiError::invalid("id", "assigned by the API; leave it out"));
    }
    let now = SystemClock
        .wall()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    if silence.starts_at == 0 {
        silence.starts_at = now.as_secs();
    }
    silence.id = format!("{:x}", now.as_nanos());
    silence.validate()?;
    let key = format!("{SILENCES}{}", silence.id);
    let revision = object::create(&*api.store, &key, &silence, WHAT).await?;
    Ok(object::created(
        &silence,
        revision,
        &format!("/api/v1/silences/{}", silence.id),
    ))
}

fn key(id: &str) -> Result<String, ApiError> {
    if id.is_empty() || id.contains('/') {
        return Err(ApiError::bad_parameter("id", "not a silence id"));
    }
    Ok(format!("{SILENCES}{id}"))
}

/// `GET /api/v1/silences/{id}`.
pub(crate) async fn get(
    State(api): State<Api>,
    Params(id): Params<String>,
) -> Result<Response, ApiError> {
    let (silence, revision) = object::read::<Silence>(&*api.store, &key(&id)?, WHAT).await?;
    Ok(object::respond(StatusCode::OK, &silence, revision))
}

/// `DELETE /api/v1/silences/{id}` (If-Match optional).
pub(crate) async fn delete(
    State(api): State<Api>,
    Params(id): Params<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let precondition = Precondition::from_headers(&headers);
    object::delete(&*api.store, &key(&id)?, &precondition, WHAT).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
