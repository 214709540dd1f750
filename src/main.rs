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
    if !matches!(
        cli.command,
        Command::Run(_) | Command::Simulate(_) | Command::ServeArchive(_)
    ) {
        stop_quietly_when_the_reader_goes();
    }
    let result = match cli.command {
        Command::Run(args) => gatewatch::app::service::run(args),
        Command::Replay(args) => gatewatch::app::replay(args),
        Command::Query(args) => gatewatch::app::query(args),
        Command::CheckConfig(args) => gatewatch::app::check_config(args),
        Command::Simulate(args) => gatewatch::app::simulate(args),
        Command::ServeArchive(args) => gatewatch::app::serve_archive(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatewatch: {}", one_sentence(&e));
            ExitCode::FAILURE
        }
    }
}

/// `gatewatch replay … | head` and `check-config … | head`: a reader that stops early ends the
/// command quietly, as it ends `cat` or `grep`, instead of a panic in `println!` or an error
/// about a broken pipe. Rust ignores SIGPIPE by default; the one-shot commands take the Unix
/// default back. (`run` keeps ignoring it: a client hanging up must not end the service.)
fn stop_quietly_when_the_reader_goes() {
    #[cfg(unix)]
    // SAFETY: signal(2) with the default disposition, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The error and its causes, each cause once: a message that already says its cause (as
/// `cannot open input file F: <OS error>; ...` does) does not get it appended again.
fn one_sentence(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}
