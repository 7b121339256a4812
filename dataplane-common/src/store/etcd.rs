//! The etcd backend: a thin mapping of [`Store`] onto etcd v3.
//!
//! The gRPC channel reconnects by itself; a request made while etcd is away fails with
//! [`StoreError::Unavailable`] and the caller retries. A watch that breaks ends its stream,
//! and [`super::Follower`] resumes it from the last revision it saw.

use super::{
    Compare, Event, EventKind, KeyValue, LeaseId, ListPages, Listing, Op, Revision, Store,
    StoreError, Txn, TxnOutcome, WatchStream,
};
use async_trait::async_trait;
use etcd_client as ec;
use std::path::PathBuf;
use std::time::Duration;
use tracing::{debug, warn};

/// Client certificates for an etcd that requires them, as PEM files (kube-apiserver's
/// `--etcd-cafile`, `--etcd-certfile`, `--etcd-keyfile`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA that signed the etcd servers' certificates.
    pub ca: PathBuf,
    /// This client's certificate.
    pub cert: PathBuf,
    /// This client's private key.
    pub key: PathBuf,
}

impl TlsFiles {
    fn options(&self) -> Result<ec::TlsOptions, StoreError> {
        let read = |what: &str, path: &PathBuf| {
            std::fs::read(path).map_err(|e| StoreError::BadUrl {
                url: path.display().to_string(),
                reason: format!("cannot read the etcd {what}: {e}"),
            })
        };
        Ok(ec::TlsOptions::new()
            .ca_certificate(ec::Certificate::from_pem(read("CA certificate", &self.ca)?))
            .identity(ec::Identity::from_pem(
                read("client certificate", &self.cert)?,
                read("client key", &self.key)?,
            )))
    }
}

/// An etcd cluster.
#[derive(Clone)]
pub struct Etcd {
    client: ec::Client,
    endpoints: Vec<String>,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

fn unavailable(e: ec::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Keys in the first range request of a listing; later pages are sized by
/// [`LIST_PAGE_BYTES`] from the values seen so far.
const LIST_PAGE: i64 = 500;
/// The most keys in one page.
const LIST_PAGE_MAX: i64 = 100_000;
/// What a page should weigh. Fewer, larger pages matter because etcd 3.4 walks its index
/// from a page's first key to the end of the range whatever the limit, so listing n keys
/// in pages of p costs n²/2p: with 100,000 EndpointSlices in pages of 500 that was most of
/// a minute of etcd CPU, and in pages of 2 MiB still about a tenth of etcd's CPU in a first
/// sync (and a third of it in a restart, which lists the 400,000 keys control wrote).
const LIST_PAGE_BYTES: usize = 16 << 20;
/// The largest range response the listing's client takes: gRPC's default of 4 MiB would
/// not hold a page, and etcd sends any size. Room for a page of values larger than the
/// ones before it; beyond that the page is retried smaller.
const LIST_MESSAGE_BYTES: usize = 64 << 20;

/// The next page's limit after `kvs` keys of `bytes` bytes in all, the last page having
/// been asked for `last` keys. It grows at most fourfold a page: etcd builds a whole
/// response before the client can refuse it, so a guess from small values that meets
/// large ones should cost etcd a few times a page, not a thousand.
fn next_page_limit(kvs: usize, bytes: usize, last: i64) -> i64 {
    let per_key = (bytes / kvs.max(1)).max(1);
    i64::try_from(LIST_PAGE_BYTES / per_key)
        .unwrap_or(LIST_PAGE_MAX)
        .min(last.saturating_mul(4))
        .clamp(1, LIST_PAGE_MAX)
}

/// Whether etcd refused a range because the revision asked for is compacted. The client's
/// own "message too large" shares gRPC's `OutOfRange` code with it.
fn is_compacted(e: &ec::Error) -> bool {
    grpc_code(e) == Some(GRPC_OUT_OF_RANGE) && e.to_string().contains("compacted")
}

/// The end of etcd's range for `prefix`: the prefix with its last byte below 0xff incremented.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff (or the prefix was empty): to the end of the keyspace.
    vec![0]
}

/// gRPC status codes etcd uses for conditions we act on (the gRPC spec numbers them).
const GRPC_INVALID_ARGUMENT: i32 = 3;
const GRPC_NOT_FOUND: i32 = 5;
const GRPC_OUT_OF_RANGE: i32 = 11;

fn grpc_code(e: &ec::Error) -> Option<i32> {
    match e {
        ec::Error::GRpcStatus(status) => Some(i32::from(status.code())),
        _ => None,
    }
}

/// The largest transaction [`Store::max_txn_ops`] looks for: callers want no more (see
/// control's publisher), and probing is one read per halving below it.
const TXN_OPS_PROBE: usize = 1024;
/// The key the probe compares; nothing writes it.
const TXN_PROBE_KEY: &str = "/dataplane/.max-txn-ops-probe";

/// etcd's refusal of a transaction over `--max-txn-ops` (`ErrGRPCTooManyOps`).
fn too_many_ops(e: &ec::Error) -> bool {
    grpc_code(e) == Some(GRPC_INVALID_ARGUMENT) && e.to_string().contains("too many operations")
}

/// etcd reports a compacted revision as `OutOfRange` on reads.
fn classify(e: ec::Error) -> StoreError {
    match grpc_code(&e) {
        Some(GRPC_OUT_OF_RANGE) => StoreError::Compacted {
            compact_revision: 0,
        },
        Some(GRPC_INVALID_ARGUMENT) => StoreError::Invalid(e.to_string()),
        _ => unavailable(e),
    }
}

/// Reads a prefix page by page, every page at the first one's revision, so that the pages
/// make one consistent listing and no response outgrows gRPC's message limit.
struct Pager {
    client: ec::KvClient,
    start: Option<Vec<u8>>,
    end: Vec<u8>,
    revision: Option<Revision>,
    limit: i64,
    keys: usize,
    bytes: usize,
}

impl Pager {
    fn new(client: &ec::Client, prefix: &str, at: Option<Revision>) -> Self {
        Self {
            client: client
                .kv_client()
                .max_decoding_message_size(LIST_MESSAGE_BYTES),
            start: Some(prefix.as_bytes().to_vec()),
            end: prefix_end(prefix.as_bytes()),
            revision: at,
            limit: LIST_PAGE,
            keys: 0,
            bytes: 0,
        }
    }

