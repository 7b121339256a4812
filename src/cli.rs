//! The command line. Every flag can also be set in the config file (`--config`); a flag wins.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

/// High-performance DNS, L4 load balancing and control for Kubernetes fleets.
#[derive(Debug, Parser)]
#[command(name = "dataplane", version)]
pub(crate) struct Cli {
    /// A TOML config file; flags override what it sets.
    #[arg(long, global = true, env = "DATAPLANE_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum)]
    pub(crate) log_format: Option<LogFormat>,
    /// Log filter (tracing env-filter syntax, e.g. `info,dns=debug`).
    #[arg(long, global = true)]
    pub(crate) log_level: Option<String>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Everything on one machine on the embedded store: control API, DNS, /metrics.
    Up(UpArgs),
    /// The DNS server.
    Dns(DnsArgs),
    /// The L4 load balancer.
    Lb(LbArgs),
    /// The control plane.
    Control(ControlArgs),
}

#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// Where the embedded store keeps its data.
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// Address of the HTTP endpoint (API, /metrics, /healthz, /readyz).
    #[arg(long)]
    pub(crate) http_listen: Option<SocketAddr>,
    /// DNS listen address.
    #[arg(long)]
    pub(crate) dns_listen: Option<SocketAddr>,
}

#[derive(Debug, Args)]
pub(crate) struct DnsArgs {
    /// Address to answer on (UDP and TCP); repeatable.
    #[arg(long)]
    pub(crate) listen: Vec<SocketAddr>,
    /// An RFC 1035 zone file to serve; repeatable.
    #[arg(long)]
    pub(crate) zone_file: Vec<PathBuf>,
    /// The store to follow for records and health: etcd://HOST:PORT[,...] or embedded:DIR.
    #[arg(long)]
    pub(crate) store: Option<String>,
    /// Query workers (one socket each); default: one per core.
    #[arg(long)]
    pub(crate) workers: Option<usize>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long)]
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// UDP backend.
    #[arg(long, value_enum, requires_if("xdp", "xdp_interface"))]
    pub(crate) io: Option<IoBackend>,
    /// With `--io xdp`: the interface whose receive queues the workers serve, one worker per
    /// queue (UDP to the listen address and port; the rest goes to the kernel).
    #[arg(long, requires = "io", value_parser = dns::io::xdp::Interface::new)]
    pub(crate) xdp_interface: Option<dns::io::xdp::Interface>,
    /// With `--io xdp`: up to this many replies kept by the XDP program, which then answers
    /// those questions itself (XDP_TX, one IPv4 listen address). On a veth the peer needs an
    /// XDP program of its own for the replies to get through. Default 0: off.
    #[arg(long, requires = "xdp_interface")]
    pub(crate) xdp_answer_cache: Option<u32>,
    /// Resolve names outside the zones: iterate from the root, or forward.
    #[arg(long, value_enum)]
    pub(crate) recursion: Option<RecursionMode>,
    /// A root server to start iterating from (ADDR:PORT); repeatable. Default: the IANA roots.
    #[arg(long)]
    pub(crate) root_hint: Vec<SocketAddr>,
    /// A forward zone: ZONE=ADDR:PORT[,ADDR:PORT...]; `.` is the default upstreams; repeatable.
    #[arg(long)]
    pub(crate) forward: Vec<ForwardArg>,
    /// A client network allowed to recurse; repeatable. Default: loopback and private ranges.
    #[arg(long)]
    pub(crate) allow_recursion: Vec<dns::recursor::acl::IpNet>,
    /// The port of name servers found by referral (default 53).
    #[arg(long)]
    pub(crate) upstream_port: Option<u16>,
    /// One upstream query's timeout, in milliseconds.
    #[arg(long)]
    pub(crate) upstream_timeout_ms: Option<u64>,
    /// Ask each server for one label more than its zone (RFC 9156).
    #[arg(long)]
    pub(crate) qname_minimisation: bool,
    /// Gossip membership.
    #[command(flatten)]
    pub(crate) gossip: GossipArgs,
}

/// Joining the gossip membership (SWIM over UDP); every daemon takes these.
#[derive(Debug, Args)]
pub(crate) struct GossipArgs {
    /// Join the gossip membership on this UDP address, as the other nodes reach it.
    #[arg(long)]
    pub(crate) gossip: Option<SocketAddr>,
    /// A gossip member to join besides those registered in the store; repeatable.
    #[arg(long)]
    pub(crate) gossip_seed: Vec<SocketAddr>,
}

/// How names outside the zones are resolved, on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RecursionMode {
    /// Iterate from the root hints.
    Recursive,
    /// Forward to upstreams.
    Forward,
}

/// `ZONE=ADDR:PORT[,ADDR:PORT...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ForwardArg {
    pub(crate) zone: dataplane_common::model::Name,
    pub(crate) upstreams: Vec<SocketAddr>,
}

impl std::str::FromStr for ForwardArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (zone, list) = s
            .split_once('=')
            .ok_or_else(|| "give ZONE=ADDR:PORT[,ADDR:PORT...]".to_owned())?;
        let zone = zone.parse().map_err(|e| format!("zone {zone}: {e}"))?;
        let upstreams = list
            .split(',')
            .map(|a| a.parse().map_err(|e| format!("upstream {a}: {e}")))
            .collect::<Result<Vec<SocketAddr>, String>>()?;
        Ok(Self { zone, upstreams })
    }
}

