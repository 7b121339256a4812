//! `dataplane dns --store etcd://...`: records and health from a real etcd, applied live;
//! only activated addresses handed out; the same client keeps its address.

mod support;

use dataplane_common::model::{
    AnswerPolicy, Health, HealthState, Name, RData, RecordSet, Soa, Zone, encode, keys,
};
use dataplane_common::store::testing::EtcdServer;
use dataplane_common::store::{self, Store};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use support::{Daemon, Dig};

const WEB: &str = "web.default.svc.cluster.local";
const ADDRS: [&str; 4] = ["10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.4"];

fn name(s: &str) -> Name {
    s.parse().unwrap()
}

fn zone() -> Zone {
    Zone {
        origin: name("cluster.local."),
        ttl: 30,
        soa: Soa {
            mname: name("ns.cluster.local."),
            rname: name("hostmaster.cluster.local."),
            serial: 1,
            refresh: 7200,
            retry: 1800,
            expire: 86400,
            minimum: 5,
        },
        ns: vec![name("ns.cluster.local.")],
    }
}

fn a_set(owner: &str, addrs: &[&str], policy: AnswerPolicy) -> RecordSet {
    RecordSet {
        name: name(owner),
        ttl: 30,
        records: addrs
            .iter()
            .map(|a| RData::A {
                address: a.parse().unwrap(),
            })
            .collect(),
        policy,
        affinity_timeout: None,
        source: "user".into(),
    }
}

async fn put_set(s: &Arc<dyn Store>, set: &RecordSet) {
    let key = keys::record_set(&set.name, set.record_type().unwrap());
    s.put(&key, encode(set), None).await.unwrap();
}

async fn mark(s: &Arc<dyn Store>, addr: &str, state: HealthState) {
    let address: IpAddr = addr.parse().unwrap();
    let h = Health {
        address,
        state,
        since: 0,
        by: "test".into(),
    };
    s.put(&keys::health(address), encode(&h), None)
        .await
        .unwrap();
}

fn ask_from(d: &Daemon, client: &str, qname: &str) -> Dig {
    d.dig(&["-b", client, qname, "A"])
}

/// Polls until `check` holds (changes propagate asynchronously), up to 5 s.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..100 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_records_health_and_persistence() {
    let mut etcd = EtcdServer::start().await;
    let s = store::open(&etcd.url()).await.unwrap();
    s.put(&keys::zone(&name("cluster.local.")), encode(&zone()), None)
        .await
        .unwrap();
    put_set(&s, &a_set(WEB, &ADDRS, AnswerPolicy::OnePersistent)).await;
    put_set(
        &s,
        &a_set("all.default.svc.cluster.local", &ADDRS, AnswerPolicy::All),
    )
    .await;
    put_set(
        &s,
        &a_set(
            "rr.default.svc.cluster.local",
            &ADDRS,
            AnswerPolicy::OneRoundRobin,
        ),
    )
    .await;
    s.put(
        &format!("{}bad/A", keys::RECORDS),
        b"{garbage".to_vec(),
        None,
    )
    .await
    .unwrap();

    let d = Daemon::dns(&["--store", &etcd.url(), "--workers", "2"], "cluster.local");

    // one-persistent: one address, the same for the same client every time.
    let clients: Vec<String> = (2..42).map(|i| format!("127.0.0.{i}")).collect();
    let mut assigned = BTreeMap::new();
    for c in &clients {
        let first = ask_from(&d, c, WEB);
        assert_eq!(first.status, "NOERROR", "{}", first.raw);
        assert!(first.has_flag("aa"));
        assert_eq!(first.answer.len(), 1, "{}", first.raw);
        for _ in 0..3 {
            assert_eq!(
                ask_from(&d, c, WEB).answer_data(),
                first.answer_data(),
                "client {c} moved"
            );
        }
        assigned.insert(c.clone(), first.answer_data()[0].clone());
    }
    let used: BTreeSet<_> = assigned.values().collect();
    assert!(
        used.len() >= 3,
        "40 clients spread over the addresses: {assigned:?}"
    );

    // all: every address; round-robin: one at a time, rotating.
    assert_eq!(
        d.dig(&["all.default.svc.cluster.local", "A"]).answer.len(),
        4
    );
    let rr: BTreeSet<_> = (0..12)
        .map(|_| {
            d.dig(&["rr.default.svc.cluster.local", "A"])
                .answer_data()
                .join(",")
        })
        .collect();
    assert!(
        rr.len() >= 2 && rr.iter().all(|a| !a.contains(',')),
        "{rr:?}"
    );

    // A down address is no longer handed out; only its clients move.
    let victim = assigned["127.0.0.2"].clone();
    mark(&s, &victim, HealthState::Down).await;
    eventually("the down address disappears", || {
        ask_from(&d, "127.0.0.2", WEB).answer_data()[0] != victim
    })
    .await;
    for (c, addr) in &assigned {
        let now = ask_from(&d, c, WEB).answer_data()[0].clone();
        if *addr == victim {
            assert_ne!(now, victim, "{c} still gets the down address");
        } else {
            assert_eq!(&now, addr, "{c} moved although its address is healthy");
        }
    }
    let all = d.dig(&["all.default.svc.cluster.local", "A"]).answer_data();
    assert_eq!(all.len(), 3);
    assert!(!all.contains(&victim));

    // Every address down: fail open, answer with all of them.
    for a in ADDRS {
        mark(&s, a, HealthState::Down).await;
    }
    eventually("fail-open answers all", || {
        d.dig(&["all.default.svc.cluster.local", "A"]).answer.len() == 4
    })
    .await;
    for a in ADDRS {
        mark(&s, a, HealthState::Up).await;
    }
    eventually("recovered", || {
        ask_from(&d, "127.0.0.2", WEB).answer_data()[0] == victim
    })
    .await;

    // A new record appears, a deleted one goes.
    put_set(
        &s,
        &a_set(
            "new.default.svc.cluster.local",
            &["10.9.9.9"],
            AnswerPolicy::All,
        ),
    )
    .await;
    eventually("new record served", || {
        d.dig(&["new.default.svc.cluster.local", "A"]).answer_data() == ["10.9.9.9"]
    })
    .await;
    s.delete(&keys::record_set(
        &name("new.default.svc.cluster.local"),
        dataplane_common::model::RecordType::A,
    ))
    .await
    .unwrap();
    eventually("deleted record gone", || {
        d.dig(&["new.default.svc.cluster.local", "A"]).status == "NXDOMAIN"
    })
    .await;

    // etcd dies: the last good state goes on being served.
    etcd.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        d.dig(&["all.default.svc.cluster.local", "A"]).answer.len(),
        4
    );
    assert_eq!(
        ask_from(&d, "127.0.0.3", WEB).answer_data()[0],
        assigned["127.0.0.3"]
    );
    // etcd comes back: changes flow again.
    etcd.restart().await;
    let s = store::open(&etcd.url()).await.unwrap();
    put_set(
        &s,
        &a_set(
            "after.default.svc.cluster.local",
            &["10.8.8.8"],
            AnswerPolicy::All,
        ),
    )
    .await;
    eventually("served after the restart", || {
        d.dig(&["after.default.svc.cluster.local", "A"])
            .answer_data()
            == ["10.8.8.8"]
    })
    .await;

    let metrics = d.metrics();
    assert!(
        metrics.contains("store_malformed_values_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("dns_answers_by_policy_total{policy=\"one-persistent\"}"),
        "{metrics}"
    );
    assert!(d.terminate());
}
