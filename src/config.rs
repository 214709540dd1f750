//! Configuration: the TOML file, validated once into typed values.
//!
//! Owns: the config file format (`deny_unknown_fields` everywhere, durations as `"5m"`), defaults,
//! and the one-sentence errors a user sees for a bad file. Must not touch: anything at run time.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    engine: RawEngine,
    #[serde(default)]
    input: RawInput,
    #[serde(default)]
    servers: BTreeMap<String, RawServer>,
    #[serde(default)]
    kafka: RawKafka,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    alerts: RawAlerts,
    #[serde(default)]
    checkpoint: RawCheckpoint,
    #[serde(default)]
    archive: RawArchive,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    max_clock_skew: Option<String>,
    max_lead: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArchive {
    dir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheckpoint {
    dir: Option<String>,
    interval: Option<String>,
    keep: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    topic: Option<String>,
    idle_timeout: Option<String>,
    repeat_interval: Option<String>,
    #[serde(default)]
    webhooks: Vec<RawWebhook>,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: String,
    timeout: Option<String>,
    retries: Option<u32>,
    backoff: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    measure: Option<String>,
    sql: Option<String>,
    above: Option<f64>,
    below: Option<f64>,
    clear: Option<f64>,
    #[serde(rename = "for")]
    for_: Option<String>,
    keep_firing_for: Option<String>,
    window: Option<String>,
    every: Option<String>,
    severity: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    servers: Option<Vec<String>>,
    site: Option<String>,
    repeat_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKafka {
    brokers: Option<String>,
    topics: Option<Vec<String>>,
    group: Option<String>,
    dead_letter_topic: Option<String>,
    #[serde(default)]
    properties: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    bind: Option<String>,
    token: Option<String>,
    max_body: Option<toml::Value>,
    max_rows: Option<i64>,
    query_timeout: Option<String>,
    query_memory: Option<toml::Value>,
    max_result: Option<toml::Value>,
    max_queries: Option<i64>,
    max_connections: Option<i64>,
    header_timeout: Option<String>,
    body_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEngine {
    allowed_lateness: Option<String>,
    session_timeout: Option<String>,
    retention: Option<String>,
    events_memory: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    capacity: Option<i64>,
    site: Option<String>,
}

/// A configured gateway server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Max concurrent sessions, if known.
    pub capacity: Option<u32>,
    /// The site the server belongs to.
    pub site: Option<String>,
}

/// The engine's semantics knobs (DESIGN §1), all in milliseconds.
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
            group: DEFAULT_GROUP.to_string(),
            dead_letter_topic: None,
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
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
pub const DEMO_RULES: &str = include_str!("../docker/alert-rules.toml");

/// A built-in per-server measure (DESIGN §4).
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
    /// The HTTP API.
    pub http: HttpConfig,
    /// Alert rules and sinks.
    pub alerts: AlertsConfig,
    /// Checkpoints of the live service's state.
    pub checkpoint: CheckpointConfig,
    /// The Parquet archive directory (`[archive] dir`, `run --archive`); None: no archive.
    pub archive: Option<std::path::PathBuf>,
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

fn parse_checkpoint(raw: RawCheckpoint) -> Result<CheckpointConfig, String> {
    let mut c = CheckpointConfig::default();
    if let Some(d) = raw.dir {
        if d.trim().is_empty() {
            return Err("checkpoint.dir is empty; name a directory, or remove it to run without checkpoints".into());
        }
        c.dir = Some(d.into());
    }
    if let Some(i) = raw.interval {
        c.interval_ms = parse_duration_ms(&i).filter(|ms| *ms >= 1000).ok_or_else(|| {
            format!("checkpoint.interval = {i:?} must be a duration of at least 1s, like \"30s\" or \"5m\"")
        })?;
    }
    if let Some(k) = raw.keep {
        if !(1..=100).contains(&k) {
            return Err(format!("checkpoint.keep = {k} must be between 1 and 100"));
        }
        c.keep = k as usize;
    }
    Ok(c)
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
        let alerts = parse_alerts(raw.alerts).map_err(invalid)?;
        let checkpoint = parse_checkpoint(raw.checkpoint).map_err(invalid)?;
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
            http,
            alerts,
            checkpoint,
            archive,
        })
    }
}

