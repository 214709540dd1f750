//! Configuration: the TOML file, validated once into typed values.
//!
//! Owns: the config file format (`deny_unknown_fields` everywhere, durations as `"5m"`), defaults,
//! and the one-sentence errors a user sees for a bad file. Must not touch: anything at run time.
//!
//! Rooms: the typed config and its defaults (this file), the file's shapes as serde reads them
//! (`raw`), the checks from one to the other (`parse`). The reference for users is
//! `docs/operations.md`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::event::syslog::LocalTime;
use crate::event::InputFormat;

/// Default `allowed_lateness`: 5 minutes.
pub const DEFAULT_LATENESS_MS: i64 = 5 * 60_000;
/// Default `session_timeout`: 12 hours.
pub const DEFAULT_SESSION_TIMEOUT_MS: i64 = 12 * 3_600_000;
/// Default in-memory retention: 24 hours.
pub const DEFAULT_RETENTION_MS: i64 = 24 * 3_600_000;
/// Default `input.max_clock_skew`: how far ahead of the wall clock an event may be (live).
pub const DEFAULT_MAX_CLOCK_SKEW_MS: i64 = 15 * 60_000;
/// Default `input.max_lead`: how far ahead of the rest of the stream one server may be, 12 h:
/// longer than a night with no events at all (the fleet's first connect of the morning must not
/// be refused), shorter than the default retention (a jump it lets through cannot empty it).
pub const DEFAULT_MAX_LEAD_MS: i64 = 12 * 3_600_000;

/// A configuration problem, phrased for the person who wrote the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}; check the path given to --config")]
    Read {
        /// The path as given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key, or a wrong type.
    #[error("config file {path} is not valid: {message}")]
    Parse {
        /// The path as given.
        path: String,
        /// What toml said, on one line.
        message: String,
    },
    /// A value that parses but makes no sense.
    #[error("config file {path}: {message}")]
    Invalid {
        /// The path as given.
        path: String,
        /// What is wrong and what to do.
        message: String,
    },
}

mod parse;
mod raw;
#[cfg(test)]
mod tests;

use parse::*;
pub use parse::{
    check_advertise, parse_bind, parse_duration_ms, parse_pg_bind, parse_size, validate_brokers,
    validate_topic, validate_topics,
};
use raw::*;

/// A configured gateway server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Max concurrent sessions, if known.
    pub capacity: Option<u32>,
    /// The site the server belongs to.
    pub site: Option<String>,
}

/// The engine's semantics knobs (docs/events-and-semantics.md), all in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// How far behind its server's newest event an event may be and still be placed exactly.
    pub allowed_lateness_ms: i64,
    /// A session with no event for this long has ended (`expired`).
    pub session_timeout_ms: i64,
    /// How much event time stays in memory.
    pub retention_ms: i64,
    /// Most memory the `events` table may hold, bytes; past it its oldest rows go early.
    pub events_memory_bytes: usize,
    /// Servers known from configuration, by id.
    pub servers: BTreeMap<String, ServerConfig>,
    /// What-if capacities (`replay --capacity`): they replace every configured and announced
    /// capacity of the server; the key `*` applies to every server without its own.
    pub capacity_overrides: BTreeMap<String, u32>,
    /// Whether accepted events are kept as the `events` table. Always on in the service;
    /// `replay` turns it off when neither its query nor an SQL alert rule reads `events`.
    pub keep_events: bool,
    /// Whether the cumulative latency histograms behind `/metrics` are kept. Always on in the
    /// service; `replay`, which serves no metrics, turns it off.
    pub keep_prometheus: bool,
    /// `input.max_clock_skew`: an event further ahead of the wall clock is `future` (live
    /// service only).
    pub max_clock_skew_ms: i64,
    /// `input.max_lead`: an event further ahead of the stream's newest event is `future`
    /// unless another server confirms its time (see `state::clock`).
    pub max_lead_ms: i64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            allowed_lateness_ms: DEFAULT_LATENESS_MS,
            session_timeout_ms: DEFAULT_SESSION_TIMEOUT_MS,
            retention_ms: DEFAULT_RETENTION_MS,
            events_memory_bytes: DEFAULT_EVENTS_MEMORY_BYTES,
            servers: BTreeMap::new(),
            capacity_overrides: BTreeMap::new(),
            keep_events: true,
            keep_prometheus: true,
            max_clock_skew_ms: DEFAULT_MAX_CLOCK_SKEW_MS,
            max_lead_ms: DEFAULT_MAX_LEAD_MS,
        }
    }
}

