//! Bearer tokens with a `read` or `write` role, from the daemon's config.
//!
//! Rules, in order: a request with an `Authorization` header must carry a known token
//! (else 401); a write (POST, PUT, PATCH, DELETE) needs a `write` token (a `read` token gets
//! 403). Without a header: when no token is configured, reads are open and writes refused
//! (403 saying so); when tokens are configured, every request needs one (401).
//!
//! Secrets are compared in constant time against every configured token (no early exit);
//! only their length can show. They never appear in logs: [`Secret`]'s `Debug` is redacted.

use super::error::ApiError;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dataplane_common::model::ValidationError;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The shortest secret [`Auth::validate`] accepts.
pub const MIN_SECRET_LEN: usize = 16;

/// Who may use the API (the daemon reads it from TOML: `[[api.tokens]]` tables).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// The accepted tokens; none means reads are open and writes refused.
    #[serde(default)]
    pub tokens: Vec<Token>,
}

/// One bearer token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    /// Who holds it (for logs; never the secret).
    pub name: String,
    /// What the client sends after `Bearer `.
    pub secret: Secret,
    /// What it may do.
    pub role: Role,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// GET only.
    Read,
    /// Everything, reads included.
    Write,
}

/// A token's secret; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for a client that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Auth {
    /// Checks the tokens: named, names unique, secrets at least [`MIN_SECRET_LEN`] bytes
    /// of visible ASCII (what an HTTP header can carry).
    ///
    /// # Errors
    /// The first bad field (`tokens[1].secret`).
    pub fn validate(&self) -> Result<(), ValidationError> {
        let mut names = HashSet::new();
        for (i, t) in self.tokens.iter().enumerate() {
            let field = |f: &str| format!("tokens[{i}].{f}");
            if t.name.is_empty() {
                return Err(ValidationError::new(field("name"), "must not be empty"));
            }
            if !names.insert(t.name.as_str()) {
                return Err(ValidationError::new(field("name"), "is used twice"));
            }
            if t.secret.0.len() < MIN_SECRET_LEN {
                return Err(ValidationError::new(
                    field("secret"),
                    format!("must be at least {MIN_SECRET_LEN} characters"),
                ));
            }
            if !t.secret.0.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ValidationError::new(
                    field("secret"),
                    "must be visible ASCII without spaces",
                ));
            }
        }
        Ok(())
    }

    /// Whether a request with these headers may read (`write: false`) or write.
    ///
    /// # Errors
    /// 401 for missing or unknown credentials, 403 for a read token writing or for any
    /// write when no token is configured.
    pub fn authorize(&self, headers: &HeaderMap, write: bool) -> Result<(), ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return match (self.tokens.is_empty(), write) {
                (true, false) => Ok(()),
                (true, true) => Err(ApiError::forbidden(
                    "writes are refused: the API has no tokens configured (reads are open); \
                     configure a token with role `write`",
                )),
                (false, _) => Err(ApiError::unauthorized(
                    "a token is required: send `Authorization: Bearer TOKEN`",
                )),
            };
        };
        let presented = value
            .as_bytes()
            .strip_prefix(b"Bearer ")
            .map(<[u8]>::trim_ascii)
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be `Bearer TOKEN`")
            })?;
        if self.tokens.is_empty() {
            return Err(ApiError::unauthorized(
                "the API has no tokens configured: reads are open without a token and \
                 writes are refused",
            ));
        }
        let token = self
            .find(presented)
            .ok_or_else(|| ApiError::unauthorized("the token is not valid for this API"))?;
        if write && token.role == Role::Read {
            return Err(ApiError::forbidden(format!(
                "token `{}` has the read role; writes need a token with role `write`",
                token.name
            )));
        }
        Ok(())
    }

    /// The token whose secret is `presented`, comparing every one in constant time.
    fn find(&self, presented: &[u8]) -> Option<&Token> {
        let mut found = None;
        for t in &self.tokens {
            if bool::from(t.secret.0.as_bytes().ct_eq(presented)) {
                found = Some(t);
            }
        }
        found
    }
}

/// Whether a method changes state (and so needs a write token).
fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// The middleware that applies [`Auth::authorize`] before any handler runs.
pub(crate) async fn layer(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    match auth.authorize(request.headers(), is_write(request.method())) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderValue, StatusCode};

    fn auth() -> Auth {
        Auth {
            tokens: vec![
                Token {
                    name: "ci".into(),
                    secret: Secret::new("reader-secret-0123456789"),
                    role: Role::Read,
                },
                Token {
                    name: "ops".into(),
                    secret: Secret::new("writer-secret-0123456789"),
                    role: Role::Write,
                },
            ],
        }
    }

    fn bearer(s: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {s}")).unwrap(),
        );
        h
    }

    fn status(r: Result<(), ApiError>) -> Option<StatusCode> {
        r.err().map(|e| e.status)
    }

    #[test]
    fn roles_decide_reads_and_writes() {
        let a = auth();
        assert_eq!(
            status(a.authorize(&bearer("reader-secret-0123456789"), false)),
            None
        );
        assert_eq!(
            status(a.authorize(&bearer("reader-secret-0123456789"), true)),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            status(a.authorize(&bearer("writer-secret-0123456789"), true)),
            None
        );
        assert_eq!(
            status(a.authorize(&bearer("nope"), false)),
            Some(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            status(a.authorize(&HeaderMap::new(), false)),
            Some(StatusCode::UNAUTHORIZED)
        );
    }

    #[test]
    fn without_tokens_reads_are_open_and_writes_refused() {
        let a = Auth::default();
        assert_eq!(status(a.authorize(&HeaderMap::new(), false)), None);
        let e = a.authorize(&HeaderMap::new(), true).unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert!(e.reason.contains("no tokens configured"), "{}", e.reason);
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let shown = format!("{:?}", auth());
        assert!(!shown.contains("secret-0123456789"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn validation_names_the_token() {
        let mut a = auth();
        a.tokens[1].secret = Secret::new("short");
        assert_eq!(a.validate().unwrap_err().field, "tokens[1].secret");
        a.tokens[1].secret = Secret::new("writer-secret-0123456789");
        a.tokens[1].name = "ci".into();
        assert_eq!(a.validate().unwrap_err().field, "tokens[1].name");
    }

    #[test]
    fn loads_from_toml_shape() {
        let a: Auth = serde_json::from_str(
            r#"{"tokens":[{"name":"ops","secret":"writer-secret-0123456789","role":"write"}]}"#,
        )
        .unwrap();
        assert_eq!(a.tokens[0].role, Role::Write);
        assert!(a.validate().is_ok());
    }
}
