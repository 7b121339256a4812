//! The store conformance suite: the same checks against a real etcd and the embedded store.

use dataplane_common::model::{RealServer, encode};
use dataplane_common::store::testing::EtcdServer;
use dataplane_common::store::{
    self, Compare, Embedded, Event, EventKind, Follower, FollowerMetrics, Op, Store, StoreError,
    Txn, Typed,
};
use std::sync::Arc;
use std::time::Duration;

/// A store under test, with whatever keeps it alive.
struct Backend {
    store: Arc<dyn Store>,
    _etcd: Option<EtcdServer>,
    _dir: Option<tempfile::TempDir>,
}

async fn etcd() -> Backend {
    let server = EtcdServer::start().await;
    Backend {
        store: store::open(&server.url()).await.unwrap(),
        _etcd: Some(server),
        _dir: None,
    }
}

async fn embedded() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("embedded:{}", dir.path().display());
    Backend {
        store: store::open(&url).await.unwrap(),
        _etcd: None,
        _dir: Some(dir),
    }
}

/// Runs one check against both backends.
macro_rules! conformance {
    ($check:ident) => {
        mod $check {
            #[tokio::test]
            async fn etcd() {
                super::$check(super::etcd().await).await;
            }
            #[tokio::test]
            async fn embedded() {
                super::$check(super::embedded().await).await;
            }
        }
    };
}

conformance!(put_get_list_delete);
conformance!(transactions_compare_mod_revision);
conformance!(watch_delivers_every_event_in_order);
conformance!(compaction_leads_to_relist_with_the_right_state);
conformance!(lease_expires_without_keep_alive);
conformance!(malformed_values_are_skipped_and_watch_goes_on);
conformance!(a_large_prefix_lists_whole_and_in_order);

fn keys(events: &[Event]) -> Vec<(EventKind, String)> {
    events.iter().map(|e| (e.kind, e.kv.key.clone())).collect()
}

async fn put_get_list_delete(b: Backend) {
    let s = &b.store;
    let r1 = s.put("/t/a", b"1".to_vec(), None).await.unwrap();
    let r2 = s.put("/t/b", b"2".to_vec(), None).await.unwrap();
    s.put("/u/c", b"3".to_vec(), None).await.unwrap();
    assert!(r2 > r1);
    let a = s.get("/t/a").await.unwrap().unwrap();
    assert_eq!(
        (a.value.as_slice(), a.mod_revision, a.version),
        (&b"1"[..], r1, 1)
    );
    let r3 = s.put("/t/a", b"1b".to_vec(), None).await.unwrap();
    let a = s.get("/t/a").await.unwrap().unwrap();
    assert_eq!((a.create_revision, a.mod_revision, a.version), (r1, r3, 2));

    let listing = s.list("/t/", None).await.unwrap();
    assert_eq!(
        listing
            .kvs
            .iter()
            .map(|kv| kv.key.as_str())
            .collect::<Vec<_>>(),
        ["/t/a", "/t/b"]
    );
    assert!(listing.revision >= r3);

    let r4 = s.delete("/t/a").await.unwrap();
    assert!(r4 > r3);
    assert_eq!(s.get("/t/a").await.unwrap(), None);
    assert_eq!(
        s.delete("/t/missing").await.unwrap(),
        r4,
        "deleting nothing changes nothing"
    );
}