/// Default cap on the `events` table's memory: 4 GiB (a normal day of ~700 users is ~200 MB).
pub const DEFAULT_EVENTS_MEMORY_BYTES: usize = 4 << 30;

/// Default topic the service reads.
pub const DEFAULT_TOPIC: &str = "gateway.sessions";
/// Default consumer group.
pub const DEFAULT_GROUP: &str = "gatewatch";
/// Default HTTP listen address: loopback only.
pub const DEFAULT_HTTP_BIND: &str = "127.0.0.1:8080";

/// Where events come from (`[kafka]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// `bootstrap.servers`; `None` runs the embedded in-process cluster and simulator.
    pub brokers: Option<String>,
    /// Topics to consume (at least one).
    pub topics: Vec<String>,
    /// The input format of each topic that has one other than `json` (`[[kafka.topics]]`
    /// `format`, or `run --input-format` for `--topic`).
    pub formats: BTreeMap<String, InputFormat>,
    /// Consumer group id.
    pub group: String,
    /// Where rejected messages go; `None` means `<source topic>.dlq`.
    pub dead_letter_topic: Option<String>,
    /// librdkafka properties passed through as given (SASL, TLS, tuning).
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: None,
            topics: vec![DEFAULT_TOPIC.to_string()],
            formats: BTreeMap::new(),
            group: DEFAULT_GROUP.to_string(),
            dead_letter_topic: None,
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// The input format of `topic` (`json` unless configured).
    pub fn format_of(&self, topic: &str) -> InputFormat {
        self.formats.get(topic).copied().unwrap_or_default()
    }

    /// The dead-letter topic for messages read from `source`.
    pub fn dead_letter_topic_for(&self, source: &str) -> String {
        match &self.dead_letter_topic {
            Some(t) => t.clone(),
            None => format!("{source}.dlq"),
        }
    }
}

/// The HTTP API (`[http]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Listen address.
    pub bind: std::net::SocketAddr,
    /// Bearer token every endpoint but `/healthz` requires (`[http] token`, or the
    /// [`TOKEN_ENV`] environment variable, which wins). None: no authentication.
    pub token: Option<String>,
    /// Largest request body accepted, bytes.
    pub max_body_bytes: usize,
    /// Most rows one `POST /api/sql` may return.
    pub max_rows: usize,
    /// Longest one `POST /api/sql` may run, ms.
    pub query_timeout_ms: i64,
    /// Memory one query may hold for joins, sorts and aggregations, bytes.
    pub query_memory_bytes: usize,
    /// Most bytes one result may hold before it is encoded.
    pub max_result_bytes: usize,
    /// Most queries running at once (`[http] max_queries`).
    pub max_queries: usize,
    /// Most HTTP connections open at once; more are closed as they arrive.
    pub max_connections: usize,
    /// Longest a client may take to send a request's headers, ms.
    pub header_timeout_ms: i64,
    /// Longest a client may take to send a request's body, ms.
    pub body_timeout_ms: i64,
}

/// The PostgreSQL front door (`[pg]`, `run --pg`; docs/postgres.md). Its queries share
/// `[http]`'s limits (rows, timeout, memory, running queries) and token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgConfig {
    /// Listen address; None: off.
    pub bind: Option<std::net::SocketAddr>,
    /// Whether `bind` was configured (`pg.bind`, `--pg`) rather than the default: only the
    /// default may be busy without stopping the service (a second instance on one machine).
    pub bind_configured: bool,
    /// Most connections open at once.
    pub max_connections: usize,
    /// PEM certificate chain for TLS; with `tls_key`, clients may (and with `sslmode=require`,
    /// must) encrypt.
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<std::path::PathBuf>,
}

/// Default PostgreSQL listen address: loopback, one above PostgreSQL's own 5432 so that a
/// database on the same machine keeps its port.
pub const DEFAULT_PG_BIND: &str = "127.0.0.1:5433";
/// Default most PostgreSQL connections open at once.
pub const DEFAULT_PG_MAX_CONNECTIONS: usize = 64;

