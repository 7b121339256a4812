//! `dpctl`: the command-line client of control's REST API.
//!
//! ```text
//! dpctl [--server URL] [--token TOKEN] [-o table|json] records list|get|create|delete|import
//! dpctl vips list|get|create|update|delete
//! dpctl status
//! ```
//!
//! The server and token come from flags or `DPCTL_SERVER` / `DPCTL_TOKEN`. Output is a table
//! unless `-o json`. An error from the server ends dpctl with a non-zero status and the
//! server's reason (and the field it blames) on stderr.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use dataplane_common::model::{
    AnswerPolicy, ForwardingMode, Name, Protocol, RData, RealServer, RecordSet, RecordType,
    Scheduler, Vip, Zone,
};
use dataplane_common::zonefile;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "dpctl",
    version,
    about = "Manage dataplane records and VIPs through control's API"
)]
struct Cli {
    /// The API's base URL.
    #[arg(
        long,
        env = "DPCTL_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    server: String,
    /// A bearer token (`read` role to read, `write` to change).
    #[arg(long, env = "DPCTL_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// A PEM file of the CA that signed the server's certificate (for https).
    #[arg(long, global = true)]
    ca: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table, global = true)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Record sets.
    #[command(subcommand)]
    Records(RecordsCommand),
    /// Virtual IPs.
    #[command(subcommand)]
    Vips(VipsCommand),
    /// The store's state and object counts.
    Status,
    /// The inspectors' latest check results (failing ones first).
    Inspect {
        /// Only failing checks.
        #[arg(long)]
        failing: bool,
    },
    /// Firing alerts (root causes with what they fold, silenced ones) and health scores.
    Alerts,
}