async fn transactions_compare_mod_revision(b: Backend) {
    let s = &b.store;
    let put = |v: &str| Op::Put {
        key: "/t/k".into(),
        value: v.as_bytes().to_vec(),
        lease: None,
    };
    // Create only if absent.
    let created = s
        .txn(Txn {
            compares: vec![Compare {
                key: "/t/k".into(),
                mod_revision: 0,
            }],
            ops: vec![
                put("v1"),
                Op::Put {
                    key: "/t/other".into(),
                    value: b"x".to_vec(),
                    lease: None,
                },
            ],
        })
        .await
        .unwrap();
    assert!(created.succeeded);
    let kv = s.get("/t/other").await.unwrap().unwrap();
    assert_eq!(
        kv.mod_revision, created.revision,
        "both ops land at one revision"
    );

    let again = s
        .txn(Txn {
            compares: vec![Compare {
                key: "/t/k".into(),
                mod_revision: 0,
            }],
            ops: vec![put("v2")],
        })
        .await
        .unwrap();
    assert!(!again.succeeded, "a second create must fail");

    // Update only if unchanged since we read it.
    let stale = created.revision - 1;
    let lost = s
        .txn(Txn {
            compares: vec![Compare {
                key: "/t/k".into(),
                mod_revision: stale,
            }],
            ops: vec![put("v3")],
        })
        .await
        .unwrap();
    assert!(!lost.succeeded);
    let won = s
        .txn(Txn {
            compares: vec![Compare {
                key: "/t/k".into(),
                mod_revision: created.revision,
            }],
            ops: vec![
                put("v4"),
                Op::Delete {
                    key: "/t/other".into(),
                },
            ],
        })
        .await
        .unwrap();
    assert!(won.succeeded);
    assert_eq!(s.get("/t/k").await.unwrap().unwrap().value, b"v4");
    assert_eq!(s.get("/t/other").await.unwrap(), None);
}

async fn watch_delivers_every_event_in_order(b: Backend) {
    let s = &b.store;
    let start = s.put("/w/0", b"x".to_vec(), None).await.unwrap();
    let mut follower = Follower::new(Arc::clone(s), "/w/", FollowerMetrics::default());
    let first = follower.next().await;
    assert!(first.relisted);
    assert_eq!(keys(&first.events), [(EventKind::Put, "/w/0".into())]);
    assert_eq!(first.revision, start);

    let writer = {
        let s = Arc::clone(s);
        tokio::spawn(async move {
            for i in 1..=50 {
                s.put(&format!("/w/{i}"), vec![b'v'], None).await.unwrap();
                s.put("/elsewhere", vec![b'n'], None).await.unwrap();
            }
            s.delete("/w/7").await.unwrap();
        })
    };
    let mut seen = Vec::new();
    while seen.len() < 51 {
        let batch = tokio::time::timeout(Duration::from_secs(10), follower.next())
            .await
            .unwrap();
        assert!(!batch.relisted);
        seen.extend(keys(&batch.events));
    }
    writer.await.unwrap();
    let mut expected: Vec<_> = (1..=50)
        .map(|i| (EventKind::Put, format!("/w/{i}")))
        .collect();
    expected.push((EventKind::Delete, "/w/7".into()));
    assert_eq!(
        seen, expected,
        "every event once, in order, and only under the prefix"
    );
    assert_eq!(follower.state().len(), 50);
}

async fn compaction_leads_to_relist_with_the_right_state(b: Backend) {
    let s = &b.store;
    for k in ["a", "c", "d"] {
        s.put(&format!("/c/{k}"), b"old".to_vec(), None)
            .await
            .unwrap();
    }
    let metrics = FollowerMetrics::default();
    let mut follower = Follower::new(Arc::clone(s), "/c/", metrics.clone());
    assert_eq!(follower.next().await.events.len(), 3);

    // While the follower is not watching: changes, then a compaction past its revision.
    s.put("/c/a", b"new".to_vec(), None).await.unwrap();
    s.put("/c/b", b"new".to_vec(), None).await.unwrap();
    s.delete("/c/c").await.unwrap();
    let newer = s.put("/c/b", b"newer".to_vec(), None).await.unwrap();
    let now = s.put("/other", b"x".to_vec(), None).await.unwrap();
    s.compact(now).await.unwrap();

    let batch = tokio::time::timeout(Duration::from_secs(10), follower.next())
        .await
        .unwrap();
    assert!(batch.relisted);
    assert_eq!(
        keys(&batch.events),
        [
            (EventKind::Put, "/c/a".into()),
            (EventKind::Put, "/c/b".into()),
            (EventKind::Delete, "/c/c".into()),
        ],
        "the relist emits exactly the difference; /c/d did not change"
    );
    assert_eq!(follower.state()["/c/b"], newer);
    let b = batch.events.iter().find(|e| e.kv.key == "/c/b").unwrap();
    assert_eq!(b.kv.value, b"newer");
    assert_eq!(follower.state().len(), 3);
    assert_eq!(metrics.relists.get(), 1);

    // And it watches again from the relisted revision.
    s.put("/c/e", b"after".to_vec(), None).await.unwrap();
    let batch = tokio::time::timeout(Duration::from_secs(10), follower.next())
        .await
        .unwrap();
    assert_eq!(keys(&batch.events), [(EventKind::Put, "/c/e".into())]);
}

