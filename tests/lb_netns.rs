//! End to end: `dataplane lb` on AF_PACKET and on AF_XDP, between network namespaces, fed by
//! a real etcd, in full-NAT and in DR.
//!
//! ```text
//!  client ns            bridge ns (br0)            lb ns                       rs1..rs3 ns
//!  cl0 203.0.113.2  ──  p-cl  p-lb  p-rs1..3  ──  lb0 198.51.100.1 (kernel,    eth0 198.51.100.11..13
//!                                                   health probes only)         TCP :80 :8080, UDP :5353
//!  VIP 203.0.113.10 (static neighbour -> lb0)      SNAT 198.51.100.100 (static neighbour -> lb0 on the RSes)
//!  DR VIP 203.0.113.20 (static neighbour -> lb0)   203.0.113.20/32 on lo, arp_ignore 1, arp_announce 2;
//!                                                  203.0.113.0/24 on-link: DR replies go straight to the client
//! ```
//!
//! The balancer runs two workers: on AF_PACKET full-NAT replies are steered to their owner by
//! the fanout program; on AF_XDP lb0 has two queues, a socket and a worker each behind our XDP
//! program, and a frame that lands on the other worker's queue is handed over; TX checksum offload
//! off on the client and the real servers (an XDP frame carries no "checksum not finished"
//! flag; on a real NIC frames come from the wire, complete). Health checks every 200 ms
//! (fall 2, rise 2); etcd is reached through a TCP relay the test opens inside the lb
//! namespace. Real servers are threads of this test moved
//! into their namespaces; they answer with their name. Every namespace is deleted on drop.
//! Needs root; skipped (with a message) otherwise.

use dataplane_common::clock::{Clock, SystemClock};
use dataplane_common::model::{
    self, ForwardingMode, Health, HealthState, Protocol, RealServer, Scheduler, Vip, keys,
};
use dataplane_common::store::testing::EtcdServer;
use dataplane_common::store::{Etcd, Store};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

const VIP: &str = "203.0.113.10";
const DR_VIP: &str = "203.0.113.20";
const CLIENT: &str = "203.0.113.2";
const LB_KERNEL: &str = "198.51.100.1";
const SNAT: &str = "198.51.100.100";
const RS: [&str; 3] = ["198.51.100.11", "198.51.100.12", "198.51.100.13"];
const LB_MAC: &str = "02:00:00:00:00:0a";
const CLIENT_MAC: &str = "02:00:00:00:00:02";
const METRICS: &str = "127.0.0.1:9155";

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("the `ip` command (iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Spawns a thread that moves into network namespace `ns` and runs `f` there.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("a netns file");
        // SAFETY: `file` is an open network namespace; only this thread moves into it.
        let ret = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(ret, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
}

/// Runs `f` inside `ns` and waits for it.
fn run_in<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    in_ns(ns, f).join().expect("the namespace thread")
}

/// The balancer's packet I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Io {
    AfPacket,
    /// AF_XDP with the XDP fast path (the default).
    Xdp,
    /// AF_XDP without it: every frame to our addresses through user space.
    XdpNoFastPath,
}

impl Io {
    fn args(self) -> &'static [&'static str] {
        match self {
            Self::AfPacket => &["--io", "af_packet"],
            Self::Xdp => &["--io", "xdp"],
            Self::XdpNoFastPath => &["--io", "xdp", "--xdp-fast-path=false"],
        }
    }

    fn xdp(self) -> bool {
        self != Self::AfPacket
    }
}

/// Turns TX checksum offload off on `dev` (in the calling thread's namespace), so the stack
/// sends finished checksums (`ETHTOOL_STXCSUM`, as `ethtool -K dev tx off`).
fn tx_checksum_off(dev: &str) {
    const ETHTOOL_STXCSUM: u32 = 0x17;
    ethtool_set(dev, ETHTOOL_STXCSUM, 0);
}

