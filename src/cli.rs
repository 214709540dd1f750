//! Command-line types (clap derive) and nothing else.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

use crate::output;

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
    /// The service: consume events from Kafka, answer SQL over HTTP. Without --brokers it
    /// starts an embedded Kafka cluster and plays the simulator into it.
    Run(RunArgs),
    /// Run recorded events (NDJSON) through the engine, then answer one SQL query.
    Replay(ReplayArgs),
    /// Write deterministic synthetic gateway traffic, to a file or a Kafka topic.
    Simulate(SimulateArgs),
    /// Ask a running service one SQL question.
    Query(QueryArgs),
    /// Validate a config file and show what it configures.
    CheckConfig(CheckConfigArgs),
    /// Serve a Parquet archive (no Kafka, no engine) to PostgreSQL clients: psql, Grafana,
    /// DBeaver, psycopg. See docs/postgres.md.
    ServeArchive(ServeArchiveArgs),
}

/// `gatewatch serve-archive`.
#[derive(Debug, Args)]
pub struct ServeArchiveArgs {
    /// The archive directory (what `run --archive` wrote).
    #[arg(long, value_name = "DIR")]
    pub archive: PathBuf,
    /// PostgreSQL listen address. Default: pg.bind, else 127.0.0.1:5433.
    #[arg(long, value_name = "ADDR")]
    pub pg: Option<String>,
    /// TOML config: `[pg]` (TLS, connections) and `[http]`'s token and query limits.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `gatewatch run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Kafka bootstrap servers (host:port,...). Default: kafka.brokers from the config, else an
    /// embedded in-process cluster fed by the simulator.
    #[arg(long, value_name = "HOSTS")]
    pub brokers: Option<String>,
    /// Topic to consume (repeat, or comma-separate, for several). Default: kafka.topics, else
    /// gateway.sessions.
    #[arg(long, value_name = "T", value_delimiter = ',')]
    pub topic: Vec<String>,
    /// Consumer group. Default: kafka.group, else gatewatch.
    #[arg(long, value_name = "G")]
    pub group: Option<String>,
    /// HTTP listen address. Default: http.bind, else 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,
    /// PostgreSQL listen address (psql, Grafana, DBeaver, psycopg), or `off`. Default: pg.bind,
    /// else 127.0.0.1:5433. See docs/postgres.md.
    #[arg(long, value_name = "ADDR")]
    pub pg: Option<String>,
    /// TOML config: kafka, http, engine, servers.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Write checkpoints of the state here and resume from the newest on start. Default:
    /// checkpoint.dir, else none.
    #[arg(long, value_name = "DIR")]
    pub checkpoint_dir: Option<PathBuf>,
    /// Join a cluster: keep each partition's state in this shared store (file:///shared/dir,
    /// s3://bucket/prefix…) so it moves with its partition between the instances of --group
    /// (docs/cluster.md). Default: cluster.state_store, else a single instance.
    #[arg(long, value_name = "URL")]
    pub state_store: Option<String>,
    /// In a cluster: the host name or IP other members reach this one at (its HTTP port, and
    /// the Flight port it publishes). Default: cluster.advertise, else the HTTP bind IP.
    #[arg(long, value_name = "HOST")]
    pub advertise: Option<String>,
    /// Archive sealed hours of events, concurrency and latency as Parquet here; SQL then spans
    /// memory and archive. Default: archive.dir, else none.
    #[arg(long, value_name = "DIR")]
    pub archive: Option<PathBuf>,
    /// The input format of the topics given with --topic (default json); configured topics
    /// take theirs from `[[kafka.topics]] format`. See docs/gateways.md.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub input_format: Option<InputFormatArg>,
    /// Embedded mode only: how fast the simulator plays event time (60 = an hour per minute).
    #[arg(long, value_name = "X", default_value_t = 60.0)]
    pub speed: f64,
}

