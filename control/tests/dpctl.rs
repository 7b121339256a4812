//! The built `dpctl` binary against an API started by the test.

mod support;

use serde_json::Value;
use std::fmt::Write as _;
use std::process::{Command, Output};
use support::{READ_TOKEN, Server, WRITE_TOKEN, auth, zone};

/// Runs dpctl against `server` with `token`.
fn dpctl(server: &Server, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dpctl"));
    command
        .env_remove("DPCTL_TOKEN")
        .env("DPCTL_SERVER", server.url())
        .args(args);
    if let Some(token) = token {
        command.env("DPCTL_TOKEN", token);
    }
    command.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn ok(o: Output) -> String {
    assert!(o.status.success(), "dpctl failed: {}", stderr(&o));
    stdout(&o)
}

/// A server with the example.com zone.
fn with_zone() -> Server {
    let server = Server::start(auth());
    let r =
        server
            .client(Some(WRITE_TOKEN))
            .json("POST", "/api/v1/zones", &zone("example.com."), &[]);
    assert_eq!(r.status, 201);
    server
}

#[test]
fn records_are_created_listed_read_and_deleted() {
    let server = with_zone();
    let w = Some(WRITE_TOKEN);
    let out = ok(dpctl(
        &server,
        w,
        &[
            "records",
            "create",
            "--name",
            "www.example.com",
            "--type",
            "a",
            "--ttl",
            "60",
            "--data",
            "192.0.2.1",
            "--data",
            "192.0.2.2",
            "--policy",
            "one-persistent",
        ],
    ));
    assert!(out.contains("www.example.com."), "{out}");
    ok(dpctl(
        &server,
        w,
        &[
            "records",
            "create",
            "--name",
            "_sip._udp.example.com",
            "--type",
            "SRV",
            "--data",
            "10 5 5060 sip.example.com",
        ],
    ));

    let table = ok(dpctl(&server, Some(READ_TOKEN), &["records", "list"]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{table}");
    assert_eq!(lines.len(), 3, "{table}");
    assert!(table.contains("192.0.2.1, 192.0.2.2"), "{table}");
    assert!(table.contains("10 5 5060 sip.example.com."), "{table}");

    let json: Value = serde_json::from_str(&ok(dpctl(
        &server,
        Some(READ_TOKEN),
        &["-o", "json", "records", "get", "www.example.com.", "A"],
    )))
    .unwrap();
    assert_eq!(json[0]["policy"], "one-persistent");
    assert_eq!(json[0]["ttl"], 60);

    ok(dpctl(
        &server,
        w,
        &["records", "delete", "www.example.com", "A"],
    ));
    let gone = dpctl(&server, w, &["records", "get", "www.example.com", "A"]);
    assert!(!gone.status.success());
    assert!(stderr(&gone).contains("no record set"), "{}", stderr(&gone));
    assert!(stderr(&gone).contains("HTTP 404"), "{}", stderr(&gone));
}

#[test]
fn records_are_created_from_a_json_file() {
    let server = with_zone();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mx.json");
    std::fs::write(
        &file,
        r#"{"name":"example.com.","ttl":300,"records":[{"type":"MX","preference":10,"exchange":"mail.example.com."}]}"#,
    )
    .unwrap();
    ok(dpctl(
        &server,
        Some(WRITE_TOKEN),
        &["records", "create", "-f", file.to_str().unwrap()],
    ));
    let out = ok(dpctl(
        &server,
        None,
        &[
            "--token",
            READ_TOKEN,
            "records",
            "list",
            "--zone",
            "example.com",
        ],
    ));
    assert!(out.contains("10 mail.example.com."), "{out}");
}

#[test]
fn errors_exit_non_zero_with_the_servers_reason() {
    let server = with_zone();
    let create = [
        "records",
        "create",
        "--name",
        "a.example.com",
        "--type",
        "A",
        "--data",
        "192.0.2.1",
    ];
    let read_only = dpctl(&server, Some(READ_TOKEN), &create);
    assert!(!read_only.status.success());
    assert!(
        stderr(&read_only).contains("read role"),
        "{}",
        stderr(&read_only)
    );
    assert!(
        stderr(&read_only).contains("HTTP 403"),
        "{}",
        stderr(&read_only)
    );

    let anonymous = dpctl(&server, None, &["records", "list"]);
    assert!(!anonymous.status.success());
    assert!(
        stderr(&anonymous).contains("HTTP 401"),
        "{}",
        stderr(&anonymous)
    );

    let outside = dpctl(
        &server,
        Some(WRITE_TOKEN),
        &[
            "records",
            "create",
            "--name",
            "a.other.org",
            "--type",
            "A",
            "--data",
            "192.0.2.1",
        ],
    );
    assert!(!outside.status.success());
    let e = stderr(&outside);
    assert!(
        e.contains("in no zone") && e.contains("(field `name`)") && e.contains("HTTP 422"),
        "{e}"
    );

    ok(dpctl(&server, Some(WRITE_TOKEN), &create));
    let twice = dpctl(&server, Some(WRITE_TOKEN), &create);
    assert!(stderr(&twice).contains("HTTP 409"), "{}", stderr(&twice));

    let unreachable = Command::new(env!("CARGO_BIN_EXE_dpctl"))
        .args(["--server", "http://127.0.0.1:1", "status"])
        .output()
        .unwrap();
    assert!(!unreachable.status.success());
}

#[test]
fn vips_are_managed() {
    let server = Server::start(auth());
    let w = Some(WRITE_TOKEN);
    ok(dpctl(
        &server,
        w,
        &[
            "vips",
            "create",
            "--address",
            "10.96.0.10",
            "--port",
            "80",
            "--protocol",
            "tcp",
            "--real",
            "10.1.0.1:8080=3",
            "--real",
            "10.1.0.2:8080",
        ],
    ));
    ok(dpctl(
        &server,
        w,
        &[
            "vips",
            "update",
            "--address",
            "10.96.0.10",
            "--port",
            "80",
            "--protocol",
            "tcp",
            "--scheduler",
            "source-hash",
            "--persistence",
            "600",
        ],
    ));
    let table = ok(dpctl(&server, w, &["vips", "list"]));
    assert!(table.contains("source-hash"), "{table}");
    assert!(
        table.contains("10.1.0.1:8080=3, 10.1.0.2:8080=1"),
        "{table}"
    );
    let json: Value = serde_json::from_str(&ok(dpctl(
        &server,
        w,
        &["-o", "json", "vips", "get", "10.96.0.10", "80", "tcp"],
    )))
    .unwrap();
    assert_eq!(json[0]["persistence"], 600);

    let bad = dpctl(
        &server,
        w,
        &[
            "vips",
            "update",
            "--address",
            "10.96.0.10",
            "--port",
            "80",
            "--protocol",
            "tcp",
            "--real",
            "10.1.0.1:8080=70000",
        ],
    );
    assert!(
        stderr(&bad).contains("(field `real_servers[0].weight`)"),
        "{}",
        stderr(&bad)
    );

    ok(dpctl(
        &server,
        w,
        &["vips", "delete", "10.96.0.10", "80", "tcp"],
    ));
    let status = ok(dpctl(&server, w, &["status"]));
    assert!(
        status.contains("STORE") && status.contains("ok"),
        "{status}"
    );
}

#[test]
fn a_zone_file_of_1000_records_is_imported() {
    let server = Server::start(auth());
    let mut text = String::from(
        "$ORIGIN big.example.\n$TTL 300\n\
         @ IN SOA ns.big.example. hostmaster.big.example. 1 7200 1800 86400 300\n\
         @ IN NS ns.big.example.\n",
    );
    for i in 0..1000 {
        writeln!(text, "host{i:04} IN A 10.0.{}.{}", i / 250, i % 250 + 1).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.zone");
    std::fs::write(&file, &text).unwrap();

    let out = ok(dpctl(
        &server,
        Some(WRITE_TOKEN),
        &["records", "import", file.to_str().unwrap()],
    ));
    assert!(
        out.contains("zones created 1, record sets created 1001, updated 0, unchanged 0, failed 0"),
        "{out}"
    );
    let status = server.client(Some(READ_TOKEN)).get("/api/v1/status");
    assert_eq!(status.body["counts"]["records"], 1001);
    assert_eq!(status.body["counts"]["zones"], 1);

    // Again, with one record changed: only that one is written.
    let changed = text.replace("host0007 IN A 10.0.0.8", "host0007 IN A 10.9.9.9");
    std::fs::write(&file, changed).unwrap();
    let out = ok(dpctl(
        &server,
        Some(WRITE_TOKEN),
        &["records", "import", file.to_str().unwrap()],
    ));
    assert!(
        out.contains("zones created 0, record sets created 0, updated 1, unchanged 1000, failed 0"),
        "{out}"
    );

    // A read token fails every write and says so.
    let denied = dpctl(
        &server,
        Some(READ_TOKEN),
        &["records", "import", file.to_str().unwrap()],
    );
    assert!(!denied.status.success());
}
