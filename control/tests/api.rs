//! The REST API over real TCP against the embedded store: auth, every error status,
//! optimistic concurrency, pagination, Kubernetes-owned objects, a failing store, TLS.

mod support;

use control::api::{Auth, TlsFiles};
use dataplane_common::model::{RecordSet, Vip, encode};
use dataplane_common::store::StoreError;
use dataplane_common::store::intercept::{Intercept, Intercepted};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use support::{READ_TOKEN, Server, WRITE_TOKEN, a_set, auth, zone};

/// A server with the example.com zone.
fn with_zone() -> Server {
    let server = Server::start(auth());
    let w = server.client(Some(WRITE_TOKEN));
    let r = w.json("POST", "/api/v1/zones", &zone("example.com."), &[]);
    assert_eq!(r.status, 201, "{r:?}");
    server
}

#[test]
fn tokens_decide_who_reads_and_writes() {
    let server = Server::start(auth());
    let none = server.client(None);
    let r = none.get("/api/v1/zones");
    assert_eq!((r.status, r.code()), (401, "unauthorized"));
    assert_eq!(r.headers.get("www-authenticate").unwrap(), "Bearer");

    let bad = server.client(Some("not-a-token-at-all-0000"));
    assert_eq!(bad.get("/api/v1/zones").status, 401);

    let read = server.client(Some(READ_TOKEN));
    assert_eq!(read.get("/api/v1/zones").status, 200);
    let r = read.json("POST", "/api/v1/zones", &zone("example.com."), &[]);
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    assert!(r.reason().contains("read role"), "{r:?}");

    let write = server.client(Some(WRITE_TOKEN));
    assert_eq!(
        write
            .json("POST", "/api/v1/zones", &zone("example.com."), &[])
            .status,
        201
    );
    // The document is open to all.
    assert_eq!(none.get("/api/openapi.json").status, 200);
}

#[test]
fn without_tokens_reads_are_open_and_writes_refused() {
    let server = Server::start(Auth::default());
    let anonymous = server.client(None);
    assert_eq!(anonymous.get("/api/v1/status").status, 200);
    let r = anonymous.json("POST", "/api/v1/zones", &zone("example.com."), &[]);
    assert_eq!(r.status, 403);
    assert!(r.reason().contains("no tokens configured"), "{r:?}");
    let r = server.client(Some(WRITE_TOKEN)).get("/api/v1/status");
    assert_eq!(r.status, 401);
    assert!(r.reason().contains("no tokens configured"), "{r:?}");
}