fn parse_http(raw: RawHttp) -> Result<HttpConfig, String> {
    let mut h = HttpConfig::default();
    if let Some(b) = raw.bind {
        h.bind = parse_bind(&b).map_err(|m| format!("http.bind: {m}"))?;
    }
    if let Some(t) = raw.token {
        if t.trim().len() < MIN_TOKEN_CHARS {
            return Err(format!("http.token must be at least {MIN_TOKEN_CHARS} characters; generate one with `openssl rand -hex 32`, or remove it to run without authentication"));
        }
        h.token = Some(t.trim().to_string());
    }
    let size = |key: &str, v: &Option<toml::Value>, default: usize| -> Result<usize, String> {
        match v {
            None => Ok(default),
            Some(v) => parse_size(v).filter(|n| *n > 0).ok_or_else(|| {
                let shown = match v {
                    toml::Value::String(s) => format!("{s:?}"),
                    toml::Value::Integer(n) => n.to_string(),
                    other => other.type_str().to_string(),
                };
                format!("http.{key} = {shown} is not a size; write bytes (65536) or \"64KiB\", \"16MiB\", \"2GiB\"")
            }),
        }
    };
    h.max_body_bytes = size("max_body", &raw.max_body, DEFAULT_MAX_BODY_BYTES)?;
    h.query_memory_bytes = size(
        "query_memory",
        &raw.query_memory,
        DEFAULT_QUERY_MEMORY_BYTES,
    )?;
    h.max_result_bytes = size("max_result", &raw.max_result, DEFAULT_MAX_RESULT_BYTES)?;
    if let Some(n) = raw.max_queries {
        if !(1..=1024).contains(&n) {
            return Err(format!(
                "http.max_queries = {n} must be a whole number from 1 to 1024"
            ));
        }
        h.max_queries = n as usize;
    }
    if let Some(n) = raw.max_rows {
        if n <= 0 {
            return Err(format!(
                "http.max_rows = {n} must be a whole number greater than 0"
            ));
        }
        h.max_rows = n as usize;
    }
    if let Some(n) = raw.max_connections {
        if !(1..=65_536).contains(&n) {
            return Err(format!(
                "http.max_connections = {n} must be a whole number from 1 to 65536"
            ));
        }
        h.max_connections = n as usize;
    }
    for (key, raw, ms) in [
        (
            "header_timeout",
            &raw.header_timeout,
            &mut h.header_timeout_ms,
        ),
        ("body_timeout", &raw.body_timeout, &mut h.body_timeout_ms),
    ] {
        if let Some(t) = raw {
            *ms = parse_duration_ms(t).filter(|ms| *ms > 0).ok_or_else(|| {
                format!("http.{key} = {t:?} is not a duration above 0; write it like \"10s\"")
            })?;
        }
    }
    if let Some(t) = raw.query_timeout {
        h.query_timeout_ms = parse_duration_ms(&t).filter(|ms| *ms > 0).ok_or_else(|| {
            format!("http.query_timeout = {t:?} is not a duration above 0; write it like \"30s\" or \"2m\"")
        })?;
    }
    Ok(h)
}

/// A byte size: an integer, or a string with a B, KiB, MiB or GiB suffix (KB/MB/GB mean the same).
pub fn parse_size(v: &toml::Value) -> Option<usize> {
    match v {
        toml::Value::Integer(n) => usize::try_from(*n).ok(),
        toml::Value::String(s) => {
            let s = s.trim();
            let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            let (num, unit) = s.split_at(split);
            let n: usize = num.parse().ok()?;
            let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
                "" | "b" => 1,
                "k" | "kb" | "kib" => 1 << 10,
                "m" | "mb" | "mib" => 1 << 20,
                "g" | "gb" | "gib" => 1 << 30,
                _ => return None,
            };
            n.checked_mul(mult)
        }
        _ => None,
    }
}

