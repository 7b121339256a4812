//! `dataplane dns --zone-file`: every wire behaviour of the authoritative server, asked with dig.

mod support;

use std::net::UdpSocket;
use std::time::Duration;
use support::{Daemon, fixture};

fn server() -> Daemon {
    let zone = fixture("e2e.zone");
    Daemon::dns(
        &["--zone-file", zone.to_str().unwrap(), "--workers", "2"],
        "example.test",
    )
}

#[test]
fn answers_as_an_authoritative_server() {
    let d = server();

    let a = d.dig(&["www.example.test", "A"]);
    assert_eq!(a.status, "NOERROR", "{}", a.raw);
    assert!(
        a.has_flag("aa") && a.has_flag("qr") && !a.has_flag("ra"),
        "{}",
        a.raw
    );
    assert_eq!(a.answer_data(), ["192.0.2.10"]);

    // Case-insensitive match, the query's case echoed.
    let mixed = d.dig(&["WwW.ExAmPlE.TeSt", "A"]);
    assert_eq!(mixed.answer_data(), ["192.0.2.10"], "{}", mixed.raw);
    assert!(
        mixed.question[0].starts_with(";WwW.ExAmPlE.TeSt."),
        "{}",
        mixed.raw
    );

    // NXDOMAIN and NODATA carry the SOA, with the negative TTL min(SOA TTL, minimum) = 60.
    let nx = d.dig(&["nope.example.test", "A"]);
    assert_eq!(nx.status, "NXDOMAIN", "{}", nx.raw);
    assert!(nx.has_flag("aa"));
    assert!(nx.answer.is_empty());
    assert!(
        nx.authority[0].contains("SOA") && nx.authority[0].split_whitespace().nth(1) == Some("60"),
        "{}",
        nx.raw
    );
    let nodata = d.dig(&["api.example.test", "AAAA"]);
    assert_eq!(nodata.status, "NOERROR");
    assert!(
        nodata.answer.is_empty() && nodata.authority[0].contains("SOA"),
        "{}",
        nodata.raw
    );

    // CNAME chains inside the zone are followed.
    let chain = d.dig(&["chain.example.test", "A"]);
    assert_eq!(
        chain.answer_types(),
        ["CNAME", "CNAME", "A"],
        "{}",
        chain.raw
    );
    assert_eq!(chain.answer_data().last().unwrap(), "192.0.2.10");

    // Wildcards.
    let wild = d.dig(&["anything.apps.example.test", "A"]);
    assert_eq!(wild.answer_data(), ["192.0.2.30"], "{}", wild.raw);
    assert!(
        wild.answer[0].starts_with("anything.apps.example.test."),
        "{}",
        wild.raw
    );

    // SRV, MX, TXT.
    assert_eq!(
        d.dig(&["_http._tcp.www.example.test", "SRV"]).answer_data(),
        ["0 10 80 www.example.test."]
    );
    assert_eq!(
        d.dig(&["example.test", "MX"]).answer_data(),
        ["10 mail.example.test."]
    );
    assert_eq!(
        d.dig(&["example.test", "TXT"]).answer_data(),
        ["\"v=spf1 mx -all\" \"second string\""]
    );

    // A delegation is a referral: NS in authority, glue in additional, no AA.
    let referral = d.dig(&["host.sub.example.test", "A"]);
    assert_eq!(referral.status, "NOERROR", "{}", referral.raw);
    assert!(!referral.has_flag("aa"), "{}", referral.raw);
    assert!(referral.answer.is_empty());
    assert!(
        referral
            .authority
            .iter()
            .any(|l| l.contains("NS") && l.contains("ns.sub.example.test.")),
        "{}",
        referral.raw
    );
    assert!(
        referral.additional.iter().any(|l| l.contains("192.0.2.53")),
        "{}",
        referral.raw
    );

    // Outside every zone, with no recursion: REFUSED.
    assert_eq!(d.dig(&["example.org", "A"]).status, "REFUSED");

    // ANY gets a minimal answer (RFC 8482): one RRset, not everything.
    let any = d.dig(&["www.example.test", "ANY"]);
    assert_eq!(any.status, "NOERROR");
    assert_eq!(any.answer.len(), 1, "{}", any.raw);
}

#[test]
fn edns_truncation_and_tcp() {
    let d = server();
    // EDNS0 is echoed; a higher version gets BADVERS.
    let edns = d.dig(&["www.example.test", "A", "+edns=0"]);
    assert!(edns.raw.contains("; EDNS: version: 0"), "{}", edns.raw);
    let badvers = d.dig(&["www.example.test", "A", "+edns=1", "+noednsnegotiation"]);
    assert_eq!(badvers.status, "BADVERS", "{}", badvers.raw);

    // 32 A records do not fit in 512 octets: TC over UDP, the whole answer over TCP.
    let small = d.dig(&["big.example.test", "A", "+noedns", "+ignore"]);
    assert!(small.has_flag("tc"), "{}", small.raw);
    let tcp = d.dig(&["big.example.test", "A", "+tcp"]);
    assert_eq!(tcp.answer.len(), 32, "{}", tcp.raw);
    // With a large EDNS buffer it fits over UDP.
    let large = d.dig(&["big.example.test", "A", "+bufsize=4096", "+ignore"]);
    assert!(
        !large.has_flag("tc") && large.answer.len() == 32,
        "{}",
        large.raw
    );

    // Several queries on one TCP connection (dig +keepopen reuses it).
    let multi = d.dig(&[
        "+tcp",
        "+keepopen",
        "www.example.test",
        "A",
        "api.example.test",
        "A",
    ]);
    assert_eq!(
        multi.answer_data(),
        ["192.0.2.10", "192.0.2.20"],
        "{}",
        multi.raw
    );
}