#[test]
fn every_record_type_round_trips() {
    let server = with_zone();
    let w = server.client(Some(WRITE_TOKEN));
    let sets = [
        json!({"name": "www.example.com.", "ttl": 60, "policy": "one-persistent", "affinity_timeout": 600,
               "records": [{"type": "A", "address": "192.0.2.1"}, {"type": "A", "address": "192.0.2.2"}]}),
        json!({"name": "www.example.com.", "ttl": 60, "records": [{"type": "AAAA", "address": "2001:db8::1"}]}),
        json!({"name": "alias.example.com.", "ttl": 60, "records": [{"type": "CNAME", "target": "www.example.com."}]}),
        json!({"name": "_http._tcp.example.com.", "ttl": 60, "records": [
            {"type": "SRV", "priority": 1, "weight": 5, "port": 80, "target": "www.example.com."}]}),
        json!({"name": "example.com.", "ttl": 60, "records": [{"type": "MX", "preference": 10, "exchange": "mail.example.com."}]}),
        json!({"name": "example.com.", "ttl": 60, "records": [{"type": "TXT", "strings": ["v=spf1 -all", "two"]}]}),
        json!({"name": "sub.example.com.", "ttl": 60, "records": [{"type": "NS", "host": "ns1.other.net."}]}),
        json!({"name": "1.2.0.192.in-addr.arpa.example.com.", "ttl": 60, "records": [{"type": "PTR", "target": "www.example.com."}]}),
    ];
    for set in &sets {
        let r = w.json("POST", "/api/v1/records", set, &[]);
        assert_eq!(r.status, 201, "{set} -> {r:?}");
        assert!(r.etag.is_some());
        let location = r.headers.get("location").unwrap().to_str().unwrap();
        let got = w.get(location);
        assert_eq!(got.status, 200);
        assert_eq!(got.etag, r.etag);
        assert_eq!(got.body["records"], set["records"]);
        assert_eq!(got.body["source"], "user");
    }
    let all = w.get("/api/v1/records?zone=example.com");
    assert_eq!(all.body["items"].as_array().unwrap().len(), sets.len());
    let www = w.get("/api/v1/records?name=www.example.com.");
    assert_eq!(www.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        w.get("/api/v1/records?zone=other.org").body["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    assert_eq!(
        w.delete("/api/v1/records/www.example.com./aaaa", &[])
            .status,
        204
    );
    let r = w.get("/api/v1/records/www.example.com./AAAA");
    assert_eq!((r.status, r.code()), (404, "not_found"));
    assert_eq!(
        w.delete("/api/v1/records/www.example.com./AAAA", &[])
            .status,
        404
    );

    let status = w.get("/api/v1/status");
    assert_eq!(status.body["store"], "ok");
    assert_eq!(status.body["counts"]["records"], sets.len() - 1);
    assert_eq!(status.body["counts"]["zones"], 1);
}

#[test]
fn bad_requests_get_the_right_status_and_field() {
    let server = with_zone();
    let w = server.client(Some(WRITE_TOKEN));
    let check = |r: support::Reply, status: u16, code: &str, field: Option<&str>| {
        assert_eq!(
            (r.status, r.code(), r.field()),
            (status, code, field),
            "{r:?}"
        );
    };
    let json_header = [("content-type", "application/json")];

    // 400: not JSON, the wrong shape, bad parameters.
    check(
        w.send("POST", "/api/v1/records", Some(b"{".to_vec()), &json_header),
        400,
        "bad_request",
        None,
    );
    check(
        w.json(
            "POST",
            "/api/v1/records",
            &json!({"name": "a.example.com.", "records": []}),
            &[],
        ),
        400,
        "bad_request",
        Some("ttl"),
    );
    check(
        w.json(
            "POST",
            "/api/v1/records",
            &json!({"name": "a.example.com.", "ttl": "x", "records": []}),
            &[],
        ),
        400,
        "bad_request",
        Some("ttl"),
    );
    let mut extra = a_set("a.example.com.", "192.0.2.1");
    extra["colour"] = json!("blue");
    check(
        w.json("POST", "/api/v1/records", &extra, &[]),
        400,
        "bad_request",
        Some("colour"),
    );
    check(
        w.get("/api/v1/records/a.example.com./SPF"),
        400,
        "bad_parameter",
        Some("type"),
    );
    check(
        w.get("/api/v1/records/a.example.com./SOA"),
        400,
        "bad_parameter",
        Some("type"),
    );
    check(
        w.get("/api/v1/records/a..b/A"),
        400,
        "bad_parameter",
        Some("name"),
    );
    check(
        w.get("/api/v1/vips/10.0.0.1/0/tcp"),
        400,
        "bad_parameter",
        Some("port"),
    );
    check(
        w.get("/api/v1/vips/10.0.0.1/80/sctp"),
        400,
        "bad_parameter",
        Some("protocol"),
    );
    check(
        w.get("/api/v1/vips/not-an-ip/80/tcp"),
        400,
        "bad_parameter",
        Some("address"),
    );
    check(
        w.get("/api/v1/zones?limit=0"),
        400,
        "bad_parameter",
        Some("limit"),
    );
    check(
        w.get("/api/v1/zones?continue=zz"),
        400,
        "bad_parameter",
        Some("continue"),
    );

    // 404, 405.
    check(w.get("/api/v1/nothing"), 404, "not_found", None);
    check(w.get("/api/nothing"), 404, "not_found", None);
    check(w.get("/api/v1/zones/nope.org."), 404, "not_found", None);
    check(
        w.send("PATCH", "/api/v1/zones", None, &[]),
        405,
        "method_not_allowed",
        None,
    );
    check(
        w.send("DELETE", "/api/v1/status", None, &[]),
        405,
        "method_not_allowed",
        None,
    );

    // 415: no or another content type.
    let body = a_set("a.example.com.", "192.0.2.1")
        .to_string()
        .into_bytes();
    check(
        w.send("POST", "/api/v1/records", Some(body.clone()), &[]),
        415,
        "unsupported_media_type",
        None,
    );
    check(
        w.send(
            "POST",
            "/api/v1/records",
            Some(body),
            &[("content-type", "text/plain")],
        ),
        415,
        "unsupported_media_type",
        None,
    );

    // 422: values, with the field named.
    check(
        w.json(
            "POST",
            "/api/v1/records",
            &a_set("a.example.com.", "192.0.2.300"),
            &[],
        ),
        422,
        "invalid",
        Some("records[0].address"),
    );
    let mut ttl = a_set("a.example.com.", "192.0.2.1");
    ttl["ttl"] = json!(4_294_967_295_u64);
    check(
        w.json("POST", "/api/v1/records", &ttl, &[]),
        422,
        "invalid",
        Some("ttl"),
    );
    check(
        w.json(
            "POST",
            "/api/v1/records",
            &a_set("a..example.com.", "192.0.2.1"),
            &[],
        ),
        422,
        "invalid",
        Some("name"),
    );
    check(
        w.json(
            "POST",
            "/api/v1/records",
            &a_set("a.elsewhere.org.", "192.0.2.1"),
            &[],
        ),
        422,
        "invalid",
        Some("name"),
    );
    check(
        w.json(
            "POST",
            "/api/v1/records",
            &json!({"name": "a.example.com.", "ttl": 1, "records": []}),
            &[],
        ),
        422,
        "invalid",
        Some("records"),
    );
    let mut kube = a_set("a.example.com.", "192.0.2.1");
    kube["source"] = json!("kubernetes");
    check(
        w.json("POST", "/api/v1/records", &kube, &[]),
        422,
        "invalid",
        Some("source"),
    );
    check(
        w.json(
            "PUT",
            "/api/v1/records/b.example.com./A",
            &a_set("a.example.com.", "192.0.2.1"),
            &[],
        ),
        422,
        "invalid",
        Some("name"),
    );
    check(
        w.json(
            "PUT",
            "/api/v1/records/a.example.com./AAAA",
            &a_set("a.example.com.", "192.0.2.1"),
            &[],
        ),
        422,
        "invalid",
        Some("records[0]"),
    );
    let vip = |weight: u64, port: u64| {
        json!({"address": "10.96.0.1", "port": port, "protocol": "TCP",
               "real_servers": [{"address": "10.1.0.1", "port": 8080, "weight": weight}]})
    };
    check(
        w.json("POST", "/api/v1/vips", &vip(70_000, 80), &[]),
        422,
        "invalid",
        Some("real_servers[0].weight"),
    );
    check(
        w.json("POST", "/api/v1/vips", &vip(1, 0), &[]),
        422,
        "invalid",
        Some("port"),
    );
    check(
        w.json("POST", "/api/v1/vips", &vip(1, 65_536), &[]),
        422,
        "invalid",
        Some("port"),
    );
    check(
        w.json("PUT", "/api/v1/vips/10.96.0.1/81/tcp", &vip(1, 80), &[]),
        422,
        "invalid",
        Some("port"),
    );
    let mut v6 = vip(1, 80);
    v6["address"] = json!("ff02::1");
    check(
        w.json("POST", "/api/v1/vips", &v6, &[]),
        422,
        "invalid",
        Some("address"),
    );

    // 413.
    let huge = vec![b' '; 3 * 1024 * 1024];
    check(
        w.send("POST", "/api/v1/vips", Some(huge), &json_header),
        413,
        "too_large",
        None,
    );

    // Nothing above was written. (A new client: the server answers 413 without reading the
    // body and closes that connection, which a pooled client may otherwise try to reuse.)
    let fresh = server.client(Some(WRITE_TOKEN));
    assert_eq!(fresh.get("/api/v1/status").body["counts"]["records"], 0);
}

#[test]
fn concurrent_writers_are_refused_not_merged() {
    let server = with_zone();
    let w = server.client(Some(WRITE_TOKEN));
    let set = a_set("www.example.com.", "192.0.2.1");
    let path = "/api/v1/records/www.example.com./A";

    let created = w.json("PUT", path, &set, &[]);
    assert_eq!(created.status, 201, "{created:?}");
    let first = created.etag.clone().unwrap();
    let again = w.json("PUT", path, &set, &[]);
    assert_eq!((again.status, again.code()), (409, "conflict"));
    assert_eq!(w.json("POST", "/api/v1/records", &set, &[]).status, 409);

    let v2 = a_set("www.example.com.", "192.0.2.2");
    let updated = w.json("PUT", path, &v2, &[("if-match", &first)]);
    assert_eq!(updated.status, 200, "{updated:?}");
    let second = updated.etag.clone().unwrap();
    assert_ne!(first, second);

    // The first writer's ETag is stale now.
    let stale = w.json("PUT", path, &set, &[("if-match", &first)]);
    assert_eq!((stale.status, stale.code()), (412, "precondition_failed"));
    assert!(stale.reason().contains(&second), "{stale:?}");
    assert_eq!(w.delete(path, &[("if-match", &first)]).status, 412);
    assert_eq!(
        w.json("PUT", path, &set, &[("if-match", "garbage")]).status,
        412
    );
    assert_eq!(w.get(path).body["records"][0]["address"], "192.0.2.2");

    // `*` replaces whatever is there, and fails on nothing.
    assert_eq!(w.json("PUT", path, &set, &[("if-match", "*")]).status, 200);
    let missing = "/api/v1/records/nope.example.com./A";
    let r = w.json(
        "PUT",
        missing,
        &a_set("nope.example.com.", "192.0.2.1"),
        &[("if-match", "*")],
    );
    assert_eq!(r.status, 412);

    let current = w.get(path).etag.unwrap();
    assert_eq!(w.delete(path, &[("if-match", &current)]).status, 204);
}

#[test]
fn lists_page_through_250_records_in_order() {
    let server = with_zone();
    let w = server.client(Some(WRITE_TOKEN));
    for i in 0..250 {
        let name = format!("host{i:03}.example.com.");
        let r = w.json(
            "PUT",
            &format!("/api/v1/records/{name}/A"),
            &a_set(&name, "192.0.2.1"),
            &[],
        );
        assert_eq!(r.status, 201);
    }
    let mut names = Vec::new();
    let mut pages = 0;
    let mut next: Option<String> = None;
    loop {
        let path = match &next {
            Some(token) => format!("/api/v1/records?limit=100&continue={token}"),
            None => "/api/v1/records?limit=100".to_owned(),
        };
        let page = w.get(&path);
        assert_eq!(page.status, 200, "{page:?}");
        pages += 1;
        for item in page.body["items"].as_array().unwrap() {
            names.push(item["name"].as_str().unwrap().to_owned());
        }
        match page.body["continue"].as_str() {
            Some(token) => next = Some(token.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names.len(), 250);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "stable key order");
    assert_eq!(names.iter().collect::<BTreeSet<_>>().len(), 250);
    // Default page size.
    assert_eq!(
        w.get("/api/v1/records").body["items"]
            .as_array()
            .unwrap()
            .len(),
        100
    );
}

#[test]
fn kubernetes_objects_are_read_only() {
    let server = with_zone();
    let set: RecordSet = serde_json::from_value(json!({
        "name": "web.example.com.", "ttl": 30, "source": "kubernetes",
        "records": [{"type": "A", "address": "10.96.0.10"}]
    }))
    .unwrap();
    let vip: Vip = serde_json::from_value(json!({
        "address": "10.96.0.10", "port": 80, "protocol": "TCP", "source": "kubernetes",
        "real_servers": [{"address": "10.1.0.1", "port": 8080, "weight": 1}]
    }))
    .unwrap();
    server.block_on(async {
        let s = &server.store;
        s.put("/dataplane/records/web.example.com./A", encode(&set), None)
            .await
            .unwrap();
        s.put("/dataplane/vips/10.96.0.10/80/tcp", encode(&vip), None)
            .await
            .unwrap();
    });
    let w = server.client(Some(WRITE_TOKEN));
    for path in [
        "/api/v1/records/web.example.com./A",
        "/api/v1/vips/10.96.0.10/80/tcp",
    ] {
        let got = w.get(path);
        assert_eq!(
            (got.status, got.body["source"].as_str()),
            (200, Some("kubernetes"))
        );
        let etag = got.etag.clone().unwrap();
        let mut body = got.body.clone();
        body["source"] = json!("user");
        let r = w.json("PUT", path, &body, &[("if-match", &etag)]);
        assert_eq!((r.status, r.code()), (403, "forbidden"), "{r:?}");
        assert!(r.reason().contains("Kubernetes"), "{r:?}");
        assert_eq!(w.json("PUT", path, &body, &[]).status, 403);
        assert_eq!(w.delete(path, &[]).status, 403);
        assert_eq!(w.get(path).etag.unwrap(), etag, "unchanged");
    }
    let mut body = w.get("/api/v1/vips/10.96.0.10/80/tcp").body;
    body["source"] = json!("user");
    assert_eq!(w.json("POST", "/api/v1/vips", &body, &[]).status, 403);
}

#[test]
fn vips_are_created_updated_and_listed() {
    let server = Server::start(auth());
    let w = server.client(Some(WRITE_TOKEN));
    let vip = json!({
        "address": "2001:db8::10", "port": 443, "protocol": "TCP", "scheduler": "weighted-round-robin",
        "mode": "dr", "persistence": 300,
        "real_servers": [{"address": "2001:db8::1:1", "port": 443, "weight": 3},
                         {"address": "2001:db8::1:2", "port": 443, "weight": 0}]
    });
    let r = w.json("POST", "/api/v1/vips", &vip, &[]);
    assert_eq!(r.status, 201, "{r:?}");
    let path = r
        .headers
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(path, "/api/v1/vips/2001:db8::10/443/tcp");
    let mut changed = w.get(&path).body;
    assert_eq!(changed["persistence"], 300);
    changed["real_servers"][1]["weight"] = json!(5);
    let etag = r.etag.unwrap();
    assert_eq!(
        w.json("PUT", &path, &changed, &[("if-match", &etag)])
            .status,
        200
    );
    let list = w.get("/api/v1/vips");
    assert_eq!(list.body["items"][0]["real_servers"][1]["weight"], 5);
    assert_eq!(w.get("/api/v1/vips/2001:db8::10/443/TCP").status, 200);
}

#[test]
fn health_and_nodes_are_listed() {
    let server = Server::start(auth());
    server.block_on(async {
        let s = &server.store;
        s.put(
            "/dataplane/health/10.1.0.1",
            br#"{"v":1,"address":"10.1.0.1","state":"down","since":1700000000,"by":"node-a"}"#
                .to_vec(),
            None,
        )
        .await
        .unwrap();
        s.put(
            "/dataplane/nodes/node-a",
            br#"{"role":"lb"}"#.to_vec(),
            None,
        )
        .await
        .unwrap();
    });
    let r = server.client(Some(READ_TOKEN));
    let health = r.get("/api/v1/health");
    assert_eq!(health.body["items"][0]["state"], "down");
    assert_eq!(r.get("/api/v1/health/10.1.0.1").body["by"], "node-a");
    assert_eq!(r.get("/api/v1/health/10.1.0.2").status, 404);
    let nodes = r.get("/api/v1/nodes");
    assert_eq!(nodes.body["items"][0]["name"], "node-a");
    assert_eq!(nodes.body["items"][0]["registration"]["role"], "lb");
    // Read-only.
    assert_eq!(
        server
            .client(Some(WRITE_TOKEN))
            .send("POST", "/api/v1/health", None, &[])
            .status,
        405
    );
}

/// A store that fails on demand.
#[derive(Debug)]
struct Down(Arc<AtomicBool>);

impl Intercept for Down {
    fn check(&self) -> Result<(), StoreError> {
        if self.0.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("connection refused (test)".into()))
        } else {
            Ok(())
        }
    }
}