/// `gatewatch query`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("query").required(true).args(["sql", "sql_file"])))]
pub struct QueryArgs {
    /// The service's URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Bearer token of a service that requires one (default: $GATEWATCH_HTTP_TOKEN).
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Query a Parquet archive directly (no service): events, concurrency and latency.
    #[arg(long, value_name = "DIR", conflicts_with = "url")]
    pub archive: Option<PathBuf>,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// A file holding the SQL query (e.g. one of queries/*.sql).
    #[arg(long, value_name = "F")]
    pub sql_file: Option<PathBuf>,
    /// The SQL query.
    #[arg(value_name = "SQL")]
    pub sql: Option<String>,
}

/// `gatewatch check-config`.
#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The TOML file to check.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Output formats for query results (clap's side of [`output::Format`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// An aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// A JSON array of row objects.
    Json,
}

impl From<Format> for output::Format {
    fn from(f: Format) -> output::Format {
        match f {
            Format::Table => output::Format::Table,
            Format::Csv => output::Format::Csv,
            Format::Json => output::Format::Json,
        }
    }
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
    /// Decoding threads (default: one per core but one, which applies the decoded events).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// What-if capacity: SERVER=N, or *=N for every server (repeatable). Replaces configured
    /// and announced capacities, so utilisation and alerts are computed against it.
    #[arg(long, value_name = "SERVER=N")]
    pub capacity: Vec<String>,
    /// How the files' lines are written: gatewatch's JSON, a gateway's syslog, or auto (each
    /// line's own format). See docs/gateways.md.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = InputFormatArg::Json)]
    pub input_format: InputFormatArg,
}

/// `--input-format` values (docs/gateways.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputFormatArg {
    /// gatewatch's own JSON events, one per line.
    Json,
    /// Cisco ASA / AnyConnect syslog (%ASA-n-NNNNNN).
    #[value(name = "cisco-asa")]
    CiscoAsa,
    /// Pulse / Ivanti Connect Secure events log.
    Pulse,
    /// Citrix ADC (NetScaler) Gateway syslog.
    #[value(name = "citrix-adc")]
    CitrixAdc,
    /// Palo Alto GlobalProtect (PAN-OS GLOBALPROTECT CSV).
    Globalprotect,
    /// FortiGate SSL-VPN / IPsec event logs (key=value).
    Fortigate,
    /// OpenVPN server log.
    Openvpn,
    /// Recognise each line's format (JSON or any of the above).
    Auto,
}

impl From<InputFormatArg> for crate::event::InputFormat {
    fn from(f: InputFormatArg) -> Self {
        use crate::event::InputFormat as F;
        match f {
            InputFormatArg::Json => F::Json,
            InputFormatArg::CiscoAsa => F::CiscoAsa,
            InputFormatArg::Pulse => F::Pulse,
            InputFormatArg::CitrixAdc => F::CitrixAdc,
            InputFormatArg::Globalprotect => F::GlobalProtect,
            InputFormatArg::Fortigate => F::FortiGate,
            InputFormatArg::Openvpn => F::OpenVpn,
            InputFormatArg::Auto => F::Auto,
        }
    }
}

/// `gatewatch simulate`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("sink").required(true).args(["out", "brokers"])))]
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
    /// Play speed: event time runs X times faster than the clock (60 = an hour per minute);
    /// 0 writes as fast as possible.
    #[arg(long, value_name = "X", default_value_t = 0.0)]
    pub speed: f64,
    /// Write NDJSON to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Produce to Kafka at these bootstrap servers instead (key: the server id).
    #[arg(long, value_name = "HOSTS", requires = "topic")]
    pub brokers: Option<String>,
    /// The topic to produce to (with --brokers).
    #[arg(long, value_name = "T")]
    pub topic: Option<String>,
    /// Write the story as gatewatch's JSON (default) or as a gateway vendor's syslog (what the
    /// vendor's lines cannot say is left out: see docs/gateways.md); not `auto`.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = InputFormatArg::Json)]
    pub output_format: InputFormatArg,
}

/// Simulator scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// The spring 2020 surge: a 150-seat pilot becomes 600–700 concurrent users.
    #[value(name = "march-2020")]
    March2020,
}