/// One ethtool "set a value" command on `dev`.
fn ethtool_set(dev: &str, cmd: u32, data: u32) {
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    let mut value = EthtoolValue { cmd, data };
    // SAFETY: plain old data; all zeroes is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(dev.bytes()) {
        *d = s as libc::c_char;
    }
    req.ifr_ifru.ifru_data = std::ptr::from_mut(&mut value).cast();
    // SAFETY: plain socket creation; checked below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    assert!(fd >= 0);
    // SAFETY: `req` names the device and points at `value`, both live for the call.
    let ret = unsafe { libc::ioctl(fd, libc::SIOCETHTOOL, &mut req) };
    let err = std::io::Error::last_os_error();
    // SAFETY: closing the socket made above.
    unsafe { libc::close(fd) };
    assert_eq!(ret, 0, "ethtool {cmd:#x} {dev}: {err}");
}

/// A counter of `dev` in `ns` (`/sys/class/net/DEV/statistics/NAME`).
fn link_counter(ns: &str, dev: &str, name: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "cat"])
        .arg(format!("/sys/class/net/{dev}/statistics/{name}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// The namespaces, the servers in them and the balancer; torn down in reverse on drop.
struct Lab {
    prefix: String,
    stop: Vec<(String, Arc<AtomicBool>)>,
    lb: Option<Child>,
    /// The XDP program on p-lb (AF_XDP only), attached while this is open.
    peer_xdp: Option<std::os::fd::OwnedFd>,
}

impl Lab {
    fn ns(&self, short: &str) -> String {
        format!("{}-{short}", self.prefix)
    }

    fn new(io: Io, tag: &str) -> Self {
        let prefix = format!("dplb{}{tag}", std::process::id());
        let mut lab = Self {
            prefix,
            stop: Vec::new(),
            lb: None,
            peer_xdp: None,
        };
        let all = ["br", "cl", "lb", "rs1", "rs2", "rs3"];
        for n in all {
            let _ = Command::new("ip")
                .args(["netns", "del", &lab.ns(n)])
                .stderr(Stdio::null())
                .status();
            ip(&["netns", "add", &lab.ns(n)]);
            ip(&["-n", &lab.ns(n), "link", "set", "lo", "up"]);
        }
        let br = lab.ns("br");
        ip(&["-n", &br, "link", "add", "name", "br0", "type", "bridge"]);
        ip(&["-n", &br, "link", "set", "br0", "up"]);
        let link = |short: &str, dev: &str, mac: &str, addr: &str| {
            let port = format!("p-{short}");
            let ns = lab.ns(short);
            // The balancer's link has two queues under AF_XDP, one socket and worker each:
            // a frame arrives on the queue its flow hashes to (the bridge's transmit queue
            // on p-lb), whichever worker owns its session.
            let q = if short == "lb" && io.xdp() { "2" } else { "1" };
            ip(&[
                "-n",
                &br,
                "link",
                "add",
                "name",
                &port,
                "numtxqueues",
                q,
                "numrxqueues",
                q,
                "type",
                "veth",
                "peer",
                "name",
                dev,
                "numtxqueues",
                q,
                "numrxqueues",
                q,
                "netns",
                &ns,
            ]);
            ip(&["-n", &br, "link", "set", &port, "master", "br0", "up"]);
            ip(&["-n", &ns, "link", "set", dev, "address", mac]);
            ip(&["-n", &ns, "addr", "add", addr, "dev", dev]);
            ip(&["-n", &ns, "link", "set", dev, "up"]);
        };
        link("cl", "cl0", CLIENT_MAC, &format!("{CLIENT}/24"));
        link("lb", "lb0", LB_MAC, &format!("{LB_KERNEL}/24"));
        // The client reaches the VIP through the balancer's MAC.
        ip(&[
            "-n",
            &lab.ns("cl"),
            "neigh",
            "replace",
            VIP,
            "lladdr",
            LB_MAC,
            "dev",
            "cl0",
            "nud",
            "permanent",
        ]);
        ip(&[
            "-n",
            &lab.ns("cl"),
            "neigh",
            "replace",
            DR_VIP,
            "lladdr",
            LB_MAC,
            "dev",
            "cl0",
            "nud",
            "permanent",
        ]);
        if io.xdp() {
            run_in(&lab.ns("cl"), || tx_checksum_off("cl0"));
        }
        for (i, rs) in RS.iter().enumerate() {
            let short = format!("rs{}", i + 1);
            let mac = format!("02:00:00:00:01:{:02x}", i + 1);
            link(&short, "eth0", &mac, &format!("{rs}/24"));
            let rs_ns = lab.ns(&short);
            if io.xdp() {
                run_in(&rs_ns, || tx_checksum_off("eth0"));
            }
            // DR: the VIP on lo, never announced nor answered for in ARP; the client is
            // on-link, so replies go to it directly.
            ip(&[
                "-n",
                &rs_ns,
                "addr",
                "add",
                &format!("{DR_VIP}/32"),
                "dev",
                "lo",
            ]);
            for (key, value) in [
                ("all/arp_ignore", "1"),
                ("all/arp_announce", "2"),
                ("eth0/arp_ignore", "1"),
                ("eth0/arp_announce", "2"),
            ] {
                let ok = Command::new("ip")
                    .args(["netns", "exec", &rs_ns, "sh", "-c"])
                    .arg(format!("echo {value} > /proc/sys/net/ipv4/conf/{key}"))
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "sysctl {key} in {rs_ns}");
            }
            ip(&[
                "-n",
                &rs_ns,
                "route",
                "add",
                "203.0.113.0/24",
                "dev",
                "eth0",
            ]);
            ip(&[
                "-n",
                &rs_ns,
                "neigh",
                "replace",
                CLIENT,
                "lladdr",
                CLIENT_MAC,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ]);
            // Replies to the SNAT address go to the balancer; the balancer's kernel table
            // gives it the real servers' MACs.
            ip(&[
                "-n",
                &lab.ns(&short),
                "neigh",
                "replace",
                SNAT,
                "lladdr",
                LB_MAC,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ]);
            ip(&[
                "-n",
                &lab.ns("lb"),
                "neigh",
                "replace",
                rs,
                "lladdr",
                &mac,
                "dev",
                "lb0",
                "nud",
                "permanent",
            ]);
        }
        if io.xdp() {
            // The fast path's XDP_TX frames reach the bridge only if lb0's peer has an XDP
            // program too (l4lb::fastpath::peer).
            let link = run_in(&lab.ns("br"), || l4lb::fastpath::peer::attach_pass("p-lb"));
            lab.peer_xdp = Some(link.expect("an XDP program on p-lb"));
        }
        lab
    }

    /// Starts real server `i` (0-based): HTTP on :80 and :8080 answering its name, UDP echo
    /// on :5353 prefixed with its name.
    fn start_real_server(&mut self, i: usize) {
        let name = format!("rs{}", i + 1);
        let stop = Arc::new(AtomicBool::new(false));
        self.stop.push((name.clone(), Arc::clone(&stop)));
        let ns = self.ns(&name);
        for port in [80u16, 8080] {
            let (stop, name) = (Arc::clone(&stop), name.clone());
            let listener = run_in(&ns, move || TcpListener::bind(("0.0.0.0", port)).unwrap());
            listener.set_nonblocking(true).unwrap();
            std::thread::spawn(move || serve_http(&listener, &name, &stop));
        }
        let (stop, name2) = (Arc::clone(&stop), name.clone());
        let udp = run_in(&ns, || UdpSocket::bind("0.0.0.0:5353").unwrap());
        udp.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = udp.recv_from(&mut buf) {
                    let mut reply = format!("{name2}:").into_bytes();
                    reply.extend_from_slice(&buf[..n]);
                    let _ = udp.send_to(&reply, from);
                }
            }
        });
    }

    /// Stops real server `name`: its listeners close, so probes and new connections fail.
    fn kill_real_server(&self, name: &str) {
        for (n, stop) in &self.stop {
            if n == name {
                stop.store(true, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut lb) = self.lb.take() {
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(lb.id() as i32, libc::SIGTERM) };
            for _ in 0..50 {
                if matches!(lb.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = lb.kill();
            let _ = lb.wait();
        }
        for (_, stop) in &self.stop {
            stop.store(true, Ordering::Relaxed);
        }
        for n in ["br", "cl", "lb", "rs1", "rs2", "rs3"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(n)])
                .status();
        }
    }
}