fn parse_kafka(raw: RawKafka) -> Result<KafkaConfig, String> {
    let mut k = KafkaConfig::default();
    if let Some(b) = raw.brokers {
        if b.trim().is_empty() {
            return Err("kafka.brokers is empty; give host:port[,host:port], or remove it to run the embedded cluster".into());
        }
        validate_brokers(&b).map_err(|m| format!("kafka.brokers: {m}"))?;
        k.brokers = Some(b);
    }
    if let Some(t) = raw.topics {
        k.topics = validate_topics(t).map_err(|m| format!("kafka.topics: {m}"))?;
    }
    if let Some(g) = raw.group {
        if g.trim().is_empty() {
            return Err("kafka.group is empty; name the consumer group, e.g. \"gatewatch\"".into());
        }
        k.group = g;
    }
    if let Some(t) = raw.dead_letter_topic {
        validate_topic(&t).map_err(|m| format!("kafka.dead_letter_topic: {m}"))?;
        k.dead_letter_topic = Some(t);
    }
    for (key, v) in raw.properties {
        let value = match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            _ => {
                return Err(format!(
                    "kafka.properties.{key} must be a string, number or boolean (librdkafka takes every property as text)"
                ))
            }
        };
        if matches!(
            key.as_str(),
            "bootstrap.servers" | "group.id" | "enable.auto.offset.store"
        ) {
            return Err(format!(
                "kafka.properties.{key} is set by gatewatch itself; use kafka.brokers / kafka.group instead (offsets are stored only after events are applied)"
            ));
        }
        // librdkafka knows its properties and their values: ask it now, so that a typo is
        // found by check-config and at start, not logged by a client later.
        let mut probe = rdkafka::ClientConfig::new();
        probe.set(key.as_str(), value.as_str());
        if let Err(e) = probe.create_native_config() {
            let why = match e {
                rdkafka::error::KafkaError::ClientConfig(_, msg, _, _) => msg,
                e => e.to_string(),
            };
            return Err(format!(
                "kafka.properties.{key} = {value:?} is refused by librdkafka ({why}); check the name and value against librdkafka's CONFIGURATION.md"
            ));
        }
        k.properties.insert(key, value);
    }
    Ok(k)
}

/// Checks a broker list (`host:port[,host:port]`, as librdkafka's `bootstrap.servers` takes
/// it): a list that cannot name a broker would otherwise be retried forever as "unreachable".
pub fn validate_brokers(list: &str) -> Result<(), String> {
    for entry in list.split(',') {
        let entry = entry.trim();
        let bad = |why: &str| {
            Err(format!(
                "{entry:?} is not a broker address ({why}); write host:port, e.g. kafka-1:9092 or [::1]:9092, separated by commas"
            ))
        };
        if entry.is_empty() {
            return bad("an empty entry");
        }
        let address = entry.split_once("://").map_or(entry, |(_, a)| a);
        let (host, port) = if let Some(rest) = address.strip_prefix('[') {
            let Some((ip, after)) = rest.split_once(']') else {
                return bad("an unclosed [");
            };
            if ip.parse::<std::net::Ipv6Addr>().is_err() {
                return bad("not an IPv6 address inside [ ]");
            }
            match after {
                "" => (ip, None),
                p => match p.strip_prefix(':') {
                    Some(p) => (ip, Some(p)),
                    None => return bad("text after ]"),
                },
            }
        } else if address.matches(':').count() > 1 {
            if address.parse::<std::net::Ipv6Addr>().is_err() {
                return bad("too many colons; put an IPv6 address in [ ]");
            }
            (address, None)
        } else {
            match address.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (address, None),
            }
        };
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
        if !host_ok {
            return bad("a host name has only letters, digits, '.', '-' and '_'");
        }
        if let Some(p) = port {
            if !p.parse::<u16>().is_ok_and(|p| p > 0) {
                return bad("the port must be a number from 1 to 65535");
            }
        }
    }
    Ok(())
}

fn duration(key: &str, v: &Option<String>, default: i64) -> Result<i64, String> {
    match v {
        None => Ok(default),
        Some(s) => parse_duration_ms(s).ok_or_else(|| {
            format!(
                "{key} = {s:?} is not a duration; write it like \"90s\", \"5m\", \"12h\" or \"1d\""
            )
        }),
    }
}

