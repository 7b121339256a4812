//! Structured logs: human-readable by default, JSON lines with `--log-format json`.

use crate::cli::LogFormat;
use anyhow::Context;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; `RUST_LOG` overrides `level` when set.
pub(crate) fn init(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) => EnvFilter::try_new(env).context("bad RUST_LOG")?,
        Err(_) => EnvFilter::try_new(level).with_context(|| format!("bad log level `{level}`"))?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}
