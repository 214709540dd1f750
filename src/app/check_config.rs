//! `gatewatch check-config`: validates a config file and says what it configures.

use crate::alerts::Evaluator;
use crate::cli::CheckConfigArgs;
use crate::config::Config;
use crate::config::{Direction, RuleSource};

/// `gatewatch check-config FILE`: validates, then says what the file configures.
pub fn check_config(args: CheckConfigArgs) -> anyhow::Result<()> {
    let mut cfg = Config::load(&args.file)?;
    // `run` takes the token from the environment as well: check what `run` would use.
    cfg.http.token_from_env().map_err(anyhow::Error::msg)?;
    if !cfg.alerts.rules.is_empty() {
        // Plans SQL rules and checks what they return now, so a typo is found here and not at
        // the first tick; and before "valid" is printed, so the answer is one thing.
        Evaluator::new(&cfg.alerts.rules, &cfg.engine)?;
    }
    let k = &cfg.kafka;
    println!("{}: valid", args.file.display());
    match &k.brokers {
        Some(b) => println!(
            "  kafka: brokers {b}, topics {}, group {}",
            k.topics.join(","),
            k.group
        ),
        None => println!(
            "  kafka: no brokers: `gatewatch run` starts the embedded cluster and simulator"
        ),
    }
    if !k.formats.is_empty() {
        let formats: Vec<String> = k.formats.iter().map(|(t, f)| format!("{t}={f}")).collect();
        println!("  topic formats: {} (others json)", formats.join(", "));
    }
    let i = &cfg.input;
    println!(
        "  syslog stamps: year {}, local time {}",
        i.year
            .map_or("current (rolls over at New Year)".to_string(), |y| y
                .to_string()),
        match i.timezone {
            crate::event::syslog::LocalTime::Offset(0) => "UTC".to_string(),
            crate::event::syslog::LocalTime::Offset(ms) => format!("UTC{:+}min", ms / 60_000),
            crate::event::syslog::LocalTime::Zone(z) => z.name().to_string(),
        }
    );
    let dlq: Vec<String> = k
        .topics
        .iter()
        .map(|t| k.dead_letter_topic_for(t))
        .collect();
    println!("  dead letters: {}", dlq.join(","));
    if !k.properties.is_empty() {
        let keys: Vec<&str> = k.properties.keys().map(String::as_str).collect();
        println!("  librdkafka properties: {}", keys.join(", "));
    }
    let h = &cfg.http;
    println!(
        "  http: {}, {}, body limit {} bytes, queries: timeout {}, memory {} MiB, {} rows at most",
        h.bind,
        if h.token.is_some() {
            "bearer token required"
        } else {
            "no token (set http.token or GATEWATCH_HTTP_TOKEN to require one)"
        },
        h.max_body_bytes,
        human_ms(h.query_timeout_ms),
        h.query_memory_bytes >> 20,
        h.max_rows
    );
    match cfg.pg.bind {
        Some(bind) => println!(
            "  postgresql: {bind}, {}, {}, {} connections at most",
            if h.token.is_some() {
                "SCRAM-SHA-256 with the token as password"
            } else {
                "no password (no token)"
            },
            if cfg.pg.tls_cert.is_some() {
                "TLS offered"
            } else {
                "no TLS"
            },
            cfg.pg.max_connections
        ),
        None => println!("  postgresql: off"),
    }
    match &cfg.cluster.state_store {
        Some(url) => println!(
            "  cluster: state store {}, a checkpoint of each partition every {}, keep {}; reached at {}; queries wait {} for partitions in transit",
            url.0,
            human_ms(cfg.checkpoint.interval_ms),
            cfg.checkpoint.keep,
            cfg.cluster
                .advertise
                .as_deref()
                .unwrap_or("the HTTP bind address"),
            human_ms(cfg.cluster.query_wait_ms)
        ),
        None => println!("  cluster: no (a single instance)"),
    }
    match &cfg.checkpoint.dir {
        Some(_) if cfg.cluster.state_store.is_some() => {
            println!("  checkpoints: checkpoint.dir is not used in a cluster (the state store is)")
        }
        Some(d) => println!(
            "  checkpoints: {} every {}, keep {}",
            d.display(),
            human_ms(cfg.checkpoint.interval_ms),
            cfg.checkpoint.keep
        ),
        None => println!("  checkpoints: none (a restart rebuilds from Kafka)"),
    }
    if let Some(d) = &cfg.archive {
        println!("  archive: {}", d.display());
    }
    let e = &cfg.engine;
    println!(
        "  engine: allowed_lateness {}, session_timeout {}, retention {}",
        human_ms(e.allowed_lateness_ms),
        human_ms(e.session_timeout_ms),
        human_ms(e.retention_ms)
    );
    for (id, s) in &e.servers {
        println!(
            "  server {id}: capacity {}, site {}",
            s.capacity.map_or("unknown".to_string(), |c| c.to_string()),
            s.site.as_deref().unwrap_or("-")
        );
    }
    let a = &cfg.alerts;
    if !a.rules.is_empty() {
        println!(
            "  alerts: topic {}, idle_timeout {}, {} webhook(s)",
            a.topic,
            human_ms(a.idle_timeout_ms),
            a.webhooks.len()
        );
    }
    for r in &a.rules {
        let what = match &r.source {
            RuleSource::Measure { measure, window_ms } if *window_ms > 0 => {
                format!("{} over {}", measure.as_str(), human_ms(*window_ms))
            }
            RuleSource::Measure { measure, .. } => measure.as_str().to_string(),
            RuleSource::Sql(_) => "sql".to_string(),
        };
        let dir = match r.direction {
            Direction::Above => "above",
            Direction::Below => "below",
        };
        let threshold = match (r.threshold, r.clear) {
            (Some(t), Some(c)) if c != t => format!("{dir} {t}, clears at {c}"),
            (Some(t), _) => format!("{dir} {t}"),
            (None, _) => "every row returned".to_string(),
        };
        println!(
            "  rule {}: {what}, fires {threshold}, for {}, every {}, severity {}",
            r.name,
            human_ms(r.for_ms),
            human_ms(r.every_ms),
            r.severity
        );
    }
    Ok(())
}

fn human_ms(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    for (unit, n) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms >= n && ms % n == 0 {
            return format!("{}{unit}", ms / n);
        }
    }
    format!("{ms}ms")
}
