//! One stored object through the API: read with its ETag, created, replaced or deleted in a
//! transaction guarded by the `mod_revision` the request was checked against.
//!
//! Rules every resource shares:
//! - create (POST, or PUT without `If-Match`): guarded by "absent", 409 when the key exists;
//! - replace (PUT with `If-Match: "REV"` or `*`): 412 unless the key exists at that revision;
//! - delete: 404 when absent (412 when `If-Match` was given), 412 on a stale `If-Match`;
//! - an object control derives from Kubernetes ([`is_owned`]) is never
//!   replaced or deleted: 403.
//!
//! The check and the write are one transaction: a write that lost a race is refused (409 or
//! 412), never applied over the change it did not see.

use super::error::ApiError;
use super::extract::{Precondition, etag};
use crate::publish::diff::is_owned;
use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use dataplane_common::model::{self, Validate};
use dataplane_common::store::{Compare, KeyValue, Op, Revision, Store, Txn};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The 403 reason for an object derived from Kubernetes.
const KUBERNETES_OWNED: &str = "this object is derived from Kubernetes (`source: kubernetes`) \
     and is read-only here: change the Service or EndpointSlice instead";

/// Reads and decodes `key`; 404 naming `what` when it is absent.
pub(crate) async fn read<T: DeserializeOwned + Validate>(
    store: &dyn Store,
    key: &str,
    what: &str,
) -> Result<(T, Revision), ApiError> {
    let kv = store
        .get(key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no {what}")))?;
    let value = model::decode(&kv.value).map_err(|e| ApiError::corrupt(key, &e))?;
    Ok((value, kv.mod_revision))
}

/// `value` as JSON with its ETag.
pub(crate) fn respond<T: Serialize>(status: StatusCode, value: &T, revision: Revision) -> Response {
    (status, [(header::ETAG, etag(revision))], Json(value)).into_response()
}

/// A created object: 201 with its ETag and `Location`.
pub(crate) fn created<T: Serialize>(value: &T, revision: Revision, location: &str) -> Response {
    let mut response = respond(StatusCode::CREATED, value, revision);
    if let Ok(location) = location.parse() {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Creates `key`; 409 when it exists. Returns the new revision.
pub(crate) async fn create<T: Serialize>(
    store: &dyn Store,
    key: &str,
    value: &T,
    what: &str,
) -> Result<Revision, ApiError> {
    let outcome = store.txn(put_if(key, 0, value)).await?;
    if outcome.succeeded {
        return Ok(outcome.revision);
    }
    match store.get(key).await? {
        Some(kv) if is_owned(key, &kv.value) => Err(ApiError::forbidden(KUBERNETES_OWNED)),
        _ => Err(ApiError::conflict(format!(
            "{what} exists already; to replace it, PUT with `If-Match` set to its ETag (or `*`)"
        ))),
    }
}

/// Creates (no precondition) or replaces `key` per `If-Match`. Returns the new revision and
/// whether the object was created.
pub(crate) async fn put<T: Serialize>(
    store: &dyn Store,
    key: &str,
    value: &T,
    precondition: &Precondition,
    what: &str,
) -> Result<(Revision, bool), ApiError> {
    if *precondition == Precondition::None {
        return Ok((create(store, key, value, what).await?, true));
    }
    let current = guard(store, key, precondition, what).await?;
    let outcome = store.txn(put_if(key, current.mod_revision, value)).await?;
    if outcome.succeeded {
        Ok((outcome.revision, false))
    } else {
        Err(lost_race(what))
    }
}

/// Deletes `key` per `If-Match`.
pub(crate) async fn delete(
    store: &dyn Store,
    key: &str,
    precondition: &Precondition,
    what: &str,
) -> Result<(), ApiError> {
    let current = guard(store, key, precondition, what).await?;
    let outcome = store
        .txn(Txn {
            compares: vec![Compare {
                key: key.to_owned(),
                mod_revision: current.mod_revision,
            }],
            ops: vec![Op::Delete {
                key: key.to_owned(),
            }],
        })
        .await?;
    if outcome.succeeded {
        Ok(())
    } else {
        Err(lost_race(what))
    }
}

/// The current key, if the precondition holds and the API may change it.
async fn guard(
    store: &dyn Store,
    key: &str,
    precondition: &Precondition,
    what: &str,
) -> Result<KeyValue, ApiError> {
    let Some(current) = store.get(key).await? else {
        return Err(match precondition {
            Precondition::None => ApiError::not_found(format!("no {what}")),
            _ => ApiError::precondition_failed(format!("If-Match: no {what} exists")),
        });
    };
    if let Precondition::Revisions(revisions) = precondition
        && !revisions.contains(&current.mod_revision)
    {
        return Err(ApiError::precondition_failed(format!(
            "If-Match is stale: the {what} is now at ETag \"{}\"",
            current.mod_revision
        )));
    }
    if is_owned(key, &current.value) {
        return Err(ApiError::forbidden(KUBERNETES_OWNED));
    }
    Ok(current)
}

fn put_if<T: Serialize>(key: &str, mod_revision: Revision, value: &T) -> Txn {
    Txn {
        compares: vec![Compare {
            key: key.to_owned(),
            mod_revision,
        }],
        ops: vec![Op::Put {
            key: key.to_owned(),
            value: model::encode(value),
            lease: None,
        }],
    }
}

fn lost_race(what: &str) -> ApiError {
    ApiError::precondition_failed(format!(
        "the {what} changed while this request was served; read it again and retry"
    ))
}

/// The 422 for a body that claims to come from Kubernetes.
pub(crate) fn user_source(source: &str) -> Result<(), ApiError> {
    if source == "user" {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "source",
            "the API writes only `user` objects; `kubernetes` ones come from the cluster",
        ))
    }
}
