//! The config file (TOML) and how flags override it.
//!
//! Every field is typed (`SocketAddr`, `PathBuf`, enums), unknown fields are refused, and
//! [`load`] validates once: its error names the file, the field and why.

use crate::cli::{Cli, Command, LogFormat};
use anyhow::Context;
use dataplane_common::model::Name;
use dataplane_common::store::StoreUrl;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole file. Every section is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Config {
    pub(crate) log: LogConfig,
    pub(crate) store: StoreConfig,
    pub(crate) up: UpConfig,
    pub(crate) dns: DnsConfig,
    pub(crate) control: ControlConfig,
    pub(crate) api: ApiConfig,
    pub(crate) lb: LbConfig,
    pub(crate) inspect: InspectConfig,
    pub(crate) alert: control::alert::Config,
    pub(crate) gossip: GossipConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LogConfig {
    /// `text` or `json`.
    pub(crate) format: LogFormat,
    /// tracing env-filter syntax.
    pub(crate) level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StoreConfig {
    /// `etcd://HOST:PORT[,...]` or `embedded:DIR`.
    pub(crate) url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct UpConfig {
    /// The embedded store's directory.
    pub(crate) data_dir: PathBuf,
    /// API, /metrics, /healthz and /readyz.
    pub(crate) http_listen: SocketAddr,
    /// DNS.
    pub(crate) dns_listen: SocketAddr,
    /// Zone files served besides the store's zones.
    pub(crate) zone_files: Vec<PathBuf>,
}

impl Default for UpConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("dataplane-data"),
            http_listen: ([127, 0, 0, 1], 8080).into(),
            dns_listen: ([127, 0, 0, 1], 5353).into(),
            zone_files: vec![PathBuf::from("configs/zones/example.test.zone")],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct DnsConfig {
    /// Addresses answered on, UDP and TCP.
    pub(crate) listen: Vec<SocketAddr>,
    /// RFC 1035 zone files.
    pub(crate) zone_files: Vec<PathBuf>,
    /// Query workers; `None` is one per core.
    pub(crate) workers: Option<usize>,
    /// /metrics, /healthz, /readyz.
    pub(crate) metrics_listen: SocketAddr,
    /// The Kubernetes cluster domain.
    pub(crate) cluster_domain: Name,
    /// With every address of a name down: answer with all of them (true) or SERVFAIL.
    pub(crate) fail_open: bool,
    /// `one-persistent` treats clients in the same IPv4 prefix of this length as one.
    pub(crate) client_prefix_v4: u8,
    /// The same for IPv6.
    pub(crate) client_prefix_v6: u8,
    /// Sticky assignments kept per worker (0 disables the sticky table).
    pub(crate) sticky_entries: usize,
    /// With sticky assignments: move a client back to its first address when it recovers.
    pub(crate) fail_back: bool,
    /// The EDNS UDP payload size advertised and used at most.
    pub(crate) udp_payload: u16,
    /// The UDP backend: `mmsg` (recvmmsg/sendmmsg), `uring` (io_uring) or
    /// `{ xdp = "IFACE" }` (AF_XDP on that interface, one worker per queue).
    pub(crate) io: dns::io::Backend,
    /// With `io = { xdp = ... }`: replies the XDP program keeps and sends itself, so a
    /// repeated question never leaves the kernel (0, the default, is off). Replies go back
    /// out of the interface with `XDP_TX`: on a veth the peer needs an XDP program of its own.
    pub(crate) xdp_answer_cache: u32,
    /// Response rate limiting; off unless set.
    pub(crate) rrl: Option<RrlConfig>,
    /// Resolving names outside the zones; off (REFUSED) unless set.
    pub(crate) recursion: Option<RecursionConfig>,
}

/// `[dns.recursion]`: forwarding or iterative resolution, and the shared cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RecursionConfig {
    /// `recursive` (iterate from `root_hints`) or `forward` (everything to `forward` zones).
    pub(crate) mode: RecursionMode,
    /// Root servers; default the IANA roots.
    pub(crate) root_hints: Vec<SocketAddr>,
    /// The port of name servers found by referral.
    pub(crate) port: u16,
    /// Forward zones: `{ zone = "corp.example.", upstreams = ["10.0.0.53:53"] }`; the zone
    /// `.` holds the default upstreams.
    pub(crate) forward: Vec<ForwardConfig>,
    /// Client networks allowed to recurse; others get REFUSED.
    pub(crate) allow: Vec<dns::recursor::acl::IpNet>,
    /// Answers cached, at most.
    pub(crate) cache_size: usize,
    /// Cached TTLs are raised to this.
    pub(crate) min_ttl_secs: u32,
    /// Cached TTLs are lowered to this.
    pub(crate) max_ttl_secs: u32,
    /// Negative answers are kept at most this long (RFC 2308).
    pub(crate) negative_max_ttl_secs: u32,
    /// Expired answers are served for this long when upstreams fail (RFC 8767); 0 is off.
    pub(crate) stale_secs: u64,
    /// Refresh popular names shortly before they expire.
    pub(crate) prefetch: bool,
    /// One upstream query's timeout.
    pub(crate) timeout_ms: u64,
    /// The most one client question may take.
    pub(crate) budget_ms: u64,
    /// Ask each server for one label more than its zone (RFC 9156).
    pub(crate) qname_minimisation: bool,
    /// Resolutions in progress at once.
    pub(crate) max_inflight: usize,
}

/// Iterate or forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RecursionMode {
    /// From the root hints.
    Recursive,
    /// To upstreams.
    Forward,
}

/// One forward zone.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForwardConfig {
    /// The zone.
    pub(crate) zone: Name,
    /// Its upstreams, tried healthy first.
    pub(crate) upstreams: Vec<SocketAddr>,
}

