//! Scenarios over the whole pipeline (rules → folding → grouping) with virtual time, and
//! delivery to a local webhook and to a real Alertmanager.

use super::config::{Receiver, Route};
use super::deliver::Deliverer;
use super::group::{Notification, Status};
use super::payload::Anchor;
use super::rules::{Condition, Op, Rule};
use super::window::SeriesKey;
use super::{Config, Engine, Labels};
use dataplane_common::clock::{Clock, ManualClock, SystemClock};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn down_rule(name: &str, metric: &str, severity: &str) -> Rule {
    Rule {
        name: name.into(),
        metric: metric.into(),
        matchers: Labels::new(),
        condition: Condition::Threshold {
            op: Op::Lt,
            value: 1.0,
        },
        for_: s(10),
        keep_firing_for: s(60),
        labels: labels(&[("severity", severity)]),
        annotations: Labels::new(),
    }
}

fn config() -> Config {
    Config {
        evaluation_interval: s(5),
        retention: s(300),
        route: Route {
            group_by: vec!["alertname".into()],
            group_wait: s(30),
            group_interval: s(60),
            repeat_interval: s(4 * 3600),
        },
        receivers: Vec::new(),
        rules: vec![
            down_rule("NodeDown", "up", "critical"),
            down_rule("EndpointDown", "probe_success", "warning"),
        ],
    }
}

/// Runs the engine every 5 s from `from` to `to` seconds, with `node_up` and `endpoints_up`
/// telling each sample; returns the notifications.
fn drive(
    e: &mut Engine,
    clock: &ManualClock,
    zero: std::time::Instant,
    seconds: u64,
    node_up: impl Fn(u64) -> bool,
    endpoints_up: impl Fn(u64) -> bool,
) -> Vec<Notification> {
    let mut out = Vec::new();
    for _ in 0..seconds / 5 {
        clock.advance(s(5));
        let now = clock.now();
        let t = now.saturating_duration_since(zero).as_secs();
        let up = |b: bool| if b { 1.0 } else { 0.0 };
        e.window_mut().handle_sample(
            now,
            SeriesKey {
                name: "up".into(),
                labels: labels(&[("node", "n1")]),
            },
            up(node_up(t)),
        );
        for i in 0..100 {
            let endpoint = format!("10.1.0.{i}:80");
            e.window_mut().handle_sample(
                now,
                SeriesKey {
                    name: "probe_success".into(),
                    labels: labels(&[("node", "n1"), ("service", "web"), ("endpoint", &endpoint)]),
                },
                up(endpoints_up(t)),
            );
        }
        e.handle_tick(now, 1_800_000_000 + t);
        out.extend(std::iter::from_fn(|| e.poll_notification(now)));
    }
    out
}

#[test]
fn a_node_failing_with_100_endpoints_is_one_root_cause_notification_then_one_resolution() {
    let clock = ManualClock::new();
    let zero = clock.now();
    let mut e = Engine::new(&config());
    // Healthy for a minute; n1 dies at 60 s (its endpoints with it); back at 600 s.
    let dead = |t: u64| !(60..600).contains(&t);
    let firing = drive(&mut e, &clock, zero, 590, dead, dead);
    let raw_alerts = e.alerts().len();
    assert_eq!(raw_alerts, 101, "the node and its 100 endpoints fire");
    assert_eq!(firing.len(), 1, "one notification, not 101: {firing:#?}");
    let n = &firing[0];
    assert_eq!(n.alerts.len(), 1);
    let root = &n.alerts[0].alert;
    assert_eq!(root.name(), "NodeDown");
    assert_eq!(root.folded.len(), 100, "it names the 100 endpoints");
    assert!(root.annotations["caused"].contains("endpoint=10.1.0.99:80"));
    let scores = e.scores();
    assert_eq!(
        scores.iter().find(|(k, _)| k.name == "n1").map(|(_, v)| *v),
        Some(0)
    );

    let resolved = drive(&mut e, &clock, zero, 300, dead, dead);
    assert_eq!(resolved.len(), 1, "one resolution: {resolved:#?}");
    assert_eq!(resolved[0].status(), Status::Resolved);
    assert_eq!(resolved[0].alerts[0].alert.name(), "NodeDown");
    println!("figure: alert reduction {raw_alerts} alerts -> 1 notification (+1 resolution)");
}

#[test]
fn a_flapping_check_is_one_alert_and_one_resolution() {
    let clock = ManualClock::new();
    let zero = clock.now();
    let mut e = Engine::new(&config());
    // The endpoints flap every 15 s for ten minutes; the node stays up.
    let flapping = |t: u64| !(30..=630).contains(&t) || (t / 15).is_multiple_of(2);
    let notes = drive(&mut e, &clock, zero, 900, |_| true, flapping);
    let firing: Vec<_> = notes
        .iter()
        .filter(|n| n.status() == Status::Firing)
        .collect();
    assert_eq!(firing.len(), 1, "{notes:#?}");
    assert_eq!(
        firing[0].alerts.len(),
        100,
        "the 100 endpoints, grouped in one notification"
    );
    let resolved: Vec<_> = notes
        .iter()
        .filter(|n| n.status() == Status::Resolved)
        .collect();
    assert_eq!(resolved.len(), 1, "delivered once the flapping stopped");
    assert!(
        resolved[0]
            .alerts
            .iter()
            .all(|a| a.status == Status::Resolved)
    );
}

