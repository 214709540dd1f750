//! `GET /metrics`: the Prometheus text exposition of the service (per-server gauges and
//! histograms, ingest and Kafka counters, alerts, checkpoints, the archive, the process).
//!
//! Owns: metric names, labels and their escaping. Must not touch: anything it reports on,
//! beyond reading it.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::alerts::LiveAlerts;
use crate::event::EventType;
use crate::state::alert_log::firing_now;
use crate::state::{Engine, Snapshot, SnapshotScope};

use super::{process, ServiceState};

/// `GET /metrics`.
pub(super) async fn metrics(State(state): State<Arc<ServiceState>>) -> Response {
    let counters = state.engine.lock().expect("engine lock").counters().clone();
    let k = &state.kafka;
    let mut out = String::with_capacity(4096);
    family(
        &mut out,
        "gatewatch_events_total",
        "counter",
        "Events accepted, by type.",
    );
    for (i, t) in EventType::ALL.iter().enumerate() {
        let _ = writeln!(
            out,
            "gatewatch_events_total{{type=\"{}\"}} {}",
            t.as_str(),
            counters.by_type[i]
        );
    }
    family(
        &mut out,
        "gatewatch_rejected_total",
        "counter",
        "Inputs rejected, by reason (decode failures and late events).",
    );
    for (r, v) in &counters.rejected {
        let _ = writeln!(out, "gatewatch_rejected_total{{reason=\"{r}\"}} {v}");
    }
    family(
        &mut out,
        "gatewatch_ignored_total",
        "counter",
        "Gateway syslog lines of a known vendor that are not about sessions, by format and vendor message id (at most 64 ids per format, the rest as other).",
    );
    for (k, v) in &counters.ignored {
        let _ = writeln!(
            out,
            "gatewatch_ignored_total{{format=\"{}\",message=\"{}\"}} {v}",
            k.format,
            label(k.message.as_str())
        );
    }
    family(
        &mut out,
        "gatewatch_dead_lettered_by_reason_total",
        "counter",
        "Kafka messages sent to the dead-letter topic, by reason.",
    );
    for (r, v) in k
        .dead_lettered_by_reason
        .lock()
        .expect("not poisoned")
        .iter()
    {
        let _ = writeln!(
            out,
            "gatewatch_dead_lettered_by_reason_total{{reason=\"{r}\"}} {v}"
        );
    }
    family(
        &mut out,
        "gatewatch_kafka_consumer_lag",
        "gauge",
        "Messages on the broker not yet applied, per assigned partition (from librdkafka statistics every 5 s).",
    );
    for ((topic, partition), lag) in k.lag.lock().expect("not poisoned").iter() {
        let _ = writeln!(
            out,
            "gatewatch_kafka_consumer_lag{{topic=\"{topic}\",partition=\"{partition}\"}} {lag}"
        );
    }
    let simple = [
        (
            "gatewatch_duplicates_total",
            "counter",
            "Events dropped because their id was seen before.",
            counters.duplicates as f64,
        ),
        (
            "gatewatch_orphans_total",
            "counter",
            "Disconnect or latency events for a session that is not active.",
            counters.orphans as f64,
        ),
        (
            "gatewatch_events_dropped_early_total",
            "counter",
            "Rows the events table dropped before retention to stay within engine.events_memory.",
            counters.events_dropped_early as f64,
        ),
        (
            "gatewatch_duplicate_connects_total",
            "counter",
            "Connects for a session that is already active.",
            counters.duplicate_connects as f64,
        ),
        (
            "gatewatch_kafka_messages_total",
            "counter",
            "Kafka messages read, then applied or dead-lettered.",
            k.messages.load(Ordering::Relaxed) as f64,
        ),
        (
            "gatewatch_dead_lettered_total",
            "counter",
            "Messages delivered to the dead-letter topic.",
            k.dead_lettered.load(Ordering::Relaxed) as f64,
        ),
        (
            "gatewatch_dead_letter_failures_total",
            "counter",
            "Dead letters the broker did not accept.",
            k.dead_letter_failures.load(Ordering::Relaxed) as f64,
        ),
        (
            "gatewatch_kafka_errors_total",
            "counter",
            "Kafka client errors (broker, fetch, rebalance).",
            k.errors.load(Ordering::Relaxed) as f64,
        ),
        (
            "gatewatch_kafka_rebalances_total",
            "counter",
            "Consumer group rebalances.",
            k.rebalances.load(Ordering::Relaxed) as f64,
        ),
        (
            "gatewatch_kafka_assigned_partitions",
            "gauge",
            "Partitions assigned to this consumer.",
            k.assigned.load(Ordering::Relaxed) as f64,
        ),
        (
            "gatewatch_ready",
            "gauge",
            "1 when the consumer runs, has partitions and reaches a broker.",
            u8::from(k.ready()) as f64,
        ),
        (
            "gatewatch_sql_queries_running",
            "gauge",
            "SQL queries running now (POST /api/sql and PostgreSQL clients).",
            state.queries.running() as f64,
        ),
        (
            "gatewatch_uptime_seconds",
            "gauge",
            "Seconds since the service started.",
            state.started.elapsed().as_secs_f64(),
        ),
    ];
    unlabelled(&mut out, &simple);
    if let Some(live) = &state.alerts {
        alert_metrics(&mut out, &state.engine, live);
    }
    let late = counters
        .rejected
        .get(&crate::event::Reason::Late)
        .copied()
        .unwrap_or(0);
    family(
        &mut out,
        "gatewatch_late_events_total",
        "counter",
        "Events rejected because they arrived later than allowed_lateness behind their server's newest event.",
    );
    let _ = writeln!(out, "gatewatch_late_events_total {late}");
    let engine = state.engine.clone();
    if let Ok((snap, hists)) = tokio::task::spawn_blocking(move || {
        let e = engine.lock().expect("engine lock");
        // Open sessions and current capacities only: no events, no latency minutes.
        let snap = e.snapshot_of(
            SnapshotScope::since(e.now_ms())
                .without_events()
                .without_latency(),
        );
        (snap, e.latency_histograms())
    })
    .await
    {
        server_metrics(&mut out, &snap, &hists);
    }
    if let Some(c) = &state.checkpoints {
        checkpoint_metrics(&mut out, c);
    }
    if let Some(a) = &state.archive {
        archive_metrics(&mut out, a);
    }
    if let Some(c) = &state.cluster {
        cluster_metrics(&mut out, c);
    }
    process::write(&mut out);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

fn archive_metrics(out: &mut String, a: &crate::sql::archive::ArchiveStats) {
    let ld = |x: &std::sync::atomic::AtomicU64| x.load(Ordering::Relaxed) as f64;
    let samples = [
        (
            "gatewatch_archive_hours_total",
            "counter",
            "Hours archived as Parquet.",
            ld(&a.hours),
        ),
        (
            "gatewatch_archive_files_total",
            "counter",
            "Parquet files written to the archive.",
            ld(&a.files),
        ),
        (
            "gatewatch_archive_failures_total",
            "counter",
            "Failed attempts to archive an hour (retried; ingest goes on).",
            ld(&a.failures),
        ),
        (
            "gatewatch_archive_through_timestamp_seconds",
            "gauge",
            "Event time before which every hour is archived (0: none yet).",
            a.through_ms.load(Ordering::Relaxed) as f64 / 1000.0,
        ),
    ];
    unlabelled(out, &samples);
}

/// A per-partition sample: labels after `partition` (with their leading comma), and the value.
type PartitionSample = dyn Fn(&crate::cluster::Owned) -> (String, f64);

fn cluster_metrics(out: &mut String, c: &crate::cluster::ClusterStatus) {
    let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
    let owned = c.owned();
    let member = label(&c.member);
    // One gauge per owned partition, three families.
    let per_partition: [(&str, &str, &PartitionSample); 3] = [
        (
            "gatewatch_cluster_partition_owned",
            "Partitions this member owns: 1 per (member, topic, partition); `restored` says whether its state is restored.",
            &|o| (format!(",restored=\"{}\"", o.restored), 1.0),
        ),
        (
            "gatewatch_cluster_partition_restore_seconds",
            "How long restoring each owned partition's state from the store took.",
            &|o| (String::new(), o.restore_ms as f64 / 1000.0),
        ),
        (
            "gatewatch_cluster_partition_restore_bytes",
            "Size of the checkpoint each owned partition was restored from (0: none, read from its start).",
            &|o| (String::new(), o.restore_bytes as f64),
        ),
    ];
    for (name, help, sample) in per_partition {
        family(out, name, "gauge", help);
        for o in &owned {
            let (more, v) = sample(o);
            let _ = writeln!(
                out,
                "{name}{{member=\"{member}\",topic=\"{}\",partition=\"{}\"{more}}} {v}",
                label(&o.topic),
                o.partition,
            );
        }
    }
    family(
        out,
        "gatewatch_cluster_restores_total",
        "counter",
        "Partitions assigned to this member, by how their state came back: from a checkpoint, none in the store (read from the start), or the store failed (read from the start).",
    );
    for (outcome, n) in [
        ("checkpoint", ld(&c.restores)),
        ("empty", ld(&c.restores_empty)),
        ("failed", ld(&c.restore_failures)),
    ] {
        let _ = writeln!(
            out,
            "gatewatch_cluster_restores_total{{member=\"{member}\",outcome=\"{outcome}\"}} {n}"
        );
    }
    let samples = [
        (
            "gatewatch_cluster_partitions_owned",
            "gauge",
            "Partitions this member owns.",
            owned.len() as f64,
        ),
        (
            "gatewatch_cluster_restore_seconds_total",
            "counter",
            "Time spent restoring partitions' state from the store.",
            ld(&c.restore_ms) / 1000.0,
        ),
        (
            "gatewatch_cluster_restore_bytes_total",
            "counter",
            "Bytes of partitions' checkpoints restored.",
            ld(&c.restore_bytes),
        ),
        (
            "gatewatch_cluster_partitions_revoked_total",
            "counter",
            "Partitions handed over to another member (final checkpoint written first).",
            ld(&c.revoked),
        ),
        (
            "gatewatch_cluster_checkpoints_total",
            "counter",
            "Partitions' checkpoints written to the state store.",
            ld(&c.checkpoints),
        ),
        (
            "gatewatch_cluster_checkpoint_failures_total",
            "counter",
            "Partitions' checkpoints that could not be written (ingest goes on).",
            ld(&c.checkpoint_failures),
        ),
        (
            "gatewatch_cluster_checkpoint_bytes_total",
            "counter",
            "Bytes of partitions' checkpoints written.",
            ld(&c.checkpoint_bytes),
        ),
        (
            "gatewatch_cluster_state_store_up",
            "gauge",
            "1 while the state store's last write succeeded, 0 after a failure.",
            if c.store_error.lock().expect("not poisoned").is_some() {
                0.0
            } else {
                1.0
            },
        ),
    ];
    unlabelled(out, &samples);
}

fn checkpoint_metrics(out: &mut String, c: &crate::checkpoint::CheckpointStats) {
    let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let samples = [
        (
            "gatewatch_checkpoints_written_total",
            "counter",
            "Checkpoints written.",
            ld(&c.written) as f64,
        ),
        (
            "gatewatch_checkpoint_failures_total",
            "counter",
            "Checkpoints that could not be written (ingest goes on).",
            ld(&c.failures) as f64,
        ),
        (
            "gatewatch_checkpoint_last_success_timestamp_seconds",
            "gauge",
            "When the newest checkpoint was written (0: none yet).",
            ld(&c.last_success_ms) as f64 / 1000.0,
        ),
        (
            "gatewatch_checkpoint_last_bytes",
            "gauge",
            "Size of the newest checkpoint.",
            ld(&c.last_bytes) as f64,
        ),
        (
            "gatewatch_checkpoint_capture_seconds",
            "gauge",
            "How long the newest checkpoint held the engine lock (ingest waits this long).",
            ld(&c.last_capture_us) as f64 / 1e6,
        ),
        (
            "gatewatch_checkpoint_write_seconds",
            "gauge",
            "How long writing the newest checkpoint took (off the ingest path).",
            ld(&c.last_write_us) as f64 / 1e6,
        ),
    ];
    unlabelled(out, &samples);
}

fn server_metrics(
    out: &mut String,
    snap: &Snapshot,
    hists: &[(Arc<str>, [crate::state::latency::PromHistogram; 2])],
) {
    family(
        out,
        "gatewatch_server_active_sessions",
        "gauge",
        "Sessions open now on each server (as `active` in the servers table).",
    );
    let active: Vec<(String, usize)> = snap
        .servers
        .iter()
        .map(|s| {
            (
                label(&s.name),
                s.sessions.iter().filter(|r| r.ended.is_none()).count(),
            )
        })
        .collect();
    for (server, n) in &active {
        let _ = writeln!(
            out,
            "gatewatch_server_active_sessions{{server=\"{server}\"}} {n}"
        );
    }
    family(
        out,
        "gatewatch_server_capacity_sessions",
        "gauge",
        "Capacity in force on each server (servers with a known capacity).",
    );
    for s in &snap.servers {
        if let Some(c) = s.capacity() {
            let _ = writeln!(
                out,
                "gatewatch_server_capacity_sessions{{server=\"{}\"}} {c}",
                label(&s.name)
            );
        }
    }
    family(
        out,
        "gatewatch_server_utilisation_ratio",
        "gauge",
        "Open sessions / capacity on each server (servers with a known capacity).",
    );
    for (s, (server, n)) in snap.servers.iter().zip(&active) {
        if let Some(c) = s.capacity().filter(|c| *c > 0) {
            let _ = writeln!(
                out,
                "gatewatch_server_utilisation_ratio{{server=\"{server}\"}} {}",
                *n as f64 / c as f64
            );
        }
    }
    family(
        out,
        "gatewatch_server_state",
        "gauge",
        "1 for each server's current state (up, draining, down), 0 for the others.",
    );
    for s in &snap.servers {
        let current = s.state.map(|st| st.as_str()).or(s.first_ts.map(|_| "up"));
        for st in ["up", "draining", "down"] {
            let _ = writeln!(
                out,
                "gatewatch_server_state{{server=\"{}\",state=\"{st}\"}} {}",
                label(&s.name),
                u8::from(current == Some(st))
            );
        }
    }
    for (i, (name, help)) in [
        (
            "gatewatch_rtt_seconds",
            "Round-trip time samples (latency events), since start.",
        ),
        (
            "gatewatch_setup_seconds",
            "Tunnel setup time of connects, since start.",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        family(out, name, "histogram", help);
        for (server, h) in hists {
            let h = &h[i];
            let server = label(server);
            let mut cumulative = 0;
            for (b, n) in crate::state::latency::PROM_BUCKETS_S.iter().zip(h.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "{name}_bucket{{server=\"{server}\",le=\"{b}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "{name}_bucket{{server=\"{server}\",le=\"+Inf\"}} {}\n{name}_sum{{server=\"{server}\"}} {}\n{name}_count{{server=\"{server}\"}} {}",
                h.count, h.sum_s, h.count
            );
        }
    }
}

/// Escapes a Prometheus label value: `\`, `"` and newlines as the text format says; other
/// control characters (which no server id has, but an SQL rule's key may) as the text
/// `\uXXXX` (an escaped backslash, then `uXXXX`).
fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn alert_metrics(out: &mut String, engine: &Mutex<Engine>, live: &Mutex<LiveAlerts>) {
    let (stats, sinks) = {
        let l = live.lock().expect("not poisoned");
        (l.rule_stats(), l.sink_stats())
    };
    let alerts = engine.lock().expect("engine lock").alert_records();
    let firing = firing_now(&alerts);
    let mut transitions = std::collections::BTreeMap::new();
    for r in alerts.iter() {
        *transitions
            .entry((r.rule.as_str(), r.state))
            .or_insert(0u64) += 1;
    }
    family(
        out,
        "gatewatch_alerts_firing",
        "gauge",
        "Alert instances firing now, by rule.",
    );
    for s in &stats {
        let n = firing.iter().filter(|r| r.rule == s.rule).count();
        let _ = writeln!(
            out,
            "gatewatch_alerts_firing{{rule=\"{}\"}} {n}",
            label(&s.rule)
        );
    }
    family(
        out,
        "gatewatch_alert_firing",
        "gauge",
        "1 for each alert instance firing now (rule, key, severity).",
    );
    for r in &firing {
        let _ = writeln!(
            out,
            "gatewatch_alert_firing{{rule=\"{}\",key=\"{}\",severity=\"{}\"}} 1",
            label(&r.rule),
            label(&r.key),
            label(&r.severity)
        );
    }
    family(
        out,
        "gatewatch_alert_transitions_total",
        "counter",
        "Alert transitions in retention, by rule and state.",
    );
    for ((rule, st), n) in &transitions {
        let _ = writeln!(
            out,
            "gatewatch_alert_transitions_total{{rule=\"{}\",state=\"{st}\"}} {n}",
            label(rule)
        );
    }
    type PerRule = fn(&crate::alerts::RuleStats) -> f64;
    let per_rule: [(&str, &str, PerRule); 3] = [
        (
            "gatewatch_alert_rule_evaluations_total",
            "Evaluations (ticks) of each rule.",
            |s| s.evaluations as f64,
        ),
        (
            "gatewatch_alert_rule_evaluation_seconds_total",
            "Wall time spent evaluating each rule.",
            |s| s.seconds,
        ),
        (
            "gatewatch_alert_rule_errors_total",
            "Failed evaluations of SQL rules.",
            |s| s.errors as f64,
        ),
    ];
    for (name, help, value) in per_rule {
        family(out, name, "counter", help);
        for s in &stats {
            let _ = writeln!(out, "{name}{{rule=\"{}\"}} {}", label(&s.rule), value(s));
        }
    }
    let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    family(
        out,
        "gatewatch_alert_deliveries_total",
        "counter",
        "Alert records delivered, by sink and outcome (dropped: the webhook's queue was full).",
    );
    for (sink, outcome, v) in [
        ("kafka", "delivered", ld(&sinks.kafka_delivered)),
        ("kafka", "failed", ld(&sinks.kafka_failed)),
        ("webhook", "delivered", ld(&sinks.webhook_delivered)),
        ("webhook", "failed", ld(&sinks.webhook_failed)),
        ("webhook", "dropped", ld(&sinks.webhook_dropped)),
    ] {
        let _ = writeln!(
            out,
            "gatewatch_alert_deliveries_total{{sink=\"{sink}\",outcome=\"{outcome}\"}} {v}"
        );
    }
}

/// Metrics without labels: `(name, type, help, value)` each.
fn unlabelled(out: &mut String, samples: &[(&str, &str, &str, f64)]) {
    for (name, kind, help, v) in samples {
        family(out, name, kind, help);
        let _ = writeln!(out, "{name} {v}");
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}