#[test]
fn an_unavailable_store_is_a_503_with_its_reason() {
    let down = Arc::new(AtomicBool::new(false));
    let flag = down.clone();
    let server = Server::start_with(
        auth(),
        move |inner| Intercepted::new(inner, Down(flag)),
        None,
    );
    let w = server.client(Some(WRITE_TOKEN));
    assert_eq!(w.get("/api/v1/status").status, 200);
    down.store(true, Ordering::SeqCst);
    for r in [
        w.get("/api/v1/status"),
        w.get("/api/v1/zones"),
        w.get("/api/v1/zones/example.com."),
        w.json("POST", "/api/v1/zones", &zone("example.com."), &[]),
        w.delete("/api/v1/vips/10.0.0.1/80/tcp", &[]),
    ] {
        assert_eq!((r.status, r.code()), (503, "store_unavailable"), "{r:?}");
        assert!(r.reason().contains("connection refused"), "{r:?}");
    }
    // Bad input is still a 4xx: it is refused before the store is asked.
    assert_eq!(w.get("/api/v1/records/a..b/A").status, 400);
    down.store(false, Ordering::SeqCst);
    assert_eq!(w.get("/api/v1/status").status, 200);
}

#[test]
fn every_documented_operation_is_routed() {
    let server = with_zone();
    let w = server.client(Some(WRITE_TOKEN));
    let doc = server.client(None).get("/api/openapi.json").body;
    assert_eq!(doc["openapi"], "3.0.3");
    let samples = [
        ("{origin}", "example.com."),
        ("{name}", "www.example.com."),
        ("{type}", "A"),
        ("{address}", "10.0.0.1"),
        ("{port}", "80"),
        ("{protocol}", "tcp"),
        ("{id}", "s1"),
    ];
    let mut operations = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        let mut path = template.clone();
        for (from, to) in samples {
            path = path.replace(from, to);
        }
        for method in item.as_object().unwrap().keys() {
            let r = w.send(&method.to_uppercase(), &path, None, &[]);
            assert!(
                r.status != 405 && !(r.status == 404 && r.reason().contains("no such API path")),
                "{method} {template}: {r:?}"
            );
            operations += 1;
        }
    }
    assert_eq!(operations, 1 + 2 * 3 + 3 * 3 + 4 + 6);
    // And undocumented ones are not.
    assert_eq!(w.send("PUT", "/api/v1/status", None, &[]).status, 405);
}

