//! The whole path, as in a cluster: Kubernetes objects in a TLS etcd (written exactly as
//! kube-apiserver stores them) -> `dataplane control` -> the project's etcd -> `dataplane dns`
//! -> dig. Also measures how long a change takes to reach the DNS answer.

mod support;

use control::kube::testing::{endpoint, port, protobuf_service, protobuf_slice, service, slice};
use dataplane_common::clock::{Clock, SystemClock};
use dataplane_common::store::testing::EtcdServer;
use dataplane_common::store::{Etcd, Store};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::Daemon;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn until(what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let started = SystemClock.now();
    while started.elapsed() < Duration::from_secs(15) {
        if check() {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_services_reach_dns_answers() {
    let kube = EtcdServer::start_tls().await;
    let tls = kube.client_tls().unwrap().clone();
    let project = EtcdServer::start().await;
    let k = Etcd::connect_tls(&[kube.endpoint()], Some(&tls))
        .await
        .unwrap();

    let web = service(
        "shop",
        "web",
        &["10.96.0.10"],
        vec![port("http", "TCP", 80, None)],
    );
    k.put(
        "/registry/services/specs/shop/web",
        protobuf_service(&web),
        None,
    )
    .await
    .unwrap();
    let pods = slice(
        "shop",
        "web-abc",
        "web",
        "IPv4",
        &[("http", 8080)],
        vec![endpoint("10.244.0.5", true)],
    );
    k.put(
        "/registry/endpointslices/shop/web-abc",
        protobuf_slice(&pods),
        None,
    )
    .await
    .unwrap();
    let db = service("shop", "db", &[], vec![port("pg", "TCP", 5432, None)]);
    k.put(
        "/registry/services/specs/shop/db",
        protobuf_service(&db),
        None,
    )
    .await
    .unwrap();
    let db_pods = slice(
        "shop",
        "db-1",
        "db",
        "IPv4",
        &[("pg", 5432)],
        vec![endpoint("10.244.1.1", true), endpoint("10.244.1.2", true)],
    );
    k.put(
        "/registry/endpointslices/shop/db-1",
        protobuf_slice(&db_pods),
        None,
    )
    .await
    .unwrap();

    let _control = Killed(
        Command::new(env!("CARGO_BIN_EXE_dataplane"))
            .args([
                "control",
                "--kube-etcd",
                &kube.endpoint(),
                "--store",
                &project.url(),
            ])
            .args([
                "--metrics-listen",
                "127.0.0.1:0",
                "--node-name",
                "e2e",
                "--api-listen",
                "127.0.0.1:0",
            ])
            .arg("--kube-etcd-cafile")
            .arg(&tls.ca)
            .arg("--kube-etcd-certfile")
            .arg(&tls.cert)
            .arg("--kube-etcd-keyfile")
            .arg(&tls.key)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // control creates the cluster zone once it leads; dns answers its SOA when it has it.
    let d = Daemon::dns(
        &["--store", &project.url(), "--workers", "2"],
        "cluster.local",
    );

    let web_name = "web.shop.svc.cluster.local";
    until("the ClusterIP is served", || {
        d.dig(&[web_name, "A"]).answer_data() == ["10.96.0.10"]
    })
    .await;
    let srv = d.dig(&["_http._tcp.web.shop.svc.cluster.local", "SRV"]);
    assert_eq!(
        srv.answer_data(),
        ["0 100 80 web.shop.svc.cluster.local."],
        "{}",
        srv.raw
    );
    let ptr = d.dig(&["-x", "10.96.0.10"]);
    assert!(
        ptr.answer_data()
            .iter()
            .any(|p| p == "web.shop.svc.cluster.local."),
        "{}",
        ptr.raw
    );
    let mut headless = d.dig(&["db.shop.svc.cluster.local", "A"]).answer_data();
    headless.sort();
    assert_eq!(headless, ["10.244.1.1", "10.244.1.2"]);

    // A scale-up reaches the answer; measure how long it takes.
    let mut samples = Vec::new();
    for i in 3..=12 {
        let mut eps: Vec<_> = (1..=i)
            .map(|j| endpoint(&format!("10.244.1.{j}"), true))
            .collect();
        eps.truncate(i);
        let scaled = slice("shop", "db-1", "db", "IPv4", &[("pg", 5432)], eps);
        let written = SystemClock.now();
        k.put(
            "/registry/endpointslices/shop/db-1",
            protobuf_slice(&scaled),
            None,
        )
        .await
        .unwrap();
        until("the new endpoint is served", || {
            d.dig(&["db.shop.svc.cluster.local", "A", "+tcp"])
                .answer
                .len()
                == i
        })
        .await;
        samples.push(written.elapsed());
    }
    samples.sort();
    eprintln!(
        "kubernetes write -> dns answer: p50 {:?}, max {:?} over {} changes (includes dig polling)",
        samples[samples.len() / 2],
        samples[samples.len() - 1],
        samples.len()
    );

    // Deleting the Service takes its names away.
    k.delete("/registry/services/specs/shop/web").await.unwrap();
    until("the deleted Service is gone", || {
        d.dig(&[web_name, "A"]).status == "NXDOMAIN"
    })
    .await;
}