impl Default for PgConfig {
    fn default() -> Self {
        PgConfig {
            bind: Some(DEFAULT_PG_BIND.parse().expect("valid default address")),
            bind_configured: false,
            max_connections: DEFAULT_PG_MAX_CONNECTIONS,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// The environment variable that sets (and overrides) `[http] token`.
pub const TOKEN_ENV: &str = "GATEWATCH_HTTP_TOKEN";
/// The shortest bearer token accepted.
pub const MIN_TOKEN_CHARS: usize = 16;
/// Default request body limit: 1 MiB (SQL text; nothing bigger is ever posted).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
/// Default result-row limit of `POST /api/sql`.
pub const DEFAULT_MAX_ROWS: usize = 100_000;
/// Default query timeout of `POST /api/sql`: 30 s.
pub const DEFAULT_QUERY_TIMEOUT_MS: i64 = 30_000;
/// Default query memory limit: 1 GiB.
pub const DEFAULT_QUERY_MEMORY_BYTES: usize = 1 << 30;
/// Default result size limit: 256 MiB (100,000 rows of the widest table are about 40 MiB).
pub const DEFAULT_MAX_RESULT_BYTES: usize = 256 << 20;
/// Default number of queries running at once: 4 (the dashboard sends one at a time).
pub const DEFAULT_MAX_QUERIES: usize = 4;
/// Default connection limit: 256, well under the usual 1,024 descriptors a process may open.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Default header read timeout: 10 s (also how long a kept-alive connection may sit idle).
pub const DEFAULT_HEADER_TIMEOUT_MS: i64 = 10_000;
/// Default body read timeout: 10 s for at most `http.max_body` of SQL text.
pub const DEFAULT_BODY_TIMEOUT_MS: i64 = 10_000;

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            bind: DEFAULT_HTTP_BIND.parse().expect("valid default address"),
            token: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_rows: DEFAULT_MAX_ROWS,
            query_timeout_ms: DEFAULT_QUERY_TIMEOUT_MS,
            query_memory_bytes: DEFAULT_QUERY_MEMORY_BYTES,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            max_queries: DEFAULT_MAX_QUERIES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout_ms: DEFAULT_HEADER_TIMEOUT_MS,
            body_timeout_ms: DEFAULT_BODY_TIMEOUT_MS,
        }
    }
}

impl HttpConfig {
    /// Takes the token from [`TOKEN_ENV`] when it is set. Set but empty or blank is an error,
    /// as `token = ""` in the file is: a secret that came out empty (a missing secret file, a
    /// typo in a variable) must not silently turn authentication off.
    pub fn token_from_env(&mut self) -> Result<(), String> {
        if let Some(t) = std::env::var_os(TOKEN_ENV) {
            let Some(t) = t.to_str() else {
                return Err(format!("{TOKEN_ENV} is not valid UTF-8; set it to a token of at least {MIN_TOKEN_CHARS} characters (`openssl rand -hex 32`)"));
            };
            if t.trim().is_empty() {
                return Err(format!("{TOKEN_ENV} is set but empty; set it to a token of at least {MIN_TOKEN_CHARS} characters (`openssl rand -hex 32`), or unset it to run without authentication"));
            }
            if t.trim().len() < MIN_TOKEN_CHARS {
                return Err(format!("{TOKEN_ENV} must be at least {MIN_TOKEN_CHARS} characters; generate one with `openssl rand -hex 32`"));
            }
            self.token = Some(t.trim().to_string());
        }
        Ok(())
    }
}

/// Default topic alert transitions are produced to.
pub const DEFAULT_ALERTS_TOPIC: &str = "gatewatch.alerts";
/// Default wall-clock idle time after which the live service evaluates rules up to the newest
/// event time (instead of the newest event time minus the lateness window).
pub const DEFAULT_IDLE_TIMEOUT_MS: i64 = 30_000;

/// The shipped example rules (`docker/alert-rules.toml`): the embedded demo's rules.
pub const DEMO_RULES: &str = include_str!("../../docker/alert-rules.toml");

