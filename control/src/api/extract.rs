//! Reading requests: JSON bodies, path and query parameters, `If-Match`; every failure is
//! an [`ApiError`] naming what is wrong (axum's own rejections are plain text).
//!
//! A body that is not JSON, or not the expected shape (a wrong type, a missing or unknown
//! field), is 400; a body of the right shape with a bad value (a name, an address, a port
//! out of range, an unknown record type, or anything the model's `Validate` refuses) is 422.

use super::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use dataplane_common::model::{Name, Validate};
use dataplane_common::store::Revision;
use serde::de::DeserializeOwned;
use serde_json::error::Category;
use std::net::{Ipv4Addr, Ipv6Addr};

/// A JSON body, parsed and validated.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Validate> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(request.headers()) {
            return Err(ApiError::unsupported_media_type());
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(e.body_text())
            } else {
                ApiError::bad_request(e.body_text())
            }
        })?;
        let value: T = parse(&bytes)?;
        value.validate()?;
        Ok(Self(value))
    }
}

/// Whether the content type is JSON (`application/json`, parameters and `+json` allowed).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(Ok(value)) = headers.get(header::CONTENT_TYPE).map(HeaderValue::to_str) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses JSON, naming the failing field; 400 for syntax and shape, 422 for values.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let mut error = from_serde(&path, e.inner());
        // Serde reads an internally tagged enum (record data) as a whole, so the path stops
        // at the record: find the field that is to blame.
        if let Some(field) = error.field.as_deref()
            && field.ends_with(']')
            && let Ok(body) = serde_json::from_slice::<serde_json::Value>(bytes)
            && let Some(inner) = rdata_field(at_path(&body, field))
        {
            error.field = Some(format!("{field}.{inner}"));
        }
        error
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
    Ok(value)
}

fn from_serde(path: &str, e: &serde_json::Error) -> ApiError {
    if e.classify() != Category::Data {
        return ApiError::bad_request(format!("the body is not JSON: {e}"));
    }
    // serde_json appends " at line L column C"; the field path says more.
    let text = e.to_string();
    let message = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(m, _)| m);
    let base = if path == "." { "" } else { path };
    // The path ends at the unknown field itself, but at the parent of a missing one.
    let join = |name: &str| {
        if base.is_empty() {
            name.to_owned()
        } else if base == name || base.ends_with(&format!(".{name}")) {
            base.to_owned()
        } else {
            format!("{base}.{name}")
        }
    };
    let named = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('`'))
            .and_then(|rest| rest.split_once('`'))
            .map(|(name, _)| join(name))
    };
    let shape = ["missing field ", "unknown field ", "duplicate field "]
        .into_iter()
        .find_map(named)
        .or_else(|| {
            (message.starts_with("invalid type") || message.starts_with("invalid length"))
                .then(|| if base.is_empty() { "body" } else { base }.to_owned())
        });
    match shape {
        Some(field) => ApiError::bad_request(message.to_owned()).on(field),
        None => ApiError::invalid(if base.is_empty() { "body" } else { base }, message),
    }
}

/// The value at a serde_path_to_error path (`records[0]`), or null.
fn at_path<'a>(body: &'a serde_json::Value, path: &str) -> &'a serde_json::Value {
    let mut value = body;
    for part in path.split('.') {
        let (key, indices) = part.split_once('[').unwrap_or((part, ""));
        if !key.is_empty() {
            value = &value[key];
        }
        for index in indices.split('[') {
            if let Some(i) = index
                .strip_suffix(']')
                .and_then(|i| i.parse::<usize>().ok())
            {
                value = &value[i];
            }
        }
    }
    value
}

/// The first field of a record's data (an `RData` as JSON) that does not read.
fn rdata_field(value: &serde_json::Value) -> Option<&'static str> {
    fn reads<T: DeserializeOwned>(value: &serde_json::Value, field: &str) -> bool {
        value.get(field).is_some_and(|v| T::deserialize(v).is_ok())
    }
    type Reads = fn(&serde_json::Value, &str) -> bool;
    let fields: &[(&'static str, Reads)] = match value.get("type")?.as_str()? {
        "A" => &[("address", reads::<Ipv4Addr>)],
        "AAAA" => &[("address", reads::<Ipv6Addr>)],
        "CNAME" | "PTR" => &[("target", reads::<Name>)],
        "NS" => &[("host", reads::<Name>)],
        "MX" => &[("preference", reads::<u16>), ("exchange", reads::<Name>)],
        "SRV" => &[
            ("priority", reads::<u16>),
            ("weight", reads::<u16>),
            ("port", reads::<u16>),
            ("target", reads::<Name>),
        ],
        "TXT" => &[("strings", reads::<Vec<String>>)],
        _ => return Some("type"),
    };
    fields
        .iter()
        .find(|(field, reads)| !reads(value, field))
        .map(|(field, _)| *field)
}

