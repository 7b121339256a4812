//! `/api/v1/nodes`: the dataplane nodes registered in the store (read-only: each node
//! registers itself under a lease).
//!
//! A registration's value is shown as stored: JSON when it is JSON, else as text.

use super::Api;
use super::error::ApiError;
use super::extract::QueryParams;
use super::page::{Items, Page, PageQuery};
use axum::Json;
use axum::extract::State;
use dataplane_common::model::keys;
use serde::Serialize;

/// One registered node.
#[derive(Debug, Serialize)]
pub(crate) struct Node {
    /// Its name (the key under `/dataplane/nodes/`).
    name: String,
    /// What it registered.
    registration: serde_json::Value,
    /// Whether the registration is held by a lease (it disappears with the node).
    leased: bool,
}

/// `GET /api/v1/nodes`.
pub(crate) async fn list(
    State(api): State<Api>,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<Items<Node>>, ApiError> {
    let page = Page::new(&query, keys::NODES)?;
    let listing = api.store.list(keys::NODES, None).await?;
    let (kvs, next) = page.select(&listing.kvs, |kv| &kv.key);
    let items = kvs
        .into_iter()
        .map(|kv| Node {
            name: kv
                .key
                .strip_prefix(keys::NODES)
                .unwrap_or(&kv.key)
                .to_owned(),
            registration: serde_json::from_slice(&kv.value).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&kv.value).into_owned())
            }),
            leased: kv.lease != 0,
        })
        .collect();
    Ok(Json(Items {
        items,
        next,
        revision: listing.revision,
    }))
}
