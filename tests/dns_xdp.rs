//! End to end: `dataplane dns --io xdp` on one end of a veth pair, asked with dig from a
//! network namespace on the other end.
//!
//! ```text
//!  client ns                         server ns
//!  vc0 192.0.2.2/24  ══ veth ══  vs0 192.0.2.1/24   dataplane dns --io xdp --xdp-interface vs0
//!      2001:db8::2/64                2001:db8::1/64
//! ```
//!
//! UDP queries to the served address and port take the AF_XDP path; everything else (ARP,
//! ICMP, TCP, other ports) is the kernel's. No static neighbours: ARP itself must get through.
//! With `--recursion`, the resolver forwards to an authoritative server on the server
//! namespace's loopback (127.0.0.1).
//! Needs root (namespaces, XDP) and dig; skipped with a message otherwise.

mod support;

use dataplane_common::packet_io::{Tx as _, af_packet, checksum};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{Dig, fixture};

const SERVER: &str = "192.0.2.1";
const CLIENT: &str = "192.0.2.2";
const SERVER6: &str = "2001:db8::1";
const CLIENT6: &str = "2001:db8::2";
const PORT: u16 = 5300;
const METRICS: &str = "127.0.0.1:9156";

fn usable() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: dns_xdp needs root (network namespaces, XDP)");
        return false;
    }
    if Command::new("dig").arg("-v").output().is_err() {
        eprintln!("skipped: dig is not installed (bind9-dnsutils)");
        return false;
    }
    true
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("iproute2");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `f` on a thread moved into namespace `ns`; commands it spawns run there too.
fn run_in<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("a netns file");
        // SAFETY: `file` is an open network namespace; only this thread moves into it.
        let ret = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(ret, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("the namespace thread")
}

/// The two namespaces and the servers; deleted (and killed) on drop.
struct Lab {
    server_ns: String,
    client_ns: String,
    dns: Option<Child>,
    /// An authoritative server on the server namespace's loopback, for the resolver to ask.
    upstream: Option<Child>,
}

impl Lab {
    fn new(tag: &str) -> Self {
        let base = format!("dpdnsx{}{tag}", std::process::id());
        let lab = Self {
            server_ns: format!("{base}-s"),
            client_ns: format!("{base}-c"),
            dns: None,
            upstream: None,
        };
        for ns in [&lab.server_ns, &lab.client_ns] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        let (s, c) = (&lab.server_ns, &lab.client_ns);
        ip(&[
            "-n", c, "link", "add", "vc0", "type", "veth", "peer", "name", "vs0", "netns", s,
        ]);
        ip(&[
            "-n",
            s,
            "addr",
            "add",
            &format!("{SERVER}/24"),
            "dev",
            "vs0",
        ]);
        ip(&[
            "-n",
            c,
            "addr",
            "add",
            &format!("{CLIENT}/24"),
            "dev",
            "vc0",
        ]);
        ip(&[
            "-n",
            s,
            "addr",
            "add",
            &format!("{SERVER6}/64"),
            "dev",
            "vs0",
            "nodad",
        ]);
        ip(&[
            "-n",
            c,
            "addr",
            "add",
            &format!("{CLIENT6}/64"),
            "dev",
            "vc0",
            "nodad",
        ]);
        ip(&["-n", s, "link", "set", "vs0", "up"]);
        ip(&["-n", c, "link", "set", "vc0", "up"]);
        lab
    }

    /// Starts `dataplane dns --io xdp` on `listen` and waits until it answers over UDP.
    fn start(&mut self, listen: &str, ask: SocketAddr) {
        let zone = fixture("e2e.zone");
        self.start_with(
            listen,
            ask,
            &["--zone-file", zone.to_str().unwrap()],
            &["example.test", "SOA"],
        );
    }

