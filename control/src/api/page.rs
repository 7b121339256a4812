//! Pagination of lists: `?limit=N&continue=TOKEN`, in key order.
//!
//! The token is opaque to clients: the hex of the first key of the next page. A page holds
//! the keys from that key on, so a list that changes between pages neither repeats nor skips
//! a key that stayed in place.

use super::error::ApiError;
use axum::Json;
use dataplane_common::model::{self, Validate};
use dataplane_common::store::{Revision, Store};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::warn;

/// Items per page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest `limit`.
pub const MAX_LIMIT: usize = 1000;

/// The pagination parameters of a list request (as text; checked by [`Page::new`]).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PageQuery {
    pub(crate) limit: Option<String>,
    #[serde(rename = "continue")]
    pub(crate) token: Option<String>,
}

/// Where a page starts and how long it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Page {
    limit: usize,
    from: Option<String>,
}

/// One page of a list, as returned.
#[derive(Debug, Serialize)]
pub(crate) struct Items<T> {
    pub(crate) items: Vec<T>,
    /// The token of the next page; absent on the last one.
    #[serde(rename = "continue", skip_serializing_if = "Option::is_none")]
    pub(crate) next: Option<String>,
    /// The store revision the page was read at.
    pub(crate) revision: Revision,
}

impl Page {
    /// Checks `limit` (1 to [`MAX_LIMIT`]) and the token (one of a list under `prefix`).
    ///
    /// # Errors
    /// 400 naming `limit` or `continue`.
    pub(crate) fn new(query: &PageQuery, prefix: &str) -> Result<Self, ApiError> {
        let limit = match &query.limit {
            None => DEFAULT_LIMIT,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_parameter("limit", format!("must be 1 to {MAX_LIMIT}"))
                })?,
        };
        let from = match query.token.as_deref() {
            None | Some("") => None,
            Some(token) => Some(
                decode_token(token)
                    .filter(|key| key.starts_with(prefix))
                    .ok_or_else(|| {
                        ApiError::bad_parameter(
                            "continue",
                            "not a token from this list (use the `continue` of a previous page)",
                        )
                    })?,
            ),
        };
        Ok(Self { limit, from })
    }

    /// The page of `items` (in key order, already filtered), and the next page's token.
    pub(crate) fn select<T>(
        &self,
        items: impl IntoIterator<Item = T>,
        key: impl Fn(&T) -> &str,
    ) -> (Vec<T>, Option<String>) {
        let mut rest = items
            .into_iter()
            .skip_while(|item| self.from.as_deref().is_some_and(|from| key(item) < from))
            .peekable();
        let mut page = Vec::new();
        while page.len() < self.limit {
            match rest.next() {
                Some(item) => page.push(item),
                None => break,
            }
        }
        let next = rest.peek().map(|item| encode_token(key(item)));
        (page, next)
    }
}

/// Lists `prefix`: decodes each value (skipping, with a warning, those that cannot be read),
/// keeps those `keep` accepts, and returns the page `query` asks for.
///
/// # Errors
/// 400 for bad pagination parameters; the store's error.
pub(crate) async fn list<T: DeserializeOwned + Validate + Serialize>(
    store: &dyn Store,
    prefix: &str,
    query: &PageQuery,
    keep: impl Fn(&str, &T) -> bool,
) -> Result<Json<Items<T>>, ApiError> {
    let page = Page::new(query, prefix)?;
    let listing = store.list(prefix, None).await?;
    let decoded = listing
        .kvs
        .into_iter()
        .filter_map(|kv| match model::decode::<T>(&kv.value) {
            Ok(value) => keep(&kv.key, &value).then_some((kv.key, value)),
            Err(e) => {
                warn!(key = %kv.key, error = %e, "skipping a stored value that cannot be read");
                None
            }
        });
    let (items, next) = page.select(decoded, |(key, _)| key);
    Ok(Json(Items {
        items: items.into_iter().map(|(_, v)| v).collect(),
        next,
        revision: listing.revision,
    }))
}

fn encode_token(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_token(token: &str) -> Option<String> {
    if !token.len().is_multiple_of(2) || !token.is_ascii() {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(limit: Option<&str>, token: Option<&str>) -> PageQuery {
        PageQuery {
            limit: limit.map(str::to_owned),
            token: token.map(str::to_owned),
        }
    }

    #[test]
    fn pages_walk_every_key_once() {
        let keys: Vec<_> = (0..25).map(|i| format!("/p/{i:03}")).collect();
        let mut token = None;
        let mut seen = Vec::new();
        loop {
            let page = Page::new(&query(Some("10"), token.as_deref()), "/p/").unwrap();
            let (items, next) = page.select(&keys, |k| k.as_str());
            seen.extend(items.into_iter().cloned());
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        assert_eq!(seen, keys);
    }

    #[test]
    fn bad_parameters_are_named() {
        for limit in ["0", "1001", "x", "-1"] {
            let e = Page::new(&query(Some(limit), None), "/p/").unwrap_err();
            assert_eq!(e.field.as_deref(), Some("limit"));
        }
        for token in ["zz", "abc", &encode_token("/other/x")] {
            let e = Page::new(&query(None, Some(token)), "/p/").unwrap_err();
            assert_eq!(e.field.as_deref(), Some("continue"));
        }
    }
}