async fn lease_expires_without_keep_alive(b: Backend) {
    let s = &b.store;
    let lease = s.grant_lease(Duration::from_secs(2)).await.unwrap();
    s.put("/l/node", b"alive".to_vec(), Some(lease))
        .await
        .unwrap();
    let mut follower = Follower::new(Arc::clone(s), "/l/", FollowerMetrics::default());
    follower.next().await;
    // Kept alive for longer than the TTL, the key stays.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        s.keep_alive(lease).await.unwrap();
    }
    assert!(s.get("/l/node").await.unwrap().is_some());
    // Without keep-alives it goes, and the watch says so.
    let batch = tokio::time::timeout(Duration::from_secs(10), follower.next())
        .await
        .unwrap();
    assert_eq!(keys(&batch.events), [(EventKind::Delete, "/l/node".into())]);
    let gone = s.keep_alive(lease).await;
    assert!(
        matches!(gone, Err(StoreError::LeaseNotFound(_))),
        "{gone:?}"
    );

    let other = s.grant_lease(Duration::from_secs(30)).await.unwrap();
    s.put("/l/x", b"1".to_vec(), Some(other)).await.unwrap();
    s.revoke_lease(other).await.unwrap();
    assert_eq!(
        s.get("/l/x").await.unwrap(),
        None,
        "revoking deletes the lease's keys"
    );
}

async fn malformed_values_are_skipped_and_watch_goes_on(b: Backend) {
    let s = &b.store;
    let rs = |port| RealServer {
        address: "10.0.0.1".parse().unwrap(),
        port,
        weight: 1,
    };
    s.put("/m/1", encode(&rs(80)), None).await.unwrap();
    s.put("/m/2", b"{not json".to_vec(), None).await.unwrap();
    let metrics = FollowerMetrics::default();
    let mut typed = Typed::<RealServer>::new(Arc::clone(s), "/m/", metrics.clone());
    let (changed, _) = typed.next().await;
    assert_eq!(changed, ["/m/1"]);
    assert_eq!(metrics.malformed.get(), 1);

    s.put("/m/1", encode(&rs(0)), None).await.unwrap(); // decodes, but port 0 is invalid
    s.put("/m/3", encode(&rs(443)), None).await.unwrap();
    let mut changed = Vec::new();
    while !changed.contains(&"/m/3".to_owned()) {
        let (c, _) = tokio::time::timeout(Duration::from_secs(10), typed.next())
            .await
            .unwrap();
        changed.extend(c);
    }
    assert_eq!(metrics.malformed.get(), 2);
    assert_eq!(
        typed.objects()["/m/1"].port,
        80,
        "the last good value is kept"
    );
    assert_eq!(typed.objects()["/m/3"].port, 443);
}