    /// Starts `dataplane dns --io xdp` on `listen` with `extra` arguments and waits until dig
    /// with `ready` gets NOERROR from `ask`.
    fn start_with(&mut self, listen: &str, ask: SocketAddr, extra: &[&str], ready: &[&str]) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.server_ns])
            .arg(env!("CARGO_BIN_EXE_dataplane"))
            .args([
                "dns",
                "--listen",
                listen,
                "--io",
                "xdp",
                "--xdp-interface",
                "vs0",
            ])
            .args(["--workers", "1", "--metrics-listen", METRICS])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        self.dns = Some(child);
        for _ in 0..100 {
            if self.dig(ask, ready).status == "NOERROR" {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("dataplane dns --io xdp did not answer on {ask}");
    }

    /// Starts an authoritative `dataplane dns` for the e2e zone on `listen` (in the server
    /// namespace, over sockets) and waits until it answers there.
    fn start_upstream(&mut self, listen: SocketAddr) {
        let zone = fixture("e2e.zone");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.server_ns])
            .arg(env!("CARGO_BIN_EXE_dataplane"))
            .args(["dns", "--listen", &listen.to_string(), "--workers", "1"])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(["--zone-file", zone.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        self.upstream = Some(child);
        let ns = self.server_ns.clone();
        for _ in 0..100 {
            let ns = ns.clone();
            let d = run_in(&ns, move || support::dig(listen, &["example.test", "SOA"]));
            if d.status == "NOERROR" {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the upstream did not answer on {listen}");
    }

    /// dig from the client namespace.
    fn dig(&self, server: SocketAddr, args: &[&str]) -> Dig {
        let args: Vec<String> = args.iter().map(|&a| a.to_owned()).collect();
        run_in(&self.client_ns, move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            support::dig(server, &args)
        })
    }

    /// The server's /metrics text.
    fn metrics(&self) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.server_ns, "curl", "-s"])
            .arg(format!("http://{METRICS}/metrics"))
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    fn xdp_attached(&self) -> bool {
        let out = Command::new("ip")
            .args(["-n", &self.server_ns, "link", "show", "dev", "vs0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("xdp")
    }

    /// SIGTERM, then waits; whether it exited cleanly.
    fn stop(&mut self) -> bool {
        let Some(mut child) = self.dns.take() else {
            return false;
        };
        // `ip netns exec` execs the binary: the child's pid is the server's.
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        for _ in 0..100 {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        false
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for mut c in [self.dns.take(), self.upstream.take()]
            .into_iter()
            .flatten()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.server_ns, &self.client_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// The value of the sample `name` (with its labels) in a /metrics text; 0 when absent.
fn sample(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// One ICMP echo from the calling thread's namespace; whether the reply came.
fn ping(to: &str) -> bool {
    let to: std::net::Ipv4Addr = to.parse().unwrap();
    // SAFETY: plain socket creation; checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
    assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
    let tv = libc::timeval {
        tv_sec: 2,
        tv_usec: 0,
    };
    // SAFETY: a valid timeval for SO_RCVTIMEO.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            std::ptr::from_ref(&tv).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    let mut echo = [8u8, 0, 0, 0, 0x12, 0x34, 0, 1, b'p', b'i', b'n', b'g'];
    let c = checksum::checksum(&echo);
    echo[2..4].copy_from_slice(&c.to_be_bytes());
    // SAFETY: plain old data; all zeroes is valid.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    addr.sin_family = libc::AF_INET as u16;
    addr.sin_addr.s_addr = u32::from(to).to_be();
    // SAFETY: `echo` and `addr` are valid for the call.
    let sent = unsafe {
        libc::sendto(
            fd,
            echo.as_ptr().cast(),
            echo.len(),
            0,
            std::ptr::from_ref(&addr).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert_eq!(sent, echo.len() as isize);
    let mut buf = [0u8; 256];
    let mut ok = false;
    for _ in 0..4 {
        // SAFETY: `buf` is valid for writes of its length.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 28 {
            break;
        }
        // An IPv4 header (20 bytes here), then an echo reply (type 0) with our id.
        if buf[20] == 0 && buf[24..26] == [0x12, 0x34] {
            ok = true;
            break;
        }
    }
    // SAFETY: closing the socket made above.
    unsafe { libc::close(fd) };
    ok
}

/// A UDP/IPv4 frame to the server whose UDP length claims more than the packet holds.
fn malformed_frame(server_mac: [u8; 6], client_mac: [u8; 6]) -> Vec<u8> {
    let payload = [0u8; 12];
    let mut f = Vec::new();
    f.extend_from_slice(&server_mac);
    f.extend_from_slice(&client_mac);
    f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&[192, 0, 2, 2, 192, 0, 2, 1]);
    let c = checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&PORT.to_be_bytes());
    f.extend_from_slice(&200u16.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&payload);
    f
}

/// UDP datagrams the kernel of `ns` delivered to its sockets (IPv4 and IPv6): the queries
/// the AF_XDP path took never count here.
fn kernel_udp_in(ns: &str) -> u64 {
    let read = |file: &str| {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "cat", file])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let snmp = read("/proc/net/snmp");
    let udp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Udp: ")).collect();
    let column = udp[0]
        .split_whitespace()
        .position(|c| c == "InDatagrams")
        .unwrap();
    let v4: u64 = udp[1]
        .split_whitespace()
        .nth(column)
        .unwrap()
        .parse()
        .unwrap();
    let v6: u64 = read("/proc/net/snmp6")
        .lines()
        .find_map(|l| l.strip_prefix("Udp6InDatagrams"))
        .map_or(0, |v| v.trim().parse().unwrap());
    v4 + v6
}

fn mac_of(ns: &str, dev: &str) -> [u8; 6] {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "cat"])
        .arg(format!("/sys/class/net/{dev}/address"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut mac = [0u8; 6];
    for (m, part) in mac.iter_mut().zip(text.trim().split(':')) {
        *m = u8::from_str_radix(part, 16).unwrap();
    }
    mac
}

/// `www` is answered with its address, authoritatively; `ChAiN` follows its CNAME chain and
/// its question comes back in the case it was asked.
fn assert_www_and_chain(lab: &Lab, server: SocketAddr) {
    let a = lab.dig(server, &["www.example.test", "A"]);
    assert_eq!(a.status, "NOERROR", "{}", a.raw);
    assert!(a.has_flag("aa"), "{}", a.raw);
    assert_eq!(a.answer_data(), ["192.0.2.10"]);
    let chain = lab.dig(server, &["ChAiN.example.test", "A"]);
    assert_eq!(
        chain.answer_types(),
        ["CNAME", "CNAME", "A"],
        "{}",
        chain.raw
    );
    assert!(chain.question[0].starts_with(";ChAiN.example.test."));
}

#[test]
fn answers_over_af_xdp_and_leaves_the_rest_to_the_kernel() {
    if !usable() {
        return;
    }
    let mut lab = Lab::new("a");
    let server: SocketAddr = (SERVER.parse::<IpAddr>().unwrap(), PORT).into();
    lab.start(&server.to_string(), server);
    assert!(lab.xdp_attached(), "our program is on vs0");
    // Until the sockets are registered, a query may reach the kernel's socket (answered
    // there); from now on none does.
    let kernel_before = kernel_udp_in(&lab.server_ns);

    // Case echoed, CNAME chain followed: the same answering core as the socket backends.
    assert_www_and_chain(&lab, server);

    let nx = lab.dig(server, &["nope.example.test", "A"]);
    assert_eq!(nx.status, "NXDOMAIN", "{}", nx.raw);
    assert!(nx.authority[0].contains("SOA"), "{}", nx.raw);

    // Too big for 512 octets: TC over UDP (the AF_XDP path), the whole answer over TCP (the
    // kernel's), and dig's own retry over TCP gets it all.
    let tc = lab.dig(server, &["big.example.test", "A", "+noedns", "+ignore"]);
    assert!(tc.has_flag("tc"), "{}", tc.raw);
    let tcp = lab.dig(server, &["big.example.test", "A", "+tcp"]);
    assert_eq!(tcp.answer.len(), 32, "{}", tcp.raw);
    let retried = lab.dig(server, &["big.example.test", "A", "+noedns"]);
    assert_eq!(retried.answer.len(), 32, "{}", retried.raw);
    let large = lab.dig(server, &["big.example.test", "A", "+bufsize=1232"]);
    assert!(
        !large.has_flag("tc") && large.answer.len() == 32,
        "{}",
        large.raw
    );

    // The kernel still gets what is not ours: ARP (no static neighbour anywhere), ICMP, and
    // UDP to another port (refused by the kernel, with an ICMP error).
    assert!(run_in(&lab.client_ns, || ping(SERVER)), "ping through XDP");
    let other: SocketAddr = (SERVER.parse::<IpAddr>().unwrap(), PORT + 1).into();
    let refused = run_in(&lab.client_ns, move || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        s.connect(other).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.send(b"not dns").unwrap();
        s.recv(&mut [0u8; 64]).map_err(|e| e.kind())
    });
    assert_eq!(refused, Err(std::io::ErrorKind::ConnectionRefused));

    // Malformed: a frame whose UDP length overruns the packet (dropped by the frame layer),
    // and a 3-octet "query" (dropped by the answering core). Counted, unanswered, no crash.
    let before = lab.metrics();
    let (smac, cmac) = (mac_of(&lab.server_ns, "vs0"), mac_of(&lab.client_ns, "vc0"));
    run_in(&lab.client_ns, move || {
        let (_rx, mut tx) = af_packet::open(&af_packet::Config::new("vc0"), None).unwrap();
        assert!(tx.push(&malformed_frame(smac, cmac)));
        tx.flush().unwrap();
    });
    let short = run_in(&lab.client_ns, move || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        s.send_to(b"abc", server).unwrap();
        s.recv(&mut [0u8; 64]).is_ok()
    });
    assert!(!short, "a 3-octet query gets no answer");
    let mut after = String::new();
    for _ in 0..20 {
        after = lab.metrics();
        if sample(&after, "dns_xdp_frames_dropped_total{reason=\"udp\"}") > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let udp = "dns_xdp_frames_dropped_total{reason=\"udp\"}";
    let too_short = "dns_dropped_total{reason=\"too_short\"}";
    assert_eq!(sample(&after, udp) - sample(&before, udp), 1, "{after}");
    assert_eq!(
        sample(&after, too_short) - sample(&before, too_short),
        1,
        "{after}"
    );
    assert!(
        sample(&after, "dns_queries_total{qtype=\"A\"}") >= 6,
        "{after}"
    );
    let still = lab.dig(server, &["www.example.test", "A"]);
    assert_eq!(still.answer_data(), ["192.0.2.10"], "still answering");

    assert_eq!(
        kernel_udp_in(&lab.server_ns),
        kernel_before,
        "every UDP query took the AF_XDP path"
    );

    assert!(lab.stop(), "SIGTERM stops it cleanly");
    assert!(!lab.xdp_attached(), "the program is detached on exit");
}

#[test]
fn the_unspecified_address_serves_ipv6_and_ipv4() {
    if !usable() {
        return;
    }
    let mut lab = Lab::new("b");
    let v6: SocketAddr = (SERVER6.parse::<IpAddr>().unwrap(), PORT).into();
    let v4: SocketAddr = (SERVER.parse::<IpAddr>().unwrap(), PORT).into();
    lab.start(&format!("[::]:{PORT}"), v6);
    let kernel_before = kernel_udp_in(&lab.server_ns);
    let a6 = lab.dig(v6, &["www.example.test", "AAAA"]);
    assert_eq!(a6.answer_data(), ["2001:db8::10"], "{}", a6.raw);
    let nx6 = lab.dig(v6, &["nope.example.test", "A"]);
    assert_eq!(nx6.status, "NXDOMAIN", "{}", nx6.raw);
    let a4 = lab.dig(v4, &["www.example.test", "A"]);
    assert_eq!(a4.answer_data(), ["192.0.2.10"], "{}", a4.raw);
    let tcp6 = lab.dig(v6, &["big.example.test", "A", "+tcp"]);
    assert_eq!(tcp6.answer.len(), 32, "{}", tcp6.raw);
    // Neighbour discovery reached the kernel (the answers above needed it); the queries
    // went through the AF_XDP path, which counted nothing dropped.
    let m = lab.metrics();
    assert!(sample(&m, "dns_queries_total{qtype=\"AAAA\"}") >= 1, "{m}");
    assert_eq!(
        sample(&m, "dns_xdp_frames_dropped_total{reason=\"kernel\"}"),
        0
    );
    assert_eq!(
        kernel_udp_in(&lab.server_ns),
        kernel_before,
        "both families took the AF_XDP path"
    );
    assert!(lab.stop());
}

/// Recursion over `AF_XDP`: a miss is handed to the resolver and its reply leaves through the
/// kernel socket on the served address (dig takes it: same source address and port); the
/// next ask is a cache hit answered on the AF_XDP path (no kernel socket sees it). Forwarding
/// to an authoritative server on the server namespace's loopback.
#[test]
fn recursion_misses_and_cache_hits_reach_the_client_over_af_xdp() {
    if !usable() {
        return;
    }
    let mut lab = Lab::new("r");
    let upstream: SocketAddr = ([127, 0, 0, 1], PORT + 1).into();
    lab.start_upstream(upstream);
    let server: SocketAddr = (SERVER.parse::<IpAddr>().unwrap(), PORT).into();
    let forward = format!(".={upstream}");
    lab.start_with(
        &server.to_string(),
        server,
        &[
            "--recursion",
            "forward",
            "--forward",
            &forward,
            "--allow-recursion",
            "192.0.2.0/24",
        ],
        &["+rec", "example.test", "SOA"],
    );
    assert!(lab.xdp_attached(), "our program is on vs0");
    let hits = "dns_recursion_cache_lookups_total{result=\"hit\"}";
    let misses = "dns_recursion_cache_lookups_total{result=\"miss\"}";
    let before = lab.metrics();

    for (name, qtype, status, data) in [
        ("www.example.test", "A", "NOERROR", vec!["192.0.2.10"]),
        ("nope.example.test", "A", "NXDOMAIN", vec![]),
    ] {
        let miss = lab.dig(server, &["+rec", name, qtype]);
        assert_eq!(miss.status, status, "{}", miss.raw);
        assert!(miss.has_flag("ra") && miss.has_flag("rd"), "{}", miss.raw);
        assert_eq!(miss.answer_data(), data, "{}", miss.raw);
        // Resolving took kernel sockets (the upstream exchange); the hit takes none.
        let kernel = kernel_udp_in(&lab.server_ns);
        let hit = lab.dig(server, &["+rec", &name.to_uppercase(), qtype]);
        assert_eq!(hit.status, status, "{}", hit.raw);
        assert_eq!(hit.answer_data(), data, "{}", hit.raw);
        assert!(
            hit.question[0].starts_with(&format!(";{}.", name.to_uppercase())),
            "the client's case echoed: {}",
            hit.raw
        );
        assert_eq!(
            kernel_udp_in(&lab.server_ns),
            kernel,
            "the hit took the AF_XDP path"
        );
    }
    let after = lab.metrics();
    assert_eq!(sample(&after, hits) - sample(&before, hits), 2, "{after}");
    assert_eq!(
        sample(&after, misses) - sample(&before, misses),
        2,
        "{after}"
    );
    assert!(lab.stop(), "SIGTERM stops it cleanly");
}

#[test]
fn repeated_questions_are_answered_by_the_xdp_program_itself() {
    if !usable() {
        return;
    }
    let mut lab = Lab::new("c");
    // XDP_TX on a veth reaches the peer only when the peer runs XDP too.
    let _pass = run_in(&lab.client_ns, || {
        l4lb::fastpath::peer::attach_pass("vc0").expect("an XDP program on vc0")
    });
    let server: SocketAddr = (SERVER.parse::<IpAddr>().unwrap(), PORT).into();
    let zone = fixture("e2e.zone");
    lab.start_with(
        &server.to_string(),
        server,
        &[
            "--zone-file",
            zone.to_str().unwrap(),
            "--xdp-answer-cache",
            "1024",
        ],
        &["example.test", "SOA"],
    );
    let answered = |lab: &Lab| {
        // Counts are read at each report: an idle worker reports every 200 ms.
        std::thread::sleep(Duration::from_millis(500));
        sample(
            &lab.metrics(),
            "dns_xdp_cache_replies_total{event=\"answered\"}",
        )
    };
    let before = answered(&lab);
    for _ in 0..2 {
        // The first of each is answered in user space and stored; the second by the program.
        assert_www_and_chain(&lab, server);
        let nx = lab.dig(server, &["nope.example.test", "A", "+noedns"]);
        assert_eq!(nx.status, "NXDOMAIN", "{}", nx.raw);
        assert!(nx.authority[0].contains("SOA"), "{}", nx.raw);
    }
    // Another case is another question: answered right, in user space the first time.
    let upper = lab.dig(server, &["WWW.EXAMPLE.TEST", "A"]);
    assert_eq!(upper.answer_data(), ["192.0.2.10"]);
    assert!(upper.question[0].starts_with(";WWW.EXAMPLE.TEST."));
    let after = answered(&lab);
    assert!(
        after >= before + 3,
        "the program answered {} of the repeated questions",
        after - before
    );
    let m = lab.metrics();
    assert!(sample(&m, "dns_xdp_cache_replies_total{event=\"stored\"}") >= 3);
    assert!(
        sample(&m, "dns_responses_total{rcode=\"NXDOMAIN\"}") >= 2,
        "{m}"
    );
    assert!(lab.stop(), "a clean exit");
}

/// Writes `value` under `key` in the store at `url`, from inside `ns` (where the store runs).
fn put_in(ns: &str, url: String, key: String, value: Vec<u8>) {
    run_in(ns, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let s = dataplane_common::store::open(&url).await.unwrap();
            s.put(&key, value, None).await.unwrap();
        });
    });
}