/// A local HTTP receiver that keeps every JSON body POSTed to it.
async fn receiver() -> (std::net::SocketAddr, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let keep = Arc::clone(&got);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let keep = Arc::clone(&keep);
            async move {
                keep.lock().unwrap().push(v);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, got)
}

async fn wait_for(
    got: &Arc<Mutex<Vec<Value>>>,
    what: impl Fn(&[Value]) -> bool,
    secs: u64,
) -> bool {
    for _ in 0..secs * 20 {
        if what(&got.lock().unwrap()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A firing notification of one alert, and its resolution, and the anchor of the clock
/// that made them.
fn notifications() -> (Notification, Notification, Anchor) {
    let clock = ManualClock::new();
    let mut cfg = config();
    cfg.route.group_wait = s(0);
    let mut e = Engine::new(&cfg);
    let key = SeriesKey {
        name: "up".into(),
        labels: labels(&[("node", "n7")]),
    };
    let mut out = Vec::new();
    for (i, v) in [
        1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
        1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
    ]
    .iter()
    .enumerate()
    {
        clock.advance(s(5));
        e.window_mut().handle_sample(clock.now(), key.clone(), *v);
        e.handle_tick(clock.now(), i as u64);
        out.extend(std::iter::from_fn(|| e.poll_notification(clock.now())));
    }
    assert_eq!(out.len(), 2, "{out:#?}");
    let resolved = out.pop().unwrap();
    let anchor = Anchor {
        now: clock.now(),
        wall: SystemClock.wall(),
    };
    (out.pop().unwrap(), resolved, anchor)
}

#[tokio::test]
async fn the_webhook_gets_the_version_4_payload_and_the_resolution() {
    let (addr, got) = receiver().await;
    let (firing, resolved, anchor) = notifications();
    let d = Deliverer::new(
        vec![Receiver::Webhook {
            name: "ops".into(),
            url: format!("http://{addr}/hook"),
        }],
        s(5),
    );
    assert!(d.deliver(&firing, anchor).await.is_empty());
    assert!(d.deliver(&resolved, anchor).await.is_empty());
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0]["version"], "4");
    assert_eq!(got[0]["receiver"], "ops");
    assert_eq!(got[0]["status"], "firing");
    assert_eq!(got[0]["groupLabels"]["alertname"], "NodeDown");
    assert_eq!(got[0]["alerts"][0]["labels"]["node"], "n7");
    assert_eq!(got[0]["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(got[1]["status"], "resolved");
    assert_eq!(got[1]["alerts"][0]["status"], "resolved");
    assert_ne!(got[1]["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
}

#[tokio::test]
async fn a_receiver_that_is_down_at_first_still_gets_the_resolution() {
    // Reserve a port, deliver while nothing listens there, start listening during the retries.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (_, resolved, anchor) = notifications();
    let d = Deliverer::new(
        vec![Receiver::Webhook {
            name: "ops".into(),
            url: format!("http://127.0.0.1:{port}/hook"),
        }],
        s(2),
    );
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let keep = Arc::clone(&got);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |axum::Json(v): axum::Json<Value>| async move {
                keep.lock().unwrap().push(v);
                "ok"
            }),
        );
        let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        axum::serve(l, app).await
    });
    assert!(d.deliver(&resolved, anchor).await.is_empty());
    assert_eq!(got.lock().unwrap()[0]["status"], "resolved");
}

/// Debian's `prometheus-alertmanager` on a free loopback port, with a webhook receiver.
struct Alertmanager {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn alertmanager(webhook: &str) -> Option<Alertmanager> {
    let bin = ["/usr/bin/prometheus-alertmanager", "/usr/bin/alertmanager"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 100ms\n  group_interval: 1s\n  repeat_interval: 1h\n\
         receivers:\n  - name: hook\n    webhook_configs:\n      - url: {webhook}\n        send_resolved: true\n"
    );
    std::fs::write(dir.path().join("am.yml"), config).unwrap();
    let port = free_port();
    let child = std::process::Command::new(bin)
        .arg(format!(
            "--config.file={}",
            dir.path().join("am.yml").display()
        ))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    Some(Alertmanager {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    })
}

#[tokio::test]
async fn alertmanager_receives_the_alert_and_its_resolution() {
    let (addr, got) = receiver().await;
    let Some(am) = alertmanager(&format!("http://{addr}/hook")) else {
        panic!(
            "prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager)"
        );
    };
    let ready = format!("{}/-/ready", am.url);
    let mut up = false;
    for _ in 0..100 {
        if ureq::get(&ready).call().is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "alertmanager did not start");
    let (firing, resolved, anchor) = notifications();
    let d = Deliverer::new(
        vec![Receiver::Alertmanager {
            name: "am".into(),
            url: am.url.clone(),
        }],
        s(5),
    );
    assert!(d.deliver(&firing, anchor).await.is_empty());
    let fired = wait_for(&got, |v| v.iter().any(|p| p["status"] == "firing"), 15).await;
    assert!(fired, "Alertmanager never notified the alert");
    let first = got.lock().unwrap()[0].clone();
    assert_eq!(first["alerts"][0]["labels"]["alertname"], "NodeDown");
    assert_eq!(first["alerts"][0]["labels"]["node"], "n7");
    assert!(d.deliver(&resolved, anchor).await.is_empty());
    let done = wait_for(&got, |v| v.iter().any(|p| p["status"] == "resolved"), 15).await;
    assert!(
        done,
        "Alertmanager never notified the resolution: {:?}",
        got.lock().unwrap()
    );
}
