//! control end to end against a real etcd: Kubernetes objects written as kube-apiserver
//! stores them, control running, and the project store checked.
//!
//! Each test starts one etcd and uses it for both sides (the Kubernetes keys under
//! `/registry/`, the project's under `/dataplane/`), as a small cluster can.

use control::kube::testing::{
    endpoint, port, protobuf_service, protobuf_slice, service, slice, terminating,
};
use control::kube::{Endpoint, IntOrString};
use control::{Settings, leader};
use dataplane_common::model::{RData, RecordSet, Vip, decode, encode};
use dataplane_common::store::intercept::{Intercept, Intercepted};
use dataplane_common::store::testing::EtcdServer;
use dataplane_common::store::{self, KeyValue, Store, StoreError, WatchStream};
use dataplane_common::telemetry::Telemetry;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

const LEASE: Duration = Duration::from_secs(2);
const PATIENCE: Duration = Duration::from_secs(20);

const WEB_VIP: &str = "/dataplane/vips/10.96.0.10/80/tcp";
const WEB_A: &str = "/dataplane/records/web.default.svc.cluster.local./A";

fn settings(node: &str) -> Settings {
    Settings {
        kube_prefix: "/registry".into(),
        cluster_domain: "cluster.local".parse().unwrap(),
        ttl: 30,
        node_name: node.into(),
        lease_ttl: LEASE,
    }
}

/// A running `control::run`.
struct Control {
    task: JoinHandle<Result<(), control::Error>>,
    stop: Option<oneshot::Sender<()>>,
    telemetry: Telemetry,
}

impl Control {
    fn start(node: &str, kube: Arc<dyn Store>, store: Arc<dyn Store>) -> Self {
        let telemetry = Telemetry::new();
        let (stop, stopped) = oneshot::channel::<()>();
        let t = telemetry.clone();
        let settings = settings(node);
        let task = tokio::spawn(async move {
            control::run(settings, kube, store, &t, async {
                let _ = stopped.await;
            })
            .await
        });
        Self {
            task,
            stop: Some(stop),
            telemetry,
        }
    }

    /// The value of an unlabelled metric.
    fn metric(&self, name: &str) -> f64 {
        let text = self.telemetry.encode();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no metric {name} in {text}"))
    }

    fn is_leader(&self) -> bool {
        self.metric("control_leader") == 1.0
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(PATIENCE, &mut self.task)
            .await
            .expect("control stops on shutdown")
            .unwrap()
            .unwrap();
    }

    /// Ends it as a crash would: no resignation, the lease left to expire.
    fn crash(self) {
        self.task.abort();
    }
}

async fn etcd() -> (EtcdServer, Arc<dyn Store>) {
    let server = EtcdServer::start().await;
    let store = store::open(&server.url()).await.unwrap();
    (server, store)
}

async fn put_service(kube: &Arc<dyn Store>, svc: &control::kube::Service) {
    let key = format!(
        "/registry/services/specs/{}/{}",
        svc.metadata.namespace, svc.metadata.name
    );
    kube.put(&key, protobuf_service(svc), None).await.unwrap();
}

async fn put_slice(kube: &Arc<dyn Store>, s: &control::kube::EndpointSlice) {
    let key = format!(
        "/registry/endpointslices/{}/{}",
        s.metadata.namespace, s.metadata.name
    );
    kube.put(&key, protobuf_slice(s), None).await.unwrap();
}

fn web() -> control::kube::Service {
    service(
        "default",
        "web",
        &["10.96.0.10"],
        vec![port(
            "http",
            "TCP",
            80,
            Some(IntOrString::String("web".into())),
        )],
    )
}

fn web_slice(endpoints: Vec<Endpoint>) -> control::kube::EndpointSlice {
    slice(
        "default",
        "web-abc",
        "web",
        "IPv4",
        &[("http", 8080)],
        endpoints,
    )
}

