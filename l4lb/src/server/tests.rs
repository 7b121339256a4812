use super::*;
use crate::io::mem;
use crate::packet::tcp::SYN;
use crate::testing::{self, LB_MAC, ROUTER_MAC};
use dataplane_common::model::{self, Health, HealthState, Protocol, Vip, keys};
use dataplane_common::store::Embedded;
use std::collections::BTreeMap;
use std::net::SocketAddr;

const LOCAL: &str = "198.51.100.100";

async fn until(what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..500 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Sends a SYN from each client port and returns the real server each one went to.
async fn spread(
    inq: &mem::Queue,
    outq: &mem::Queue,
    ports: std::ops::Range<u16>,
) -> BTreeMap<IpAddr, usize> {
    let vip: SocketAddr = "203.0.113.10:80".parse().unwrap();
    let n = ports.len();
    for p in ports {
        let client = SocketAddr::from(([203, 0, 113, 2], p));
        assert!(inq.push(&testing::tcp_frame(client, vip, SYN, b"")));
    }
    let mut got = Vec::new();
    until("forwarded SYNs", || {
        got.extend(outq.drain());
        got.len() >= n
    })
    .await;
    let mut seen = BTreeMap::new();
    for f in &got {
        testing::verify_checksums(f).unwrap();
        let parsed = crate::packet::parse(f).unwrap().unwrap();
        assert_eq!(parsed.tuple.src.ip(), LOCAL.parse::<IpAddr>().unwrap());
        assert_eq!(parsed.tuple.dst_port, 8080);
        *seen.entry(parsed.tuple.dst.ip()).or_insert(0) += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_changes_reach_the_workers_and_their_counters_reach_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(Embedded::open(dir.path()).await.unwrap());
    let (inq, outq) = (mem::Queue::new(256, 2048), mem::Queue::new(256, 2048));
    let settings = Settings {
        link: Link {
            mac: LB_MAC,
            gateway: ROUTER_MAC,
        },
        local: vec![LOCAL.parse().unwrap()],
        datapath: Config::default(),
        neighbours: None,
        health: None,
        fast_path: None,
        handoff: false,
    };
    let telemetry = Telemetry::new();
    let links = vec![(mem::Rx::new(inq.clone()), mem::Tx::new(outq.clone()))];
    let server = Server::start(settings, links, Arc::clone(&store), &telemetry).unwrap();
    server.synced().await;

    let rs: Vec<IpAddr> = ["198.51.100.11", "198.51.100.12", "198.51.100.13"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    let vip = Vip {
        address: "203.0.113.10".parse().unwrap(),
        port: 80,
        protocol: Protocol::Tcp,
        scheduler: model::Scheduler::Maglev,
        mode: model::ForwardingMode::FullNat,
        persistence: None,
        real_servers: rs
            .iter()
            .map(|&address| model::RealServer {
                address,
                port: 8080,
                weight: 1,
            })
            .collect(),
        source: "user".into(),
    };
    let key = keys::vip(vip.address, vip.port, vip.protocol);
    let written = store.put(&key, model::encode(&vip), None).await.unwrap();
    until("the VIP in the snapshot", || {
        server.vips().vips().len() == 1
    })
    .await;
    // What the node's registration follows: the revision of each snapshot swapped in.
    until("the applied revision", || {
        *server.applied().borrow() == Some(written)
    })
    .await;

    let seen = spread(&inq, &outq, 40_000..40_060).await;
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), rs, "{seen:?}");

    let down = Health {
        address: rs[1],
        state: HealthState::Down,
        since: 1,
        by: "test".into(),
    };
    store
        .put(&keys::health(rs[1]), model::encode(&down), None)
        .await
        .unwrap();
    until("the real server down in the snapshot", || {
        server
            .vips()
            .real_servers()
            .iter()
            .any(|r| r.address.ip() == rs[1] && !r.eligible)
    })
    .await;
    let seen = spread(&inq, &outq, 41_000..41_060).await;
    assert!(!seen.contains_key(&rs[1]), "{seen:?}");
    assert_eq!(seen.values().sum::<usize>(), 60);

    let mut text = String::new();
    until("published counters", || {
        text = telemetry.encode();
        text.contains("lb_new_sessions_total{vip=\"203.0.113.10:80/tcp\"} 120")
    })
    .await;
    for want in [
        "lb_packets_total{vip=\"203.0.113.10:80/tcp\"} 120",
        "lb_active_sessions{vip=\"203.0.113.10:80/tcp\"} 120",
        "lb_real_server_new_sessions_total{vip=\"203.0.113.10:80/tcp\",real_server=\"198.51.100.11:8080\"}",
        "lb_drops_total{reason=\"no_session\"} 0",
        "lb_frames_total{verdict=\"tx\"} 120",
        "lb_addresses_down 1",
    ] {
        assert!(text.contains(want), "{want} not in\n{text}");
    }
    tokio::task::spawn_blocking(move || server.stop())
        .await
        .unwrap();
}
