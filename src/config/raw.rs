//! The config file's shapes as serde reads them (`deny_unknown_fields` everywhere): plain
//! strings and numbers, checked and turned into typed values by `parse`.
//!
//! Owns: key names. Must not touch: validation (that is `parse`).

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) engine: RawEngine,
    #[serde(default)]
    pub(super) input: RawInput,
    #[serde(default)]
    pub(super) servers: BTreeMap<String, RawServer>,
    #[serde(default)]
    pub(super) kafka: RawKafka,
    #[serde(default)]
    pub(super) http: RawHttp,
    #[serde(default)]
    pub(super) pg: RawPg,
    #[serde(default)]
    pub(super) alerts: RawAlerts,
    #[serde(default)]
    pub(super) checkpoint: RawCheckpoint,
    #[serde(default)]
    pub(super) archive: RawArchive,
    #[serde(default)]
    pub(super) cluster: RawCluster,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    pub(super) state_store: Option<String>,
    pub(super) advertise: Option<String>,
    pub(super) query_wait: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInput {
    pub(super) max_clock_skew: Option<String>,
    pub(super) max_lead: Option<String>,
    pub(super) year: Option<i64>,
    pub(super) timezone: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawArchive {
    pub(super) dir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCheckpoint {
    pub(super) dir: Option<String>,
    pub(super) interval: Option<String>,
    pub(super) keep: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlerts {
    pub(super) topic: Option<String>,
    pub(super) idle_timeout: Option<String>,
    pub(super) repeat_interval: Option<String>,
    #[serde(default)]
    pub(super) webhooks: Vec<RawWebhook>,
    #[serde(default)]
    pub(super) rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhook {
    pub(super) url: String,
    pub(super) timeout: Option<String>,
    pub(super) retries: Option<u32>,
    pub(super) backoff: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    pub(super) name: String,
    pub(super) measure: Option<String>,
    pub(super) sql: Option<String>,
    pub(super) above: Option<f64>,
    pub(super) below: Option<f64>,
    pub(super) clear: Option<f64>,
    #[serde(rename = "for")]
    pub(super) for_: Option<String>,
    pub(super) keep_firing_for: Option<String>,
    pub(super) window: Option<String>,
    pub(super) every: Option<String>,
    pub(super) severity: Option<String>,
    #[serde(default)]
    pub(super) labels: BTreeMap<String, String>,
    pub(super) servers: Option<Vec<String>>,
    pub(super) site: Option<String>,
    pub(super) repeat_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKafka {
    pub(super) brokers: Option<String>,
    /// Names, or `{ name, format }` tables (`[[kafka.topics]]`): read by `parse` (serde's
    /// error for an untagged enum would not say what is wrong).
    pub(super) topics: Option<Vec<toml::Value>>,
    pub(super) group: Option<String>,
    pub(super) dead_letter_topic: Option<String>,
    #[serde(default)]
    pub(super) properties: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub(super) bind: Option<String>,
    pub(super) token: Option<String>,
    pub(super) max_body: Option<toml::Value>,
    pub(super) max_rows: Option<i64>,
    pub(super) query_timeout: Option<String>,
    pub(super) query_memory: Option<toml::Value>,
    pub(super) max_result: Option<toml::Value>,
    pub(super) max_queries: Option<i64>,
    pub(super) max_connections: Option<i64>,
    pub(super) header_timeout: Option<String>,
    pub(super) body_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPg {
    pub(super) bind: Option<String>,
    pub(super) max_connections: Option<i64>,
    pub(super) tls_cert: Option<String>,
    pub(super) tls_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEngine {
    pub(super) allowed_lateness: Option<String>,
    pub(super) session_timeout: Option<String>,
    pub(super) retention: Option<String>,
    pub(super) events_memory: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) capacity: Option<i64>,
    pub(super) site: Option<String>,
}