/// The IANA root servers' IPv4 addresses (a to m).
const IANA_ROOTS: [[u8; 4]; 13] = [
    [198, 41, 0, 4],
    [170, 247, 170, 2],
    [192, 33, 4, 12],
    [199, 7, 91, 13],
    [192, 203, 230, 10],
    [192, 5, 5, 241],
    [192, 112, 36, 4],
    [198, 97, 190, 53],
    [192, 36, 148, 17],
    [192, 58, 128, 30],
    [193, 0, 14, 129],
    [199, 7, 83, 42],
    [202, 12, 27, 33],
];

impl Default for RecursionConfig {
    fn default() -> Self {
        Self {
            mode: RecursionMode::Recursive,
            root_hints: IANA_ROOTS.iter().map(|ip| (*ip, 53).into()).collect(),
            port: 53,
            forward: Vec::new(),
            allow: vec![
                "127.0.0.0/8".parse().expect("invariant: a valid network"),
                "10.0.0.0/8".parse().expect("invariant: a valid network"),
                "172.16.0.0/12".parse().expect("invariant: a valid network"),
                "192.168.0.0/16"
                    .parse()
                    .expect("invariant: a valid network"),
                "::1/128".parse().expect("invariant: a valid network"),
                "fc00::/7".parse().expect("invariant: a valid network"),
            ],
            cache_size: 100_000,
            min_ttl_secs: 0,
            max_ttl_secs: 86_400,
            negative_max_ttl_secs: 3_600,
            stale_secs: 86_400,
            prefetch: true,
            timeout_ms: 800,
            budget_ms: 5_000,
            qname_minimisation: false,
            max_inflight: 1024,
        }
    }
}

/// Response rate limiting (per worker: the effective limit is up to `workers x rate`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RrlConfig {
    /// Responses per second per client prefix.
    pub(crate) rate: u32,
    /// Every `slip`-th limited response is sent truncated (TC); 0 never, 1 always.
    #[serde(default = "default_slip")]
    pub(crate) slip: u32,
    /// IPv4 clients are grouped by this prefix length.
    #[serde(default = "default_rrl_v4")]
    pub(crate) prefix_v4: u8,
    /// IPv6 clients are grouped by this prefix length.
    #[serde(default = "default_rrl_v6")]
    pub(crate) prefix_v6: u8,
}

fn default_slip() -> u32 {
    2
}
fn default_rrl_v4() -> u8 {
    24
}
fn default_rrl_v6() -> u8 {
    56
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            listen: Vec::new(),
            zone_files: Vec::new(),
            workers: None,
            metrics_listen: ([127, 0, 0, 1], 9153).into(),
            cluster_domain: "cluster.local.".parse().expect("invariant: a valid name"),
            fail_open: true,
            client_prefix_v4: 32,
            client_prefix_v6: 128,
            sticky_entries: 16_384,
            fail_back: true,
            udp_payload: 1232,
            io: dns::io::Backend::Mmsg,
            xdp_answer_cache: 0,
            rrl: None,
            recursion: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ControlConfig {
    /// The Kubernetes etcd.
    pub(crate) kube_etcd: Option<String>,
    /// kube-apiserver's --etcd-prefix.
    pub(crate) kube_prefix: String,
    /// /metrics, /healthz, /readyz.
    pub(crate) metrics_listen: SocketAddr,
    /// This replica's name in the leader election (default: the host name).
    pub(crate) node_name: Option<String>,
    /// The TTL of the records control writes, in seconds.
    pub(crate) ttl: u32,
    /// The leader lease: a dead leader is replaced within this many seconds.
    pub(crate) lease_ttl_secs: u64,
    /// The CA of the Kubernetes etcd (kube-apiserver's --etcd-cafile).
    pub(crate) kube_etcd_cafile: Option<PathBuf>,
    /// Our client certificate for it (--etcd-certfile).
    pub(crate) kube_etcd_certfile: Option<PathBuf>,
    /// Our client key for it (--etcd-keyfile).
    pub(crate) kube_etcd_keyfile: Option<PathBuf>,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            kube_etcd: None,
            kube_prefix: "/registry".to_owned(),
            metrics_listen: ([127, 0, 0, 1], 9154).into(),
            node_name: None,
            ttl: 30,
            lease_ttl_secs: 10,
            kube_etcd_cafile: None,
            kube_etcd_certfile: None,
            kube_etcd_keyfile: None,
        }
    }
}

