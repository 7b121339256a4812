//! `/api/v1/alerts`: each evaluator's firing alerts (notified, folded under a root cause,
//! or silenced) and health scores (read-only: the evaluators write them).

use super::Api;
use super::error::ApiError;
use super::extract::QueryParams;
use super::page::{self, Items, PageQuery};
use crate::alert::ALERTS;
use crate::alert::view::View;
use axum::Json;
use axum::extract::State;

/// `GET /api/v1/alerts`.
pub(crate) async fn list(
    State(api): State<Api>,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<Items<View>>, ApiError> {
    page::list(&*api.store, ALERTS, &query, |_, _: &View| true).await
}