fn parse_alerts(raw: RawAlerts) -> Result<AlertsConfig, String> {
    let mut a = AlertsConfig::default();
    if let Some(t) = raw.topic {
        validate_topic(&t).map_err(|m| format!("alerts.topic: {m}"))?;
        a.topic = t;
    }
    a.idle_timeout_ms = duration(
        "alerts.idle_timeout",
        &raw.idle_timeout,
        DEFAULT_IDLE_TIMEOUT_MS,
    )?;
    if a.idle_timeout_ms <= 0 {
        return Err("alerts.idle_timeout must be longer than 0s".into());
    }
    let default_repeat = match &raw.repeat_interval {
        None => None,
        Some(_) => Some(duration("alerts.repeat_interval", &raw.repeat_interval, 0)?),
    };
    for (i, w) in raw.webhooks.into_iter().enumerate() {
        let key = format!("alerts.webhooks[{i}]");
        if !w.url.starts_with("http://") {
            return Err(format!(
                "{key}.url = {:?} must start with http:// (for HTTPS, point it at a local relay)",
                w.url
            ));
        }
        let timeout_ms = duration(&format!("{key}.timeout"), &w.timeout, 5_000)?;
        let backoff_ms = duration(&format!("{key}.backoff"), &w.backoff, 1_000)?;
        if timeout_ms <= 0 {
            return Err(format!("{key}.timeout must be longer than 0s"));
        }
        a.webhooks.push(WebhookConfig {
            url: w.url,
            timeout_ms,
            retries: w.retries.unwrap_or(3),
            backoff_ms,
        });
    }
    let mut names = std::collections::HashSet::new();
    for r in raw.rules {
        let rule = parse_rule(r, default_repeat)?;
        if !names.insert(rule.name.clone()) {
            return Err(format!(
                "alerts.rules: two rules are named {:?}; give each rule its own name",
                rule.name
            ));
        }
        a.rules.push(rule);
    }
    Ok(a)
}

fn parse_rule(r: RawRule, default_repeat: Option<i64>) -> Result<RuleConfig, String> {
    let name = r.name.trim().to_string();
    if name.is_empty() {
        return Err("alerts.rules: a rule has an empty name; name every rule".into());
    }
    let key = |k: &str| format!("alerts.rules {name:?}: {k}");
    let source = match (r.measure, r.sql) {
        (Some(_), Some(_)) => {
            return Err(key("set either measure or sql, not both"));
        }
        (None, None) => {
            return Err(key(
                "set measure (utilisation, rtt_p99, setup_p99, reject_rate, auth_fail_rate, minutes_to_full) or sql",
            ))
        }
        (Some(m), None) => {
            let measure = Measure::ALL
                .into_iter()
                .find(|x| x.as_str() == m)
                .ok_or_else(|| {
                    key(&format!("measure = {m:?} is not one of utilisation, rtt_p99, setup_p99, reject_rate, auth_fail_rate, minutes_to_full"))
                })?;
            let window_ms = duration(&key("window"), &r.window, measure.default_window_ms())?;
            if measure == Measure::Utilisation && r.window.is_some() {
                return Err(key("utilisation is instantaneous; remove window"));
            }
            if measure != Measure::Utilisation
                && (window_ms < 60_000 || window_ms % 60_000 != 0)
            {
                return Err(key("window must be a whole number of minutes, at least 1m"));
            }
            RuleSource::Measure { measure, window_ms }
        }
        (None, Some(sql)) => {
            if r.window.is_some() {
                return Err(key("window applies to built-in measures; an SQL rule chooses its own window in the query"));
            }
            if r.servers.is_some() || r.site.is_some() {
                return Err(key("servers/site apply to built-in measures; filter in the SQL instead"));
            }
            RuleSource::Sql(sql)
        }
    };
    let is_sql = matches!(source, RuleSource::Sql(_));
    let (direction, threshold) = match (r.above, r.below) {
        (Some(_), Some(_)) => return Err(key("set above or below, not both")),
        (Some(t), None) => (Direction::Above, Some(t)),
        (None, Some(t)) => (Direction::Below, Some(t)),
        (None, None) if is_sql => (Direction::Above, None),
        (None, None) => return Err(key("set a threshold: above = X or below = X")),
    };
    if threshold.is_some_and(|t| !t.is_finite()) {
        return Err(key("the threshold must be a finite number"));
    }
    let clear = match (r.clear, threshold) {
        (Some(_), None) => {
            return Err(key("clear needs a threshold (above or below)"));
        }
        (Some(c), Some(t)) => {
            let ok = c.is_finite()
                && match direction {
                    Direction::Above => c <= t,
                    Direction::Below => c >= t,
                };
            if !ok {
                return Err(key(&format!(
                    "clear = {c} must be on the safe side of the threshold ({} {t})",
                    if direction == Direction::Above {
                        "at or below"
                    } else {
                        "at or above"
                    }
                )));
            }
            Some(c)
        }
        (None, t) => t,
    };
    let for_ms = duration(&key("for"), &r.for_, 0)?;
    let keep_firing_for_ms = duration(&key("keep_firing_for"), &r.keep_firing_for, 0)?;
    let every_default = if is_sql { 60_000 } else { 10_000 };
    let every_ms = duration(&key("every"), &r.every, every_default)?;
    if every_ms < 1000 || every_ms % 1000 != 0 {
        return Err(key("every must be a whole number of seconds, at least 1s"));
    }
    let scope = match (r.servers, r.site) {
        (Some(_), Some(_)) => return Err(key("set servers or site, not both")),
        (Some(list), None) if list.is_empty() => {
            return Err(key(
                "servers is empty; list server ids or remove it to watch all",
            ))
        }
        (Some(list), None) => Scope::Servers(list),
        (None, Some(site)) => Scope::Site(site),
        (None, None) => Scope::All,
    };
    let repeat_interval_ms = match &r.repeat_interval {
        None => default_repeat,
        Some(_) => Some(duration(&key("repeat_interval"), &r.repeat_interval, 0)?),
    };
    if repeat_interval_ms.is_some_and(|ms| ms <= 0) {
        return Err(key("repeat_interval must be longer than 0s"));
    }
    Ok(RuleConfig {
        name,
        source,
        direction,
        threshold,
        clear,
        for_ms,
        keep_firing_for_ms,
        every_ms,
        severity: r.severity.unwrap_or_else(|| "warning".into()),
        labels: r.labels,
        scope,
        repeat_interval_ms,
    })
}