/// Polls `key` until `check` accepts its value (or its absence).
async fn eventually(
    store: &Arc<dyn Store>,
    key: &str,
    what: &str,
    check: impl Fn(Option<&KeyValue>) -> bool,
) {
    let deadline = tokio::time::sleep(PATIENCE);
    tokio::pin!(deadline);
    loop {
        let kv = store.get(key).await.ok().flatten();
        if check(kv.as_ref()) {
            return;
        }
        tokio::select! {
            () = &mut deadline => panic!("{key}: {what}, still {kv:?}"),
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

fn real_server_addresses(kv: Option<&KeyValue>) -> Option<Vec<(String, u16, u32)>> {
    let vip: Vip = decode(&kv?.value).ok()?;
    Some(
        vip.real_servers
            .iter()
            .map(|r| (r.address.to_string(), r.port, r.weight))
            .collect(),
    )
}

fn has_servers(want: &[(&str, u16, u32)]) -> impl Fn(Option<&KeyValue>) -> bool {
    let want: Vec<(String, u16, u32)> = want
        .iter()
        .map(|(a, p, w)| ((*a).to_owned(), *p, *w))
        .collect();
    move |kv| real_server_addresses(kv).is_some_and(|got| got == want)
}

fn absent(kv: Option<&KeyValue>) -> bool {
    kv.is_none()
}

/// Writes web with one ready endpoint to the Kubernetes etcd `s`, starts control (node-a,
/// reading Kubernetes through `kube`, publishing to `s`) and waits until web's VIP is out.
async fn control_with_web(s: &Arc<dyn Store>, kube: Arc<dyn Store>) -> Control {
    put_service(s, &web()).await;
    put_slice(s, &web_slice(vec![endpoint("10.1.0.1", true)])).await;
    let control = Control::start("node-a", kube, s.clone());
    eventually(
        s,
        WEB_VIP,
        "published",
        has_servers(&[("10.1.0.1", 8080, 1)]),
    )
    .await;
    control
}

#[tokio::test]
async fn records_and_vips_appear_follow_scaling_and_disappear() {
    let (_etcd, s) = etcd().await;
    put_service(&s, &web()).await;
    put_slice(
        &s,
        &web_slice(vec![endpoint("10.1.0.1", true), endpoint("10.1.0.2", true)]),
    )
    .await;
    let control = Control::start("node-a", s.clone(), s.clone());

    eventually(
        &s,
        WEB_VIP,
        "two real servers on the resolved port",
        has_servers(&[("10.1.0.1", 8080, 1), ("10.1.0.2", 8080, 1)]),
    )
    .await;
    let a: RecordSet = decode(&s.get(WEB_A).await.unwrap().unwrap().value).unwrap();
    assert_eq!(
        a.records,
        [RData::A {
            address: "10.96.0.10".parse().unwrap()
        }]
    );
    assert_eq!(a.source, "kubernetes");
    for key in [
        "/dataplane/records/_http._tcp.web.default.svc.cluster.local./SRV",
        "/dataplane/records/10.0.96.10.in-addr.arpa./PTR",
        "/dataplane/zones/cluster.local.",
    ] {
        assert!(s.get(key).await.unwrap().is_some(), "{key} was not written");
    }
    // A Service with a VIP is in its VIP and records, not copied under services/ and
    // endpoints/ (only headless Services are).
    for key in [
        "/dataplane/services/default/web",
        "/dataplane/endpoints/default/web",
    ] {
        assert!(s.get(key).await.unwrap().is_none(), "{key} was written");
    }
    assert!(control.is_leader());

    // Scale up, and one pod goes into termination: drained, not dropped.
    put_slice(
        &s,
        &web_slice(vec![
            endpoint("10.1.0.1", true),
            terminating("10.1.0.2"),
            endpoint("10.1.0.3", true),
        ]),
    )
    .await;
    eventually(
        &s,
        WEB_VIP,
        "scaled to three, one draining",
        has_servers(&[
            ("10.1.0.1", 8080, 1),
            ("10.1.0.2", 8080, 0),
            ("10.1.0.3", 8080, 1),
        ]),
    )
    .await;

    // The Service goes: everything derived from it goes.
    s.delete("/registry/services/specs/default/web")
        .await
        .unwrap();
    s.delete("/registry/endpointslices/default/web-abc")
        .await
        .unwrap();
    for key in [WEB_VIP, WEB_A] {
        eventually(&s, key, "deleted with its Service", absent).await;
    }
    let left = s.list("/dataplane/records/", None).await.unwrap();
    assert!(left.kvs.is_empty(), "{:?}", left.kvs);
    control.shutdown().await;
}

#[tokio::test]
async fn a_full_reconcile_removes_stale_kubernetes_keys_and_never_touches_user_ones() {
    let (_etcd, s) = etcd().await;
    let record = |name: &str, source: &str| RecordSet {
        name: name.parse().unwrap(),
        ttl: 60,
        records: vec![RData::A {
            address: "192.0.2.99".parse().unwrap(),
        }],
        policy: Default::default(),
        affinity_timeout: None,
        source: source.into(),
    };
    let stale = "/dataplane/records/gone.default.svc.cluster.local./A";
    let user_elsewhere = "/dataplane/records/www.example.com./A";
    let user_vip = "/dataplane/vips/192.0.2.10/443/tcp";
    s.put(
        stale,
        encode(&record("gone.default.svc.cluster.local.", "kubernetes")),
        None,
    )
    .await
    .unwrap();
    s.put("/dataplane/services/default/gone", b"{}".to_vec(), None)
        .await
        .unwrap();
    s.put(
        user_elsewhere,
        encode(&record("www.example.com.", "user")),
        None,
    )
    .await
    .unwrap();
    // A user record where a Service wants one: the user's stays.
    s.put(
        WEB_A,
        encode(&record("web.default.svc.cluster.local.", "user")),
        None,
    )
    .await
    .unwrap();
    let vip: Vip = serde_json::from_str(
        r#"{"address":"192.0.2.10","port":443,"protocol":"TCP","source":"user"}"#,
    )
    .unwrap();
    s.put(user_vip, encode(&vip), None).await.unwrap();
    let before: Vec<KeyValue> = {
        let mut v = Vec::new();
        for key in [user_elsewhere, WEB_A, user_vip] {
            v.push(s.get(key).await.unwrap().unwrap());
        }
        v
    };

    let control = control_with_web(&s, s.clone()).await;
    eventually(&s, stale, "stale kubernetes record removed", absent).await;
    eventually(
        &s,
        "/dataplane/services/default/gone",
        "stale Service removed",
        absent,
    )
    .await;
    for kv in before {
        let now = s.get(&kv.key).await.unwrap().expect("user objects stay");
        assert_eq!(
            (now.value, now.mod_revision),
            (kv.value, kv.mod_revision),
            "{}",
            kv.key
        );
    }
    assert_eq!(control.metric("control_publish_user_held_keys"), 1.0);
    control.shutdown().await;
}

#[tokio::test]
async fn the_watch_survives_an_etcd_restart() {
    let (mut etcd, s) = etcd().await;
    let control = control_with_web(&s, s.clone()).await;

    etcd.restart().await;
    put_slice(
        &s,
        &web_slice(vec![endpoint("10.1.0.1", true), endpoint("10.1.0.2", true)]),
    )
    .await;
    eventually(
        &s,
        WEB_VIP,
        "the change after the restart",
        has_servers(&[("10.1.0.1", 8080, 1), ("10.1.0.2", 8080, 1)]),
    )
    .await;
    assert!(control.metric("control_kube_watch_resumes_total") >= 1.0);
    control.shutdown().await;
}

/// Watches that can be cut and refused, to put the watch behind a compaction.
#[derive(Debug, Default)]
struct Cut {
    refuse: AtomicBool,
    cut: Arc<Notify>,
}

impl Cut {
    /// Ends the watches and refuses new ones.
    fn cut(&self) {
        self.refuse.store(true, Ordering::SeqCst);
        self.cut.notify_waiters();
    }
}

impl Intercept for Cut {
    fn watch(&self, mut inner: WatchStream) -> Result<WatchStream, StoreError> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("cut by the test".into()));
        }
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let cut = Arc::clone(&self.cut);
        tokio::spawn(async move {
            let cut = cut.notified();
            tokio::pin!(cut);
            loop {
                tokio::select! {
                    () = &mut cut => return,
                    item = inner.recv() => match item {
                        Some(item) => if tx.send(item).is_err() { return },
                        None => return,
                    },
                }
            }
        });
        Ok(rx)
    }
}