#[test]
fn silences_are_created_listed_and_deleted_and_alerts_and_inspect_list() {
    let server = with_zone();
    let w = server.client(Some(WRITE_TOKEN));
    let silence = serde_json::json!({
        "matchers": [{"name": "node", "value": "n1"}],
        "ends_at": 4_000_000_000u64,
        "created_by": "ops",
        "comment": "maintenance",
    });
    let created = w.json("POST", "/api/v1/silences", &silence, &[]);
    assert_eq!(created.status, 201, "{created:?}");
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert!(
        created.body["starts_at"].as_u64().unwrap() > 0,
        "defaults to now"
    );
    let list = w.get("/api/v1/silences");
    assert_eq!(list.body["items"][0]["id"], id.as_str());
    assert_eq!(w.get(&format!("/api/v1/silences/{id}")).status, 200);
    let mut everything = silence.clone();
    everything["matchers"] = serde_json::json!([]);
    let refused = w.json("POST", "/api/v1/silences", &everything, &[]);
    assert_eq!((refused.status, refused.field()), (422, Some("matchers")));
    let mut with_id = silence;
    with_id["id"] = "mine".into();
    assert_eq!(
        w.json("POST", "/api/v1/silences", &with_id, &[]).status,
        422
    );
    assert_eq!(w.delete(&format!("/api/v1/silences/{id}"), &[]).status, 204);
    assert_eq!(w.get(&format!("/api/v1/silences/{id}")).status, 404);
    assert_eq!(w.get("/api/v1/alerts").body["items"], serde_json::json!([]));
    assert_eq!(
        w.get("/api/v1/inspect").body["items"],
        serde_json::json!([])
    );
}