/// `dataplane lb`: the L4 load balancer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LbConfig {
    /// The interface balanced on (dedicated to the balancer).
    pub(crate) interface: Option<String>,
    /// Local (SNAT) addresses for full-NAT.
    pub(crate) local_addresses: Vec<std::net::IpAddr>,
    /// `af_packet` or `xdp`.
    pub(crate) io: crate::cli::LbIo,
    /// Workers, one socket each; `None` is one per core.
    pub(crate) workers: Option<usize>,
    /// /metrics, /healthz, /readyz.
    pub(crate) metrics_listen: SocketAddr,
    /// The next hop towards clients, `aa:bb:cc:dd:ee:ff`; `None` resolves the interface's
    /// default gateway from the kernel's tables.
    pub(crate) gateway_mac: Option<String>,
    /// Sessions per worker.
    pub(crate) sessions_per_worker: u32,
    /// How often the kernel's neighbour table is read for real servers' MACs.
    #[serde(deserialize_with = "lb_duration")]
    pub(crate) neighbour_refresh: std::time::Duration,
    /// Health checking of real servers; off unless set.
    pub(crate) health: Option<LbHealthConfig>,
    /// With `io = "xdp"`: established flows forwarded by the XDP program itself.
    pub(crate) xdp_fast_path: bool,
    /// With `io = "xdp"`: where the program runs.
    pub(crate) xdp_mode: crate::cli::XdpMode,
}

/// Health checks of real servers, written to the store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LbHealthConfig {
    /// Time between probe rounds (`1s`, `200ms`).
    #[serde(deserialize_with = "lb_duration")]
    pub(crate) interval: std::time::Duration,
    /// A probe not answered within this fails.
    #[serde(deserialize_with = "lb_duration")]
    pub(crate) timeout: std::time::Duration,
    /// Successes in a row that bring a real server up.
    pub(crate) rise: u32,
    /// Failures in a row that take it down.
    pub(crate) fall: u32,
    /// Probe with `GET` of this path instead of a TCP connect.
    pub(crate) http_path: Option<String>,
    /// The checker's name in the store (default: the host name).
    pub(crate) node_name: Option<String>,
}

impl Default for LbConfig {
    fn default() -> Self {
        Self {
            interface: None,
            local_addresses: Vec::new(),
            io: crate::cli::LbIo::AfPacket,
            workers: None,
            metrics_listen: ([127, 0, 0, 1], 9155).into(),
            gateway_mac: None,
            sessions_per_worker: 262_144,
            neighbour_refresh: std::time::Duration::from_secs(2),
            health: None,
            xdp_fast_path: true,
            xdp_mode: crate::cli::XdpMode::Auto,
        }
    }
}

impl Default for LbHealthConfig {
    fn default() -> Self {
        Self {
            interval: std::time::Duration::from_secs(1),
            timeout: std::time::Duration::from_millis(500),
            rise: 2,
            fall: 3,
            http_path: None,
            node_name: None,
        }
    }
}

fn lb_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
    let s = String::deserialize(d)?;
    crate::cli::duration(&s).map_err(serde::de::Error::custom)
}

/// The control REST API (served by `control` and by `up`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ApiConfig {
    /// Where the API (and /metrics, /healthz, /readyz) listens.
    pub(crate) listen: SocketAddr,
    /// Bearer tokens with `read` or `write` roles; none: reads open, writes refused.
    pub(crate) tokens: Vec<control::api::Token>,
    /// Serve HTTPS with this certificate and key (PEM).
    pub(crate) tls: Option<control::api::TlsFiles>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: ([127, 0, 0, 1], 8080).into(),
            tokens: Vec::new(),
            tls: None,
        }
    }
}

impl ApiConfig {
    /// The tokens as the API takes them.
    pub(crate) fn auth(&self) -> control::api::Auth {
        control::api::Auth {
            tokens: self.tokens.clone(),
        }
    }
}

/// `[inspect]`: the checks `dataplane control` runs (its share of them, spread over the
/// live control nodes); on by default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct InspectConfig {
    /// Run the inspector.
    pub(crate) enabled: bool,
    /// Time between rounds (`2s`, `500ms`).
    #[serde(deserialize_with = "lb_duration")]
    pub(crate) interval: std::time::Duration,
    /// A probe not answered within this fails.
    #[serde(deserialize_with = "lb_duration")]
    pub(crate) timeout: std::time::Duration,
    /// Passes in a row that bring an address up.
    pub(crate) rise: u32,
    /// Failures in a row that take it down: a dead real server is marked down within
    /// `interval x fall`.
    pub(crate) fall: u32,
    /// Probe real servers with `GET` of this path instead of a TCP connect.
    pub(crate) http_path: Option<String>,
    /// Names every DNS node must answer (A) with addresses of their record set.
    pub(crate) dns_names: Vec<Name>,
}

