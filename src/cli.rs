//! Command-line types (clap derive) and nothing else.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

/// gatewatch: connection telemetry for remote-access gateways.
#[derive(Debug, Parser)]
#[command(name = "gatewatch", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run recorded events (NDJSON) through the engine, then answer one SQL query.
    Replay(ReplayArgs),
    /// Write deterministic synthetic gateway traffic (NDJSON).
    Simulate(SimulateArgs),
}

/// Output formats for query results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// An aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// A JSON array of row objects.
    Json,
}

/// `gatewatch replay`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("query").required(true).args(["sql", "sql_file"])))]
pub struct ReplayArgs {
    /// NDJSON files of events, replayed in the order given; `-` reads stdin.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
    /// The SQL query to answer after the replay.
    #[arg(long)]
    pub sql: Option<String>,
    /// A file holding the SQL query (e.g. one of queries/*.sql).
    #[arg(long, value_name = "F")]
    pub sql_file: Option<PathBuf>,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write rejected lines here as {"reason", "line", "file", "line_no"} JSON lines.
    #[arg(long, value_name = "FILE")]
    pub dead_letter: Option<PathBuf>,
    /// TOML config: lateness, timeout, retention, servers and capacities.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Decoding threads (default: one per core).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
}

/// `gatewatch simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The story to tell.
    #[arg(long, value_enum, default_value_t = Scenario::March2020)]
    pub scenario: Scenario,
    /// Random seed: the same seed gives the same events.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Days to simulate, from the start date.
    #[arg(long, default_value_t = 1)]
    pub days: u32,
    /// First day (UTC date, YYYY-MM-DD). Default: 2020-03-17, the first bad morning.
    #[arg(long, default_value = "2020-03-17")]
    pub start: String,
    /// Scale the story to this many users (capacities scale with it). Default: the story's own.
    #[arg(long, value_name = "N")]
    pub users: Option<u32>,
    /// Where to write the NDJSON.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Simulator scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// The spring 2020 surge: a 150-seat pilot becomes 600–700 concurrent users.
    #[value(name = "march-2020")]
    March2020,
}
