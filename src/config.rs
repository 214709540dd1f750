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
    servers: BTreeMap<String, RawServer>,
    #[serde(default)]
    kafka: RawKafka,
    #[serde(default)]
    http: RawHttp,
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEngine {
    allowed_lateness: Option<String>,
    session_timeout: Option<String>,
    retention: Option<String>,
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
    /// Servers known from configuration, by id.
    pub servers: BTreeMap<String, ServerConfig>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            allowed_lateness_ms: DEFAULT_LATENESS_MS,
            session_timeout_ms: DEFAULT_SESSION_TIMEOUT_MS,
            retention_ms: DEFAULT_RETENTION_MS,
            servers: BTreeMap::new(),
        }
    }
}

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
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            bind: DEFAULT_HTTP_BIND.parse().expect("valid default address"),
        }
    }
}

/// The whole validated configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Engine semantics and known servers.
    pub engine: EngineConfig,
    /// Kafka input and dead letters.
    pub kafka: KafkaConfig,
    /// The HTTP API.
    pub http: HttpConfig,
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
        let http = match raw.http.bind {
            None => HttpConfig::default(),
            Some(b) => HttpConfig {
                bind: parse_bind(&b).map_err(|m| invalid(format!("http.bind: {m}")))?,
            },
        };
        Ok(Config {
            engine,
            kafka,
            http,
        })
    }
}

fn parse_kafka(raw: RawKafka) -> Result<KafkaConfig, String> {
    let mut k = KafkaConfig::default();
    if let Some(b) = raw.brokers {
        if b.trim().is_empty() {
            return Err("kafka.brokers is empty; give host:port[,host:port], or remove it to run the embedded cluster".into());
        }
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
        k.properties.insert(key, value);
    }
    Ok(k)
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
    fn durations() {
        assert_eq!(parse_duration_ms("250ms"), Some(250));
        assert_eq!(parse_duration_ms("5m"), Some(300_000));
        assert_eq!(parse_duration_ms("1d"), Some(86_400_000));
        assert_eq!(parse_duration_ms("5"), None);
        assert_eq!(parse_duration_ms("m"), None);
    }
}