fn serve_http(listener: &TcpListener, name: &str, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((mut s, peer)) => {
                let name = name.to_owned();
                let local = s.local_addr().map(|a| a.to_string()).unwrap_or_default();
                std::thread::spawn(move || {
                    let _ = s.set_nonblocking(false);
                    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    // Keep-alive: one answer per request head.
                    while let Ok(n) = s.read(&mut chunk) {
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            let reply = format!(
                                "HTTP/1.1 200 OK\r\nX-Addrs: {local} {peer}\r\nContent-Length: {}\r\n\r\n{name}",
                                name.len()
                            );
                            if s.write_all(reply.as_bytes()).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Relays connections to 127.0.0.1:2379 inside `ns` to etcd on this namespace's loopback.
fn relay_etcd(ns: &str, etcd_port: u16) {
    let listener = run_in(ns, || TcpListener::bind("127.0.0.1:2379").unwrap());
    std::thread::spawn(move || {
        for inbound in listener.incoming().flatten() {
            let Ok(outbound) = TcpStream::connect(("127.0.0.1", etcd_port)) else {
                continue;
            };
            let (mut a, mut b) = (inbound.try_clone().unwrap(), outbound.try_clone().unwrap());
            let (mut c, mut d) = (inbound, outbound);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut a, &mut b);
                let _ = b.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut d, &mut c);
                let _ = c.shutdown(std::net::Shutdown::Write);
            });
        }
    });
}

/// One HTTP exchange on `s`; returns the body (the real server's name).
fn get(s: &mut TcpStream) -> std::io::Result<String> {
    exchange(s).map(|(_, body)| body)
}

/// `n` new connections from the client to `VIP:port`, one request each; the names that
/// answered (an error for a connection that failed).
fn connections(lab: &Lab, port: u16, n: usize) -> Vec<Result<String, String>> {
    run_in(&lab.ns("cl"), move || {
        (0..n)
            .map(|_| {
                let vip = SocketAddr::new(VIP.parse().unwrap(), port);
                let mut s = TcpStream::connect_timeout(&vip, Duration::from_secs(2))
                    .map_err(|e| e.to_string())?;
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                get(&mut s).map_err(|e| e.to_string())
            })
            .collect()
    })
}

fn tally(results: &[Result<String, String>]) -> BTreeMap<String, usize> {
    let mut t = BTreeMap::new();
    for r in results {
        *t.entry(r.clone().unwrap_or_else(|e| format!("error: {e}")))
            .or_insert(0) += 1;
    }
    t
}

fn vip(port: u16, protocol: Protocol, rs_port: u16, persistence: Option<Duration>) -> Vip {
    Vip {
        address: VIP.parse().unwrap(),
        port,
        protocol,
        scheduler: Scheduler::Maglev,
        mode: ForwardingMode::FullNat,
        persistence,
        real_servers: RS
            .iter()
            .map(|a| RealServer {
                address: a.parse().unwrap(),
                port: rs_port,
                weight: 1,
            })
            .collect(),
        source: "user".into(),
    }
}

/// The DR VIP: TCP :80 on the real servers' :80 (DR rewrites MACs, never ports).
fn dr_vip() -> Vip {
    Vip {
        address: DR_VIP.parse().unwrap(),
        mode: ForwardingMode::Dr,
        ..vip(80, Protocol::Tcp, 80, None)
    }
}

#[test]
fn full_nat_and_dr_through_af_packet_spread_persist_and_follow_health() {
    scenario(Io::AfPacket);
}

#[test]
fn full_nat_and_dr_through_af_xdp_spread_persist_and_follow_health() {
    scenario(Io::Xdp);
}

#[test]
fn full_nat_and_dr_through_af_xdp_without_the_fast_path() {
    scenario(Io::XdpNoFastPath);
}

/// One DR exchange after another on one keep-alive connection to the DR VIP: the real
/// server sees the client's own address on the VIP (MACs rewritten, nothing else), and its
/// replies reach the client without crossing the balancer.
fn dr_exchanges(lab: &Lab) {
    let (br, cl) = (lab.ns("br"), lab.ns("cl"));
    let to_lb = || link_counter(&br, "p-lb", "tx_packets");
    let (cl_rx, cl_tx) = (
        || link_counter(&cl, "cl0", "rx_packets"),
        || link_counter(&cl, "cl0", "tx_packets"),
    );
    let (lb0, rx0, tx0) = (to_lb(), cl_rx(), cl_tx());
    let (first, names) = run_in(&lab.ns("cl"), || {
        let vip = SocketAddr::new(DR_VIP.parse().unwrap(), 80);
        let mut s = TcpStream::connect_timeout(&vip, Duration::from_secs(2)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let first = exchange(&mut s).unwrap();
        let names: Vec<String> = (0..200).map(|_| get(&mut s).unwrap()).collect();
        (first, names)
    });
    let (lb1, rx1, tx1) = (to_lb(), cl_rx(), cl_tx());
    let (text, name) = first;
    assert!(
        text.contains(&format!("X-Addrs: {DR_VIP}:80 {CLIENT}:")),
        "the real server sees the client on the VIP: {text}"
    );
    assert!(
        names.iter().all(|n| *n == name),
        "one connection, one real server"
    );
    let (to_lb, received, sent) = (lb1 - lb0, rx1 - rx0, tx1 - tx0);
    eprintln!("DR: client sent {sent}, received {received}; the balancer got {to_lb}");
    assert!(received >= 200, "{received}");
    // Through the balancer, it would have got the client's frames and the replies too.
    // (Slack for health probe answers and neighbour traffic in the meantime.)
    assert!(
        to_lb < sent + 60,
        "replies bypass the balancer: {to_lb} vs {sent}"
    );
}

/// One HTTP exchange on `s`: the whole response and the body (the real server's name).
fn exchange(s: &mut TcpStream) -> std::io::Result<(String, String)> {
    s.write_all(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n")?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(body) = text.split("\r\n\r\n").nth(1)
            && body.starts_with("rs")
            && body.len() >= 3
        {
            let body = body.to_owned();
            return Ok((text, body));
        }
    }
}

fn xdp_attached(ns: &str) -> bool {
    let out = Command::new("ip")
        .args(["-n", ns, "link", "show", "dev", "lb0"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains("xdp")
}

/// A running lab: etcd with the VIPs, the namespaces, real servers and the balancer, up and
/// answering curl through the VIP. Fields drop in order: the lab before etcd.
struct Up {
    lab: Lab,
    store: Etcd,
    rt: tokio::runtime::Runtime,
    _etcd: EtcdServer,
}

fn up(io: Io, tag: &str) -> Up {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let etcd = rt.block_on(EtcdServer::start());
    let store = rt.block_on(Etcd::connect(&[etcd.endpoint()])).unwrap();
    for v in [
        vip(80, Protocol::Tcp, 80, None),
        vip(8080, Protocol::Tcp, 8080, Some(Duration::from_secs(60))),
        vip(53, Protocol::Udp, 5353, None),
        dr_vip(),
    ] {
        let key = keys::vip(v.address, v.port, v.protocol);
        rt.block_on(store.put(&key, model::encode(&v), None))
            .unwrap();
    }

    let mut lab = Lab::new(io, tag);
    for i in 0..3 {
        lab.start_real_server(i);
    }
    let etcd_port: u16 = etcd.endpoint().rsplit(':').next().unwrap().parse().unwrap();
    relay_etcd(&lab.ns("lb"), etcd_port);
    let lb = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.ns("lb"),
            env!("CARGO_BIN_EXE_dataplane"),
            "lb",
        ])
        .args(["--store", "etcd://127.0.0.1:2379", "--interface", "lb0"])
        .args(io.args())
        .args([
            "--local-address",
            SNAT,
            "--workers",
            "2",
            "--metrics-listen",
            METRICS,
        ])
        .args([
            "--gateway-mac",
            CLIENT_MAC,
            "--health-check",
            "--health-interval",
            "200ms",
        ])
        .args([
            "--health-timeout",
            "200ms",
            "--health-rise",
            "2",
            "--health-fall",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    lab.lb = Some(lb);

    // curl through the VIP, from the client namespace (once the balancer is up).
    let curl = || {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.ns("cl"),
                "curl",
                "-s",
                "-m",
                "2",
                &format!("http://{VIP}/"),
            ])
            .output()
            .unwrap()
    };
    let mut body = String::new();
    for _ in 0..100 {
        let out = curl();
        body = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        ["rs1", "rs2", "rs3"].contains(&body.as_str()),
        "curl through the VIP: `{body}`"
    );
    Up {
        lab,
        store,
        rt,
        _etcd: etcd,
    }
}

fn scenario(io: Io) {
    if !is_root() {
        eprintln!("skipped: lb_netns needs root (network namespaces, AF_PACKET, AF_XDP)");
        return;
    }
    let tag = match io {
        Io::AfPacket => "p",
        Io::Xdp => "x",
        Io::XdpNoFastPath => "s",
    };
    // Declared last, the lab is dropped first (the balancer and namespaces before etcd).
    let Up {
        _etcd,
        rt,
        store,
        mut lab,
    } = up(io, tag);

    // Maglev over many client ports: every real server gets some.
    let spread = tally(&connections(&lab, 80, 30));
    assert_eq!(
        spread.keys().collect::<Vec<_>>(),
        ["rs1", "rs2", "rs3"],
        "{spread:?}"
    );

    // Persistence: one client, one real server, whatever its source port.
    let sticky = tally(&connections(&lab, 8080, 12));
    assert_eq!(sticky.len(), 1, "{sticky:?}");
    assert!(sticky.keys().all(|k| k.starts_with("rs")), "{sticky:?}");

    // UDP through the VIP, from several sockets.
    let udp = run_in(&lab.ns("cl"), || {
        (0..9)
            .map(|i| {
                let s = UdpSocket::bind("0.0.0.0:0").unwrap();
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                s.send_to(format!("ping{i}").as_bytes(), (VIP, 53)).unwrap();
                let mut buf = [0u8; 64];
                let (n, from) = s.recv_from(&mut buf).unwrap();
                assert_eq!(from, SocketAddr::new(VIP.parse().unwrap(), 53));
                String::from_utf8_lossy(&buf[..n]).into_owned()
            })
            .collect::<Vec<_>>()
    });
    for (i, reply) in udp.iter().enumerate() {
        assert!(
            reply.starts_with("rs") && reply.ends_with(&format!(":ping{i}")),
            "{reply}"
        );
    }

    // DR: MACs rewritten, replies straight to the client.
    dr_exchanges(&lab);
    if io.xdp() {
        assert!(xdp_attached(&lab.ns("lb")), "our XDP program is on lb0");
    }

    // Health: hold a connection open, kill another real server.
    let (held, first) = run_in(&lab.ns("cl"), || {
        let mut s = TcpStream::connect_timeout(
            &SocketAddr::new(VIP.parse().unwrap(), 80),
            Duration::from_secs(2),
        )
        .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let name = get(&mut s).unwrap();
        (s, name)
    });
    let victim = ["rs1", "rs2", "rs3"]
        .into_iter()
        .find(|n| *n != first)
        .unwrap();
    let victim_ip: IpAddr = RS[victim[2..].parse::<usize>().unwrap() - 1]
        .parse()
        .unwrap();
    let killed = SystemClock.now();
    lab.kill_real_server(victim);
    let mut down_after = None;
    for _ in 0..100 {
        let kv = rt.block_on(store.get(&keys::health(victim_ip))).unwrap();
        if let Some(kv) = kv {
            let h: Health = model::decode(&kv.value).unwrap();
            if h.state == HealthState::Down {
                down_after = Some(SystemClock.now().saturating_duration_since(killed));
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let down_after = down_after.expect("the killed real server is marked down in the store");
    eprintln!("{victim} marked down {down_after:?} after it stopped (interval 200ms, fall 2)");
    assert!(down_after < Duration::from_secs(3), "{down_after:?}");
    // Give the snapshot a moment to follow the store, then: no new connection reaches it.
    std::thread::sleep(Duration::from_millis(300));
    let after = tally(&connections(&lab, 80, 30));
    assert!(!after.contains_key(victim), "{after:?}");
    assert!(
        after.keys().all(|k| k.starts_with("rs")),
        "every connection succeeds: {after:?}"
    );
    // The held connection to a live server goes on.
    let again = run_in(&lab.ns("cl"), move || {
        let mut s = held;
        get(&mut s).unwrap()
    });
    assert_eq!(again, first);

    // A rough figure, not asserted: UDP echoes through the balancer (each crosses it twice).
    let (sent, echoed, took) = run_in(&lab.ns("cl"), || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let r = s.try_clone().unwrap();
        let started = SystemClock.now();
        let receiver = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let mut n = 0u32;
            while r.recv(&mut buf).is_ok() {
                n += 1;
            }
            n
        });
        let mut sent = 0u32;
        while sent < 20_000
            && SystemClock.now().saturating_duration_since(started) < Duration::from_secs(2)
        {
            if s.send_to(b"load", (VIP, 53)).is_ok() {
                sent += 1;
            }
            if sent.is_multiple_of(64) {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        let echoed = receiver.join().unwrap();
        let took =
            SystemClock.now().saturating_duration_since(started) - Duration::from_millis(200);
        (sent, echoed, took)
    });
    eprintln!(
        "UDP echo through the balancer: {echoed}/{sent} in {took:?} ({:.0} frames/s through the balancer)",
        2.0 * f64::from(echoed) / took.as_secs_f64()
    );

    // Counters reach /metrics.
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.ns("lb"),
            "curl",
            "-s",
            &format!("http://{METRICS}/metrics"),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("lb_new_sessions_total{vip=\"203.0.113.10:80/tcp\"}"),
        "{text}"
    );
    assert!(
        text.contains("lb_real_server_packets_total{vip=\"203.0.113.10:53/udp\",real_server="),
        "{text}"
    );
    assert!(text.contains("lb_addresses_down 1"), "{text}");
    if io.xdp() {
        // Two queues, two workers: some frames arrived on the queue of the worker that does
        // not own their session and were handed over (and the exchanges above still worked).
        assert!(
            metric(&text, "lb_handoff_frames_total{event=\"sent\"}") > 0,
            "{text}"
        );
    }

    // SIGTERM: the balancer stops, and its XDP program leaves the interface with it.
    let mut lb = lab.lb.take().unwrap();
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(lb.id() as i32, libc::SIGTERM) };
    let status = lb.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(!xdp_attached(&lab.ns("lb")), "no XDP program left on lb0");
}

/// The balancer's /metrics text.
fn scrape(lab: &Lab) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.ns("lb"), "curl", "-s"])
        .arg(format!("http://{METRICS}/metrics"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of `series` (name and labels, as printed) in a scrape; 0 when absent.
fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .parse::<f64>()
                .ok()
        })
        .map_or(0, |v| v as u64)
}

