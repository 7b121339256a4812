//! The API under test: a real server on 127.0.0.1 over an embedded store in a temporary
//! directory, run by its own tokio runtime so that tests (and clients) stay blocking.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use control::api::{self, Auth, Role, Secret, TlsFiles, Token};
use dataplane_common::store::{self, Store};
use dataplane_common::telemetry::Telemetry;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

pub(crate) const READ_TOKEN: &str = "read-token-0123456789abcdef";
pub(crate) const WRITE_TOKEN: &str = "write-token-0123456789abcdef";

/// A read and a write token.
pub(crate) fn auth() -> Auth {
    Auth {
        tokens: vec![
            Token {
                name: "reader".into(),
                secret: Secret::new(READ_TOKEN),
                role: Role::Read,
            },
            Token {
                name: "writer".into(),
                secret: Secret::new(WRITE_TOKEN),
                role: Role::Write,
            },
        ],
    }
}

/// A running API. Dropping it stops the server and removes the store.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) telemetry: Telemetry,
    runtime: Option<Runtime>,
    stop: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Serves with `auth` over a fresh embedded store.
    pub(crate) fn start(auth: Auth) -> Self {
        Self::start_with(auth, |s| s, None)
    }

    /// Serves with `auth` over `wrap(store)`, over TLS when `tls` is given.
    pub(crate) fn start_with(
        auth: Auth,
        wrap: impl FnOnce(Arc<dyn Store>) -> Arc<dyn Store>,
        tls: Option<TlsFiles>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let url = format!("embedded:{}", dir.path().display());
        let store = runtime.block_on(store::open(&url)).unwrap();
        let telemetry = Telemetry::new();
        let router = api::router(wrap(store.clone()), auth, &telemetry);
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        runtime.spawn(async move {
            api::serve(listener, router, tls, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Self {
            addr,
            store,
            telemetry,
            runtime: Some(runtime),
            stop: Some(stop),
            _dir: dir,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs a future on the server's runtime (to reach the store directly).
    pub(crate) fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.runtime.as_ref().unwrap().block_on(f)
    }

    /// A client with `token`.
    pub(crate) fn client(&self, token: Option<&str>) -> Client {
        Client::new(&self.url(), token)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// A status, the ETag and the body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) etag: Option<String>,
    pub(crate) headers: ureq::http::HeaderMap,
    pub(crate) body: Value,
}

impl Reply {
    /// The `field` of an error body.
    pub(crate) fn field(&self) -> Option<&str> {
        self.body["field"].as_str()
    }

    /// The `error` code of an error body.
    pub(crate) fn code(&self) -> &str {
        self.body["error"].as_str().unwrap_or_default()
    }

    pub(crate) fn reason(&self) -> &str {
        self.body["reason"].as_str().unwrap_or_default()
    }
}

/// A blocking HTTP client that never turns a status into an error.
pub(crate) struct Client {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

impl Client {
    pub(crate) fn new(base: &str, token: Option<&str>) -> Self {
        Self::with_agent(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(20)))
                .build()
                .into(),
            base,
            token,
        )
    }

    pub(crate) fn with_agent(agent: ureq::Agent, base: &str, token: Option<&str>) -> Self {
        Self {
            agent,
            base: base.to_owned(),
            token: token.map(str::to_owned),
        }
    }

    pub(crate) fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None, &[])
    }

    pub(crate) fn delete(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send("DELETE", path, None, headers)
    }

    /// A JSON body.
    pub(crate) fn json(
        &self,
        method: &str,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut h = vec![("content-type", "application/json")];
        h.extend_from_slice(headers);
        self.send(method, path, Some(body.to_string().into_bytes()), &h)
    }

    /// Any request.
    pub(crate) fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let mut response = self
            .agent
            .run(request.body(body.unwrap_or_default()).unwrap())
            .unwrap();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        Reply {
            status: response.status().as_u16(),
            etag: response
                .headers()
                .get("etag")
                .map(|v| v.to_str().unwrap().to_owned()),
            headers: response.headers().clone(),
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }
}

/// A zone at `origin` as JSON.
pub(crate) fn zone(origin: &str) -> Value {
    serde_json::json!({
        "origin": origin,
        "ttl": 3600,
        "soa": {
            "mname": format!("ns.{origin}"), "rname": format!("hostmaster.{origin}"),
            "serial": 1, "refresh": 7200, "retry": 1800, "expire": 86400, "minimum": 300
        },
        "ns": [format!("ns.{origin}")]
    })
}

/// An A record set.
pub(crate) fn a_set(name: &str, address: &str) -> Value {
    serde_json::json!({
        "name": name, "ttl": 60, "records": [{"type": "A", "address": address}]
    })
}