impl Default for InspectConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: std::time::Duration::from_secs(2),
            timeout: std::time::Duration::from_secs(1),
            rise: 2,
            fall: 3,
            http_path: None,
            dns_names: Vec::new(),
        }
    }
}

/// `[gossip]`: the SWIM membership every daemon joins over UDP when `listen` is set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct GossipConfig {
    /// This node's gossip address (UDP), as the others reach it; off unless set.
    pub(crate) listen: Option<SocketAddr>,
    /// Members to join besides those registered in the store.
    pub(crate) seeds: Vec<SocketAddr>,
}

/// A field that is wrong, and why.
struct Invalid {
    field: &'static str,
    reason: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Invalid {
    Invalid {
        field,
        reason: reason.into(),
    }
}

impl Config {
    /// The `[inspect]`, `[alert]` and `[gossip]` checks.
    fn validate_observing(&self) -> Result<(), Invalid> {
        let i = &self.inspect;
        if i.rise == 0 || i.fall == 0 {
            return Err(invalid("inspect.rise", "rise and fall must be at least 1"));
        }
        if i.interval.is_zero() || i.timeout.is_zero() {
            return Err(invalid(
                "inspect.interval",
                "interval and timeout must be above 0",
            ));
        }
        if i.http_path.as_ref().is_some_and(|p| !p.starts_with('/')) {
            return Err(invalid("inspect.http_path", "must start with `/`"));
        }
        self.alert
            .validate()
            .map_err(|e| invalid("alert", e.to_string()))?;
        if self.gossip.listen.is_some_and(|l| l.ip().is_unspecified()) {
            return Err(invalid(
                "gossip.listen",
                "give the address the other nodes reach this one at, not 0.0.0.0 or ::",
            ));
        }
        Ok(())
    }

    /// The `[lb]` checks.
    fn validate_lb(&self, command: &Command) -> Result<(), Invalid> {
        let lb = &self.lb;
        if lb.workers == Some(0) || lb.workers.is_some_and(|w| w > 256) {
            return Err(invalid(
                "lb.workers",
                "must be 1 to 256 (leave it out for one per core)",
            ));
        }
        if let Some(m) = &lb.gateway_mac {
            l4lb::server::neighbours::mac(m).map_err(|e| invalid("lb.gateway_mac", e))?;
        }
        if lb.sessions_per_worker < 1024 {
            return Err(invalid("lb.sessions_per_worker", "must be at least 1024"));
        }
        if let Some(h) = &lb.health {
            if h.rise == 0 || h.fall == 0 {
                return Err(invalid(
                    "lb.health.rise",
                    "rise and fall must be at least 1",
                ));
            }
            if h.interval.is_zero() || h.timeout.is_zero() {
                return Err(invalid(
                    "lb.health.interval",
                    "interval and timeout must be above 0",
                ));
            }
            if h.http_path.as_ref().is_some_and(|p| !p.starts_with('/')) {
                return Err(invalid("lb.health.http_path", "must start with `/`"));
            }
        }
        if let Command::Lb(_) = command {
            if self.store.url.is_none() {
                return Err(invalid(
                    "store.url",
                    "the balancer follows a store: give --store URL",
                ));
            }
            if lb.interface.is_none() {
                return Err(invalid(
                    "lb.interface",
                    "give the interface to balance on (--interface IF)",
                ));
            }
        }
        Ok(())
    }