/// Frames the real servers received.
fn received_by_real_servers(lab: &Lab) -> u64 {
    ["rs1", "rs2", "rs3"]
        .iter()
        .map(|r| link_counter(&lab.ns(r), "eth0", "rx_packets"))
        .sum()
}

/// Closes `s` with a RST instead of a FIN (`SO_LINGER` on, zero seconds).
fn reset(s: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `linger` is a valid `struct linger` for the call's duration; `s` is open.
    let ret = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            std::ptr::from_ref(&linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(ret, 0);
    drop(s);
}

#[test]
fn fast_path_forwards_established_flows_in_the_kernel() {
    if !is_root() {
        eprintln!("skipped: lb_netns needs root (network namespaces, AF_XDP)");
        return;
    }
    // `up` has already had curl go through the VIP with the fast path on.
    let Up {
        _etcd,
        rt: _rt,
        store: _store,
        lab,
    } = up(Io::Xdp, "f");
    let vip_packets = format!("lb_packets_total{{vip=\"{VIP}:80/tcp\"}}");
    let before = scrape(&lab);
    let user = |m: &str| {
        metric(m, "lb_frames_total{verdict=\"tx\"}")
            + metric(m, "lb_frames_total{verdict=\"pass\"}")
    };
    let rs_before = received_by_real_servers(&lab);

    // One keep-alive connection, 300 exchanges; and 100 UDP echoes from one socket.
    const EXCHANGES: usize = 300;
    let (held, names) = run_in(&lab.ns("cl"), || {
        let vip = SocketAddr::new(VIP.parse().unwrap(), 80);
        let mut s = TcpStream::connect_timeout(&vip, Duration::from_secs(2)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let names: Vec<String> = (0..EXCHANGES).map(|_| get(&mut s).unwrap()).collect();
        let u = UdpSocket::bind("0.0.0.0:0").unwrap();
        u.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        for i in 0..100 {
            u.send_to(format!("ping{i}").as_bytes(), (VIP, 53)).unwrap();
            let mut buf = [0u8; 64];
            let n = u.recv(&mut buf).unwrap();
            assert!(String::from_utf8_lossy(&buf[..n]).ends_with(&format!(":ping{i}")));
        }
        (s, names)
    });
    assert!(
        names.iter().all(|n| *n == names[0]),
        "one connection, one real server"
    );
    // The counters come back from the kernel within a poll interval (1 s).
    std::thread::sleep(Duration::from_millis(1500));
    let after = scrape(&lab);
    let fast = metric(&after, "lb_fast_path_packets_total{}")
        - metric(&before, "lb_fast_path_packets_total{}");
    let through_user = user(&after) - user(&before);
    let at_real_servers = received_by_real_servers(&lab) - rs_before;
    let counted = metric(&after, &vip_packets) - metric(&before, &vip_packets);
    eprintln!(
        "fast path: {fast} packets in the kernel, {through_user} through user space; \
         the real servers received {at_real_servers}; the VIP counted {counted}"
    );
    // 300 requests and 300 answers, 100 datagrams each way: all but the first few in XDP.
    assert!(fast >= 2 * EXCHANGES as u64 + 190, "{fast}");
    assert!(through_user < 20, "{through_user}");
    assert!(
        at_real_servers >= EXCHANGES as u64 + 100,
        "{at_real_servers}"
    );
    assert!(
        counted >= 2 * EXCHANGES as u64,
        "the VIP's counters include the kernel's: {counted}"
    );
    assert!(metric(&after, "lb_fast_path_sessions_total{event=\"install\"}") >= 2);

    // FIN and RST go through user space and close their sessions: the closed timeout (10 s)
    // later both are gone, fast path entries and all, though their last ACKs went by in the
    // kernel.
    let removed = |m: &str| metric(m, "lb_fast_path_sessions_total{event=\"remove\"}");
    let removed_before = removed(&after);
    let reset_one = run_in(&lab.ns("cl"), || {
        let vip = SocketAddr::new(VIP.parse().unwrap(), 80);
        let mut s = TcpStream::connect_timeout(&vip, Duration::from_secs(2)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        get(&mut s).unwrap();
        get(&mut s).unwrap();
        s
    });
    drop(held);
    reset(reset_one);
    let mut gone = false;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(250));
        let m = scrape(&lab);
        if removed(&m) >= removed_before + 2
            && metric(&m, "lb_active_sessions{vip=\"203.0.113.10:80/tcp\"}") == 0
        {
            gone = true;
            break;
        }
    }
    assert!(
        gone,
        "closed sessions expire with their entries:\n{}",
        scrape(&lab)
    );
    // And new connections still go through.
    let again = tally(&connections(&lab, 80, 5));
    assert!(again.keys().all(|k| k.starts_with("rs")), "{again:?}");
}