/// Compacts the history past everything written so far, then lets watches back: they find
/// their revision compacted and relist.
async fn compact_and_reconnect(kube: &Intercepted<Cut>) {
    let now = kube
        .inner
        .put("/registry/unrelated", b"x".to_vec(), None)
        .await
        .unwrap();
    kube.inner.compact(now).await.unwrap();
    kube.intercept.refuse.store(false, Ordering::SeqCst);
}

#[tokio::test]
async fn a_compaction_past_the_watch_relists_to_the_right_result() {
    let (_etcd, s) = etcd().await;
    let kube = Intercepted::new(s.clone(), Cut::default());
    put_service(&s, &web()).await;
    put_slice(&s, &web_slice(vec![endpoint("10.1.0.1", true)])).await;
    let api = service(
        "default",
        "api",
        &["10.96.0.20"],
        vec![port("http", "TCP", 80, None)],
    );
    put_service(&s, &api).await;
    let control = Control::start("node-a", kube.clone(), s.clone());
    eventually(
        &s,
        WEB_VIP,
        "published",
        has_servers(&[("10.1.0.1", 8080, 1)]),
    )
    .await;
    eventually(&s, "/dataplane/vips/10.96.0.20/80/tcp", "published", |kv| {
        kv.is_some()
    })
    .await;

    // The watch goes away; meanwhile things change and the history is compacted.
    kube.intercept.cut();
    put_slice(
        &s,
        &web_slice(vec![endpoint("10.1.0.5", true), endpoint("10.1.0.6", true)]),
    )
    .await;
    s.delete("/registry/services/specs/default/api")
        .await
        .unwrap();
    let db = service(
        "default",
        "db",
        &["10.96.0.30"],
        vec![port("pg", "TCP", 5432, None)],
    );
    put_service(&s, &db).await;
    compact_and_reconnect(&kube).await;

    eventually(
        &s,
        WEB_VIP,
        "the relisted endpoints",
        has_servers(&[("10.1.0.5", 8080, 1), ("10.1.0.6", 8080, 1)]),
    )
    .await;
    eventually(
        &s,
        "/dataplane/vips/10.96.0.20/80/tcp",
        "deleted during the gap",
        absent,
    )
    .await;
    eventually(
        &s,
        "/dataplane/vips/10.96.0.30/5432/tcp",
        "created during the gap",
        |kv| kv.is_some(),
    )
    .await;
    assert!(control.metric("control_kube_watch_relists_total") >= 1.0);
    control.shutdown().await;
}

