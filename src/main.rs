//! `dataplane`: one daemon binary for every part (`up`, `dns`, `lb`, `control`).
//!
//! This file only wires: parse the command line, load the config, start logging, run the
//! subcommand until SIGTERM or SIGINT.

mod allocator;
mod cli;
mod config;
mod logging;
mod run;
mod shutdown;

use anyhow::Context;
use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    match start(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dataplane: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn start(cli: cli::Cli) -> anyhow::Result<()> {
    let config = config::load(&cli)?;
    logging::init(config.log.format, &config.log.level)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("dataplane")
        .build()
        .context("cannot start the async runtime")?
        .block_on(run::run(cli.command, config))
}
