//! `/api/v1/records`: record sets, one per owner name and type.
//!
//! Written sets are `user` sets whose owner lies in a stored zone; a set control derives
//! from Kubernetes is read-only. SOA is not a record set: it is part of the zone.

use super::Api;
use super::error::ApiError;
use super::extract::{JsonBody, Params, Precondition, QueryParams};
use super::object;
use super::page::{self, Items, PageQuery};
use super::zones::origin_param;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use dataplane_common::model::{Name, RecordSet, RecordType, keys};
use dataplane_common::store::Store;
use serde::Deserialize;

/// What a 404 or 409 calls the object.
const WHAT: &str = "record set of this name and type";

/// The filters of `GET /api/v1/records`.
#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    zone: Option<String>,
    name: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

fn name_param(text: &str) -> Result<Name, ApiError> {
    text.parse()
        .map_err(|e| ApiError::bad_parameter("name", format!("not a domain name: {e}")))
}

fn type_param(text: &str) -> Result<RecordType, ApiError> {
    match text.parse::<RecordType>() {
        Ok(RecordType::Soa) => Err(ApiError::bad_parameter(
            "type",
            "SOA is part of the zone: use /api/v1/zones/{origin}",
        )),
        Ok(kind) => Ok(kind),
        Err(e) => Err(ApiError::bad_parameter("type", e)),
    }
}

fn location(name: &Name, kind: RecordType) -> String {
    format!("/api/v1/records/{name}/{}", kind.as_str())
}

/// The set's type (a validated set is never empty).
fn kind_of(set: &RecordSet) -> Result<RecordType, ApiError> {
    set.record_type()
        .ok_or_else(|| ApiError::invalid("records", "must hold at least one record"))
}

/// 422 unless `set` may be written: a `user` set whose owner is in a stored zone.
async fn check_writable(store: &dyn Store, set: &RecordSet) -> Result<(), ApiError> {
    object::user_source(&set.source)?;
    let zones = store.list(keys::ZONES, None).await?;
    let in_zone = zones.kvs.iter().any(|kv| {
        kv.key
            .strip_prefix(keys::ZONES)
            .and_then(|origin| origin.parse::<Name>().ok())
            .is_some_and(|origin| set.name.is_within(&origin))
    });
    if in_zone {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "name",
            format!(
                "`{}` is in no zone dataplane serves; create the zone first",
                set.name
            ),
        ))
    }
}

/// `GET /api/v1/records[?zone=ORIGIN][&name=NAME]`.
pub(crate) async fn list(
    State(api): State<Api>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<Items<RecordSet>>, ApiError> {
    let zone = query.zone.as_deref().map(origin_param).transpose()?;
    let name = query.name.as_deref().map(name_param).transpose()?;
    // With a name, only that owner's keys are read.
    let prefix = match &name {
        Some(name) => format!("{}{name}/", keys::RECORDS),
        None => keys::RECORDS.to_owned(),
    };
    page::list(&*api.store, &prefix, &query.page, |_, set: &RecordSet| {
        zone.as_ref().is_none_or(|z| set.name.is_within(z))
    })
    .await
}

/// `POST /api/v1/records`: creates; 409 when the set exists.
pub(crate) async fn create(
    State(api): State<Api>,
    JsonBody(set): JsonBody<RecordSet>,
) -> Result<Response, ApiError> {
    let kind = kind_of(&set)?;
    check_writable(&*api.store, &set).await?;
    let key = keys::record_set(&set.name, kind);
    let revision = object::create(&*api.store, &key, &set, WHAT).await?;
    Ok(object::created(&set, revision, &location(&set.name, kind)))
}

/// `GET /api/v1/records/{name}/{type}`.
pub(crate) async fn get(
    State(api): State<Api>,
    Params((name, kind)): Params<(String, String)>,
) -> Result<Response, ApiError> {
    let (name, kind) = (name_param(&name)?, type_param(&kind)?);
    let key = keys::record_set(&name, kind);
    let (set, revision) = object::read::<RecordSet>(&*api.store, &key, WHAT).await?;
    Ok(object::respond(StatusCode::OK, &set, revision))
}

/// `PUT /api/v1/records/{name}/{type}`: creates, or replaces per `If-Match`.
pub(crate) async fn put(
    State(api): State<Api>,
    Params((name, kind)): Params<(String, String)>,
    headers: HeaderMap,
    JsonBody(set): JsonBody<RecordSet>,
) -> Result<Response, ApiError> {
    let (name, kind) = (name_param(&name)?, type_param(&kind)?);
    if set.name != name {
        return Err(ApiError::invalid(
            "name",
            format!("is `{}` but the path names `{name}`", set.name),
        ));
    }
    if let Some(i) = set.records.iter().position(|r| r.record_type() != kind) {
        return Err(ApiError::invalid(
            format!("records[{i}]"),
            format!("the path names type {}", kind.as_str()),
        ));
    }
    check_writable(&*api.store, &set).await?;
    let precondition = Precondition::from_headers(&headers);
    let key = keys::record_set(&name, kind);
    let (revision, created) = object::put(&*api.store, &key, &set, &precondition, WHAT).await?;
    Ok(if created {
        object::created(&set, revision, &location(&name, kind))
    } else {
        object::respond(StatusCode::OK, &set, revision)
    })
}

/// `DELETE /api/v1/records/{name}/{type}`.
pub(crate) async fn delete(
    State(api): State<Api>,
    Params((name, kind)): Params<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (name, kind) = (name_param(&name)?, type_param(&kind)?);
    let precondition = Precondition::from_headers(&headers);
    object::delete(
        &*api.store,
        &keys::record_set(&name, kind),
        &precondition,
        WHAT,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
