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
    #[arg(long, value_enum)]
    pub(crate) io: Option<IoBackend>,
}

/// The UDP backend, on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum IoBackend {
    /// recvmmsg/sendmmsg batches.
    Mmsg,
    /// io_uring.
    Uring,
}

#[derive(Debug, Args)]
pub(crate) struct LbArgs {
    /// The store to follow for VIPs: etcd://HOST:PORT[,...] or embedded:DIR.
    #[arg(long)]
    pub(crate) store: Option<String>,
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
}
