//! Inspection end to end on an embedded store: a real server killed mid-test is marked down
//! within interval × fall, DNS stops handing it out, and a DNS node's answers are checked.

use control::inspect::checks::Report;
use control::inspect::run::{Settings, run};
use control::inspect::{RESULTS, dns as probe};
use dataplane_common::clock::{Clock, SystemClock};
use dataplane_common::health::{Probe, Thresholds};
use dataplane_common::model::{self, Health, HealthState, RecordSet, Vip, Zone, keys};
use dataplane_common::node::{self, Registration, Role};
use dataplane_common::store::{Embedded, Store};
use dns::authority::Catalog;
use dns::respond::{Options, Outcome, Responder, Transport};
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

async fn listener(ip: &str) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind((ip.parse::<IpAddr>().unwrap(), 0))
        .await
        .unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            drop(s);
        }
    });
    (addr, task)
}

fn zone() -> Zone {
    serde_json::from_str(
        r#"{"origin":"example.test.","ttl":30,"ns":["ns.example.test."],
            "soa":{"mname":"ns.example.test.","rname":"hostmaster.example.test.","serial":1,
                   "refresh":7200,"retry":1800,"expire":86400,"minimum":30}}"#,
    )
    .unwrap()
}

fn www(a: IpAddr, b: IpAddr) -> RecordSet {
    serde_json::from_str(&format!(
        r#"{{"name":"www.example.test.","ttl":30,"records":[{{"type":"A","address":"{a}"}},{{"type":"A","address":"{b}"}}]}}"#
    ))
    .unwrap()
}

/// Asks the catalog for www.example.test A, as the dns server would answer.
fn answer(catalog: &Catalog) -> Vec<IpAddr> {
    let mut responder = Responder::new(7, Options::default());
    let q = probe::query(42, "www.example.test.", probe::A).unwrap();
    let mut out = [0u8; 4096];
    let client: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    match responder.handle_query(
        catalog,
        SystemClock.now(),
        client,
        Transport::Udp,
        &q,
        &mut out,
    ) {
        Outcome::Reply { len, .. } => probe::answer(&out[..len], 42).unwrap(),
        other => panic!("no reply: {other:?}"),
    }
}

/// A DNS node on UDP answering from a fixed catalog.
async fn dns_node(catalog: Catalog) -> SocketAddr {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut responder = Responder::new(1, Options::default());
        let (mut buf, mut out) = ([0u8; 4096], [0u8; 4096]);
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            if let Outcome::Reply { len, .. } = responder.handle_query(
                &catalog,
                SystemClock.now(),
                from,
                Transport::Udp,
                &buf[..n],
                &mut out,
            ) {
                let _ = socket.send_to(&out[..len], from).await;
            }
        }
    });
    addr
}

#[tokio::test]
async fn a_killed_real_server_is_marked_down_within_interval_times_fall_and_dns_drops_it() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(Embedded::open(dir.path()).await.unwrap());
    let (a, _keep_a) = listener("127.0.0.2").await;
    let (b, kill_b) = listener("127.0.0.3").await;
    let vip: Vip = serde_json::from_str(&format!(
        r#"{{"address":"127.0.0.9","port":80,"protocol":"TCP","real_servers":[
            {{"address":"{}","port":{},"weight":1}},{{"address":"{}","port":{},"weight":1}}]}}"#,
        a.ip(),
        a.port(),
        b.ip(),
        b.port()
    ))
    .unwrap();
    store
        .put(
            &keys::vip(vip.address, vip.port, vip.protocol),
            model::encode(&vip),
            None,
        )
        .await
        .unwrap();
    let (zone, set) = (zone(), www(a.ip(), b.ip()));
    store
        .put(&keys::zone(&zone.origin), model::encode(&zone), None)
        .await
        .unwrap();
    store
        .put(
            &keys::record_set(&set.name, model::RecordType::A),
            model::encode(&set),
            None,
        )
        .await
        .unwrap();
    let catalog = Catalog::build(vec![(zone.clone(), vec![set.clone()])], &HashSet::new());
    assert_eq!(answer(&catalog).len(), 2, "both handed out while healthy");

    // A DNS node, registered, for the inspector's DNS check.
    let dns_addr = dns_node(catalog.clone()).await;
    let mut reg = Registration::new("dns-1", Role::Dns);
    reg.addresses.service = vec![dns_addr];
    let _dns_reg = node::spawn(Arc::clone(&store), reg, Duration::from_secs(10));

    let (interval, fall) = (Duration::from_millis(100), 3);
    let settings = Settings {
        node: "control-1".into(),
        interval,
        timeout: Duration::from_millis(200),
        thresholds: Thresholds { rise: 2, fall },
        probe: Probe::Tcp,
        dns_names: vec!["www.example.test.".parse().unwrap()],
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let inspector = tokio::spawn(run(
        settings,
        Arc::clone(&store),
        Arc::new(SystemClock),
        None,
        async move {
            let _ = stopped.await;
        },
    ));
    // Healthy rounds first: nothing written, the DNS check passes.
    let mut report = None;
    for _ in 0..50 {
        tokio::time::sleep(interval).await;
        if let Some(kv) = store.get(&format!("{RESULTS}control-1")).await.unwrap() {
            let r: Report = model::decode(&kv.value).unwrap();
            if r.results.iter().any(|c| c.kind == "dns") {
                report = Some(r);
                break;
            }
        }
    }
    let report = report.expect("the inspector published its results");
    let dns_check = report
        .results
        .iter()
        .find(|c| c.id == "dns:dns-1:www.example.test.")
        .unwrap();
    assert!(dns_check.ok, "{dns_check:?}");
    assert!(
        report
            .results
            .iter()
            .filter(|c| c.kind == "real_server")
            .all(|c| c.ok)
    );
    assert!(store.list(keys::HEALTH, None).await.unwrap().kvs.is_empty());

    kill_b.abort();
    let killed = SystemClock.now();
    let mut down_after = None;
    while SystemClock.now() - killed < Duration::from_secs(5) {
        if let Some(kv) = store.get(&keys::health(b.ip())).await.unwrap() {
            let h: Health = model::decode(&kv.value).unwrap();
            assert_eq!((h.state, h.by.as_str()), (HealthState::Down, "control-1"));
            down_after = Some(SystemClock.now() - killed);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let down_after = down_after.expect("never marked down");
    println!(
        "figure: killed real server marked down after {down_after:?} (interval {interval:?} x fall {fall})"
    );
    // One round may be in flight when the server dies: interval × (fall + 1), plus slack.
    assert!(
        down_after <= interval * (fall + 1) + Duration::from_millis(300),
        "{down_after:?}"
    );
    assert!(
        store.get(&keys::health(a.ip())).await.unwrap().is_none(),
        "the live one is untouched"
    );

    // dns acts on the stored health: the down address is no longer handed out.
    let down: HashSet<IpAddr> = [b.ip()].into();
    assert_eq!(answer(&catalog.with_down(&down)), [a.ip()]);
    let _ = stop.send(());
    inspector.await.unwrap();
}