#[tokio::test]
async fn undecodable_values_are_counted_by_kind_and_skipped() {
    let (_etcd, s) = etcd().await;
    put_service(&s, &web()).await;
    s.put(
        "/registry/services/specs/default/secret",
        b"k8s:enc:aescbc:v1:key1:\x01\x02".to_vec(),
        None,
    )
    .await
    .unwrap();
    s.put(
        "/registry/endpointslices/default/junk",
        b"\x00junk".to_vec(),
        None,
    )
    .await
    .unwrap();
    let control = Control::start("node-a", s.clone(), s.clone());
    eventually(&s, WEB_A, "the good Service is published", |kv| {
        kv.is_some()
    })
    .await;
    let metrics = control.telemetry.encode();
    assert!(
        metrics
            .contains(r#"control_kube_decode_errors_total{resource="service",kind="encrypted"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"control_kube_decode_errors_total{resource="endpointslice",kind="malformed"} 1"#
        ),
        "{metrics}"
    );
    control.shutdown().await;
}

#[tokio::test]
async fn a_follower_takes_over_within_the_lease_when_the_leader_dies() {
    let (_etcd, s) = etcd().await;
    put_service(&s, &web()).await;
    put_slice(&s, &web_slice(vec![endpoint("10.1.0.1", true)])).await;
    let a = Control::start("node-a", s.clone(), s.clone());
    eventually(&s, leader::KEY, "node-a leads", |kv| {
        kv.is_some_and(|kv| kv.value == b"node-a")
    })
    .await;
    let b = Control::start("node-b", s.clone(), s.clone());
    eventually(
        &s,
        WEB_VIP,
        "published by the leader",
        has_servers(&[("10.1.0.1", 8080, 1)]),
    )
    .await;
    tokio::time::sleep(LEASE).await;
    assert!(a.is_leader() && !b.is_leader(), "one leader only");

    a.crash();
    let died = tokio::time::Instant::now();
    eventually(&s, leader::KEY, "node-b leads", |kv| {
        kv.is_some_and(|kv| kv.value == b"node-b")
    })
    .await;
    let took = died.elapsed();
    // The lease expires within its TTL of the last keep-alive; etcd checks expiry twice a
    // second, and the watch tells node-b at once.
    assert!(took <= LEASE + Duration::from_millis(1500), "took {took:?}");
    eventually(&s, leader::KEY, "b's gauge", |_| b.is_leader()).await;

    // The new leader publishes.
    put_slice(
        &s,
        &web_slice(vec![endpoint("10.1.0.1", true), endpoint("10.1.0.2", true)]),
    )
    .await;
    eventually(
        &s,
        WEB_VIP,
        "published by the new leader",
        has_servers(&[("10.1.0.1", 8080, 1), ("10.1.0.2", 8080, 1)]),
    )
    .await;

    // A leader that stops resigns: the key goes at once, not after the lease.
    b.shutdown().await;
    let key = s.get(leader::KEY).await.unwrap();
    assert!(key.is_none(), "{key:?}");
}

