//! The `gatewatch` binary: parse, set up logging, call the library, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;
use gatewatch::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GATEWATCH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let result = match cli.command {
        Command::Run(args) => gatewatch::app::service::run(args),
        Command::Replay(args) => gatewatch::app::replay(args),
        Command::Query(args) => gatewatch::app::query(args),
        Command::CheckConfig(args) => gatewatch::app::check_config(args),
        Command::Simulate(args) => gatewatch::sim::simulate(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatewatch: {e:#}");
            ExitCode::FAILURE
        }
    }
}