#[derive(Debug, Subcommand)]
enum RecordsCommand {
    /// List record sets.
    List {
        /// Only those at or below this zone.
        #[arg(long)]
        zone: Option<String>,
        /// Only those of this owner name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Show one record set.
    Get {
        /// The owner name.
        name: String,
        /// The type (A, AAAA, CNAME, SRV, MX, TXT, NS, PTR).
        r#type: String,
    },
    /// Create a record set (fails if it exists).
    Create(RecordArgs),
    /// Delete a record set.
    Delete {
        /// The owner name.
        name: String,
        /// The type.
        r#type: String,
    },
    /// Import a zone file: creates the zone if missing, then each record set (SOA skipped).
    Import {
        /// The RFC 1035 master file.
        zonefile: PathBuf,
        /// The initial `$ORIGIN`, for a file that does not set one.
        #[arg(long)]
        origin: Option<String>,
    },
}

#[derive(Debug, Args)]
struct RecordArgs {
    /// A JSON file holding the record set (instead of the flags).
    #[arg(short = 'f', long = "file", conflicts_with_all = ["name", "type", "ttl", "data", "policy"])]
    file: Option<PathBuf>,
    /// The owner name.
    #[arg(long, required_unless_present = "file")]
    name: Option<String>,
    /// The type.
    #[arg(long = "type", required_unless_present = "file")]
    r#type: Option<String>,
    /// Time to live in seconds.
    #[arg(long, default_value_t = 300)]
    ttl: u32,
    /// One record's data, repeatable: an address, a name, `PREF HOST` (MX),
    /// `PRIORITY WEIGHT PORT TARGET` (SRV) or one text string (TXT).
    #[arg(long, required_unless_present = "file")]
    data: Vec<String>,
    /// How several addresses are answered.
    #[arg(long, value_enum)]
    policy: Option<Policy>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Policy {
    All,
    OnePersistent,
    OneRoundRobin,
}

#[derive(Debug, Subcommand)]
enum VipsCommand {
    /// List VIPs.
    List,
    /// Show one VIP.
    Get(VipKey),
    /// Create a VIP (fails if it exists).
    Create(VipArgs),
    /// Change a VIP: the flags given replace those fields (or `-f` replaces it whole).
    Update(VipArgs),
    /// Delete a VIP.
    Delete(VipKey),
}

#[derive(Debug, Args)]
struct VipKey {
    /// The virtual address.
    address: String,
    /// The virtual port.
    port: u16,
    /// tcp or udp.
    protocol: String,
}

#[derive(Debug, Args)]
struct VipArgs {
    /// A JSON file holding the VIP (instead of the flags).
    #[arg(short = 'f', long = "file", conflicts_with_all = ["address", "port", "protocol"])]
    file: Option<PathBuf>,
    /// The virtual address.
    #[arg(long, required_unless_present = "file")]
    address: Option<std::net::IpAddr>,
    /// The virtual port.
    #[arg(long, required_unless_present = "file")]
    port: Option<u16>,
    /// tcp or udp.
    #[arg(long, value_enum, required_unless_present = "file")]
    protocol: Option<Proto>,
    /// How new flows pick a real server.
    #[arg(long, value_enum)]
    scheduler: Option<Sched>,
    /// How packets are forwarded.
    #[arg(long, value_enum)]
    mode: Option<Mode>,
    /// Client affinity in seconds (0 turns it off).
    #[arg(long)]
    persistence: Option<u64>,
    /// A real server `ADDRESS:PORT[=WEIGHT]` (`[V6]:PORT=W`), repeatable; replaces the list.
    #[arg(long = "real")]
    reals: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Proto {
    Tcp,
    Udp,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Sched {
    Maglev,
    WeightedRoundRobin,
    WeightedLeastConnections,
    SourceHash,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    FullNat,
    Dr,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dpctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<()> {
    let api = Api::new(cli)?;
    match &cli.command {
        Command::Status => {
            let status = api.call("GET", "/api/v1/status", None, None)?.ok()?;
            print(cli.output, &status.body, status_table)
        }
        Command::Inspect { failing } => {
            let mut reports = Value::Array(api.list("/api/v1/inspect")?);
            if *failing && let Some(list) = reports.as_array_mut() {
                for r in list {
                    if let Some(results) = r["results"].as_array_mut() {
                        results.retain(|c| c["ok"] == Value::Bool(false));
                    }
                }
            }
            print(cli.output, &reports, inspect_table)
        }
        Command::Alerts => {
            let views = Value::Array(api.list("/api/v1/alerts")?);
            print(cli.output, &views, alerts_table)
        }
        Command::Records(c) => records(&api, cli.output, c),
        Command::Vips(c) => vips(&api, cli.output, c),
    }
}

// ---- the HTTP side ----

/// The API at one server, with one token.
struct Api {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

/// A status, the ETag and the JSON body.
struct Reply {
    status: u16,
    etag: Option<String>,
    body: Value,
}

/// An error status from the server.
#[derive(Debug)]
struct Refused {
    status: u16,
    message: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refused {}

impl Refused {
    /// Whether every further write will be refused alike (the token, not the object).
    fn is_about_credentials(&self) -> bool {
        self.status == 401 || (self.status == 403 && !self.message.contains("Kubernetes"))
    }
}

impl Reply {
    /// The reply when it is a success, else the server's reason as the error.
    fn ok(self) -> Result<Self> {
        if (200..300).contains(&self.status) {
            Ok(self)
        } else {
            Err(Refused {
                status: self.status,
                message: self.reason(),
            }
            .into())
        }
    }

    /// The server's error as one line: `REASON (field `F`) [HTTP 422 invalid]`.
    fn reason(&self) -> String {
        let reason = self.body["reason"]
            .as_str()
            .map_or_else(|| self.body.to_string(), str::to_owned);
        let field = self.body["field"]
            .as_str()
            .map(|f| format!(" (field `{f}`)"))
            .unwrap_or_default();
        let code = self.body["error"].as_str().unwrap_or("error");
        format!("{reason}{field} [HTTP {} {code}]", self.status)
    }
}

impl Api {
    fn new(cli: &Cli) -> Result<Self> {
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)));
        if let Some(ca) = &cli.ca {
            let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
            let cert = ureq::tls::Certificate::from_pem(&pem)
                .with_context(|| format!("no certificate in {}", ca.display()))?;
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&[cert]))
                    .build(),
            );
        }
        Ok(Self {
            agent: config.build().into(),
            base: cli.server.trim_end_matches('/').to_owned(),
            token: cli.token.clone(),
        })
    }

