//! Schemathesis fuzzes the API from its own OpenAPI document: no request, however odd, may
//! get a 5xx.
//!
//! Needs `schemathesis` on PATH (`pip install schemathesis==4.32.5`); without it the test
//! fails, unless `SKIP_SCHEMATHESIS=1`. `SCHEMATHESIS_CHECKS` replaces the checks run
//! (e.g. `all`, to also check that responses match the document).

mod support;

use std::process::Command;
use support::{Server, WRITE_TOKEN, a_set, auth, zone};

/// Test cases per operation: enough to reach every error path, small enough for CI.
const MAX_EXAMPLES: &str = "50";

#[test]
fn schemathesis_finds_no_server_error() {
    if std::env::var("SKIP_SCHEMATHESIS").is_ok_and(|v| v == "1") {
        eprintln!("SKIP_SCHEMATHESIS=1: not running schemathesis");
        return;
    }
    let installed = Command::new("schemathesis")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        installed,
        "schemathesis is not on PATH: `pip install schemathesis==4.32.5`, \
         or set SKIP_SCHEMATHESIS=1 to skip this test"
    );

    let server = Server::start(auth());
    let w = server.client(Some(WRITE_TOKEN));
    // Something to find, so that reads and conditional writes reach the store's paths.
    assert_eq!(
        w.json("POST", "/api/v1/zones", &zone("example.com."), &[])
            .status,
        201
    );
    let www = a_set("www.example.com.", "192.0.2.1");
    assert_eq!(w.json("POST", "/api/v1/records", &www, &[]).status, 201);

    let checks =
        std::env::var("SCHEMATHESIS_CHECKS").unwrap_or_else(|_| "not_a_server_error".to_owned());
    let report = tempfile::tempdir().unwrap();
    let output = Command::new("schemathesis")
        .current_dir(report.path())
        .args([
            "run",
            &format!("{}/api/openapi.json", server.url()),
            "--url",
            &server.url(),
            "--checks",
            &checks,
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            "1",
            "--generation-database",
            "none",
            "--no-color",
            "--request-timeout",
            "10",
            "--header",
            &format!("Authorization: Bearer {WRITE_TOKEN}"),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis failed:\n{stdout}\n{stderr}"
    );
    eprintln!("{stdout}");
}
