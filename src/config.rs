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

/// The whole validated configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Engine semantics and known servers.
    pub engine: EngineConfig,
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
        Ok(Config { engine })
    }
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
    fn durations() {
        assert_eq!(parse_duration_ms("250ms"), Some(250));
        assert_eq!(parse_duration_ms("5m"), Some(300_000));
        assert_eq!(parse_duration_ms("1d"), Some(86_400_000));
        assert_eq!(parse_duration_ms("5"), None);
        assert_eq!(parse_duration_ms("m"), None);
    }
}