/// A built-in per-server measure (docs/alerts.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Measure {
    /// Active sessions / capacity, at the end of the second before the evaluation time.
    Utilisation,
    /// p99 of `rtt_ms` over the window (exact merge of minute histograms), ms.
    RttP99,
    /// p99 of `setup_ms` over the window, ms.
    SetupP99,
    /// Reject events per minute over the window.
    RejectRate,
    /// Auth failures per minute over the window.
    AuthFailRate,
    /// Minutes until capacity at the net connect rate of the window (NULL when not growing).
    MinutesToFull,
}

impl Measure {
    /// Every measure, in documentation order.
    pub const ALL: [Measure; 6] = [
        Measure::Utilisation,
        Measure::RttP99,
        Measure::SetupP99,
        Measure::RejectRate,
        Measure::AuthFailRate,
        Measure::MinutesToFull,
    ];

    /// The name used in config files.
    pub fn as_str(self) -> &'static str {
        match self {
            Measure::Utilisation => "utilisation",
            Measure::RttP99 => "rtt_p99",
            Measure::SetupP99 => "setup_p99",
            Measure::RejectRate => "reject_rate",
            Measure::AuthFailRate => "auth_fail_rate",
            Measure::MinutesToFull => "minutes_to_full",
        }
    }

    /// The window used when a rule names none (`utilisation` has none).
    pub fn default_window_ms(self) -> i64 {
        match self {
            Measure::Utilisation => 0,
            Measure::RttP99 | Measure::SetupP99 => 5 * 60_000,
            Measure::RejectRate | Measure::AuthFailRate => 60_000,
            Measure::MinutesToFull => 10 * 60_000,
        }
    }
}

/// What a rule measures.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleSource {
    /// A built-in measure, per server, over `window_ms` (0 for instantaneous measures).
    Measure {
        /// Which measure.
        measure: Measure,
        /// Look-back window.
        window_ms: i64,
    },
    /// An SQL query; each row is one instance, keyed by its non-`value` columns.
    Sql(String),
}

/// Which side of the threshold is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Fires when the value is above the threshold.
    Above,
    /// Fires when the value is below the threshold.
    Below,
}

/// Which servers a built-in rule watches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Scope {
    /// Every server.
    #[default]
    All,
    /// These servers.
    Servers(Vec<String>),
    /// Servers of this site.
    Site(String),
}

/// One alert rule (`[[alerts.rules]]`), validated.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleConfig {
    /// Unique name.
    pub name: String,
    /// What it measures.
    pub source: RuleSource,
    /// Which side is bad.
    pub direction: Direction,
    /// The firing threshold; `None` only for SQL rules, where every returned row is firing.
    pub threshold: Option<f64>,
    /// The clear threshold (hysteresis); equals `threshold` unless set.
    pub clear: Option<f64>,
    /// How long the condition must hold before firing, ms of event time.
    pub for_ms: i64,
    /// How long the clear condition must hold before resolving, ms of event time.
    pub keep_firing_for_ms: i64,
    /// Evaluation interval, ms of event time.
    pub every_ms: i64,
    /// Severity, passed through to every record.
    pub severity: String,
    /// Labels, passed through to every record.
    pub labels: BTreeMap<String, String>,
    /// Servers watched (built-in measures).
    pub scope: Scope,
    /// Re-send a still-firing alert to the sinks this often (event time); `None`: never.
    pub repeat_interval_ms: Option<i64>,
}

/// A webhook sink (`[[alerts.webhooks]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// `http://host:port/path`.
    pub url: String,
    /// Per-attempt timeout.
    pub timeout_ms: i64,
    /// Attempts after the first.
    pub retries: u32,
    /// First retry delay; doubles per retry.
    pub backoff_ms: i64,
}

/// Alert rules and sinks (`[alerts]`).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertsConfig {
    /// Kafka topic for transitions (`gatewatch run`).
    pub topic: String,
    /// Wall-clock quiet time after which the live service evaluates up to the newest event.
    pub idle_timeout_ms: i64,
    /// Webhooks.
    pub webhooks: Vec<WebhookConfig>,
    /// Rules, in file order.
    pub rules: Vec<RuleConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            topic: DEFAULT_ALERTS_TOPIC.to_string(),
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            webhooks: Vec::new(),
            rules: Vec::new(),
        }
    }
}