/// Path parameters, a rejection being 400.
#[derive(Debug)]
pub(crate) struct Params<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| Self(t))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// Query parameters (all read as text; each is checked by its user), a rejection being 400.
#[derive(Debug)]
pub(crate) struct QueryParams<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(t)| Self(t))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// What `If-Match` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Precondition {
    /// No header.
    None,
    /// `*`: the object must exist.
    Exists,
    /// One of these revisions (strong ETags); empty when none could be read: never holds.
    Revisions(Vec<Revision>),
}

impl Precondition {
    /// Reads `If-Match` (RFC 9110 section 13.1.1: strong comparison, so weak tags never match).
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        // An empty header names no tag: it is no precondition.
        let values: Vec<&str> = headers
            .get_all(header::IF_MATCH)
            .iter()
            .map(|v| v.to_str().unwrap_or("\"invalid\"").trim())
            .filter(|v| !v.is_empty())
            .collect();
        if values.is_empty() {
            return Self::None;
        }
        if values.iter().any(|v| v.trim() == "*") {
            return Self::Exists;
        }
        Self::Revisions(
            values
                .iter()
                .flat_map(|v| v.split(','))
                .filter_map(|tag| {
                    tag.trim()
                        .strip_prefix('"')?
                        .strip_suffix('"')?
                        .parse()
                        .ok()
                })
                .collect(),
        )
    }
}

/// The ETag of a revision: the number, quoted.
pub(crate) fn etag(revision: Revision) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{revision}\""))
        .expect("invariant: a quoted number is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane_common::model::{RecordSet, Vip};

    fn err<T: DeserializeOwned + std::fmt::Debug>(json: &str) -> ApiError {
        parse::<T>(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn shape_errors_are_400_with_the_field() {
        let e = err::<Vip>(r#"{"address":"10.0.0.1","protocol":"TCP"}"#);
        assert_eq!(
            (e.status, e.field.as_deref()),
            (StatusCode::BAD_REQUEST, Some("port"))
        );
        let e = err::<Vip>(r#"{"address":"10.0.0.1","port":"x","protocol":"TCP"}"#);
        assert_eq!(
            (e.status, e.field.as_deref()),
            (StatusCode::BAD_REQUEST, Some("port"))
        );
        let e = err::<Vip>(r#"{"address":"10.0.0.1","port":1,"protocol":"TCP","z":1}"#);
        assert_eq!(
            (e.status, e.field.as_deref()),
            (StatusCode::BAD_REQUEST, Some("z"))
        );
        let e = err::<Vip>("{");
        assert_eq!((e.status, e.field), (StatusCode::BAD_REQUEST, None));
        let e = err::<Vip>(r#"{"address":"10.0.0.1","port":1,"protocol":"TCP"} x"#);
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn value_errors_are_422_with_the_path() {
        let e = err::<Vip>(
            r#"{"address":"10.0.0.1","port":1,"protocol":"TCP",
                "real_servers":[{"address":"10.0.0.300","port":1,"weight":1}]}"#,
        );
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.field.as_deref(), Some("real_servers[0].address"));
        let e = err::<Vip>(r#"{"address":"10.0.0.1","port":70000,"protocol":"TCP"}"#);
        assert_eq!(e.field.as_deref(), Some("port"));
        let e = err::<RecordSet>(r#"{"name":"a..b","ttl":1,"records":[]}"#);
        assert_eq!(
            (e.status, e.field.as_deref()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("name"))
        );
        let e = err::<RecordSet>(r#"{"name":"a.","ttl":-1,"records":[]}"#);
        assert_eq!(e.field.as_deref(), Some("ttl"));
    }

    #[test]
    fn if_match_reads_strong_tags() {
        let mut h = HeaderMap::new();
        assert_eq!(Precondition::from_headers(&h), Precondition::None);
        h.insert(header::IF_MATCH, HeaderValue::from_static("\"7\", W/\"8\""));
        assert_eq!(
            Precondition::from_headers(&h),
            Precondition::Revisions(vec![7])
        );
        h.insert(header::IF_MATCH, HeaderValue::from_static("*"));
        assert_eq!(Precondition::from_headers(&h), Precondition::Exists);
        h.insert(header::IF_MATCH, HeaderValue::from_static("bogus"));
        assert_eq!(
            Precondition::from_headers(&h),
            Precondition::Revisions(vec![])
        );
    }
}
