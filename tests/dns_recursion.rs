//! `dataplane dns --recursion`: resolution through a small DNS hierarchy on loopback, every
//! level served by this project's authoritative server, asked with dig.
//!
//! 127.0.0.10 serves the root, .11 `test.`, .12 `example.test.`, .13 `other.test.` (whose
//! server is named in `example.test.`: a glueless delegation); .14 is named as a server of
//! `example.test.` but nothing listens there. All authoritative servers share one port.
//! What the resolver did upstream is read from its `/metrics` and its upstreams'.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;
use support::{Dig, dig, free_port};

/// A `dataplane dns` process, killed when dropped.
struct Proc {
    child: Child,
    metrics: SocketAddr,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// The /metrics text.
    fn scrape(&self) -> String {
        let Output { stdout, .. } = Command::new("curl")
            .args(["-s", &format!("http://{}/metrics", self.metrics)])
            .output()
            .unwrap();
        String::from_utf8(stdout).unwrap()
    }

    /// The value of one series (`name{labels}` exactly as exposed); 0 when absent.
    fn metric(&self, series: &str) -> u64 {
        value(&self.scrape(), series)
    }
}

fn value(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}

fn dataplane(listen: SocketAddr, args: &[&str]) -> Proc {
    let metrics: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let child = Command::new(env!("CARGO_BIN_EXE_dataplane"))
        .args([
            "dns",
            "--listen",
            &listen.to_string(),
            "--metrics-listen",
            &metrics.to_string(),
            "--workers",
            "1",
        ])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Proc { child, metrics }
}

/// dig with recursion desired and room for a slow resolution.
fn ask(server: SocketAddr, args: &[&str]) -> Dig {
    let mut all = vec!["+rec", "+time=4"];
    all.extend_from_slice(args);
    dig(server, &all)
}

