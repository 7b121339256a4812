//! `/api/v1/vips`: virtual IPs and their real servers, keyed by address, port and protocol.
//!
//! Written VIPs are `user` VIPs; one control derives from a Kubernetes Service is read-only.

use super::Api;
use super::error::ApiError;
use super::extract::{JsonBody, Params, Precondition, QueryParams};
use super::object;
use super::page::{self, Items, PageQuery};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use dataplane_common::model::{Protocol, Vip, keys};
use std::net::IpAddr;

/// What a 404 or 409 calls the object.
const WHAT: &str = "VIP at this address, port and protocol";

/// The three path parameters, parsed; 400 naming the bad one.
fn key_params(
    (address, port, protocol): &(String, String, String),
) -> Result<(IpAddr, u16, Protocol), ApiError> {
    let address: IpAddr = address
        .parse()
        .map_err(|_| ApiError::bad_parameter("address", "not an IPv4 or IPv6 address"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| ApiError::bad_parameter("port", "must be 1 to 65535"))?;
    let protocol = match protocol.to_ascii_lowercase().as_str() {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        _ => return Err(ApiError::bad_parameter("protocol", "must be tcp or udp")),
    };
    Ok((address, port, protocol))
}

fn location(vip: &Vip) -> String {
    format!(
        "/api/v1/vips/{}/{}/{}",
        vip.address,
        vip.port,
        vip.protocol.as_lower()
    )
}

/// `GET /api/v1/vips`.
pub(crate) async fn list(
    State(api): State<Api>,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<Items<Vip>>, ApiError> {
    page::list(&*api.store, keys::VIPS, &query, |_, _: &Vip| true).await
}

/// `POST /api/v1/vips`: creates; 409 when the VIP exists.
pub(crate) async fn create(
    State(api): State<Api>,
    JsonBody(vip): JsonBody<Vip>,
) -> Result<Response, ApiError> {
    object::user_source(&vip.source)?;
    let key = keys::vip(vip.address, vip.port, vip.protocol);
    let revision = object::create(&*api.store, &key, &vip, WHAT).await?;
    Ok(object::created(&vip, revision, &location(&vip)))
}

/// `GET /api/v1/vips/{address}/{port}/{protocol}`.
pub(crate) async fn get(
    State(api): State<Api>,
    Params(params): Params<(String, String, String)>,
) -> Result<Response, ApiError> {
    let (address, port, protocol) = key_params(&params)?;
    let key = keys::vip(address, port, protocol);
    let (vip, revision) = object::read::<Vip>(&*api.store, &key, WHAT).await?;
    Ok(object::respond(StatusCode::OK, &vip, revision))
}

/// `PUT /api/v1/vips/{address}/{port}/{protocol}`: creates, or replaces per `If-Match`.
pub(crate) async fn put(
    State(api): State<Api>,
    Params(params): Params<(String, String, String)>,
    headers: HeaderMap,
    JsonBody(vip): JsonBody<Vip>,
) -> Result<Response, ApiError> {
    let (address, port, protocol) = key_params(&params)?;
    object::user_source(&vip.source)?;
    let differs =
        |field: &str| ApiError::invalid(field, format!("differs from the path's `{field}`"));
    if vip.address != address {
        return Err(differs("address"));
    }
    if vip.port != port {
        return Err(differs("port"));
    }
    if vip.protocol != protocol {
        return Err(differs("protocol"));
    }
    let key = keys::vip(address, port, protocol);
    let precondition = Precondition::from_headers(&headers);
    let (revision, created) = object::put(&*api.store, &key, &vip, &precondition, WHAT).await?;
    Ok(if created {
        object::created(&vip, revision, &location(&vip))
    } else {
        object::respond(StatusCode::OK, &vip, revision)
    })
}

/// `DELETE /api/v1/vips/{address}/{port}/{protocol}`.
pub(crate) async fn delete(
    State(api): State<Api>,
    Params(params): Params<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (address, port, protocol) = key_params(&params)?;
    let key = keys::vip(address, port, protocol);
    let precondition = Precondition::from_headers(&headers);
    object::delete(&*api.store, &key, &precondition, WHAT).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
