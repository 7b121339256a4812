//! The one error shape of the API: `{"error": CODE, "reason": TEXT, "field": PATH}`.
//!
//! Every refusal carries a short machine code, a sentence an operator can act on and, when
//! one field is to blame, its path (`records[0].address`, or a path or query parameter's
//! name). Bad input always maps to a 4xx; only the store (or a bug) gives a 5xx.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dataplane_common::model::{DecodeError, ValidationError};
use dataplane_common::store::StoreError;
use serde::Serialize;
use tracing::warn;

/// A request the API refuses or could not serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A short machine-readable code (`invalid`, `conflict`, ...).
    pub code: &'static str,
    /// Why, in words.
    pub reason: String,
    /// The field to blame, if one is.
    pub field: Option<String>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, reason: impl Into<String>) -> Self {
        Self {
            status,
            code,
            reason: reason.into(),
            field: None,
        }
    }

    /// The same error, blaming `field`.
    #[must_use]
    pub fn on(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 400: a body that is not JSON or not of the expected shape.
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", reason)
    }

    /// 400: a path or query parameter that cannot be what it names.
    pub fn bad_parameter(field: &str, reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_parameter", reason).on(field)
    }

    /// 401: no credentials, or credentials the API does not know.
    pub fn unauthorized(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", reason)
    }

    /// 403: known credentials without the right, or an object the API may not change.
    pub fn forbidden(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", reason)
    }

    /// 404.
    pub fn not_found(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", reason)
    }

    /// 405.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this path does not take that method",
        )
    }

    /// 409: the object exists already, or changed while the request was served.
    pub fn conflict(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", reason)
    }

    /// 412: `If-Match` does not name the object's current revision.
    pub fn precondition_failed(reason: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            reason,
        )
    }

    /// 413.
    pub fn too_large(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", reason)
    }

    /// 415.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON (`Content-Type: application/json`)",
        )
    }

    /// 422: well-formed but invalid.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", reason).on(field)
    }

    /// 503 or 500 from a store error: 503 when trying again may help.
    pub fn store(e: &StoreError) -> Self {
        if e.is_retryable() {
            Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                e.to_string(),
            )
        } else {
            warn!(error = %e, "store failed while serving an API request");
            Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "store_failed",
                e.to_string(),
            )
        }
    }

    /// 500: a stored value that cannot be read (written by something other than the API).
    pub fn corrupt(key: &str, e: &DecodeError) -> Self {
        warn!(key, error = %e, "stored value cannot be decoded");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "corrupt",
            format!("the stored value of `{key}` cannot be read: {e}"),
        )
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        Self::invalid(e.field, e.reason)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::store(&e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: self.code,
            reason: &self.reason,
            field: self.field.as_deref(),
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The 404 of a path the API does not have.
pub(crate) async fn no_route() -> ApiError {
    ApiError::not_found("no such API path (see /api/openapi.json)")
}

/// The 405 of a path that exists with other methods.
pub(crate) async fn no_method() -> ApiError {
    ApiError::method_not_allowed()
}