fn wait_for(server: SocketAddr, name: &str, qtype: &str, rec: bool) {
    for _ in 0..100 {
        let d = if rec {
            ask(server, &[name, qtype])
        } else {
            dig(server, &[name, qtype])
        };
        if d.status == "NOERROR" {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{server} did not answer {name} {qtype}");
}

const ROOT: &str = "$ORIGIN .\n$TTL 3600\n\
. SOA a.root. hm.root. 1 7200 900 1209600 300\n. NS a.root.\na.root. A 127.0.0.10\n\
test. NS ns.test.\nns.test. A 127.0.0.11\n";

const TEST: &str = "$ORIGIN test.\n$TTL 3600\n\
@ SOA ns hm 1 7200 900 1209600 300\n@ NS ns\nns A 127.0.0.11\n\
example NS ns0.example\nexample NS ns1.example\n\
ns0.example A 127.0.0.14\nns1.example A 127.0.0.12\n\
other NS ns.example.test.\n";

const EXAMPLE: &str = "$ORIGIN example.test.\n$TTL 60\n\
@ SOA ns1 hm 1 7200 900 1209600 30\n@ NS ns0\n@ NS ns1\n\
ns0 A 127.0.0.14\nns1 A 127.0.0.12\nns A 127.0.0.13\n\
www A 192.0.2.1\nalias CNAME web.other.test.\nshort 1 A 192.0.2.9\n\
soon 10 A 192.0.2.10\ntxt TXT \"hello\"\n";

const OTHER: &str = "$ORIGIN other.test.\n$TTL 60\n\
@ SOA ns.example.test. hm 1 7200 900 1209600 30\n@ NS ns.example.test.\nweb A 192.0.2.2\n";

/// TXT records at `big.example.test.` that take more than an EDNS UDP payload of 1232 octets.
const BIG: usize = 30;

fn example_zone() -> String {
    let mut z = EXAMPLE.to_owned();
    for i in 0..BIG {
        z.push_str(&format!("big TXT \"{i:02}{}\"\n", "x".repeat(58)));
    }
    z
}

struct Hierarchy {
    port: u16,
    servers: Vec<Option<Proc>>,
}

impl Hierarchy {
    fn start(dir: &Path) -> Self {
        let port = free_port();
        let mut servers = Vec::new();
        let example = example_zone();
        for (i, (name, text, apex)) in [
            ("root.zone", ROOT, "."),
            ("test.zone", TEST, "test."),
            ("example.zone", example.as_str(), "example.test."),
            ("other.zone", OTHER, "other.test."),
        ]
        .into_iter()
        .enumerate()
        {
            let file = dir.join(name);
            std::fs::write(&file, text).unwrap();
            let addr: SocketAddr = ([127, 0, 0, 10 + i as u8], port).into();
            servers.push(Some(dataplane(
                addr,
                &["--zone-file", file.to_str().unwrap()],
            )));
            wait_for(addr, apex, "SOA", false);
        }
        Self { port, servers }
    }

    fn root(&self) -> String {
        format!("127.0.0.10:{}", self.port)
    }
}

fn resolver(h: &Hierarchy, extra: &[&str]) -> (SocketAddr, Proc) {
    resolver_ready_for(h, extra, "ns1.example.test", "A")
}

/// A resolver whose first resolution is (`name`, `qtype`).
fn resolver_ready_for(
    h: &Hierarchy,
    extra: &[&str],
    name: &str,
    qtype: &str,
) -> (SocketAddr, Proc) {
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let port = h.port.to_string();
    let root = h.root();
    let mut args = vec![
        "--recursion",
        "recursive",
        "--root-hint",
        &root,
        "--upstream-port",
        &port,
        "--upstream-timeout-ms",
        "300",
    ];
    args.extend_from_slice(extra);
    let p = dataplane(addr, &args);
    wait_for(addr, name, qtype, true);
    (addr, p)
}

#[test]
fn resolves_through_a_local_hierarchy() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Hierarchy::start(dir.path());
    let (r, rp) = resolver(&h, &[]);

    // Referrals with glue, past the dead ns0 (127.0.0.14).
    let www = ask(r, &["www.example.test", "A"]);
    assert_eq!(www.status, "NOERROR", "{}", www.raw);
    assert_eq!(www.answer_data(), ["192.0.2.1"], "{}", www.raw);
    assert!(
        www.has_flag("ra") && www.has_flag("rd") && !www.has_flag("aa"),
        "{}",
        www.raw
    );

    // A CNAME into another zone whose server has no glue.
    let alias = ask(r, &["alias.example.test", "A"]);
    assert_eq!(alias.answer_types(), ["CNAME", "A"], "{}", alias.raw);
    assert_eq!(alias.answer_data()[1], "192.0.2.2", "{}", alias.raw);

    // NXDOMAIN and NODATA, with the SOA.
    let nx = ask(r, &["nope.example.test", "A"]);
    assert_eq!(nx.status, "NXDOMAIN", "{}", nx.raw);
    assert!(nx.authority.iter().any(|l| l.contains("SOA")), "{}", nx.raw);
    let nodata = ask(r, &["www.example.test", "AAAA"]);
    assert_eq!(nodata.status, "NOERROR", "{}", nodata.raw);
    assert!(
        nodata.answer.is_empty() && nodata.authority[0].contains("SOA"),
        "{}",
        nodata.raw
    );

    // A cache hit: same answer, the client's case echoed.
    let hits = rp.metric("dns_recursion_cache_lookups_total{result=\"hit\"}");
    let hit = ask(r, &["WwW.ExAmPlE.TeSt", "A"]);
    assert_eq!(hit.answer_data(), ["192.0.2.1"], "{}", hit.raw);
    assert!(
        hit.question[0].starts_with(";WwW.ExAmPlE.TeSt."),
        "{}",
        hit.raw
    );

    // What it took, in /metrics: every miss resolved and timed, the dead ns0 failing (port
    // unreachable fails a connected socket at once), no hit needing an upstream.
    let m = rp.scrape();
    assert_eq!(
        value(&m, "dns_recursion_cache_lookups_total{result=\"hit\"}"),
        hits + 1,
        "{m}"
    );
    // (A miss asked again while it is being resolved joins that resolution.)
    let misses = value(&m, "dns_recursion_cache_lookups_total{result=\"miss\"}");
    let resolved = value(&m, "dns_recursion_resolutions_total{result=\"noerror\"}")
        + value(&m, "dns_recursion_resolutions_total{result=\"nxdomain\"}");
    assert!(resolved >= 5 && resolved <= misses, "{m}");
    assert_eq!(
        value(&m, "dns_recursion_resolution_seconds_count"),
        resolved,
        "{m}"
    );
    assert!(
        value(
            &m,
            "dns_recursion_upstream_queries_total{transport=\"udp\",outcome=\"error\"}"
        ) >= 1,
        "{m}"
    );
    assert!(
        value(
            &m,
            "dns_recursion_upstream_queries_total{transport=\"udp\",outcome=\"answer\"}"
        ) >= 6,
        "{m}"
    );
    assert!(value(&m, "dns_recursion_cache_entries") >= 5, "{m}");

    // Clients outside the allowed networks are refused; those inside are served.
    let (strict, _strict) = resolver(&h, &["--allow-recursion", "127.0.0.1/32"]);
    let refused = ask(strict, &["-b", "127.0.0.2", "www.example.test", "A"]);
    assert_eq!(refused.status, "REFUSED", "{}", refused.raw);
    assert!(!refused.has_flag("ra"), "{}", refused.raw);
    assert_eq!(ask(strict, &["www.example.test", "A"]).status, "NOERROR");

    // Forward mode: other.test. to its own server (a stub domain), the rest to the
    // recursive resolver above, behind a dead first upstream (failover).
    let fwd: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let stub = format!("other.test.=127.0.0.13:{}", h.port);
    let default = format!(".=127.0.0.15:{},{r}", h.port);
    let forwarder = dataplane(
        fwd,
        &[
            "--recursion",
            "forward",
            "--forward",
            &stub,
            "--forward",
            &default,
            "--upstream-timeout-ms",
            "300",
        ],
    );
    wait_for(fwd, "www.example.test", "A", true);
    let web = ask(fwd, &["web.other.test", "A"]);
    assert_eq!(web.answer_data(), ["192.0.2.2"], "{}", web.raw);
    let via_default = ask(fwd, &["alias.example.test", "A"]);
    assert_eq!(
        via_default.answer_data().last().unwrap(),
        "192.0.2.2",
        "{}",
        via_default.raw
    );
    // Each upstream's health: the dead one failing, the live ones answering.
    let m = forwarder.scrape();
    let dead = format!("127.0.0.15:{}", h.port);
    let series = |name: &str, up: &str, rest: &str| format!("{name}{{upstream=\"{up}\"{rest}}}");
    assert!(
        value(
            &m,
            &series(
                "dns_recursion_upstream_exchanges_total",
                &dead,
                ",result=\"failed\""
            )
        ) >= 1,
        "{m}"
    );
    assert_eq!(
        value(
            &m,
            &series(
                "dns_recursion_upstream_exchanges_total",
                &dead,
                ",result=\"ok\""
            )
        ),
        0,
        "{m}"
    );
    assert!(
        value(
            &m,
            &series("dns_recursion_upstream_consecutive_failures", &dead, "")
        ) >= 1
    );
    let live = r.to_string();
    assert!(
        value(
            &m,
            &series(
                "dns_recursion_upstream_exchanges_total",
                &live,
                ",result=\"ok\""
            )
        ) >= 2,
        "{m}"
    );
    assert_eq!(
        value(&m, &series("dns_recursion_upstream_up", &live, "")),
        1,
        "{m}"
    );

    // Serve-stale: a 1 s record, then every example.test server gone: the expired answer is
    // served with the RFC 8767 TTL instead of SERVFAIL.
    let short = ask(r, &["short.example.test", "A"]);
    assert_eq!(short.answer_data(), ["192.0.2.9"], "{}", short.raw);
    h.servers[2] = None;
    std::thread::sleep(Duration::from_millis(1500));
    let stale = ask(r, &["short.example.test", "A"]);
    assert_eq!(stale.status, "NOERROR", "{}", stale.raw);
    assert_eq!(stale.answer_data(), ["192.0.2.9"], "{}", stale.raw);
    assert_eq!(
        stale.answer[0].split_whitespace().nth(1),
        Some("30"),
        "{}",
        stale.raw
    );
    // A name never cached has nothing stale to fall back on.
    assert_eq!(ask(r, &["new.example.test", "A"]).status, "SERVFAIL");
    let m = rp.scrape();
    assert_eq!(value(&m, "dns_recursion_stale_served_total"), 1, "{m}");
    assert_eq!(
        value(&m, "dns_recursion_resolutions_total{result=\"stale\"}"),
        1,
        "{m}"
    );
    assert_eq!(
        value(&m, "dns_recursion_resolutions_total{result=\"servfail\"}"),
        1,
        "{m}"
    );
    assert_eq!(
        value(&m, "dns_recursion_cache_lookups_total{result=\"expired\"}"),
        1,
        "{m}"
    );
}

/// A reply to `query` (question only, OPT dropped) with one A record.
fn forge(query: &[u8], id: u16, qname_flip: bool, addr: [u8; 4]) -> Vec<u8> {
    let mut end = 12;
    while query[end] != 0 {
        end += 1 + usize::from(query[end]);
    }
    end += 5;
    let mut r = query[..end].to_vec();
    r[..2].copy_from_slice(&id.to_be_bytes());
    r[2] = 0x81;
    r[3] = 0x80;
    r[6..12].copy_from_slice(&[0, 1, 0, 0, 0, 0]);
    if qname_flip {
        r[13] ^= 0x01; // another first letter: another question
    }
    r.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
    r.extend_from_slice(&addr);
    r
}

#[test]
fn spoofed_upstream_replies_are_ignored() {
    let port = free_port();
    let upstream = UdpSocket::bind(("127.0.0.21", port)).unwrap();
    let spoofer = UdpSocket::bind(("127.0.0.22", port)).unwrap();
    let fake = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        upstream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let Ok((n, from)) = upstream.recv_from(&mut buf) else {
            return;
        };
        let q = &buf[..n];
        let id = u16::from_be_bytes([q[0], q[1]]);
        // Wrong source, wrong ID, wrong question: each would poison the cache if believed.
        spoofer
            .send_to(&forge(q, id, false, [6, 6, 6, 1]), from)
            .unwrap();
        upstream
            .send_to(&forge(q, id ^ 0x0101, false, [6, 6, 6, 2]), from)
            .unwrap();
        upstream
            .send_to(&forge(q, id, true, [6, 6, 6, 3]), from)
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        upstream
            .send_to(&forge(q, id, false, [192, 0, 2, 77]), from)
            .unwrap();
    });
    let r: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let default = format!(".=127.0.0.21:{port}");
    let rp = dataplane(
        r,
        &[
            "--recursion",
            "forward",
            "--forward",
            &default,
            "--upstream-timeout-ms",
            "2000",
        ],
    );
    // The first query is the fake upstream's one exchange: retry until the server is up.
    let mut got = Dig::default();
    for _ in 0..50 {
        got = ask(r, &["spoof.test", "A"]);
        if !got.status.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    fake.join().unwrap();
    assert_eq!(got.answer_data(), ["192.0.2.77"], "{}", got.raw);
    let cached = ask(r, &["spoof.test", "A"]);
    assert_eq!(cached.answer_data(), ["192.0.2.77"], "{}", cached.raw);
    // The wrong ID and the wrong question reached the resolver and were counted; the wrong
    // source never did (the upstream socket is connected).
    let m = rp.scrape();
    assert_eq!(value(&m, "dns_recursion_upstream_ignored_total"), 2, "{m}");
}

