//! `/api/v1/status`: whether the store answers, its revision, and how many objects of each
//! kind it holds. An unreachable store is a 503 with the store's reason.

use super::Api;
use super::error::ApiError;
use axum::Json;
use axum::extract::State;
use dataplane_common::model::keys;
use dataplane_common::store::Revision;
use serde::Serialize;

/// The answer of `GET /api/v1/status`.
#[derive(Debug, Serialize)]
pub(crate) struct Status {
    /// `ok`: the store answered.
    store: &'static str,
    /// The store's revision.
    revision: Revision,
    /// Objects by kind.
    counts: Counts,
}

/// Objects by kind.
#[derive(Debug, Default, Serialize)]
struct Counts {
    zones: usize,
    records: usize,
    vips: usize,
    health: usize,
    nodes: usize,
}

/// `GET /api/v1/status`.
pub(crate) async fn get(State(api): State<Api>) -> Result<Json<Status>, ApiError> {
    let mut counts = Counts::default();
    let mut revision = 0;
    for (prefix, count) in [
        (keys::ZONES, &mut counts.zones),
        (keys::RECORDS, &mut counts.records),
        (keys::VIPS, &mut counts.vips),
        (keys::HEALTH, &mut counts.health),
        (keys::NODES, &mut counts.nodes),
    ] {
        let listing = api.store.list(prefix, None).await?;
        *count = listing.kvs.len();
        revision = revision.max(listing.revision);
    }
    Ok(Json(Status {
        store: "ok",
        revision,
        counts,
    }))
}