    /// Reads and parses a file, without validating.
    fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("config file {}", path.display()))
    }

    pub(crate) fn parse(text: &str) -> anyhow::Result<Self> {
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// Lays the command line's flags over the file.
    fn merge(&mut self, cli: &Cli) {
        if let Some(f) = cli.log_format {
            self.log.format = f;
        }
        if let Some(l) = &cli.log_level {
            self.log.level.clone_from(l);
        }
        match &cli.command {
            Command::Up(a) => {
                if let Some(d) = &a.data_dir {
                    self.up.data_dir.clone_from(d);
                }
                if let Some(h) = a.http_listen {
                    self.up.http_listen = h;
                }
                if let Some(d) = a.dns_listen {
                    self.up.dns_listen = d;
                }
            }
            Command::Dns(a) => {
                if !a.listen.is_empty() {
                    self.dns.listen.clone_from(&a.listen);
                }
                if !a.zone_file.is_empty() {
                    self.dns.zone_files.clone_from(&a.zone_file);
                }
                if a.store.is_some() {
                    self.store.url.clone_from(&a.store);
                }
                if a.workers.is_some() {
                    self.dns.workers = a.workers;
                }
                if let Some(m) = a.metrics_listen {
                    self.dns.metrics_listen = m;
                }
                self.merge_recursion(a);
                self.merge_gossip(&a.gossip);
                if let Some(io) = a.io {
                    self.dns.io = match io {
                        crate::cli::IoBackend::Mmsg => dns::io::Backend::Mmsg,
                        crate::cli::IoBackend::Uring => dns::io::Backend::Uring,
                        // clap requires the interface with `--io xdp`.
                        crate::cli::IoBackend::Xdp => match a.xdp_interface {
                            Some(i) => dns::io::Backend::Xdp(i),
                            None => self.dns.io,
                        },
                    };
                }
                if let Some(n) = a.xdp_answer_cache {
                    self.dns.xdp_answer_cache = n;
                }
            }
            Command::Lb(a) => {
                self.merge_gossip(&a.gossip);
                if a.store.is_some() {
                    self.store.url.clone_from(&a.store);
                }
                let lb = &mut self.lb;
                if a.interface.is_some() {
                    lb.interface.clone_from(&a.interface);
                }
                if !a.local_address.is_empty() {
                    lb.local_addresses.clone_from(&a.local_address);
                }
                if let Some(io) = a.io {
                    lb.io = io;
                }
                if a.workers.is_some() {
                    lb.workers = a.workers;
                }
                if let Some(m) = a.metrics_listen {
                    lb.metrics_listen = m;
                }
                if a.gateway_mac.is_some() {
                    lb.gateway_mac.clone_from(&a.gateway_mac);
                }
                if let Some(f) = a.xdp_fast_path {
                    lb.xdp_fast_path = f;
                }
                if let Some(m) = a.xdp_mode {
                    lb.xdp_mode = m;
                }
                if a.health_check && lb.health.is_none() {
                    lb.health = Some(LbHealthConfig::default());
                }
                if let Some(h) = &mut lb.health {
                    h.interval = a.health_interval.unwrap_or(h.interval);
                    h.timeout = a.health_timeout.unwrap_or(h.timeout);
                    h.rise = a.health_rise.unwrap_or(h.rise);
                    h.fall = a.health_fall.unwrap_or(h.fall);
                    if a.health_http_path.is_some() {
                        h.http_path.clone_from(&a.health_http_path);
                    }
                }
            }
            Command::Control(a) => {
                self.merge_gossip(&a.gossip);
                if a.kube_etcd.is_some() {
                    self.control.kube_etcd.clone_from(&a.kube_etcd);
                }
                if let Some(p) = &a.kube_prefix {
                    self.control.kube_prefix.clone_from(p);
                }
                if a.store.is_some() {
                    self.store.url.clone_from(&a.store);
                }
                if let Some(m) = a.metrics_listen {
                    self.control.metrics_listen = m;
                }
                if a.node_name.is_some() {
                    self.control.node_name.clone_from(&a.node_name);
                }
                if let Some(l) = a.api_listen {
                    self.api.listen = l;
                }
                for (flag, field) in [
                    (&a.kube_etcd_cafile, &mut self.control.kube_etcd_cafile),
                    (&a.kube_etcd_certfile, &mut self.control.kube_etcd_certfile),
                    (&a.kube_etcd_keyfile, &mut self.control.kube_etcd_keyfile),
                ] {
                    if flag.is_some() {
                        field.clone_from(flag);
                    }
                }
            }
        }
    }

    /// Lays `--gossip` and `--gossip-seed` over `[gossip]`.
    fn merge_gossip(&mut self, g: &crate::cli::GossipArgs) {
        if g.gossip.is_some() {
            self.gossip.listen = g.gossip;
        }
        if !g.gossip_seed.is_empty() {
            self.gossip.seeds.clone_from(&g.gossip_seed);
        }
    }

    /// Lays the recursion flags over `[dns.recursion]` (any of them turns recursion on).
    fn merge_recursion(&mut self, a: &crate::cli::DnsArgs) {
        let any = a.recursion.is_some()
            || !a.root_hint.is_empty()
            || !a.forward.is_empty()
            || !a.allow_recursion.is_empty()
            || a.upstream_port.is_some()
            || a.upstream_timeout_ms.is_some()
            || a.qname_minimisation;
        if !any {
            return;
        }
        let r = self
            .dns
            .recursion
            .get_or_insert_with(RecursionConfig::default);
        if let Some(m) = a.recursion {
            r.mode = match m {
                crate::cli::RecursionMode::Recursive => RecursionMode::Recursive,
                crate::cli::RecursionMode::Forward => RecursionMode::Forward,
            };
        }
        if !a.root_hint.is_empty() {
            r.root_hints.clone_from(&a.root_hint);
        }
        if !a.forward.is_empty() {
            r.forward = a
                .forward
                .iter()
                .map(|f| ForwardConfig {
                    zone: f.zone.clone(),
                    upstreams: f.upstreams.clone(),
                })
                .collect();
        }
        if !a.allow_recursion.is_empty() {
            r.allow.clone_from(&a.allow_recursion);
        }
        r.port = a.upstream_port.unwrap_or(r.port);
        r.timeout_ms = a.upstream_timeout_ms.unwrap_or(r.timeout_ms);
        r.qname_minimisation |= a.qname_minimisation;
    }

    /// Checks what the types cannot.
    fn validate(&self, command: &Command) -> Result<(), Invalid> {
        if let Some(r) = &self.dns.recursion {
            if r.mode == RecursionMode::Forward
                && !r.forward.iter().any(|f| f.zone.to_string() == ".")
            {
                return Err(invalid(
                    "dns.recursion.forward",
                    "forward mode needs default upstreams: a forward zone \".\"",
                ));
            }
            if r.mode == RecursionMode::Recursive && r.root_hints.is_empty() {
                return Err(invalid("dns.recursion.root_hints", "give at least one"));
            }
            if r.forward.iter().any(|f| f.upstreams.is_empty()) {
                return Err(invalid(
                    "dns.recursion.forward",
                    "each forward zone needs upstreams",
                ));
            }
            if r.timeout_ms == 0 || r.budget_ms < r.timeout_ms || r.cache_size == 0 {
                return Err(invalid(
                    "dns.recursion.timeout_ms",
                    "timeout_ms and cache_size must be positive, budget_ms at least timeout_ms",
                ));
            }
        }
        if let Some(url) = &self.store.url {
            url.parse::<StoreUrl>()
                .map_err(|e| invalid("store.url", e.to_string()))?;
        }
        if self.dns.workers == Some(0) || self.dns.workers.is_some_and(|w| w > 1024) {
            return Err(invalid(
                "dns.workers",
                "must be 1 to 1024 (leave it out for one per core)",
            ));
        }
        if self.dns.client_prefix_v4 > 32 {
            return Err(invalid("dns.client_prefix_v4", "must be 0 to 32"));
        }
        if self.dns.client_prefix_v6 > 128 {
            return Err(invalid("dns.client_prefix_v6", "must be 0 to 128"));
        }
        if !(512..=4096).contains(&self.dns.udp_payload) {
            return Err(invalid("dns.udp_payload", "must be 512 to 4096"));
        }
        if let Some(rrl) = &self.dns.rrl {
            if rrl.rate == 0 {
                return Err(invalid(
                    "dns.rrl.rate",
                    "must be at least 1 (leave [dns.rrl] out to turn it off)",
                ));
            }
            if rrl.prefix_v4 > 32 || rrl.prefix_v6 > 128 {
                return Err(invalid(
                    "dns.rrl.prefix_v4",
                    "prefix lengths must be 0 to 32 (v4) and 0 to 128 (v6)",
                ));
            }
        }
        if self.control.lease_ttl_secs == 0 || self.control.lease_ttl_secs > 3600 {
            return Err(invalid("control.lease_ttl_secs", "must be 1 to 3600"));
        }
        if let Some(kube) = &self.control.kube_etcd
            && kube
                .split(',')
                .any(|e| !(e.starts_with("http://") || e.starts_with("https://")))
        {
            return Err(invalid(
                "control.kube_etcd",
                "give http://HOST:PORT (or https://), comma-separated for several",
            ));
        }
        if let Err(e) = self.api.auth().validate() {
            return Err(invalid("api.tokens", e.to_string()));
        }
        if let Some(tls) = &self.api.tls
            && let Some(f) = [&tls.cert, &tls.key].into_iter().find(|f| !f.is_file())
        {
            return Err(invalid(
                "api.tls",
                format!("{} is not a readable file", f.display()),
            ));
        }
        let c = &self.control;
        let tls = [
            &c.kube_etcd_cafile,
            &c.kube_etcd_certfile,
            &c.kube_etcd_keyfile,
        ];
        if tls.iter().any(|f| f.is_some()) && !tls.iter().all(|f| f.is_some()) {
            return Err(invalid(
                "control.kube_etcd_certfile",
                "give the CA, certificate and key files together",
            ));
        }
        if let Some(f) = tls.iter().filter_map(|f| f.as_ref()).find(|f| !f.is_file()) {
            return Err(invalid(
                "control.kube_etcd_certfile",
                format!("{} is not a readable file", f.display()),
            ));
        }
        if !self.control.kube_prefix.starts_with('/') {
            return Err(invalid(
                "control.kube_prefix",
                "must start with `/`, like kube-apiserver's --etcd-prefix",
            ));
        }
        self.validate_observing()?;
        self.validate_lb(command)?;
        match command {
            Command::Dns(_) => {
                if self.dns.listen.is_empty() {
                    return Err(invalid(
                        "dns.listen",
                        "give at least one address (--listen 127.0.0.1:5353)",
                    ));
                }
                if matches!(self.dns.io, dns::io::Backend::Xdp(_)) && self.dns.listen.len() > 1 {
                    return Err(invalid(
                        "dns.listen",
                        "AF_XDP serves one address and port (the unspecified address serves all)",
                    ));
                }
                if self.dns.xdp_answer_cache > 0 {
                    if !matches!(self.dns.io, dns::io::Backend::Xdp(_)) {
                        return Err(invalid(
                            "dns.xdp_answer_cache",
                            "the XDP answer cache needs the AF_XDP backend (--io xdp)",
                        ));
                    }
                    if !self
                        .dns
                        .listen
                        .iter()
                        .all(|a| a.is_ipv4() && !a.ip().is_unspecified())
                    {
                        return Err(invalid(
                            "dns.xdp_answer_cache",
                            "the XDP answer cache answers one IPv4 address: --listen 192.0.2.1:53",
                        ));
                    }
                    if self.dns.rrl.is_some() {
                        return Err(invalid(
                            "dns.xdp_answer_cache",
                            "rate limiting needs every query in user space: turn one of them off",
                        ));
                    }
                }
                if self.dns.zone_files.is_empty()
                    && self.store.url.is_none()
                    && self.dns.recursion.is_none()
                {
                    return Err(invalid(
                        "dns.zone_files",
                        "nothing to serve: give --zone-file FILE or --store URL",
                    ));
                }
                for f in &self.dns.zone_files {
                    if !f.is_file() {
                        return Err(invalid(
                            "dns.zone_files",
                            format!("{} is not a readable file", f.display()),
                        ));
                    }
                }
            }
            Command::Control(_) if self.control.kube_etcd.is_none() => {
                return Err(invalid(
                    "control.kube_etcd",
                    "give the Kubernetes etcd (--kube-etcd http://HOST:PORT)",
                ));
            }
            _ => {}
        }
        Ok(())
    }
}

