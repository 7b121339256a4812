//! Runs one subcommand until shutdown.

mod control;
mod dns;
mod gossip;
mod http;
mod lb;
mod up;

use crate::cli::Command;
use crate::config::Config;
use crate::shutdown::Shutdown;

/// Runs `command` with `config` until SIGTERM or SIGINT.
pub(crate) async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    let shutdown = Shutdown::on_signals()?;
    match command {
        Command::Up(_) => up::run(config, shutdown).await,
        Command::Dns(_) => dns::run(config, shutdown).await,
        Command::Lb(_) => lb::run(config, shutdown).await,
        Command::Control(_) => control::run(config, shutdown).await,
    }
}