/// A relist of many Services, as a first sync, is published while it is translated (on a
/// multi-threaded runtime, as the daemon's), and what went stale during the gap is still
/// removed by the reconcile that follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_relist_is_published_while_translated_and_reconciled() {
    const SERVICES: usize = 300;
    let (_etcd, s) = etcd().await;
    let kube = Intercepted::new(s.clone(), Cut::default());
    let control = control_with_web(&s, kube.clone()).await;

    // The watch goes away; meanwhile web goes, 300 Services come, and history is compacted.
    kube.intercept.cut();
    s.delete("/registry/services/specs/default/web")
        .await
        .unwrap();
    for i in 0..SERVICES {
        let name = format!("svc{i}");
        let ip = format!("10.96.{}.{}", 1 + i / 250, 1 + i % 250);
        put_service(
            &s,
            &service(
                "default",
                &name,
                &[&ip],
                vec![port("http", "TCP", 80, None)],
            ),
        )
        .await;
        put_slice(
            &s,
            &slice(
                "default",
                &format!("{name}-a"),
                &name,
                "IPv4",
                &[("http", 8080)],
                vec![endpoint(
                    &format!("10.1.{}.{}", 1 + i / 250, 1 + i % 250),
                    true,
                )],
            ),
        )
        .await;
    }
    let puts = || control.metric("control_publish_writes_total{op=\"put\"}");
    let puts_before = puts();
    compact_and_reconnect(&kube).await;

    eventually(&s, WEB_VIP, "deleted during the gap", absent).await;
    eventually(
        &s,
        "/dataplane/vips/10.96.2.50/80/tcp",
        "the last Service published",
        has_servers(&[("10.1.2.50", 8080, 1)]),
    )
    .await;
    // A, SRV and PTR record sets and a VIP per Service, each written once, but for the VIPs
    // written again when the two prefixes are relisted apart (the Services first, then their
    // endpoints).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while puts() - puts_before < (4 * SERVICES) as f64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "writes still in flight"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Whatever else was to come has come by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let written = puts() - puts_before;
    assert!(written <= (5 * SERVICES) as f64, "{written} writes");
    assert_eq!(
        control.metric("control_publish_owned_keys"),
        (4 * SERVICES) as f64
    );
    assert!(control.metric("control_kube_watch_relists_total") >= 1.0);
    control.shutdown().await;
}