fn web_set(address: &str) -> (String, Vec<u8>) {
    use dataplane_common::model::{AnswerPolicy, RData, RecordSet, encode, keys};
    let set = RecordSet {
        name: "web.default.svc.cluster.local.".parse().unwrap(),
        ttl: 30,
        records: vec![RData::A {
            address: address.parse().unwrap(),
        }],
        policy: AnswerPolicy::All,
        affinity_timeout: None,
        source: "user".into(),
    };
    (
        keys::record_set(&set.name, set.record_type().unwrap()),
        encode(&set),
    )
}

#[test]
fn after_a_store_change_the_xdp_program_answers_only_from_the_new_catalog() {
    use dataplane_common::model::{Soa, Zone, encode, keys};
    use dataplane_common::store::testing::EtcdServer;
    if !usable() {
        return;
    }
    let mut lab = Lab::new("u");
    let _pass = run_in(&lab.client_ns, || {
        l4lb::fastpath::peer::attach_pass("vc0").expect("an XDP program on vc0")
    });
    // etcd on the server namespace's loopback, where the server reaches it.
    let etcd = run_in(&lab.server_ns, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(EtcdServer::start())
    });
    let zone = Zone {
        origin: "cluster.local.".parse().unwrap(),
        ttl: 30,
        soa: Soa {
            mname: "ns.cluster.local.".parse().unwrap(),
            rname: "hostmaster.cluster.local.".parse().unwrap(),
            serial: 1,
            refresh: 7200,
            retry: 1800,
            expire: 86400,
            minimum: 5,
        },
        ns: vec!["ns.cluster.local.".parse().unwrap()],
    };
    put_in(
        &lab.server_ns,
        etcd.url(),
        keys::zone(&zone.origin),
        encode(&zone),
    );
    let (key, value) = web_set("10.1.0.1");
    put_in(&lab.server_ns, etcd.url(), key, value);

    let server: SocketAddr = (SERVER.parse::<IpAddr>().unwrap(), PORT).into();
    lab.start_with(
        &server.to_string(),
        server,
        &["--store", &etcd.url(), "--xdp-answer-cache", "1024"],
        &["web.default.svc.cluster.local", "A"],
    );
    let web = |lab: &Lab| {
        lab.dig(server, &["web.default.svc.cluster.local", "A"])
            .answer_data()
    };
    for _ in 0..3 {
        assert_eq!(web(&lab), ["10.1.0.1"]);
    }
    std::thread::sleep(Duration::from_millis(500));
    let answered = |m: &str| sample(m, "dns_xdp_cache_replies_total{event=\"answered\"}");
    let before = answered(&lab.metrics());
    assert!(before >= 1, "the program answered the repeats");

    let (key, value) = web_set("10.1.0.9");
    put_in(&lab.server_ns, etcd.url(), key, value);
    // Once the new catalog answers, the old reply is never sent again, by either path.
    let mut tries = 0;
    while web(&lab) != ["10.1.0.9"] {
        tries += 1;
        assert!(tries < 100, "the change never came in 5 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..5 {
        assert_eq!(web(&lab), ["10.1.0.9"]);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        answered(&lab.metrics()) > before,
        "the new reply is answered by the program too"
    );
    assert!(lab.stop(), "a clean exit");
}