    /// One request; an HTTP error status is a [`Reply`], only transport failures are errors.
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Reply> {
        let url = format!("{}{path}", self.base);
        let mut request = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(tag) = if_match {
            request = request.header("if-match", tag);
        }
        let bytes = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                serde_json::to_vec(body)?
            }
            None => Vec::new(),
        };
        let mut response = self
            .agent
            .run(request.body(bytes)?)
            .with_context(|| format!("{method} {url}"))?;
        let text = response.body_mut().read_to_string().unwrap_or_default();
        Ok(Reply {
            status: response.status().as_u16(),
            etag: response
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        })
    }

    /// Every item of a paginated list.
    fn list(&self, path: &str) -> Result<Vec<Value>> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page_path = match &next {
                Some(token) => format!("{path}{separator}limit=1000&continue={token}"),
                None => format!("{path}{separator}limit=1000"),
            };
            let page = self.call("GET", &page_path, None, None)?.ok()?;
            if let Some(list) = page.body["items"].as_array() {
                items.extend(list.iter().cloned());
            }
            match page.body["continue"].as_str() {
                Some(token) => next = Some(token.to_owned()),
                None => return Ok(items),
            }
        }
    }
}

fn print(output: Output, value: &Value, table: fn(&Value) -> Vec<Vec<String>>) -> Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Output::Table => print_table(&table(value)),
    }
    Ok(())
}

/// Rows (the first is the header) in aligned columns.
fn print_table(rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
            }
        }
        println!("{}", line.trim_end());
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn status_table(v: &Value) -> Vec<Vec<String>> {
    let mut rows = vec![
        vec!["STORE".to_owned(), text(&v["store"])],
        vec!["REVISION".to_owned(), text(&v["revision"])],
    ];
    if let Some(counts) = v["counts"].as_object() {
        for (kind, n) in counts {
            rows.push(vec![kind.to_uppercase(), text(n)]);
        }
    }
    rows
}

/// One row per check: failing first.
fn inspect_table(v: &Value) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for report in v.as_array().into_iter().flatten() {
        for c in report["results"].as_array().into_iter().flatten() {
            let ok = c["ok"] == Value::Bool(true);
            rows.push(vec![
                if ok { "ok" } else { "FAIL" }.to_owned(),
                text(&c["id"]),
                text(&report["by"]),
                c["detail"].as_str().unwrap_or("").to_owned(),
            ]);
        }
    }
    rows.sort_by(|a, b| (a[0] == "ok", &a[1]).cmp(&(b[0] == "ok", &b[1])));
    rows.insert(
        0,
        vec!["STATE".into(), "CHECK".into(), "BY".into(), "DETAIL".into()],
    );
    rows
}

/// One row per alert (folded ones only counted under their root), then the scores.
fn alerts_table(v: &Value) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "ALERT".into(),
        "STATE".into(),
        "LABELS".into(),
        "FOLDS".into(),
    ]];
    let labels = |l: &Value| {
        l.as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| *k != "alertname")
            .map(|(k, v)| format!("{k}={}", text(v)))
            .collect::<Vec<_>>()
            .join(",")
    };
    for view in v.as_array().into_iter().flatten() {
        for a in view["alerts"].as_array().into_iter().flatten() {
            if a["state"] == "folded" {
                continue;
            }
            let folds = a["folded"].as_array().map_or(0, Vec::len);
            rows.push(vec![
                text(&a["labels"]["alertname"]),
                text(&a["state"]),
                labels(&a["labels"]),
                folds.to_string(),
            ]);
        }
        for s in view["scores"].as_array().into_iter().flatten() {
            rows.push(vec![
                "score".into(),
                text(&s["score"]),
                text(&s["entity"]),
                String::new(),
            ]);
        }
    }
    rows
}

// ---- records ----