/// Loads the config file (if any), applies the flags and validates the result.
///
/// # Errors
/// One error naming the file (or the flags), the field and why.
pub(crate) fn load(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = match &cli.config {
        Some(path) => Config::read(path)?,
        None => Config::default(),
    };
    config.merge(cli);
    config
        .validate(&cli.command)
        .map_err(|Invalid { field, reason }| {
            let source = cli.config.as_ref().map_or_else(
                || "command line".to_owned(),
                |p| format!("config file {}", p.display()),
            );
            anyhow::anyhow!("{source}: field `{field}`: {reason}")
        })?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("dataplane").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn every_example_config_loads_and_validates() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let config = Config::read(&path).unwrap_or_else(|e| panic!("{e:#}"));
                // Zone files in examples are relative to the repository root.
                std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).unwrap();
                config
                    .validate(&cli(&["up"]).command)
                    .unwrap_or_else(|i| panic!("{}: {}: {}", path.display(), i.field, i.reason));
                seen += 1;
            }
        }
        assert!(seen >= 2, "expected example configs in {}", dir.display());
    }

    #[test]
    fn unknown_fields_and_bad_values_are_named() {
        let err = Config::parse("[dns]\nworkerz = 2\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `workerz`"), "{err}");
        let err = Config::parse("[dns]\nlisten = [\"not-an-address\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen"), "{err}");

        let mut c = Config::parse("[dns]\nclient_prefix_v4 = 40\n").unwrap();
        c.merge(&cli(&[
            "dns",
            "--listen",
            "127.0.0.1:5353",
            "--store",
            "embedded:/tmp/x",
        ]));
        assert_eq!(
            c.validate(&cli(&["up"]).command).err().map(|i| i.field),
            Some("dns.client_prefix_v4")
        );
    }

    #[test]
    fn dns_over_xdp_needs_an_interface_and_serves_one_address() {
        let zone = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/e2e.zone");
        let args = cli(&[
            "dns",
            "--listen",
            "192.0.2.1:53",
            "--zone-file",
            zone,
            "--io",
            "xdp",
            "--xdp-interface",
            "vs0",
        ]);
        let mut c = Config::default();
        c.merge(&args);
        let want = dns::io::xdp::Interface::new("vs0").unwrap();
        assert_eq!(c.dns.io, dns::io::Backend::Xdp(want));
        assert!(c.validate(&args.command).is_ok());
        let parse =
            |a: &[&str]| Cli::try_parse_from(std::iter::once("dataplane").chain(a.iter().copied()));
        assert!(parse(&["dns", "--io", "xdp"]).is_err(), "no interface");
        assert!(parse(&["dns", "--xdp-interface", "a/b", "--io", "xdp"]).is_err());
        let two = cli(&[
            "dns",
            "--listen",
            "192.0.2.1:53",
            "--listen",
            "192.0.2.2:53",
            "--zone-file",
            zone,
            "--io",
            "xdp",
            "--xdp-interface",
            "vs0",
        ]);
        let mut c = Config::default();
        c.merge(&two);
        assert_eq!(
            c.validate(&two.command).err().map(|i| i.field),
            Some("dns.listen")
        );
        let file = Config::parse("[dns]\nio = { xdp = \"eth1\" }\n").unwrap();
        let eth1 = dns::io::xdp::Interface::new("eth1").unwrap();
        assert_eq!(file.dns.io, dns::io::Backend::Xdp(eth1));
    }

    #[test]
    fn the_xdp_answer_cache_needs_af_xdp_one_ipv4_address_and_no_rate_limiting() {
        let zone = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/e2e.zone");
        let with = |listen: &str, more: &[&str]| {
            let mut a = vec!["dns", "--listen", listen, "--zone-file", zone];
            a.extend_from_slice(more);
            let args = cli(&a);
            let mut c = Config::default();
            c.merge(&args);
            (c, args)
        };
        let xdp = [
            "--io",
            "xdp",
            "--xdp-interface",
            "vs0",
            "--xdp-answer-cache",
            "4096",
        ];
        let (c, args) = with("192.0.2.1:53", &xdp);
        assert_eq!(c.dns.xdp_answer_cache, 4096);
        assert!(c.validate(&args.command).is_ok());
        for listen in ["0.0.0.0:53", "[2001:db8::1]:53"] {
            let (c, args) = with(listen, &xdp);
            assert_eq!(
                c.validate(&args.command).err().map(|i| i.field),
                Some("dns.xdp_answer_cache"),
                "{listen}"
            );
        }
        let (mut c, args) = with("192.0.2.1:53", &xdp);
        c.dns.rrl = Config::parse("[dns.rrl]\nrate = 10\n").unwrap().dns.rrl;
        assert!(c.dns.rrl.is_some());
        assert_eq!(
            c.validate(&args.command).err().map(|i| i.field),
            Some("dns.xdp_answer_cache")
        );
        let parse =
            |a: &[&str]| Cli::try_parse_from(std::iter::once("dataplane").chain(a.iter().copied()));
        assert!(
            parse(&["dns", "--xdp-answer-cache", "10"]).is_err(),
            "needs --xdp-interface"
        );
        let file = Config::parse("[dns]\nio = { xdp = \"eth1\" }\nxdp_answer_cache = 8\n").unwrap();
        assert_eq!(file.dns.xdp_answer_cache, 8);
        let mut c = file;
        c.dns.listen = vec!["192.0.2.1:53".parse().unwrap()];
        c.dns.xdp_answer_cache = 8;
        c.dns.io = dns::io::Backend::Mmsg;
        c.dns.zone_files = vec![zone.into()];
        assert_eq!(
            c.validate(&cli(&["dns"]).command).err().map(|i| i.field),
            Some("dns.xdp_answer_cache"),
            "needs the AF_XDP backend"
        );
    }

    #[test]
    fn flags_override_the_file() {
        let mut c = Config::parse(
            "[dns]\nlisten = [\"127.0.0.1:1\"]\nworkers = 3\n[store]\nurl = \"embedded:/a\"\n",
        )
        .unwrap();
        let args = cli(&[
            "dns",
            "--listen",
            "127.0.0.1:5353",
            "--store",
            "etcd://127.0.0.1:2379",
            "--workers",
            "2",
        ]);
        c.merge(&args);
        assert_eq!(
            c.dns.listen,
            vec!["127.0.0.1:5353".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(c.dns.workers, Some(2));
        assert_eq!(c.store.url.as_deref(), Some("etcd://127.0.0.1:2379"));
        assert!(c.validate(&args.command).is_ok());
        let bad = cli(&["dns", "--listen", "127.0.0.1:5353", "--store", "nope://x"]);
        let mut c = Config::default();
        c.merge(&bad);
        assert_eq!(
            c.validate(&bad.command).err().map(|i| i.field),
            Some("store.url")
        );
        let none = cli(&["dns", "--listen", "127.0.0.1:5353"]);
        let mut c = Config::default();
        c.merge(&none);
        assert_eq!(
            c.validate(&none.command).err().map(|i| i.field),
            Some("dns.zone_files")
        );
    }

    #[test]
    fn gossip_flags_and_observing_sections() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let mut c = Config::default();
        assert!(c.inspect.enabled, "the inspector runs by default");
        assert!(c.alert.receivers.is_empty(), "no delivery by default");
        let args = cli(&[
            "dns",
            "--listen",
            "127.0.0.1:5353",
            "--store",
            "embedded:/tmp/x",
            "--gossip",
            "127.0.0.1:7946",
            "--gossip-seed",
            "127.0.0.2:7946",
            "--gossip-seed",
            "127.0.0.3:7946",
        ]);
        c.merge(&args);
        assert_eq!(c.gossip.listen, Some("127.0.0.1:7946".parse().unwrap()));
        assert_eq!(c.gossip.seeds.len(), 2);
        assert!(c.validate(&args.command).is_ok());
        c.gossip.listen = Some("0.0.0.0:7946".parse().unwrap());
        assert_eq!(
            c.validate(&args.command).err().map(|i| i.field),
            Some("gossip.listen")
        );
        let c = Config::parse("[inspect]\nfall = 0\n").unwrap();
        assert_eq!(
            c.validate(&args.command).err().map(|i| i.field),
            Some("inspect.rise")
        );
        let c = Config::parse(
            "[alert]\nevaluation_interval = \"1s\"\n[[alert.rules]]\nname = \"\"\nmetric = \"up\"\ncondition = { kind = \"absent\", over = \"1m\" }\n",
        )
        .unwrap();
        let err = c.validate(&args.command).err().unwrap();
        assert_eq!(err.field, "alert");
        assert!(err.reason.contains("rules[0].name"), "{}", err.reason);
    }
}
