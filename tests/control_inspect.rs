//! Inspection, alerting and gossip as the daemons run them: `dataplane control` (inspector
//! and alert loop started by default, here with a short interval) and `dataplane dns` on a
//! real etcd, both in the gossip membership. A real server (a local TCP listener) behind a
//! VIP and a name, created through the REST API, is killed: its health in the store goes
//! down within interval x fall, dig stops getting its address, the API and `dpctl inspect`
//! show the failing check, and the dns node's registration carries the applied revision.

mod support;

use dataplane_common::clock::{Clock, SystemClock};
use dataplane_common::model::{self, Health, HealthState, keys};
use dataplane_common::node::Registration;
use dataplane_common::store::testing::EtcdServer;
use dataplane_common::store::{Etcd, Store};
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;
use support::{Daemon, free_port};

const TOKEN: &str = "e2e-inspect-write-token";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `check` until it is true; returns how long that took.
async fn until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let started = SystemClock.now();
    while started.elapsed() < limit {
        if check() {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out after {limit:?} waiting for: {what}");
}

fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-s", "--max-time", "5"])
        .args(args)
        .output()
        .expect("curl is not installed: apt-get install -y curl")
}

/// `GET` of an API path as JSON (Null when it cannot be read).
fn get(api: SocketAddr, path: &str) -> Value {
    let out = curl(&[
        "-H",
        &format!("authorization: Bearer {TOKEN}"),
        &format!("http://{api}{path}"),
    ]);
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// Sends `body` with `method`; returns the status and the ETag (the new revision).
fn send(api: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Option<i64>) {
    let out = curl(&[
        "-i",
        "-X",
        method,
        "-H",
        &format!("authorization: Bearer {TOKEN}"),
        "-H",
        "content-type: application/json",
        "--data",
        body,
        &format!("http://{api}{path}"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let etag = text
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("etag:"))
        .and_then(|l| {
            l[5..]
                .trim()
                .trim_matches(|c: char| c == '"' || c == 'W' || c == '/')
                .parse()
                .ok()
        });
    assert!((200..300).contains(&status), "{method} {path}: {text}");
    (status, etag)
}

/// A TCP server that accepts and closes; abort the task to kill it.
async fn real_server(ip: &str) -> (SocketAddr, tokio::task::JoinHandle<()>) {
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

/// dpctl, built next to the dataplane binary (it belongs to the control package). With the
/// features this test's build turns on, so that both builds share control's artifacts
/// rather than rebuilding it for each other.
fn dpctl() -> std::path::PathBuf {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_dataplane"));
    let path = exe.with_file_name("dpctl");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let built = Command::new(cargo)
        .args(["build", "--quiet", "-p", "control", "--bin", "dpctl"])
        .args(["--features", "testing,dataplane-common/testing"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(built.success(), "cannot build dpctl");
    path
}

fn check<'a>(reports: &'a Value, id: &str) -> Option<&'a Value> {
    reports["items"]
        .as_array()?
        .iter()
        .flat_map(|r| r["results"].as_array().into_iter().flatten())
        .find(|c| c["id"] == id)
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_real_server_goes_down_in_the_store_and_out_of_dns() {
    let etcd = EtcdServer::start().await;
    let store = Etcd::connect(&[etcd.endpoint()]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();

    let (interval, fall) = (Duration::from_millis(200), 3u32);
    let config = dir.path().join("control.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[api]
tokens = [{{ name = "e2e", secret = "{TOKEN}", role = "write" }}]

[inspect]
interval = "{}ms"
timeout = "300ms"
rise = 2
fall = {fall}
dns_names = ["www.inspect.test."]

[alert]
evaluation_interval = "500ms"
[[alert.rules]]
name = "DnsServes"
metric = "dns_applied_store_revision"
condition = {{ kind = "threshold", op = ">", value = 0 }}
labels = {{ severity = "info" }}
"#,
            interval.as_millis()
        ),
    )
    .unwrap();
    let api: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let control_metrics: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let control_gossip: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let _control = Killed(
        Command::new(env!("CARGO_BIN_EXE_dataplane"))
            .arg("--config")
            .arg(&config)
            .args([
                "control",
                // The Kubernetes etcd: the same server, another prefix (no Services in it).
                "--kube-etcd",
                &etcd.endpoint(),
                "--kube-prefix",
                "/kube-registry",
                "--store",
                &etcd.url(),
                "--node-name",
                "control-e2e",
                "--api-listen",
                &api.to_string(),
                "--metrics-listen",
                &control_metrics.to_string(),
                "--gossip",
                &control_gossip.to_string(),
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    until("the API answers", Duration::from_secs(15), || {
        get(api, "/api/v1/status") != Value::Null
    })
    .await;

    // Two real servers behind a VIP and a name, created through the API.
    let (a, _keep_a) = real_server("127.0.0.2").await;
    let (b, kill_b) = real_server("127.0.0.3").await;
    send(
        api,
        "POST",
        "/api/v1/zones",
        r#"{"origin":"inspect.test.","ttl":30,"ns":["ns.inspect.test."],
            "soa":{"mname":"ns.inspect.test.","rname":"hostmaster.inspect.test.","serial":1,
                   "refresh":7200,"retry":1800,"expire":86400,"minimum":30}}"#,
    );
    send(
        api,
        "POST",
        "/api/v1/vips",
        &format!(
            r#"{{"address":"127.0.0.9","port":80,"protocol":"TCP","real_servers":[
                {{"address":"{}","port":{},"weight":1}},{{"address":"{}","port":{},"weight":1}}]}}"#,
            a.ip(),
            a.port(),
            b.ip(),
            b.port()
        ),
    );
    send(
        api,
        "POST",
        "/api/v1/records",
        &format!(
            r#"{{"name":"www.inspect.test.","ttl":30,"records":[
                {{"type":"A","address":"{}"}},{{"type":"A","address":"{}"}}]}}"#,
            a.ip(),
            b.ip()
        ),
    );

    let dns_gossip: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let d = Daemon::dns(
        &[
            "--store",
            &etcd.url(),
            "--workers",
            "1",
            "--gossip",
            &dns_gossip.to_string(),
        ],
        "inspect.test",
    );
    let mut both = d.dig(&["www.inspect.test", "A"]).answer_data();
    both.sort();
    assert_eq!(both, [a.ip().to_string(), b.ip().to_string()]);

    // Gossip: the dns node found control's gossip address in the store and joined it.
    until(
        "both daemons see 2 gossip members",
        Duration::from_secs(10),
        || {
            let control = curl(&[&format!("http://{control_metrics}/metrics")]);
            metric(&d.metrics(), "gossip_live_members") == Some(2.0)
                && metric(
                    &String::from_utf8_lossy(&control.stdout),
                    "gossip_live_members",
                ) == Some(2.0)
        },
    )
    .await;

    // The inspector's results through the API: the real servers, the DNS node's answer.
    let dns_node = format!("{}-dns", dataplane_common::node::host_name("dataplane"));
    let dns_check = format!("dns:{dns_node}:www.inspect.test.");
    let b_check = format!("real_server:{b}");
    until(
        "the inspector's first results",
        Duration::from_secs(10),
        || {
            let reports = get(api, "/api/v1/inspect");
            [&dns_check, &b_check, &format!("real_server:{a}")]
                .iter()
                .all(|id| check(&reports, id).is_some_and(|c| c["ok"] == true))
        },
    )
    .await;
    assert!(
        store.get(&keys::health(b.ip())).await.unwrap().is_none(),
        "nothing written while healthy"
    );

    kill_b.abort();
    let killed = SystemClock.now();
    let mut down_after = None;
    while killed.elapsed() < Duration::from_secs(10) {
        if let Some(kv) = store.get(&keys::health(b.ip())).await.unwrap() {
            let h: Health = model::decode(&kv.value).unwrap();
            assert_eq!((h.state, h.by.as_str()), (HealthState::Down, "control-e2e"));
            down_after = Some(killed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let down_after = down_after.expect("the killed real server was never marked down");
    let dropped_after = until(
        "dns stops handing out the dead address",
        Duration::from_secs(10),
        || d.dig(&["www.inspect.test", "A"]).answer_data() == [a.ip().to_string()],
    )
    .await
        + down_after;
    println!(
        "figure: killed real server marked down in the store after {down_after:?}, out of dig's answer after {dropped_after:?} (interval {interval:?} x fall {fall})"
    );
    // A round may be in flight when the server dies (interval x (fall + 1)); the rest is
    // slack for a loaded machine.
    assert!(
        down_after <= interval * (fall + 1) + Duration::from_millis(1500),
        "{down_after:?}"
    );
    assert!(store.get(&keys::health(a.ip())).await.unwrap().is_none());

    // The failing check through the API and dpctl.
    until(
        "the API shows the failing check",
        Duration::from_secs(5),
        || check(&get(api, "/api/v1/inspect"), &b_check).is_some_and(|c| c["ok"] == false),
    )
    .await;
    let out = Command::new(dpctl())
        .args([
            "--server",
            &format!("http://{api}"),
            "--token",
            TOKEN,
            "inspect",
            "--failing",
        ])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    let row = table
        .lines()
        .find(|l| l.contains(&b_check))
        .unwrap_or_else(|| panic!("no row for {b_check}:\n{table}"));
    assert!(
        row.starts_with("FAIL") && row.contains("control-e2e"),
        "{row}"
    );
    assert!(
        !table.contains(&dns_check),
        "--failing shows only failures:\n{table}"
    );

    // A change: the dns node's registration follows the revision it applied, until it is
    // the newest of what it serves (zones, records, health).
    let (_, changed) = send(
        api,
        "POST",
        "/api/v1/records",
        r#"{"name":"api.inspect.test.","ttl":30,"records":[{"type":"A","address":"127.0.0.2"}]}"#,
    );
    let changed = changed.expect("an ETag");
    let mut newest = 0;
    let mut applied = None;
    for _ in 0..250 {
        newest = 0;
        for prefix in [keys::ZONES, keys::RECORDS, keys::HEALTH] {
            let l = store.list(prefix, None).await.unwrap();
            newest = newest.max(l.kvs.iter().map(|kv| kv.mod_revision).max().unwrap_or(0));
        }
        let nodes = get(api, "/api/v1/nodes");
        let reg = nodes["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["name"] == dns_node.as_str())
            .map(|n| {
                model::decode::<Registration>(&serde_json::to_vec(&n["registration"]).unwrap())
                    .unwrap()
            });
        if let Some(reg) = reg {
            assert_eq!(reg.addresses.gossip, Some(dns_gossip));
            applied = reg.applied_revision;
            if applied == Some(newest) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(newest >= changed);
    assert_eq!(applied, Some(newest), "the dns node's applied revision");
    assert_eq!(
        d.dig(&["api.inspect.test", "A"]).answer_data(),
        ["127.0.0.2"]
    );
    until("the dns node is consistent", Duration::from_secs(5), || {
        check(
            &get(api, "/api/v1/inspect"),
            &format!("consistency:{dns_node}"),
        )
        .is_some_and(|c| c["ok"] == true)
    })
    .await;

    // The alert loop runs too: its rule fires on the dns node's scraped metrics.
    until(
        "the alert view shows the firing rule",
        Duration::from_secs(10),
        || {
            let views = get(api, "/api/v1/alerts");
            views["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| v["by"] == "control-e2e")
                .flat_map(|v| v["alerts"].as_array().into_iter().flatten())
                .any(|a| {
                    a["labels"]["alertname"] == "DnsServes"
                        && a["labels"]["node"] == dns_node.as_str()
                })
        },
    )
    .await;

    assert!(d.terminate(), "dns stops cleanly on SIGTERM");
}