/// The UDP backend, on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum IoBackend {
    /// recvmmsg/sendmmsg batches.
    Mmsg,
    /// io_uring.
    Uring,
    /// AF_XDP on --xdp-interface (kernel bypass for UDP; needs root).
    Xdp,
}

#[derive(Debug, Args)]
pub(crate) struct LbArgs {
    /// The store to follow for VIPs: etcd://HOST:PORT[,...] or embedded:DIR.
    #[arg(long)]
    pub(crate) store: Option<String>,
    /// The interface to balance on (dedicated to the balancer).
    #[arg(long)]
    pub(crate) interface: Option<String>,
    /// A local (SNAT) address for full-NAT; repeatable.
    #[arg(long)]
    pub(crate) local_address: Vec<std::net::IpAddr>,
    /// Packet I/O backend.
    #[arg(long, value_enum)]
    pub(crate) io: Option<LbIo>,
    /// Worker threads, one socket each; default: one per core (with `--io xdp`, one per
    /// receive queue of the interface, up to the cores: worker N serves queue N).
    #[arg(long)]
    pub(crate) workers: Option<usize>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long)]
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// The MAC of the next hop towards clients (default: the interface's default gateway
    /// from the kernel's tables).
    #[arg(long)]
    pub(crate) gateway_mac: Option<String>,
    /// Probe real servers and write their health to the store.
    #[arg(long)]
    pub(crate) health_check: bool,
    /// Time between health probe rounds, e.g. `1s`, `200ms`.
    #[arg(long, value_parser = duration)]
    pub(crate) health_interval: Option<std::time::Duration>,
    /// A probe not answered within this fails, e.g. `500ms`.
    #[arg(long, value_parser = duration)]
    pub(crate) health_timeout: Option<std::time::Duration>,
    /// Successes in a row that bring a real server up.
    #[arg(long)]
    pub(crate) health_rise: Option<u32>,
    /// Failures in a row that take a real server down.
    #[arg(long)]
    pub(crate) health_fall: Option<u32>,
    /// Probe with `GET PATH` (2xx/3xx passes) instead of a TCP connect.
    #[arg(long)]
    pub(crate) health_http_path: Option<String>,
    /// With `--io xdp`: forward established flows in the XDP program itself, only new
    /// flows and TCP SYN/FIN/RST reaching user space (default true; `=false` turns it off).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub(crate) xdp_fast_path: Option<bool>,
    /// With `--io xdp`: where the XDP program runs (default auto: in the driver, else
    /// generic). `generic` runs it after the kernel built the skb: slower on a NIC, but on
    /// veth its XDP_TX needs no XDP program on the peer.
    #[arg(long, value_enum)]
    pub(crate) xdp_mode: Option<XdpMode>,
    /// Gossip membership.
    #[command(flatten)]
    pub(crate) gossip: GossipArgs,
}

/// Where `dataplane lb --io xdp` attaches its XDP program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum XdpMode {
    /// In the driver (native XDP), else generic.
    #[default]
    Auto,
    /// In the driver only (fails where the driver has no XDP support).
    Native,
    /// In the stack, after the skb is built (any interface).
    Generic,
}

/// The packet I/O backend of `dataplane lb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, serde::Deserialize)]
pub(crate) enum LbIo {
    /// AF_PACKET with TPACKET_V3 rings.
    #[default]
    #[value(name = "af_packet")]
    #[serde(rename = "af_packet")]
    AfPacket,
    /// AF_XDP, one socket per queue, with our XDP program (native, else generic).
    #[value(name = "xdp")]
    #[serde(rename = "xdp")]
    Xdp,
}

/// Parses `250ms`, `2s` or `1m`.
pub(crate) fn duration(s: &str) -> Result<std::time::Duration, String> {
    let (n, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 250ms, 2s, 1m)"))?;
    match unit {
        "ms" => Ok(std::time::Duration::from_millis(n)),
        "s" => Ok(std::time::Duration::from_secs(n)),
        "m" => Ok(std::time::Duration::from_secs(n * 60)),
        _ => Err(format!("`{s}`: give a unit: ms, s or m")),
    }
}

#[derive(Debug, Args)]
pub(crate) struct ControlArgs {
    /// The Kubernetes etcd, e.g. http://127.0.0.1:2379.
    #[arg(long)]
    pub(crate) kube_etcd: Option<String>,
    /// kube-apiserver's --etcd-prefix.
    #[arg(long)]
    pub(crate) kube_prefix: Option<String>,
    /// The project's store: etcd://HOST:PORT[,...] or embedded:DIR.
    #[arg(long)]
    pub(crate) store: Option<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long)]
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// This replica's name in the leader election (default: the host name).
    #[arg(long)]
    pub(crate) node_name: Option<String>,
    /// Address of the REST API.
    #[arg(long)]
    pub(crate) api_listen: Option<SocketAddr>,
    /// CA certificate of the Kubernetes etcd (as kube-apiserver's --etcd-cafile).
    #[arg(long)]
    pub(crate) kube_etcd_cafile: Option<PathBuf>,
    /// Client certificate for the Kubernetes etcd (--etcd-certfile).
    #[arg(long)]
    pub(crate) kube_etcd_certfile: Option<PathBuf>,
    /// Client key for the Kubernetes etcd (--etcd-keyfile).
    #[arg(long)]
    pub(crate) kube_etcd_keyfile: Option<PathBuf>,
    /// Gossip membership.
    #[command(flatten)]
    pub(crate) gossip: GossipArgs,
}