#[test]
fn requests_are_counted_by_route_and_class() {
    let server = with_zone();
    let w = server.client(Some(WRITE_TOKEN));
    w.get("/api/v1/zones/example.com.");
    w.get("/api/v1/zones/nope.");
    server.client(None).get("/api/v1/zones");
    let text = server.telemetry.encode();
    for line in [
        r#"control_api_requests_total{route="/api/v1/zones/{origin}",class="2xx"} 1"#,
        r#"control_api_requests_total{route="/api/v1/zones/{origin}",class="4xx"} 1"#,
        r#"control_api_requests_total{route="/api/v1/zones",class="4xx"} 1"#,
        r#"control_api_requests_total{route="/api/v1/zones",class="2xx"} 1"#,
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
    assert!(!text.contains(WRITE_TOKEN));
}

#[test]
fn tls_serves_with_the_configured_certificate() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = TlsFiles {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
    };
    std::fs::write(&files.cert, cert.cert.pem()).unwrap();
    std::fs::write(&files.key, cert.signing_key.serialize_pem()).unwrap();
    let server = Server::start_with(auth(), |s| s, Some(files));

    let root = ureq::tls::Certificate::from_der(cert.cert.der()).to_owned();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&[root]))
                .build(),
        )
        .build()
        .into();
    let base = format!("https://localhost:{}", server.addr.port());
    let client = support::Client::with_agent(agent, &base, Some(READ_TOKEN));
    let r = client.get("/api/v1/status");
    assert_eq!(r.status, 200, "{r:?}");
    // Plain HTTP on the TLS port gets no answer.
    let plain: Result<_, _> = ureq::get(&format!(
        "http://127.0.0.1:{}/api/v1/status",
        server.addr.port()
    ))
    .call();
    assert!(plain.is_err());
    let _: Value = r.body;
}