/// The TTL of the first answer record.
fn ttl(d: &Dig) -> u32 {
    d.answer[0]
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn popular_names_are_refreshed_before_they_expire() {
    let dir = tempfile::tempdir().unwrap();
    let h = Hierarchy::start(dir.path());
    let (r, rp) = resolver(&h, &[]);
    let leaf = h.servers[2].as_ref().unwrap();
    let leaf_a = "dns_queries_total{qtype=\"A\"}";
    let miss = "dns_recursion_cache_lookups_total{result=\"miss\"}";
    let expired = "dns_recursion_cache_lookups_total{result=\"expired\"}";

    // soon.example.test has a TTL of 10 s: one miss, then hits make it popular.
    let first = ask(r, &["soon.example.test", "A"]);
    assert_eq!(first.answer_data(), ["192.0.2.10"], "{}", first.raw);
    let (misses, asked) = (rp.metric(miss), leaf.metric(leaf_a));
    // Ask until the entry is in its last tenth: that hit starts the refresh.
    let mut left = ttl(&first);
    while left > 1 {
        std::thread::sleep(Duration::from_millis(200));
        let hit = ask(r, &["soon.example.test", "A"]);
        assert_eq!(hit.answer_data(), ["192.0.2.10"], "{}", hit.raw);
        left = ttl(&hit);
    }
    // The refresh runs in the background: give it a moment.
    for _ in 0..30 {
        if leaf.metric(leaf_a) > asked {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(leaf.metric(leaf_a), asked + 1, "the leaf was asked again");
    assert_eq!(rp.metric("dns_recursion_prefetches_total"), 1);
    // Past the first answer's expiry, clients still get hits, now from the refreshed entry.
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(250));
        let hit = ask(r, &["soon.example.test", "A"]);
        assert_eq!(hit.answer_data(), ["192.0.2.10"], "{}", hit.raw);
        assert!(ttl(&hit) >= 5, "{}", hit.raw);
    }
    let m = rp.scrape();
    assert_eq!(value(&m, miss), misses, "no client saw a miss\n{m}");
    assert_eq!(value(&m, expired), 0, "{m}");
    assert_eq!(leaf.metric(leaf_a), asked + 1, "one refresh, no more");
}

#[test]
fn truncated_upstream_answers_are_fetched_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let h = Hierarchy::start(dir.path());
    let (r, rp) = resolver(&h, &[]);
    // The leaf's UDP answer does not fit the resolver's 1232 octets: TC, then TCP.
    let leaf: SocketAddr = ([127, 0, 0, 12], h.port).into();
    let udp = ask(
        leaf,
        &[
            "+norec",
            "+ignore",
            "+bufsize=1232",
            "big.example.test",
            "TXT",
        ],
    );
    assert!(udp.has_flag("tc"), "{}", udp.raw);

    let tcp = ask(r, &["+tcp", "big.example.test", "TXT"]);
    assert_eq!(tcp.status, "NOERROR", "{}", tcp.raw);
    assert_eq!(tcp.answer.len(), BIG, "{}", tcp.raw);
    // Over UDP the client gets TC from the cache too, and dig's own TCP retry the whole set.
    let cut = ask(r, &["+ignore", "big.example.test", "TXT"]);
    assert!(cut.has_flag("tc") && cut.answer.is_empty(), "{}", cut.raw);
    let full = ask(r, &["big.example.test", "TXT"]);
    assert_eq!(full.answer.len(), BIG, "{}", full.raw);
    let m = rp.scrape();
    let q = |t: &str, o: &str| {
        value(
            &m,
            &format!("dns_recursion_upstream_queries_total{{transport=\"{t}\",outcome=\"{o}\"}}"),
        )
    };
    assert_eq!(q("udp", "truncated"), 1, "{m}");
    assert_eq!(q("tcp", "answer"), 1, "{m}");
}

#[test]
fn qname_minimisation_keeps_the_full_name_from_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let h = Hierarchy::start(dir.path());
    let root = h.servers[0].as_ref().unwrap();
    let tld = h.servers[1].as_ref().unwrap();
    let txt = "dns_queries_total{qtype=\"TXT\"}";

    // Minimised, the root and test. see only A queries for one label more than their zone.
    let min = ["--qname-minimisation"];
    let (r, _min) = resolver_ready_for(&h, &min, "txt.example.test", "TXT");
    let a = ask(r, &["txt.example.test", "TXT"]);
    assert_eq!(a.answer_data(), ["\"hello\""], "{}", a.raw);
    assert_eq!((root.metric(txt), tld.metric(txt)), (0, 0));

    // Not minimised (a resolver with a cache of its own), both see the TXT question.
    let (r, _full) = resolver_ready_for(&h, &[], "txt.example.test", "TXT");
    let a = ask(r, &["txt.example.test", "TXT"]);
    assert_eq!(a.answer_data(), ["\"hello\""], "{}", a.raw);
    assert_eq!((root.metric(txt), tld.metric(txt)), (1, 1));
}