    /// The next page; `None` once the prefix is read.
    async fn next(&mut self) -> Result<Option<Listing>, StoreError> {
        let Some(start) = self.start.clone() else {
            return Ok(None);
        };
        let mut resp = loop {
            let mut options = ec::GetOptions::new()
                .with_range(self.end.clone())
                .with_limit(self.limit);
            if let Some(rev) = self.revision {
                options = options.with_revision(rev);
            }
            match self.client.get(start.clone(), Some(options)).await {
                Ok(resp) => break resp,
                // A page of unusually large values outgrew the message limit: smaller pages.
                Err(e)
                    if grpc_code(&e) == Some(GRPC_OUT_OF_RANGE)
                        && !is_compacted(&e)
                        && self.limit > 1 =>
                {
                    self.limit = (self.limit / 4).max(1);
                }
                Err(e) => return Err(classify(e)),
            }
        };
        let revision = *self
            .revision
            .get_or_insert_with(|| header_revision(resp.header()));
        self.keys += resp.kvs().len();
        self.bytes += resp
            .kvs()
            .iter()
            .map(|kv| kv.key().len() + kv.value().len())
            .sum::<usize>();
        self.limit = next_page_limit(self.keys, self.bytes, self.limit);
        self.start = match resp.kvs().last() {
            Some(last) if resp.more() => {
                let mut next = last.key().to_vec();
                next.push(0);
                Some(next)
            }
            _ => None,
        };
        Ok(Some(Listing {
            revision,
            kvs: resp.take_kvs().into_iter().map(owned_key_value).collect(),
        }))
    }
}

/// A key-value of etcd's as the store's, moved: a listing's values are most of what it moves.
fn owned_key_value(kv: ec::KeyValue) -> KeyValue {
    let (create_revision, mod_revision, version, lease) = (
        kv.create_revision(),
        kv.mod_revision(),
        kv.version(),
        kv.lease(),
    );
    let (key, value) = kv.into_key_value();
    KeyValue {
        key: String::from_utf8(key)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        value,
        create_revision,
        mod_revision,
        version,
        lease,
    }
}

fn header_revision(header: Option<&ec::ResponseHeader>) -> Revision {
    header.map_or(0, ec::ResponseHeader::revision)
}

impl Etcd {
    /// Connects to the endpoints (`http://HOST:PORT`).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when no endpoint answers.
    pub async fn connect(endpoints: &[String]) -> Result<Self, StoreError> {
        Self::connect_tls(endpoints, None).await
    }