/// Checks a list of topic names (non-empty, each valid).
pub fn validate_topics(topics: Vec<String>) -> Result<Vec<String>, String> {
    if topics.is_empty() {
        return Err("no topic given; name at least one, e.g. \"gateway.sessions\"".into());
    }
    for t in &topics {
        validate_topic(t)?;
    }
    Ok(topics)
}

/// Kafka's rule for topic names: 1–249 of `[a-zA-Z0-9._-]`.
pub fn validate_topic(t: &str) -> Result<(), String> {
    let ok = !t.is_empty()
        && t.len() <= 249
        && t != "."
        && t != ".."
        && t.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{t:?} is not a valid Kafka topic name; use 1 to 249 letters, digits, '.', '_' or '-'"
        ))
    }
}

/// Parses a listen address such as `127.0.0.1:8080` or `0.0.0.0:9000`.
pub fn parse_bind(s: &str) -> Result<std::net::SocketAddr, String> {
    s.parse().map_err(|_| {
        format!("{s:?} is not an address to listen on; write it as IP:PORT, e.g. 127.0.0.1:8080")
    })
}

fn span_hint(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(r) => {
            let line = text[..r.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        }
        None => String::new(),
    }
}

/// Parses `"250ms"`, `"90s"`, `"5m"`, `"12h"`, `"1d"` (one number, one unit) to milliseconds.
pub fn parse_duration_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: i64 = num.parse().ok()?;
    let mult = match unit.trim() {
        "ms" => 1,
        "s" => 1000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_file() {
        let c = Config::parse(
            "[engine]\nallowed_lateness = \"2m\"\nsession_timeout = \"1h\"\nretention = \"6h\"\n\n[servers.gw-01]\ncapacity = 120\nsite = \"gland\"\n[servers.gw-02]\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.engine.allowed_lateness_ms, 120_000);
        assert_eq!(c.engine.session_timeout_ms, 3_600_000);
        assert_eq!(c.engine.servers["gw-01"].capacity, Some(120));
        assert_eq!(c.engine.servers["gw-02"].capacity, None);
    }

    #[test]
    fn explains_mistakes() {
        let e = Config::parse("[engine]\nlateness = \"5m\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown field `lateness`") && e.contains("line 2"),
            "{e}"
        );
        let e = Config::parse("[engine]\nretention = \"soon\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a duration"), "{e}");
        let e = Config::parse("[servers.a]\ncapacity = 0\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("greater than 0"), "{e}");
    }

    #[test]
    fn kafka_and_http() {
        let c = Config::parse(
            "[kafka]\nbrokers = \"k1:9092,k2:9092\"\ntopics = [\"a\", \"b\"]\ngroup = \"g\"\n[kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\n\"fetch.wait.max.ms\" = 50\n[http]\nbind = \"0.0.0.0:9000\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.kafka.brokers.as_deref(), Some("k1:9092,k2:9092"));
        assert_eq!(c.kafka.topics, vec!["a", "b"]);
        assert_eq!(c.kafka.dead_letter_topic_for("a"), "a.dlq");
        assert_eq!(c.kafka.properties["fetch.wait.max.ms"], "50");
        assert_eq!(c.http.bind.port(), 9000);
        let e = Config::parse("[kafka]\ntopics = [\"bad topic\"]\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a valid Kafka topic name"), "{e}");
        let e = Config::parse("[http]\nbind = \"localhost\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("IP:PORT"), "{e}");
        let e = Config::parse("[kafka.properties]\n\"group.id\" = \"x\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("kafka.group"), "{e}");
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let c = Config::parse(
            include_str!("../docker/gatewatch.toml"),
            "docker/gatewatch.toml",
        )
        .unwrap();
        assert_eq!(c.kafka.brokers.as_deref(), Some("kafka:9092"));
        assert_eq!(c.engine.servers.len(), 6);
    }

    #[test]
    fn alert_rules() {
        let c = Config::parse(
            "[alerts]\ntopic = \"a.t\"\nidle_timeout = \"5s\"\n[[alerts.webhooks]]\nurl = \"http://h:1/x\"\n[[alerts.rules]]\nname = \"full\"\nmeasure = \"utilisation\"\nabove = 0.9\nclear = 0.8\nfor = \"2m\"\nsite = \"gland\"\nlabels = { team = \"ra\" }\n[[alerts.rules]]\nname = \"q\"\nsql = \"SELECT 1 AS value\"\n",
            "t.toml",
        )
        .unwrap();
        let a = &c.alerts;
        assert_eq!((a.topic.as_str(), a.idle_timeout_ms), ("a.t", 5000));
        assert_eq!(a.webhooks[0].retries, 3);
        let r = &a.rules[0];
        assert_eq!(
            (
                r.threshold,
                r.clear,
                r.for_ms,
                r.every_ms,
                r.severity.as_str()
            ),
            (Some(0.9), Some(0.8), 120_000, 10_000, "warning")
        );
        assert_eq!(r.scope, Scope::Site("gland".into()));
        assert_eq!(a.rules[1].every_ms, 60_000);
        assert_eq!(a.rules[1].threshold, None);
        for (toml, says) in [
            (
                "name = \"x\"\nmeasure = \"util\"\nabove = 1",
                "not one of utilisation",
            ),
            ("name = \"x\"\nmeasure = \"utilisation\"", "set a threshold"),
            (
                "name = \"x\"\nmeasure = \"utilisation\"\nabove = 0.9\nclear = 0.95",
                "safe side",
            ),
            (
                "name = \"x\"\nmeasure = \"rtt_p99\"\nabove = 9\nwindow = \"90s\"",
                "whole number of minutes",
            ),
            (
                "name = \"x\"\nsql = \"SELECT 1\"\nmeasure = \"rtt_p99\"",
                "not both",
            ),
            (
                "name = \"x\"\nmeasure = \"utilisation\"\nabove = 1\nfor = \"soon\"",
                "not a duration",
            ),
        ] {
            let e = Config::parse(&format!("[[alerts.rules]]\n{toml}\n"), "t.toml")
                .unwrap_err()
                .to_string();
            assert!(e.contains(says) && e.contains("\"x\""), "{e}");
        }
        let e = Config::parse(
            "[[alerts.rules]]\nname = \"x\"\nsql = \"SELECT 1\"\n[[alerts.rules]]\nname = \"x\"\nsql = \"SELECT 1\"\n",
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("two rules are named"), "{e}");
    }

    #[test]
    fn the_shipped_rules_are_valid() {
        let c = Config::parse(DEMO_RULES, "docker/alert-rules.toml").unwrap();
        assert_eq!(c.alerts.rules.len(), 5);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("250ms"), Some(250));
        assert_eq!(parse_duration_ms("5m"), Some(300_000));
        assert_eq!(parse_duration_ms("1d"), Some(86_400_000));
        assert_eq!(parse_duration_ms("5"), None);
        assert_eq!(parse_duration_ms("m"), None);
    }
}
