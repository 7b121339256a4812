//! DNS over TCP (RFC 7766): several queries per connection answered in order, each message
//! behind its two-octet length, connections closed after an idle timeout.

use super::Metrics;
use super::upstream::Resolver;
use crate::authority::Catalog;
use crate::respond::{Outcome, Responder, Transport};
use dataplane_common::clock::{Clock, SystemClock};
use dataplane_common::snapshot::Snapshot;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A connection with no query for this long is closed (RFC 7766 section 6.2.3).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 1024;

/// Accepts connections on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    catalog: Arc<Snapshot<Catalog>>,
    responder: impl Fn() -> Responder + Send + Sync + 'static,
    metrics: Metrics,
    resolver: Option<Arc<Resolver>>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let responder = Arc::new(responder);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => return,
            p = Arc::clone(&slots).acquire_owned() => p.expect("invariant: the semaphore is never closed"),
        };
        let accepted = tokio::select! {
            () = &mut shutdown => return,
            a = listener.accept() => a,
        };
        let (stream, client) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(error = %e, "accept failed");
                continue;
            }
        };
        let catalog = Arc::clone(&catalog);
        let responder = responder();
        let worker = metrics.worker();
        let resolver = resolver.clone();
        tokio::spawn(async move {
            let _permit = permit;
            connection(stream, client, &catalog, responder, worker, resolver).await;
        });
    }
}

async fn connection(
    mut stream: TcpStream,
    client: SocketAddr,
    catalog: &Snapshot<Catalog>,
    mut responder: Responder,
    metrics: super::WorkerMetrics,
    resolver: Option<Arc<Resolver>>,
) {
    let _ = stream.set_nodelay(true);
    let mut query = vec![0u8; u16::MAX as usize];
    let mut out = vec![0u8; u16::MAX as usize + 2];
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(IDLE_TIMEOUT, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return, // idle, closed or broken
        }
        let len = usize::from(u16::from_be_bytes(len));
        let body = &mut query[..len];
        if !matches!(
            tokio::time::timeout(IDLE_TIMEOUT, stream.read_exact(body)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let now = SystemClock.now();
        let outcome = responder.handle_query(
            &catalog.load(),
            now,
            client,
            Transport::Tcp,
            body,
            &mut out[2..],
        );
        metrics.count(&outcome);
        let len = match (outcome, &resolver) {
            (Outcome::Reply { len, .. }, _) => len,
            (Outcome::Recurse { .. }, Some(r)) => match r.answer(body, &mut out[2..]).await {
                Some(len) => len,
                None => return,
            },
            // Nothing sensible to say: close, as other servers do.
            (Outcome::Recurse { .. } | Outcome::Drop(_), _) => return,
        };
        out[..2].copy_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
        if stream.write_all(&out[..len + 2]).await.is_err() {
            return;
        }
    }
}