/// The whole validated configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// Engine semantics and known servers.
    pub engine: EngineConfig,
    /// Kafka input and dead letters.
    pub kafka: KafkaConfig,
    /// How gateway syslog's incomplete stamps are completed (`[input] year`, `timezone`).
    pub input: InputConfig,
    /// The HTTP API.
    pub http: HttpConfig,
    /// The PostgreSQL front door.
    pub pg: PgConfig,
    /// Alert rules and sinks.
    pub alerts: AlertsConfig,
    /// Checkpoints of the live service's state.
    pub checkpoint: CheckpointConfig,
    /// The Parquet archive directory (`[archive] dir`, `run --archive`); None: no archive.
    pub archive: Option<std::path::PathBuf>,
    /// Membership of a cluster of instances (`[cluster]`, docs/cluster.md).
    pub cluster: ClusterConfig,
}

/// A cluster of instances on one consumer group (`[cluster]`, `run --state-store`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Where per-partition checkpoints and the members' addresses are kept (`file:///dir`,
    /// `s3://bucket/prefix`, `gs://…`, `az://…`); None: a single instance, as before.
    pub state_store: Option<StateStoreUrl>,
    /// The host other members reach this one's HTTP port at; None: the HTTP bind address
    /// (which must then not be 0.0.0.0).
    pub advertise: Option<String>,
    /// How long a whole-cluster query waits for partitions in transit to be restored, ms.
    pub query_wait_ms: i64,
}

/// Default wait of a query for partitions in transit: 10 s.
pub const DEFAULT_QUERY_WAIT_MS: i64 = 10_000;

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            state_store: None,
            advertise: None,
            query_wait_ms: DEFAULT_QUERY_WAIT_MS,
        }
    }
}

/// A state store's URL, checked: its scheme is one gatewatch knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateStoreUrl(pub String);

impl StateStoreUrl {
    /// Checks `s`: `file:///absolute/dir`, `s3://bucket[/prefix]`, `gs://…`, `az://…`.
    pub fn parse(s: &str) -> Result<StateStoreUrl, String> {
        let s = s.trim();
        let Some((scheme, rest)) = s.split_once("://") else {
            return Err(format!(
                "{s:?} is not a URL; write file:///shared/dir or s3://bucket/prefix"
            ));
        };
        match scheme {
            "file" if rest.starts_with('/') && rest.len() > 1 => {}
            "file" => {
                return Err(format!(
                    "{s:?} names no absolute directory; write file:///shared/dir (three slashes)"
                ))
            }
            "s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss" if !rest.is_empty() => {}
            _ => {
                return Err(format!(
                    "{s:?}: gatewatch keeps state in file:///dir, s3://bucket, gs://bucket or az://container"
                ))
            }
        }
        Ok(StateStoreUrl(s.to_string()))
    }
}

/// Completing gateway syslog stamps (`[input]`; docs/gateways.md, "Time").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputConfig {
    /// `input.year`: the year of year-less stamps (a replay's first line; pinned in `run`);
    /// `None`: the current year, rolling over at New Year.
    pub year: Option<i64>,
    /// `input.timezone`: where local times without a zone are (default UTC).
    pub timezone: LocalTime,
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            year: None,
            timezone: LocalTime::Offset(0),
        }
    }
}

/// Checkpoints (`[checkpoint]`, `run --checkpoint-dir`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointConfig {
    /// Where checkpoints are written; None: no checkpoints (a restart rebuilds from Kafka).
    pub dir: Option<std::path::PathBuf>,
    /// How often one is written while events arrive, ms.
    pub interval_ms: i64,
    /// How many are kept (the newest).
    pub keep: usize,
}

/// Default checkpoint interval: 1 minute.
pub const DEFAULT_CHECKPOINT_INTERVAL_MS: i64 = 60_000;
/// Default number of checkpoints kept.
pub const DEFAULT_CHECKPOINT_KEEP: usize = 3;

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            dir: None,
            interval_ms: DEFAULT_CHECKPOINT_INTERVAL_MS,
            keep: DEFAULT_CHECKPOINT_KEEP,
        }
    }
}

