//! From the file's shapes to typed values: every check, and the one sentence a user sees when a
//! value is wrong (which key, what is wrong, what to write instead).
//!
//! Owns: durations, sizes, brokers, topics, bind addresses, rules. Must not touch: defaults'
//! values (they are beside the typed config in `mod.rs`).

use super::raw::*;
use super::*;

pub(super) fn parse_checkpoint(raw: RawCheckpoint) -> Result<CheckpointConfig, String> {
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

/// Checks a host other members reach this one at.
pub fn check_advertise(a: &str) -> Result<(), String> {
    if a.trim().is_empty() || a.contains([':', '/', ' ']) {
        return Err(format!("{a:?} must be a host name or IP that other members reach this one at, like \"10.0.0.7\" (no port: the HTTP port is used)"));
    }
    Ok(())
}

pub(super) fn parse_cluster(raw: RawCluster) -> Result<ClusterConfig, String> {
    let mut c = ClusterConfig::default();
    if let Some(u) = raw.state_store {
        c.state_store =
            Some(StateStoreUrl::parse(&u).map_err(|m| format!("cluster.state_store: {m}"))?);
    }
    if let Some(a) = raw.advertise {
        check_advertise(&a).map_err(|m| format!("cluster.advertise: {m}"))?;
        c.advertise = Some(a);
    }
    if let Some(w) = raw.query_wait {
        c.query_wait_ms = parse_duration_ms(&w)
            .filter(|ms| (0..=600_000).contains(ms))
            .ok_or_else(|| {
                format!("cluster.query_wait = {w:?} must be a duration up to 10m, like \"10s\"")
            })?;
    }
    Ok(c)
}

pub(super) fn parse_pg(raw: RawPg) -> Result<PgConfig, String> {
    let mut p = PgConfig::default();
    if let Some(b) = raw.bind {
        p.bind = parse_pg_bind(&b).map_err(|m| format!("pg.bind: {m}"))?;
        p.bind_configured = true;
    }
    if let Some(n) = raw.max_connections {
        if !(1..=65536).contains(&n) {
            return Err(format!(
                "pg.max_connections = {n} must be a whole number from 1 to 65536"
            ));
        }
        p.max_connections = n as usize;
    }
    let path = |key: &str, v: Option<String>| -> Result<Option<std::path::PathBuf>, String> {
        match v {
            Some(s) if s.trim().is_empty() => Err(format!(
                "pg.{key} is empty; name a PEM file, or remove pg.tls_cert and pg.tls_key to serve without TLS"
            )),
            v => Ok(v.map(Into::into)),
        }
    };
    p.tls_cert = path("tls_cert", raw.tls_cert)?;
    p.tls_key = path("tls_key", raw.tls_key)?;
    if p.tls_cert.is_some() != p.tls_key.is_some() {
        return Err("pg.tls_cert and pg.tls_key go together: give both PEM files (certificate chain and private key), or neither".into());
    }
    Ok(p)
}

/// `pg.bind` and `run --pg`: an address, or `off`.
pub fn parse_pg_bind(s: &str) -> Result<Option<std::net::SocketAddr>, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    s.trim().parse().map(Some).map_err(|_| {
        format!("{s:?} is not an address to listen on; write it as IP:PORT, e.g. 127.0.0.1:5433, or off")
    })
}

pub(super) fn parse_http(raw: RawHttp) -> Result<HttpConfig, String> {
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

pub(super) fn parse_kafka(raw: RawKafka) -> Result<KafkaConfig, String> {
    let mut k = KafkaConfig::default();
    if let Some(b) = raw.brokers {
        if b.trim().is_empty() {
            return Err("kafka.brokers is empty; give host:port[,host:port], or remove it to run the embedded cluster".into());
        }
        validate_brokers(&b).map_err(|m| format!("kafka.brokers: {m}"))?;
        k.brokers = Some(b);
    }
    if let Some(entries) = raw.topics {
        let mut names = Vec::with_capacity(entries.len());
        for entry in entries {
            let (name, format) = topic_entry(entry)?;
            if let Some(f) = format {
                let format = InputFormat::parse(&f).ok_or_else(|| {
                    format!(
                        "kafka.topics: topic {name:?} has format = {f:?}, which gatewatch does not read; use one of {}",
                        InputFormat::names()
                    )
                })?;
                if format != InputFormat::Json {
                    k.formats.insert(name.clone(), format);
                }
            }
            names.push(name);
        }
        k.topics = validate_topics(names).map_err(|m| format!("kafka.topics: {m}"))?;
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

pub(super) fn duration(key: &str, v: &Option<String>, default: i64) -> Result<i64, String> {
    match v {
        None => Ok(default),
        Some(s) => parse_duration_ms(s).ok_or_else(|| {
            format!(
                "{key} = {s:?} is not a duration; write it like \"90s\", \"5m\", \"12h\" or \"1d\""
            )
        }),
    }
}

pub(super) fn parse_alerts(raw: RawAlerts) -> Result<AlertsConfig, String> {
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

pub(super) fn parse_rule(r: RawRule, default_repeat: Option<i64>) -> Result<RuleConfig, String> {
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

/// One `kafka.topics` entry: a name, or a table of `name` and optional `format`.
fn topic_entry(entry: toml::Value) -> Result<(String, Option<String>), String> {
    const SHAPE: &str = "each kafka.topics entry is a topic name, or a table with name = \"...\" and optionally format = \"...\"";
    match entry {
        toml::Value::String(name) => Ok((name, None)),
        toml::Value::Table(mut t) => {
            let name = match t.remove("name") {
                Some(toml::Value::String(n)) => n,
                _ => return Err(format!("kafka.topics: a table has no name; {SHAPE}")),
            };
            let format = match t.remove("format") {
                None => None,
                Some(toml::Value::String(f)) => Some(f),
                Some(_) => {
                    return Err(format!(
                        "kafka.topics: topic {name:?} has a format that is not a string; {SHAPE}"
                    ))
                }
            };
            if let Some(key) = t.keys().next() {
                return Err(format!(
                    "kafka.topics: topic {name:?} has an unknown key {key:?}; {SHAPE}"
                ));
            }
            Ok((name, format))
        }
        _ => Err(format!("kafka.topics: {SHAPE}")),
    }
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

pub(super) fn span_hint(text: &str, span: Option<std::ops::Range<usize>>) -> String {
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
