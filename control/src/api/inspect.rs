//! `/api/v1/inspect`: each inspector's latest round (read-only: the inspectors write it).

use super::Api;
use super::error::ApiError;
use super::extract::QueryParams;
use super::page::{self, Items, PageQuery};
use crate::inspect::RESULTS;
use crate::inspect::checks::Report;
use axum::Json;
use axum::extract::State;

/// `GET /api/v1/inspect`.
pub(crate) async fn list(
    State(api): State<Api>,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<Items<Report>>, ApiError> {
    page::list(&*api.store, RESULTS, &query, |_, _: &Report| true).await
}