#[test]
fn malformed_packets_are_counted_and_dropped_and_the_server_goes_on() {
    let d = server();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    // Shorter than a header: dropped.
    sock.send_to(&[1, 2, 3], d.dns).unwrap();
    // A response (QR set): never answered.
    let mut response = [0u8; 29];
    response[2] = 0x80;
    response[5] = 1;
    sock.send_to(&response, d.dns).unwrap();
    let mut buf = [0u8; 512];
    assert!(sock.recv_from(&mut buf).is_err(), "nothing comes back");

    // A query whose question runs past the end: FORMERR.
    let mut bad = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    bad.extend_from_slice(&[7, b'e', b'x']);
    sock.send_to(&bad, d.dns).unwrap();
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert!(
        n >= 12 && buf[..2] == [0x12, 0x34] && buf[3] & 0x0f == 1,
        "FORMERR expected: {:?}",
        &buf[..n]
    );

    // An unknown opcode: NOTIMP.
    let mut notify = vec![0x22, 0x22, 0x28, 0x00, 0, 0, 0, 0, 0, 0, 0, 0];
    notify[2] = 4 << 3; // opcode 4 (NOTIFY) is not served
    sock.send_to(&notify, d.dns).unwrap();
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert!(
        n >= 12 && buf[3] & 0x0f == 4,
        "NOTIMP expected: {:?}",
        &buf[..n]
    );

    assert_eq!(
        d.dig(&["www.example.test", "A"]).answer_data(),
        ["192.0.2.10"]
    );
    let metrics = d.metrics();
    let dropped: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("dns_dropped_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(dropped >= 2, "{metrics}");
    assert!(
        metrics.contains("dns_responses_total{rcode=\"FORMERR\"} 1"),
        "{metrics}"
    );
}

#[test]
fn stops_cleanly_on_sigterm() {
    let d = server();
    assert!(d.terminate(), "exit status 0 after SIGTERM");
}

#[test]
fn a_bad_zone_file_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.zone");
    std::fs::write(
        &path,
        "$ORIGIN x.test.\n@ 60 IN SOA ns h 1 2 3 4 5\nwww 60 IN A 300.1.1.1\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dataplane"))
        .args([
            "dns",
            "--listen",
            "127.0.0.1:0",
            "--zone-file",
            path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.zone") && err.contains("line 3"),
        "names the file and line 3: {err}"
    );
}

#[test]
fn the_io_uring_backend_answers_the_same() {
    if !dns::io::uring::available() {
        eprintln!("io_uring is not available on this kernel: skipping");
        return;
    }
    let zone = fixture("e2e.zone");
    let d = Daemon::dns(
        &[
            "--zone-file",
            zone.to_str().unwrap(),
            "--workers",
            "2",
            "--io",
            "uring",
        ],
        "example.test",
    );
    assert_eq!(
        d.dig(&["www.example.test", "A"]).answer_data(),
        ["192.0.2.10"]
    );
    assert_eq!(d.dig(&["nope.example.test", "A"]).status, "NXDOMAIN");
    assert!(
        d.dig(&["big.example.test", "A", "+noedns", "+ignore"])
            .has_flag("tc")
    );
    for i in 0..50 {
        assert_eq!(
            d.dig(&[&format!("h{i}.apps.example.test"), "A"])
                .answer_data(),
            ["192.0.2.30"]
        );
    }
    assert!(d.terminate());
}

#[test]
fn rate_limiting_drops_and_slips_over_the_rate() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rrl.toml");
    std::fs::write(
        &config,
        "[dns]\nworkers = 1\n[dns.rrl]\nrate = 5\nslip = 2\n",
    )
    .unwrap();
    let zone = fixture("e2e.zone");
    let d = Daemon::dns(
        &[
            "--config",
            config.to_str().unwrap(),
            "--zone-file",
            zone.to_str().unwrap(),
        ],
        "example.test",
    );
    // 40 queries in well under a second from one client: 5 answered, then half of the rest slip.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut query = vec![0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    query.extend_from_slice(b"\x03www\x07example\x04test\x00\x00\x01\x00\x01");
    for id in 0..40u16 {
        query[..2].copy_from_slice(&id.to_be_bytes());
        sock.send_to(&query, d.dns).unwrap();
    }
    let (mut full, mut truncated) = (0, 0);
    let mut buf = [0u8; 512];
    while let Ok((n, _)) = sock.recv_from(&mut buf) {
        if buf[2] & 0x02 != 0 {
            assert_eq!(
                n,
                query.len(),
                "a slipped reply is the header and question only"
            );
            truncated += 1;
        } else {
            full += 1;
        }
    }
    assert!(
        full <= 10,
        "at most the rate (per second) answered in full: {full}"
    );
    assert!(
        truncated >= 10,
        "every second limited reply slips: {truncated}"
    );
    let metrics = d.metrics();
    assert!(
        metrics.contains("dns_rate_limited_total{action=\"drop\"}"),
        "{metrics}"
    );
}

#[test]
fn logs_can_be_json() {
    let zone = fixture("e2e.zone");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_dataplane"))
        .args([
            "--log-format",
            "json",
            "dns",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .args(["--zone-file", zone.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "SIGINT stops it cleanly");
    let logs = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = logs.lines().collect();
    assert!(lines.len() >= 2, "{logs}");
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"));
        assert!(
            v.get("level").is_some() && v.get("timestamp").is_some(),
            "{line}"
        );
    }
}