fn records(api: &Api, output: Output, command: &RecordsCommand) -> Result<()> {
    match command {
        RecordsCommand::List { zone, name } => {
            let mut query = Vec::new();
            if let Some(zone) = zone {
                query.push(format!("zone={}", zone.parse::<Name>()?));
            }
            if let Some(name) = name {
                query.push(format!("name={}", name.parse::<Name>()?));
            }
            let path = if query.is_empty() {
                "/api/v1/records".to_owned()
            } else {
                format!("/api/v1/records?{}", query.join("&"))
            };
            let items = Value::Array(api.list(&path)?);
            print(output, &items, records_table)
        }
        RecordsCommand::Get { name, r#type } => {
            let reply = api
                .call("GET", &record_path(name, r#type)?, None, None)?
                .ok()?;
            print(output, &Value::Array(vec![reply.body]), records_table)
        }
        RecordsCommand::Create(args) => {
            let set = record_set(args)?;
            let body = serde_json::to_value(&set)?;
            let reply = api
                .call("POST", "/api/v1/records", Some(&body), None)?
                .ok()?;
            print(output, &Value::Array(vec![reply.body]), records_table)
        }
        RecordsCommand::Delete { name, r#type } => {
            api.call("DELETE", &record_path(name, r#type)?, None, None)?
                .ok()?;
            eprintln!("deleted {name} {}", r#type.to_uppercase());
            Ok(())
        }
        RecordsCommand::Import { zonefile, origin } => import(api, zonefile, origin.as_deref()),
    }
}

fn record_path(name: &str, kind: &str) -> Result<String> {
    let name: Name = name.parse().with_context(|| format!("name `{name}`"))?;
    let kind: RecordType = kind.parse().map_err(anyhow::Error::msg)?;
    Ok(format!("/api/v1/records/{name}/{}", kind.as_str()))
}

fn records_table(v: &Value) -> Vec<Vec<String>> {
    let mut rows = vec![
        ["NAME", "TYPE", "TTL", "POLICY", "SOURCE", "DATA"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for set in v.as_array().into_iter().flatten() {
        let records: Vec<&Value> = set["records"].as_array().into_iter().flatten().collect();
        let kind = records
            .first()
            .map(|r| text(&r["type"]))
            .unwrap_or_default();
        let data: Vec<String> = records.iter().map(|r| rdata_text(r)).collect();
        rows.push(vec![
            text(&set["name"]),
            kind,
            text(&set["ttl"]),
            text(&set["policy"]),
            text(&set["source"]),
            data.join(", "),
        ]);
    }
    rows
}

/// One record's data in zone-file form.
fn rdata_text(r: &Value) -> String {
    let fields: &[&str] = match r["type"].as_str().unwrap_or_default() {
        "A" | "AAAA" => &["address"],
        "CNAME" | "PTR" => &["target"],
        "NS" => &["host"],
        "MX" => &["preference", "exchange"],
        "SRV" => &["priority", "weight", "port", "target"],
        "TXT" => {
            return r["strings"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| format!("{s}"))
                .collect::<Vec<_>>()
                .join(" ");
        }
        _ => return r.to_string(),
    };
    fields
        .iter()
        .map(|f| text(&r[*f]))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The record set the flags (or `-f`) describe.
fn record_set(args: &RecordArgs) -> Result<RecordSet> {
    if let Some(file) = &args.file {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        return serde_json::from_str(&text)
            .with_context(|| format!("{} is not a record set", file.display()));
    }
    let (Some(name), Some(kind)) = (&args.name, &args.r#type) else {
        bail!("--name and --type are required without -f");
    };
    let name: Name = name.parse().with_context(|| format!("--name `{name}`"))?;
    let kind: RecordType = kind.parse().map_err(anyhow::Error::msg)?;
    let records = args
        .data
        .iter()
        .map(|d| rdata(kind, d).with_context(|| format!("--data `{d}` for {}", kind.as_str())))
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordSet {
        name,
        ttl: args.ttl,
        records,
        policy: match args.policy {
            None | Some(Policy::All) => AnswerPolicy::All,
            Some(Policy::OnePersistent) => AnswerPolicy::OnePersistent,
            Some(Policy::OneRoundRobin) => AnswerPolicy::OneRoundRobin,
        },
        affinity_timeout: None,
        source: "user".to_owned(),
    })
}

/// One `--data` value as record data.
fn rdata(kind: RecordType, data: &str) -> Result<RData> {
    let words: Vec<&str> = data.split_whitespace().collect();
    let name = |s: &str| -> Result<Name> { Ok(s.parse::<Name>()?) };
    let one = || -> Result<&str> {
        match words.as_slice() {
            [w] => Ok(w),
            _ => bail!("expected one value"),
        }
    };
    Ok(match kind {
        RecordType::A => RData::A {
            address: one()?.parse()?,
        },
        RecordType::Aaaa => RData::Aaaa {
            address: one()?.parse()?,
        },
        RecordType::Cname => RData::Cname {
            target: name(one()?)?,
        },
        RecordType::Ns => RData::Ns {
            host: name(one()?)?,
        },
        RecordType::Ptr => RData::Ptr {
            target: name(one()?)?,
        },
        RecordType::Mx => match words.as_slice() {
            [preference, exchange] => RData::Mx {
                preference: preference.parse()?,
                exchange: name(exchange)?,
            },
            _ => bail!("expected `PREFERENCE EXCHANGE`"),
        },
        RecordType::Srv => match words.as_slice() {
            [priority, weight, port, target] => RData::Srv {
                priority: priority.parse()?,
                weight: weight.parse()?,
                port: port.parse()?,
                target: name(target)?,
            },
            _ => bail!("expected `PRIORITY WEIGHT PORT TARGET`"),
        },
        RecordType::Txt => RData::Txt {
            strings: vec![data.to_owned()],
        },
        RecordType::Soa => bail!("SOA is part of the zone, not a record set"),
    })
}

/// How an import went.
#[derive(Debug, Default)]
struct Tally {
    zones_created: usize,
    created: usize,
    updated: usize,
    unchanged: usize,
    failed: usize,
}

/// Failures printed in full before the rest are only counted.
const SHOWN_FAILURES: usize = 10;

fn import(api: &Api, file: &PathBuf, origin: Option<&str>) -> Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let origin = origin
        .map(|o| o.parse::<Name>().with_context(|| format!("--origin `{o}`")))
        .transpose()?;
    let zones = zonefile::parse(&text, origin.as_ref())
        .with_context(|| format!("parsing {}", file.display()))?;
    let total: usize = zones.iter().map(|(_, sets)| sets.len()).sum();
    let bar = ProgressBar::new(u64::try_from(total).unwrap_or(u64::MAX));
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} record sets {msg}")
            .expect("invariant: the template is valid"),
    );
    let mut tally = Tally::default();
    for (zone, sets) in &zones {
        ensure_zone(api, zone, &mut tally)?;
        for set in sets {
            let Some(kind) = set.record_type() else {
                continue;
            };
            match import_set(api, set, kind) {
                Ok(Imported::Created) => tally.created += 1,
                Ok(Imported::Updated) => tally.updated += 1,
                Ok(Imported::Unchanged) => tally.unchanged += 1,
                Err(e) => {
                    if e.downcast_ref::<Refused>()
                        .is_some_and(Refused::is_about_credentials)
                    {
                        bar.finish_and_clear();
                        return Err(e.context("import stopped"));
                    }
                    tally.failed += 1;
                    if tally.failed <= SHOWN_FAILURES {
                        bar.suspend(|| eprintln!("{} {}: {e:#}", set.name, kind.as_str()));
                    }
                }
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    println!(
        "zones created {}, record sets created {}, updated {}, unchanged {}, failed {}",
        tally.zones_created, tally.created, tally.updated, tally.unchanged, tally.failed
    );
    if tally.failed > 0 {
        bail!("{} record sets could not be imported", tally.failed);
    }
    Ok(())
}

fn ensure_zone(api: &Api, zone: &Zone, tally: &mut Tally) -> Result<()> {
    let path = format!("/api/v1/zones/{}", zone.origin);
    let reply = api.call("GET", &path, None, None)?;
    if reply.status == 404 {
        let body = serde_json::to_value(zone)?;
        let created = api.call("POST", "/api/v1/zones", Some(&body), None)?;
        if created.status != 409 {
            created
                .ok()
                .with_context(|| format!("creating zone {}", zone.origin))?;
            tally.zones_created += 1;
        }
        return Ok(());
    }
    reply
        .ok()
        .with_context(|| format!("reading zone {}", zone.origin))?;
    Ok(())
}

enum Imported {
    Created,
    Updated,
    Unchanged,
}

/// Creates the set, or replaces the stored one at the revision it was read at.
fn import_set(api: &Api, set: &RecordSet, kind: RecordType) -> Result<Imported> {
    let path = format!("/api/v1/records/{}/{}", set.name, kind.as_str());
    let body = serde_json::to_value(set)?;
    let created = api.call("PUT", &path, Some(&body), None)?;
    if created.status != 409 {
        created.ok()?;
        return Ok(Imported::Created);
    }
    let current = api.call("GET", &path, None, None)?.ok()?;
    if current.body == body {
        return Ok(Imported::Unchanged);
    }
    api.call("PUT", &path, Some(&body), current.etag.as_deref())?
        .ok()?;
    Ok(Imported::Updated)
}

// ---- VIPs ----

fn vips(api: &Api, output: Output, command: &VipsCommand) -> Result<()> {
    match command {
        VipsCommand::List => {
            let items = Value::Array(api.list("/api/v1/vips")?);
            print(output, &items, vips_table)
        }
        VipsCommand::Get(key) => {
            let reply = api.call("GET", &vip_path(key)?, None, None)?.ok()?;
            print(output, &Value::Array(vec![reply.body]), vips_table)
        }
        VipsCommand::Create(args) => {
            let vip = match &args.file {
                Some(file) => read_vip(file)?,
                None => {
                    let (Some(address), Some(port), Some(protocol)) =
                        (args.address, args.port, args.protocol)
                    else {
                        bail!("--address, --port and --protocol are required without -f");
                    };
                    let mut vip = Vip {
                        address,
                        port,
                        protocol: protocol_of(protocol),
                        scheduler: Scheduler::default(),
                        mode: ForwardingMode::default(),
                        persistence: None,
                        real_servers: Vec::new(),
                        source: "user".to_owned(),
                    };
                    apply(&mut vip, args)?;
                    vip
                }
            };
            let body = serde_json::to_value(&vip)?;
            let reply = api.call("POST", "/api/v1/vips", Some(&body), None)?.ok()?;
            print(output, &Value::Array(vec![reply.body]), vips_table)
        }
        VipsCommand::Update(args) => {
            let (vip, etag) = match &args.file {
                Some(file) => (read_vip(file)?, "*".to_owned()),
                None => {
                    let (Some(address), Some(port), Some(protocol)) =
                        (args.address, args.port, args.protocol)
                    else {
                        bail!("--address, --port and --protocol are required without -f");
                    };
                    let path = format!(
                        "/api/v1/vips/{address}/{port}/{}",
                        protocol_of(protocol).as_lower()
                    );
                    let current = api.call("GET", &path, None, None)?.ok()?;
                    let mut vip: Vip = serde_json::from_value(current.body)
                        .context("the server's VIP does not read")?;
                    apply(&mut vip, args)?;
                    (vip, current.etag.unwrap_or_else(|| "*".to_owned()))
                }
            };
            let path = format!(
                "/api/v1/vips/{}/{}/{}",
                vip.address,
                vip.port,
                vip.protocol.as_lower()
            );
            let body = serde_json::to_value(&vip)?;
            let reply = api.call("PUT", &path, Some(&body), Some(&etag))?.ok()?;
            print(output, &Value::Array(vec![reply.body]), vips_table)
        }
        VipsCommand::Delete(key) => {
            api.call("DELETE", &vip_path(key)?, None, None)?.ok()?;
            eprintln!("deleted {} {} {}", key.address, key.port, key.protocol);
            Ok(())
        }
    }
}

fn read_vip(file: &PathBuf) -> Result<Vip> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a VIP", file.display()))
}

fn protocol_of(p: Proto) -> Protocol {
    match p {
        Proto::Tcp => Protocol::Tcp,
        Proto::Udp => Protocol::Udp,
    }
}

/// The optional flags onto `vip`.
fn apply(vip: &mut Vip, args: &VipArgs) -> Result<()> {
    if let Some(s) = args.scheduler {
        vip.scheduler = match s {
            Sched::Maglev => Scheduler::Maglev,
            Sched::WeightedRoundRobin => Scheduler::WeightedRoundRobin,
            Sched::WeightedLeastConnections => Scheduler::WeightedLeastConnections,
            Sched::SourceHash => Scheduler::SourceHash,
        };
    }
    if let Some(m) = args.mode {
        vip.mode = match m {
            Mode::FullNat => ForwardingMode::FullNat,
            Mode::Dr => ForwardingMode::Dr,
        };
    }
    if let Some(seconds) = args.persistence {
        vip.persistence = (seconds > 0).then(|| Duration::from_secs(seconds));
    }
    if !args.reals.is_empty() {
        vip.real_servers = args
            .reals
            .iter()
            .map(|r| real_server(r))
            .collect::<Result<_>>()?;
    }
    Ok(())
}

/// `ADDRESS:PORT[=WEIGHT]`.
fn real_server(text: &str) -> Result<RealServer> {
    let (socket, weight) = match text.split_once('=') {
        Some((socket, weight)) => (socket, weight.parse().context("the weight")?),
        None => (text, 1),
    };
    let socket: SocketAddr = socket
        .parse()
        .with_context(|| format!("--real `{text}`: expected ADDRESS:PORT[=WEIGHT]"))?;
    Ok(RealServer {
        address: socket.ip(),
        port: socket.port(),
        weight,
    })
}

fn vip_path(key: &VipKey) -> Result<String> {
    let address: std::net::IpAddr = key
        .address
        .parse()
        .with_context(|| format!("`{}` is not an address", key.address))?;
    Ok(format!(
        "/api/v1/vips/{address}/{}/{}",
        key.port,
        key.protocol.to_ascii_lowercase()
    ))
}

fn vips_table(v: &Value) -> Vec<Vec<String>> {
    let mut rows = vec![
        [
            "ADDRESS",
            "PORT",
            "PROTO",
            "SCHEDULER",
            "MODE",
            "PERSIST",
            "SOURCE",
            "REAL SERVERS",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for vip in v.as_array().into_iter().flatten() {
        let reals: Vec<String> = vip["real_servers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let address = text(&r["address"]);
                let address = if address.contains(':') {
                    format!("[{address}]")
                } else {
                    address
                };
                format!("{address}:{}={}", text(&r["port"]), text(&r["weight"]))
            })
            .collect();
        rows.push(vec![
            text(&vip["address"]),
            text(&vip["port"]),
            text(&vip["protocol"]),
            text(&vip["scheduler"]),
            text(&vip["mode"]),
            text(&vip["persistence"]),
            text(&vip["source"]),
            reals.join(", "),
        ]);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_flags_read_as_record_data() {
        assert_eq!(
            rdata(RecordType::Srv, "10 5 5060 sip.example.com").unwrap(),
            RData::Srv {
                priority: 10,
                weight: 5,
                port: 5060,
                target: "sip.example.com.".parse().unwrap(),
            }
        );
        assert_eq!(
            rdata(RecordType::Txt, "v=spf1 -all").unwrap(),
            RData::Txt {
                strings: vec!["v=spf1 -all".into()],
            }
        );
        assert!(rdata(RecordType::A, "192.0.2.1 192.0.2.2").is_err());
        assert!(rdata(RecordType::Mx, "mail.example.com").is_err());
        assert!(rdata(RecordType::Soa, "x").is_err());
    }

    #[test]
    fn real_servers_read_with_an_optional_weight() {
        let r = real_server("[2001:db8::1]:443=7").unwrap();
        assert_eq!(
            (r.address.to_string(), r.port, r.weight),
            ("2001:db8::1".into(), 443, 7)
        );
        assert_eq!(real_server("10.0.0.1:80").unwrap().weight, 1);
        assert!(real_server("10.0.0.1").is_err());
        assert!(real_server("10.0.0.1:80=x").is_err());
    }
}