async fn a_large_prefix_lists_whole_and_in_order(b: Backend) {
    let s = &b.store;
    // More keys than a few list pages (the etcd backend reads 500 per request).
    for chunk in 0..12 {
        let ops = (0..100)
            .map(|i| Op::Put {
                key: format!("/big/{:05}", chunk * 100 + i),
                value: vec![b'x'; 64],
                lease: None,
            })
            .collect();
        assert!(
            s.txn(Txn {
                compares: vec![],
                ops
            })
            .await
            .unwrap()
            .succeeded
        );
    }
    s.put("/big0", b"just past the prefix".to_vec(), None)
        .await
        .unwrap();
    let listing = s.list("/big/", None).await.unwrap();
    assert_eq!(listing.kvs.len(), 1200);
    assert!(
        listing.kvs.windows(2).all(|w| w[0].key < w[1].key),
        "in key order, no repeats"
    );
    assert_eq!(listing.kvs[1199].key, "/big/01199");
}

/// etcd only: the follower rides out an etcd crash and restart, losing and repeating nothing.
#[tokio::test]
async fn watch_survives_an_etcd_restart() {
    let mut server = EtcdServer::start().await;
    let s = store::open(&server.url()).await.unwrap();
    let metrics = FollowerMetrics::default();
    let mut follower = Follower::new(Arc::clone(&s), "/r/", metrics.clone());
    follower.next().await;
    for i in 0..10 {
        s.put(&format!("/r/{i:02}"), vec![1], None).await.unwrap();
    }
    let mut seen = Vec::new();
    while seen.len() < 10 {
        seen.extend(keys(&follower.next().await.events));
    }

    server.kill();
    let consumer = tokio::spawn(async move {
        let mut seen = Vec::new();
        while seen.len() < 10 {
            seen.extend(keys(&follower.next().await.events));
        }
        (seen, follower)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart().await;
    for i in 10..20 {
        // The client reconnects by itself; retry while it does.
        let key = format!("/r/{i:02}");
        let mut tries = 0;
        while let Err(e) = s.put(&key, vec![1], None).await {
            assert!(e.is_retryable(), "{e}");
            tries += 1;
            assert!(tries < 100, "etcd did not come back: {e}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (after, follower) = tokio::time::timeout(Duration::from_secs(30), consumer)
        .await
        .unwrap()
        .unwrap();
    seen.extend(after);
    let expected: Vec<_> = (0..20)
        .map(|i| (EventKind::Put, format!("/r/{i:02}")))
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(follower.state().len(), 20);
    assert!(metrics.resumes.get() >= 1, "the break was counted");
}

/// etcd only: the transaction size limit is learnt from the server (`--max-txn-ops`), and a
/// transaction of that many writes goes through while one more is refused.
#[tokio::test]
async fn max_txn_ops_is_learnt_from_etcd() {
    let puts = |n: usize| Txn {
        compares: Vec::new(),
        ops: (0..n)
            .map(|i| Op::Put {
                key: format!("/m/{i:04}"),
                value: vec![1],
                lease: None,
            })
            .collect(),
    };
    for (flags, limit) in [(&[][..], 128), (&["--max-txn-ops", "1024"][..], 1024)] {
        let server = EtcdServer::start_with(flags).await;
        let s = store::open(&server.url()).await.unwrap();
        assert_eq!(s.max_txn_ops().await.unwrap(), limit, "{flags:?}");
        assert!(s.txn(puts(limit)).await.unwrap().succeeded);
        let over = s.txn(puts(limit + 1)).await;
        assert!(
            matches!(over, Err(StoreError::Invalid(ref m)) if m.contains("too many operations")),
            "{over:?}"
        );
    }
    let b = embedded().await;
    assert_eq!(b.store.max_txn_ops().await.unwrap(), usize::MAX);
}

/// etcd only: a listing sizes its pages from the values before, and pages that then meet
/// far larger values (here 80 MiB in a page sized for small ones, past what the client
/// takes in one response) are asked for again smaller; the listing comes out whole.
#[tokio::test]
async fn a_listing_whose_values_grow_is_read_whole() {
    let server = EtcdServer::start().await;
    let s = store::open(&server.url()).await.unwrap();
    let puts = |range: std::ops::Range<usize>, size: usize| Txn {
        compares: Vec::new(),
        ops: range
            .map(|i| Op::Put {
                key: format!("/grow/{i:05}"),
                value: vec![b'x'; size],
                lease: None,
            })
            .collect(),
    };
    for chunk in 0..12 {
        let txn = puts(chunk * 100..(chunk + 1) * 100, 64);
        assert!(s.txn(txn).await.unwrap().succeeded);
    }
    // etcd takes requests up to 1.5 MiB: one 1 MiB value each.
    for i in 1200..1280 {
        assert!(s.txn(puts(i..i + 1, 1 << 20)).await.unwrap().succeeded);
    }
    let listing = s.list("/grow/", None).await.unwrap();
    assert_eq!(listing.kvs.len(), 1280);
    assert!(listing.kvs.windows(2).all(|w| w[0].key < w[1].key));
    assert_eq!(listing.kvs[1279].value.len(), 1 << 20);
}

/// Embedded only: a restart keeps every acknowledged write, and leases.
#[tokio::test]
async fn embedded_keeps_its_data_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (revision, lease) = {
        let s = Embedded::open(dir.path()).await.unwrap();
        s.put("/p/a", b"1".to_vec(), None).await.unwrap();
        s.put("/p/b", b"2".to_vec(), None).await.unwrap();
        s.delete("/p/b").await.unwrap();
        let lease = s.grant_lease(Duration::from_secs(60)).await.unwrap();
        (
            s.put("/p/leased", b"3".to_vec(), Some(lease))
                .await
                .unwrap(),
            lease,
        )
    };
    // Let the first instance's expiry task notice it is gone and release the database.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = Embedded::open(dir.path()).await.unwrap();
    let listing = s.list("/p/", None).await.unwrap();
    assert_eq!(listing.revision, revision);
    assert_eq!(
        listing
            .kvs
            .iter()
            .map(|kv| kv.key.as_str())
            .collect::<Vec<_>>(),
        ["/p/a", "/p/leased"]
    );
    assert_eq!(s.keep_alive(lease).await.unwrap(), Duration::from_secs(60));
    let next = s.put("/p/c", b"4".to_vec(), None).await.unwrap();
    assert_eq!(next, revision + 1, "revisions continue where they stopped");
    // The history before the restart is gone: watching from it asks for a relist.
    assert!(matches!(
        s.watch("/p/", revision).await,
        Err(StoreError::Compacted { .. })
    ));
}

#[tokio::test]
async fn bad_urls_are_refused_with_a_reason() {
    let err = store::open("redis://x").await.unwrap_err();
    assert!(
        err.to_string().contains("expected etcd://HOST:PORT"),
        "{err}"
    );
}

/// etcd with client-certificate authentication, as Kubernetes runs it.
#[tokio::test]
async fn etcd_with_client_certificates() {
    let server = EtcdServer::start_tls().await;
    let tls = server.client_tls().unwrap().clone();
    let endpoint = vec![server.endpoint()];
    let s = store::Etcd::connect_tls(&endpoint, Some(&tls))
        .await
        .unwrap();
    let rev = s.put("/tls/k", b"v".to_vec(), None).await.unwrap();
    assert_eq!(s.get("/tls/k").await.unwrap().unwrap().mod_revision, rev);

    // Without a client certificate (plain TCP, or TLS trusting the CA but no identity) it fails.
    let plain = vec![endpoint[0].replace("https://", "http://")];
    let refused = match store::Etcd::connect(&plain).await {
        Ok(c) => c.get("/tls/k").await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "a client without a certificate must be refused");
    let missing = store::TlsFiles {
        cert: "/nonexistent.pem".into(),
        ..tls
    };
    let err = store::Etcd::connect_tls(&endpoint, Some(&missing))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("client certificate"), "{err}");
}