impl Config {
    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Config::parse(&text, &shown)
    }

    /// Validates TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.message().to_string() + &span_hint(text, e.span()),
        })?;
        let invalid = |message: String| ConfigError::Invalid {
            path: origin.to_string(),
            message,
        };
        let mut engine = EngineConfig::default();
        let dur = |key: &str, v: &Option<String>, default: i64| -> Result<i64, ConfigError> {
            match v {
                None => Ok(default),
                Some(s) => parse_duration_ms(s).ok_or_else(|| {
                    invalid(format!(
                        "engine.{key} = {s:?} is not a duration; write it like \"90s\", \"5m\", \"12h\" or \"1d\""
                    ))
                }),
            }
        };
        engine.allowed_lateness_ms = dur(
            "allowed_lateness",
            &raw.engine.allowed_lateness,
            DEFAULT_LATENESS_MS,
        )?;
        engine.session_timeout_ms = dur(
            "session_timeout",
            &raw.engine.session_timeout,
            DEFAULT_SESSION_TIMEOUT_MS,
        )?;
        engine.retention_ms = dur("retention", &raw.engine.retention, DEFAULT_RETENTION_MS)?;
        let input_dur = |key: &str, v: &Option<String>, default: i64| {
            match v {
            None => Ok(default),
            Some(s) => parse_duration_ms(s).filter(|ms| *ms > 0).ok_or_else(|| {
                invalid(format!(
                    "input.{key} = {s:?} is not a duration longer than 0s; write it like \"15m\" or \"1h\""
                ))
            }),
        }
        };
        engine.max_clock_skew_ms = input_dur(
            "max_clock_skew",
            &raw.input.max_clock_skew,
            DEFAULT_MAX_CLOCK_SKEW_MS,
        )?;
        engine.max_lead_ms = input_dur("max_lead", &raw.input.max_lead, DEFAULT_MAX_LEAD_MS)?;
        let mut input = InputConfig::default();
        if let Some(y) = raw.input.year {
            if !(1970..=9999).contains(&y) {
                return Err(invalid(format!(
                    "input.year = {y} is not a year from 1970 to 9999; give the year of the logs' first line, or remove it to use the current year"
                )));
            }
            input.year = Some(y);
        }
        if let Some(tz) = &raw.input.timezone {
            input.timezone = LocalTime::parse(tz).ok_or_else(|| {
                invalid(format!(
                    "input.timezone = {tz:?} is not a time zone; write \"UTC\", an offset like \"+01:00\", or an IANA name like \"Europe/Paris\""
                ))
            })?;
        }
        if let Some(v) = &raw.engine.events_memory {
            engine.events_memory_bytes = parse_size(v).filter(|n| *n >= 1 << 20).ok_or_else(|| {
                invalid("engine.events_memory must be a size of at least 1MiB, like \"512MiB\" or \"4GiB\"".into())
            })?;
        }
        if engine.session_timeout_ms <= 0 {
            return Err(invalid(
                "engine.session_timeout must be longer than 0s".into(),
            ));
        }
        if engine.retention_ms < engine.allowed_lateness_ms || engine.retention_ms < 60_000 {
            return Err(invalid(
                "engine.retention must be at least 1m and at least engine.allowed_lateness".into(),
            ));
        }
        for (id, s) in raw.servers {
            let capacity = match s.capacity {
                None => None,
                Some(c) if c > 0 && c <= u32::MAX as i64 => Some(c as u32),
                Some(c) => {
                    return Err(invalid(format!(
                    "servers.{id}.capacity = {c} must be a whole number of sessions greater than 0"
                )))
                }
            };
            engine.servers.insert(
                id,
                ServerConfig {
                    capacity,
                    site: s.site,
                },
            );
        }
        let kafka = parse_kafka(raw.kafka).map_err(invalid)?;
        let http = parse_http(raw.http).map_err(invalid)?;
        let pg = parse_pg(raw.pg).map_err(invalid)?;
        let alerts = parse_alerts(raw.alerts).map_err(invalid)?;
        let checkpoint = parse_checkpoint(raw.checkpoint).map_err(invalid)?;
        let cluster = parse_cluster(raw.cluster).map_err(invalid)?;
        let archive = match raw.archive.dir {
            Some(d) if d.trim().is_empty() => return Err(invalid(
                "archive.dir is empty; name a directory, or remove it to run without an archive"
                    .into(),
            )),
            d => d.map(Into::into),
        };
        Ok(Config {
            engine,
            kafka,
            input,
            http,
            pg,
            alerts,
            checkpoint,
            archive,
            cluster,
        })
    }
}