    /// Connects with client certificates (the endpoints are then `https://HOST:PORT`).
    ///
    /// # Errors
    /// [`StoreError::BadUrl`] when a certificate file cannot be read;
    /// [`StoreError::Unavailable`] when no endpoint answers.
    pub async fn connect_tls(
        endpoints: &[String],
        tls: Option<&TlsFiles>,
    ) -> Result<Self, StoreError> {
        let mut options = ec::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(Duration::from_secs(10))
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(5))
            .with_keep_alive_while_idle(true);
        if let Some(tls) = tls {
            options = options.with_tls(tls.options()?);
        }
        let client = ec::Client::connect(endpoints, Some(options))
            .await
            .map_err(unavailable)?;
        Ok(Self {
            client,
            endpoints: endpoints.to_vec(),
        })
    }

    fn client(&self) -> ec::Client {
        self.client.clone()
    }
}

#[async_trait]
impl Store for Etcd {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let mut resp = self.client().get(key, None).await.map_err(classify)?;
        Ok(resp.take_kvs().into_iter().next().map(owned_key_value))
    }

    async fn list(&self, prefix: &str, at: Option<Revision>) -> Result<Listing, StoreError> {
        let mut pager = Pager::new(&self.client, prefix, at);
        let mut listing = Listing {
            revision: at.unwrap_or(0),
            kvs: Vec::new(),
        };
        while let Some(page) = pager.next().await? {
            listing.revision = page.revision;
            listing.kvs.extend(page.kvs);
        }
        Ok(listing)
    }

    async fn list_pages(&self, prefix: &str) -> Result<ListPages, StoreError> {
        let mut pager = Pager::new(&self.client, prefix, None);
        // One page ahead of the consumer: it decodes one while the next is on its way.
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            loop {
                let page = match pager.next().await {
                    Ok(Some(page)) => Ok(page),
                    Ok(None) => return,
                    Err(e) => Err(e),
                };
                let failed = page.is_err();
                if tx.send(page).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(rx)
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<Revision, StoreError> {
        let options = lease.map(|id| ec::PutOptions::new().with_lease(id));
        let resp = self
            .client()
            .put(key, value, options)
            .await
            .map_err(|e| lease_or(e, lease))?;
        Ok(header_revision(resp.header()))
    }

    async fn delete(&self, key: &str) -> Result<Revision, StoreError> {
        let resp = self.client().delete(key, None).await.map_err(classify)?;
        Ok(header_revision(resp.header()))
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, StoreError> {
        let compares: Vec<ec::Compare> = txn
            .compares
            .iter()
            .map(|Compare { key, mod_revision }| {
                ec::Compare::mod_revision(key.as_str(), ec::CompareOp::Equal, *mod_revision)
            })
            .collect();
        // Moved, not copied: a first sync passes hundreds of MB of values through here.
        let ops: Vec<ec::TxnOp> = txn
            .ops
            .into_iter()
            .map(|op| match op {
                Op::Put { key, value, lease } => ec::TxnOp::put(
                    key,
                    value,
                    lease.map(|id| ec::PutOptions::new().with_lease(id)),
                ),
                Op::Delete { key } => ec::TxnOp::delete(key, None),
            })
            .collect();
        let resp = self
            .client()
            .txn(ec::Txn::new().when(compares).and_then(ops))
            .await
            .map_err(classify)?;
        Ok(TxnOutcome {
            succeeded: resp.succeeded(),
            revision: header_revision(resp.header()),
        })
    }

    async fn max_txn_ops(&self) -> Result<usize, StoreError> {
        // etcd does not tell its `--max-txn-ops`, but refuses a transaction of more compares
        // with "too many operations in txn request". The probe is read-only: compares alone,
        // on a key nothing writes.
        let mut n = TXN_OPS_PROBE;
        loop {
            let compares: Vec<ec::Compare> = (0..n)
                .map(|_| ec::Compare::mod_revision(TXN_PROBE_KEY, ec::CompareOp::Equal, 0))
                .collect();
            match self.client().txn(ec::Txn::new().when(compares)).await {
                Ok(_) => return Ok(n),
                Err(e) if n > 1 && too_many_ops(&e) => n /= 2,
                Err(e) => return Err(classify(e)),
            }
        }
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream, StoreError> {
        let options = ec::WatchOptions::new()
            .with_prefix()
            .with_start_revision(from)
            .with_prev_key();
        let mut stream = self
            .client()
            .watch(prefix, Some(options))
            .await
            .map_err(classify)?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let prefix = prefix.to_owned();
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    m = stream.message() => m,
                    () = tx.closed() => return,
                };
                match message {
                    Ok(Some(resp)) => {
                        if resp.compact_revision() > 0 {
                            let _ = tx.send(Err(StoreError::Compacted {
                                compact_revision: resp.compact_revision(),
                            }));
                            return;
                        }
                        if resp.canceled() {
                            let reason = format!("watch canceled: {}", resp.cancel_reason());
                            let _ = tx.send(Err(StoreError::Unavailable(reason)));
                            return;
                        }
                        let events: Vec<Event> = resp.events().iter().filter_map(event).collect();
                        if !events.is_empty() && tx.send(Ok(events)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => {
                        debug!(%prefix, "etcd watch stream ended");
                        return;
                    }
                    Err(e) => {
                        warn!(%prefix, error = %e, "etcd watch broke");
                        let _ = tx.send(Err(unavailable(e)));
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        let secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let resp = self
            .client()
            .lease_grant(secs, None)
            .await
            .map_err(classify)?;
        Ok(resp.id())
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError> {
        let (mut keeper, mut stream) = self
            .client()
            .lease_keep_alive(lease)
            .await
            .map_err(|e| lease_or(e, Some(lease)))?;
        keeper
            .keep_alive()
            .await
            .map_err(|e| lease_or(e, Some(lease)))?;
        match stream
            .message()
            .await
            .map_err(|e| lease_or(e, Some(lease)))?
        {
            Some(resp) if resp.ttl() > 0 => Ok(Duration::from_secs(resp.ttl().unsigned_abs())),
            Some(_) => Err(StoreError::LeaseNotFound(lease)),
            None => Err(StoreError::Unavailable("keep-alive stream closed".into())),
        }
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.client()
            .lease_revoke(lease)
            .await
            .map_err(|e| lease_or(e, Some(lease)))?;
        Ok(())
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let options = ec::CompactionOptions::new().with_physical();
        self.client()
            .compact(revision, Some(options))
            .await
            .map_err(classify)?;
        Ok(())
    }
}

/// etcd answers `NotFound` for an unknown lease, and the keep-alive stream says so in words.
fn lease_or(e: ec::Error, lease: Option<LeaseId>) -> StoreError {
    let not_found = grpc_code(&e) == Some(GRPC_NOT_FOUND)
        || matches!(&e, ec::Error::LeaseKeepAliveError(m) if m.contains("not found"));
    match lease {
        Some(id) if not_found => StoreError::LeaseNotFound(id),
        _ => classify(e),
    }
}

fn event(e: &ec::Event) -> Option<Event> {
    let kv = owned_key_value(e.kv()?.clone());
    let kind = match e.event_type() {
        ec::EventType::Put => EventKind::Put,
        ec::EventType::Delete => EventKind::Delete,
    };
    Some(Event { kind, kv })
}

#[cfg(test)]
mod tests {
    use super::{LIST_PAGE_MAX, next_page_limit, prefix_end};

    #[test]
    fn pages_are_sized_by_bytes_within_bounds() {
        let big = LIST_PAGE_MAX;
        assert_eq!(next_page_limit(500, 500 * 1024, big), 16_384);
        assert_eq!(next_page_limit(500, 500 * 100, big), LIST_PAGE_MAX);
        assert_eq!(next_page_limit(10, 10 << 20, big), 16);
        assert_eq!(next_page_limit(1, 64 << 20, big), 1, "never an empty page");
        assert_eq!(next_page_limit(0, 0, big), LIST_PAGE_MAX);
        assert_eq!(
            next_page_limit(500, 500 * 100, 500),
            2_000,
            "at most four times the last page"
        );
        assert_eq!(next_page_limit(500, 500 * 1024, 0), 1);
    }

    #[test]
    fn prefix_ends_as_etcd_computes_them() {
        assert_eq!(prefix_end(b"/a/"), b"/a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }
}
