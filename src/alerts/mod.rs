//! Alerts: rules evaluated in event time, their transitions, and the sinks they go to.
//!
//! Owns: the meaning of a rule (measures, `for`, hysteresis, `keep_firing_for`, repeats), the
//! evaluation clock, and the records. Reads state only through snapshots and hands transitions
//! back to the engine for the `alerts` table; knows nothing of HTTP.
//!
//! The clock is event time. Rules are evaluated at ticks, multiples of the rule's `every`, and a
//! tick `T` sees the events before `T`. Each server has its own *evaluation watermark*: its
//! newest event minus `allowed_lateness` (after that, nothing that is not rejected as late can
//! change what happened on it before `T`). So partitions read hours of event time apart (a
//! backlog) still give every server's evaluations the same data, in `run` as in `replay`.
//! Quiet servers do not freeze: a server silent for `alerts.idle_timeout` of wall-clock time
//! (`run`) moves with the newest event on any server, minus the lateness window; no server lags
//! the newest by more than a quarter of retention (its data must still be in memory); and when
//! the input ends (`replay`) or all of it has been quiet for `idle_timeout` (`run`), every
//! server is evaluated up to the newest event time. SQL rules read every server, so they follow
//! the slowest server's watermark. Transitions carry ids derived from rule, instance, time and
//! state, so `run` and `replay` of the same input give the same records with the same ids.

pub mod sinks;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type};

use crate::codec::{Dec, DecodeError, Enc};
use crate::config::{Direction, EngineConfig, Measure, RuleConfig, RuleSource, Scope};
use crate::sql;
use crate::state::alert_log::AlertRecord;
use crate::state::latency::{us_to_ms, MergedCounts};
use crate::state::timeline::{self, SecondRow};
use crate::state::{Engine, ServerSnapshot, Snapshot, SnapshotScope};

/// A rule that cannot be used as written (found when the evaluator is built).
#[derive(Debug, thiserror::Error)]
#[error("alert rule {rule:?}: {message}")]
pub struct RuleError {
    rule: String,
    message: String,
}

/// A transition, or a still-firing alert sent again (`repeat`), for the sinks.
#[derive(Debug, Clone, PartialEq)]
pub struct Emission {
    /// The record.
    pub record: AlertRecord,
    /// True for a repeat of a firing alert (not a new row of the `alerts` table).
    pub repeat: bool,
}

/// Cost of one rule's evaluations so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleStats {
    /// Rule name.
    pub rule: String,
    /// Ticks evaluated.
    pub evaluations: u64,
    /// Wall time spent, seconds.
    pub seconds: f64,
    /// SQL rules: evaluations that failed.
    pub errors: u64,
}

#[derive(Debug, Clone)]
enum Phase {
    Pending {
        since: i64,
    },
    Firing {
        since: i64,
        fired_at: i64,
        clear_since: Option<i64>,
        last_sent: i64,
        value: Option<f64>,
    },
}

#[derive(Debug)]
struct Rule {
    cfg: RuleConfig,
    /// SQL rules: the next evaluation time.
    next_tick: Option<i64>,
    /// Built-in measures: the next evaluation time per server.
    next_by_server: BTreeMap<Arc<str>, i64>,
    instances: BTreeMap<String, (Option<String>, Phase)>,
    stats: RuleStats,
    sql_error_logged: bool,
}

/// Format version of [`Evaluator::save_state`].
const EVALUATOR_STATE_VERSION: u32 = 1;

/// A rule's definition as a number: a restored timer is only valid for the same rule.
fn rule_fingerprint(r: &RuleConfig) -> u64 {
    xxhash_rust::xxh3::xxh3_64(format!("{r:?}").as_bytes())
}

/// Evaluates every rule of a config as the watermark advances.
pub struct Evaluator {
    rules: Vec<Rule>,
    lateness_ms: i64,
    /// A server is never evaluated further than this behind the newest server (a quarter of
    /// retention), so its evaluations always read data still in memory.
    max_lag_ms: i64,
    p99_cache: HashMap<(Arc<str>, usize, i64, i64), Option<f64>>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// A server's event-time clock, from the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerClock {
    /// Server id.
    pub name: Arc<str>,
    /// Its first accepted event, epoch ms.
    pub first: i64,
    /// Its newest accepted event, epoch ms.
    pub newest: i64,
}

/// How far each server's data is final: `(first event, evaluable through)` per server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Clocks {
    through: BTreeMap<Arc<str>, (i64, i64)>,
}

impl Clocks {
    /// SQL rules see every server: they are evaluated up to the slowest server's watermark.
    fn sql_through(&self) -> Option<i64> {
        self.through.values().map(|c| c.1).min()
    }
}

/// The first evaluation time of a rule for data starting at `first`: the next multiple of
/// `every` after it.
fn first_tick(first: i64, every: i64) -> i64 {
    first.div_euclid(every) * every + every
}

/// Ticks of one round can reach back this far (the longest window, plus a second).
fn lookback(rule: &RuleConfig) -> i64 {
    match &rule.source {
        RuleSource::Measure { window_ms, .. } => window_ms + 1000,
        RuleSource::Sql(_) => 0,
    }
}

impl Evaluator {
    /// An evaluator for `rules`; SQL rules are planned once against empty tables so a mistake
    /// is reported at start, not at the first tick. Blocks: call it off async workers.
    pub fn new(rules: &[RuleConfig], engine: &EngineConfig) -> Result<Evaluator, RuleError> {
        let lateness_ms = engine.allowed_lateness_ms;
        let max_lag_ms = engine.retention_ms / 4;
        let has_sql = rules.iter().any(|r| matches!(r.source, RuleSource::Sql(_)));
        let runtime = if has_sql {
            Some(
                tokio::runtime::Builder::new_current_thread()
                    .build()
                    .map_err(|e| RuleError {
                        rule: rules[0].name.clone(),
                        message: format!("cannot start the SQL runtime: {e}"),
                    })?,
            )
        } else {
            None
        };
        if let Some(rt) = &runtime {
            let empty = Arc::new(Snapshot {
                now_ms: None,
                retention_ms: 0,
                servers: Vec::new(),
                events: Vec::new(),
                counters: Default::default(),
                alerts: Arc::new([]),
            });
            for r in rules {
                if let RuleSource::Sql(q) = &r.source {
                    let schema =
                        rt.block_on(sql::output_schema(empty.clone(), q))
                            .map_err(|e| RuleError {
                                rule: r.name.clone(),
                                message: format!("{e}; fix the rule's sql"),
                            })?;
                    check_rule_columns(&schema, r.threshold.is_some()).map_err(|message| {
                        RuleError {
                            rule: r.name.clone(),
                            message,
                        }
                    })?;
                }
            }
        }
        Ok(Evaluator {
            rules: rules
                .iter()
                .map(|cfg| Rule {
                    stats: RuleStats {
                        rule: cfg.name.clone(),
                        ..Default::default()
                    },
                    cfg: cfg.clone(),
                    next_tick: None,
                    next_by_server: BTreeMap::new(),
                    instances: BTreeMap::new(),
                    sql_error_logged: false,
                })
                .collect(),
            lateness_ms,
            max_lag_ms,
            p99_cache: HashMap::new(),
            runtime,
        })
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The evaluation watermarks: how far each server's data is final. A server is evaluated
    /// up to its own newest event minus the lateness window; `quiet` servers (whose input has
    /// ended, or has been idle for `idle_timeout`) up to the newest event time on any server,
    /// minus the lateness window unless the whole input is quiet.
    pub fn clocks(
        &self,
        servers: &[ServerClock],
        quiet: impl Fn(&str) -> bool,
        all_quiet: bool,
    ) -> Clocks {
        let newest = servers.iter().map(|s| s.newest).max();
        let global = newest.map(|n| if all_quiet { n } else { n - self.lateness_ms });
        let through = servers
            .iter()
            .map(|s| {
                let own = s.newest - self.lateness_ms;
                let t = match global {
                    Some(g) if all_quiet || quiet(&s.name) => own.max(g),
                    Some(g) => own.max(g - self.max_lag_ms),
                    None => own,
                };
                (s.name.clone(), (s.first, t))
            })
            .collect();
        Clocks { through }
    }

    /// What a round up to `clocks` needs of the engine, or `None` when nothing is due: the
    /// per-server history from the earliest time a rule looks at, the `events` table only for
    /// SQL rules, the latency minutes only for `rtt_p99` and `setup_p99` rules.
    pub fn due(&self, clocks: &Clocks) -> Option<SnapshotScope> {
        if self.rules.is_empty() || clocks.through.is_empty() {
            return None;
        }
        let mut need: Option<SnapshotScope> = None;
        let mut add = |since: Option<i64>, events: bool, latency: bool| {
            need = Some(match need {
                None => SnapshotScope {
                    since,
                    events,
                    latency,
                },
                Some(n) => SnapshotScope {
                    since: match (n.since, since) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        _ => None,
                    },
                    events: n.events || events,
                    latency: n.latency || latency,
                },
            });
        };
        for r in &self.rules {
            match &r.cfg.source {
                RuleSource::Sql(_) => {
                    let through = clocks.sql_through();
                    match r.next_tick {
                        Some(t) if through.is_none_or(|th| t > th) => {}
                        _ if through.is_none() => {}
                        _ => add(None, true, true),
                    }
                }
                RuleSource::Measure { measure, .. } => {
                    let latency = matches!(measure, Measure::RttP99 | Measure::SetupP99);
                    for (name, (first, through)) in &clocks.through {
                        let next = r
                            .next_by_server
                            .get(name)
                            .copied()
                            .unwrap_or_else(|| first_tick(*first, r.cfg.every_ms));
                        if next <= *through {
                            add(Some(next - lookback(&r.cfg)), false, latency);
                        }
                    }
                }
            }
        }
        need
    }

    /// Evaluates every due tick against `snap` (taken as [`Evaluator::due`] asked), each server
    /// up to its watermark in `clocks`; returns the transitions and repeats in time order.
    pub fn advance(&mut self, snap: &Snapshot, clocks: &Clocks) -> Vec<Emission> {
        let Some(max_through) = clocks.through.values().map(|c| c.1).max() else {
            return Vec::new();
        };
        let round_from = self
            .rules
            .iter()
            .filter(|r| matches!(r.cfg.source, RuleSource::Measure { .. }))
            .flat_map(|r| {
                clocks.through.iter().map(move |(name, (first, _))| {
                    r.next_by_server
                        .get(name)
                        .copied()
                        .unwrap_or_else(|| first_tick(*first, r.cfg.every_ms))
                        - lookback(&r.cfg)
                })
            })
            .min()
            .unwrap_or(max_through);
        let mut all: Vec<(i64, usize, Emission)> = Vec::new();
        let mut timelines: Option<Timelines> = None;
        for (ri, rule) in self.rules.iter_mut().enumerate() {
            let every = rule.cfg.every_ms;
            match rule.cfg.source.clone() {
                RuleSource::Measure { measure, window_ms } => {
                    let scope = rule.cfg.scope.clone();
                    for s in snap.servers.iter().filter(|s| in_scope(&scope, s)) {
                        let Some(&(first, through)) = clocks.through.get(&s.name) else {
                            continue;
                        };
                        let mut tick = *rule
                            .next_by_server
                            .entry(s.name.clone())
                            .or_insert_with(|| first_tick(first, every));
                        while tick <= through {
                            let t0 = Instant::now();
                            let tl = timelines.get_or_insert_with(|| {
                                Timelines::new(snap, round_from, max_through)
                            });
                            let value =
                                server_value(s, tl, measure, window_ms, tick, &mut self.p99_cache);
                            let obs = Observation {
                                server: Some(s.name.to_string()),
                                value,
                                present: true,
                            };
                            let values = Values::from([(s.name.to_string(), obs)]);
                            for e in step(rule, tick, values, false) {
                                all.push((tick, ri, e));
                            }
                            rule.stats.evaluations += 1;
                            rule.stats.seconds += t0.elapsed().as_secs_f64();
                            tick += every;
                        }
                        rule.next_by_server.insert(s.name.clone(), tick);
                    }
                }
                RuleSource::Sql(q) => {
                    let Some(through) = clocks.sql_through() else {
                        continue;
                    };
                    let first = clocks.through.values().map(|c| c.0).min().expect("servers");
                    let mut tick = *rule
                        .next_tick
                        .get_or_insert_with(|| first_tick(first, every));
                    while tick <= through {
                        let t0 = Instant::now();
                        let rt = self.runtime.as_ref().expect("built for SQL rules");
                        match sql_values(rt, snap, &q, tick) {
                            Ok(values) => {
                                for e in step(rule, tick, values, true) {
                                    all.push((tick, ri, e));
                                }
                            }
                            Err(e) => {
                                rule.stats.errors += 1;
                                if !rule.sql_error_logged {
                                    tracing::error!(rule = %rule.cfg.name, error = %e, "Alert rule query failed; its instances keep their state until it succeeds.");
                                    rule.sql_error_logged = true;
                                }
                            }
                        }
                        rule.stats.evaluations += 1;
                        rule.stats.seconds += t0.elapsed().as_secs_f64();
                        tick += every;
                    }
                    rule.next_tick = Some(tick);
                }
            }
        }
        // Records in time order; within a time, rule order, then instance order.
        all.sort_by(|(t1, r1, e1), (t2, r2, e2)| {
            (t1, r1, &e1.record.key).cmp(&(t2, r2, &e2.record.key))
        });
        let oldest = round_from
            - self
                .rules
                .iter()
                .map(|r| lookback(&r.cfg))
                .max()
                .unwrap_or(0);
        self.p99_cache.retain(|k, _| k.2 >= oldest - 60_000);
        all.into_iter().map(|(_, _, e)| e).collect()
    }

    /// The rules' timers and firing instances, for a checkpoint: what makes a restarted
    /// service go on exactly where this one was (a `for` half run, an alert still firing).
    pub fn save_state(&self) -> Vec<u8> {
        let mut out = Enc::default();
        out.u32(EVALUATOR_STATE_VERSION);
        out.len(self.rules.len());
        for r in &self.rules {
            out.str(&r.cfg.name);
            out.u64(rule_fingerprint(&r.cfg));
            out.opt_i64(r.next_tick);
            out.len(r.next_by_server.len());
            for (server, t) in &r.next_by_server {
                out.str(server);
                out.i64(*t);
            }
            out.len(r.instances.len());
            for (key, (server, phase)) in &r.instances {
                out.str(key);
                out.opt_str(server.as_deref());
                match phase {
                    Phase::Pending { since } => {
                        out.u8(0);
                        out.i64(*since);
                    }
                    Phase::Firing {
                        since,
                        fired_at,
                        clear_since,
                        last_sent,
                        value,
                    } => {
                        out.u8(1);
                        out.i64(*since);
                        out.i64(*fired_at);
                        out.opt_i64(*clear_since);
                        out.i64(*last_sent);
                        out.opt_f64(*value);
                    }
                }
            }
        }
        out.buf
    }

    /// Takes back what [`Evaluator::save_state`] saved. A rule that is no longer configured, or
    /// whose definition changed, starts afresh (its name is returned); the others go on.
    pub fn restore_state(&mut self, bytes: &[u8]) -> Result<Vec<String>, DecodeError> {
        if bytes.is_empty() {
            return Ok(Vec::new());
        }
        let d = &mut Dec::new(bytes);
        let version = d.u32()?;
        if version != EVALUATOR_STATE_VERSION {
            return Err(DecodeError(format!(
                "the checkpoint's alert section is version {version}; this gatewatch reads version {EVALUATOR_STATE_VERSION}"
            )));
        }
        let mut fresh = Vec::new();
        for _ in 0..d.len(16)? {
            let name = d.str()?.to_string();
            let fingerprint = d.u64()?;
            let next_tick = d.opt_i64()?;
            let mut next_by_server = BTreeMap::new();
            for _ in 0..d.len(16)? {
                let server: Arc<str> = d.str()?.into();
                next_by_server.insert(server, d.i64()?);
            }
            let mut instances = BTreeMap::new();
            for _ in 0..d.len(18)? {
                let key = d.str()?.to_string();
                let server = d.opt_str()?.map(str::to_string);
                let phase = match d.u8()? {
                    0 => Phase::Pending { since: d.i64()? },
                    1 => Phase::Firing {
                        since: d.i64()?,
                        fired_at: d.i64()?,
                        clear_since: d.opt_i64()?,
                        last_sent: d.i64()?,
                        value: d.opt_f64()?,
                    },
                    _ => return Err(DecodeError("unknown alert phase in the checkpoint".into())),
                };
                instances.insert(key, (server, phase));
            }
            match self.rules.iter_mut().find(|r| r.cfg.name == name) {
                Some(r) if rule_fingerprint(&r.cfg) == fingerprint => {
                    r.next_tick = next_tick;
                    r.next_by_server = next_by_server;
                    r.instances = instances;
                }
                _ => fresh.push(name),
            }
        }
        if !d.is_empty() {
            return Err(DecodeError(
                "the checkpoint's alert section has bytes after its end".into(),
            ));
        }
        Ok(fresh)
    }

    /// Per-rule evaluation counts and cost.
    pub fn stats(&self) -> Vec<RuleStats> {
        self.rules.iter().map(|r| r.stats.clone()).collect()
    }
}

impl Drop for Evaluator {
    fn drop(&mut self) {
        // The service may drop the evaluator on an async worker, where dropping a runtime
        // the normal way (waiting for its tasks) panics.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// The engine's per-server clocks.
pub fn server_clocks(engine: &Engine) -> Vec<ServerClock> {
    engine
        .server_clocks()
        .into_iter()
        .map(|(name, first, newest)| ServerClock {
            name,
            first,
            newest,
        })
        .collect()
}

/// One round against an engine owned by the caller (`replay`): evaluates what is due and
/// records the transitions in the engine. Returns everything for the sinks.
pub fn evaluate_due_round(
    engine: &mut Engine,
    ev: &mut Evaluator,
    input_ended: bool,
) -> Vec<Emission> {
    let clocks = ev.clocks(&server_clocks(engine), |_| false, input_ended);
    let Some(need) = ev.due(&clocks) else {
        return Vec::new();
    };
    let snap = engine.snapshot_of(need);
    let out = ev.advance(&snap, &clocks);
    engine.record_alerts(&table_records(&out));
    out
}

/// The transitions among emissions (repeats are not new rows of the `alerts` table).
pub fn table_records(out: &[Emission]) -> Vec<AlertRecord> {
    out.iter()
        .filter(|e| !e.repeat)
        .map(|e| e.record.clone())
        .collect()
}

/// Each in-scope server's concurrency per second over the round, swept once per round.
struct Timelines {
    rows: HashMap<Arc<str>, (i64, Vec<SecondRow>)>,
}

impl Timelines {
    fn new(snap: &Snapshot, from: i64, through: i64) -> Timelines {
        let rows = snap
            .servers
            .iter()
            .filter(|s| s.first_ts.is_some())
            .map(|s| {
                let rows: Vec<SecondRow> = timeline::seconds(s, through - 1, from).collect();
                let first = rows.first().map_or(i64::MAX, |r| r.ts);
                (s.name.clone(), (first, rows))
            })
            .collect();
        Timelines { rows }
    }

    /// The row of the second starting at `ts`; `None` before the server's first event.
    fn at(&self, server: &str, ts: i64) -> Option<&SecondRow> {
        let (first, rows) = self.rows.get(server)?;
        if ts < *first {
            return None;
        }
        rows.get(((ts - first) / 1000) as usize)
    }
}

fn in_scope(scope: &Scope, s: &ServerSnapshot) -> bool {
    match scope {
        Scope::All => true,
        Scope::Servers(list) => list.iter().any(|n| **n == *s.name),
        Scope::Site(site) => s.site.as_deref() == Some(site.as_str()),
    }
}

/// One instance's observation at a tick.
#[derive(Debug, Clone)]
struct Observation {
    server: Option<String>,
    value: Option<f64>,
    /// False for an instance that produced nothing at this tick (no data, no SQL row).
    present: bool,
}

type Values = BTreeMap<String, Observation>;

/// A built-in measure of one server at `tick` (no value before the server's first event).
fn server_value(
    s: &ServerSnapshot,
    tl: &Timelines,
    measure: Measure,
    window: i64,
    tick: i64,
    cache: &mut HashMap<(Arc<str>, usize, i64, i64), Option<f64>>,
) -> Option<f64> {
    if s.first_ts.is_none_or(|f| f >= tick) {
        return None;
    }
    match measure {
        Measure::Utilisation => tl.at(&s.name, tick - 1000).and_then(|r| {
            let cap = r.capacity.filter(|c| *c > 0)?;
            Some(r.sessions as f64 / cap as f64)
        }),
        Measure::MinutesToFull => {
            // No projection until the server has a whole window of history: its first
            // minutes would otherwise read as a ramp from zero.
            let now = tl.at(&s.name, tick - 1000);
            let then = tl.at(&s.name, tick - window - 1000).map(|r| r.sessions);
            now.zip(then).and_then(|(r, then)| {
                let cap = r.capacity.filter(|c| *c > 0)? as f64;
                let rate = (r.sessions as f64 - then as f64) / (window as f64 / 60_000.0);
                (rate > 0.0).then(|| ((cap - r.sessions as f64).max(0.0)) / rate)
            })
        }
        Measure::RejectRate => Some(per_minute(&s.rejects, tick, window)),
        Measure::AuthFailRate => Some(per_minute(&s.auth_fails, tick, window)),
        Measure::RttP99 | Measure::SetupP99 => {
            let metric = if measure == Measure::RttP99 { 0 } else { 1 };
            *cache
                .entry((s.name.clone(), metric, tick - window, window))
                .or_insert_with(|| p99(&s.latency[metric], tick - window, tick))
        }
    }
}

/// Events per minute in `[tick - window, tick)` from per-second counts.
fn per_minute(counts: &[(i64, u32)], tick: i64, window: i64) -> f64 {
    let a = counts.partition_point(|(t, _)| *t < tick - window);
    let b = counts.partition_point(|(t, _)| *t < tick);
    let n: u64 = counts[a..b].iter().map(|(_, c)| *c as u64).sum();
    n as f64 / (window as f64 / 60_000.0)
}

/// The exact p99 of the whole minutes in `[from, to)`, merged; `None` with no samples.
fn p99(minutes: &[crate::state::latency::MinuteSummary], from: i64, to: i64) -> Option<f64> {
    let a = minutes.partition_point(|m| m.minute_ms < from);
    let mut merged = MergedCounts::default();
    let mut n = 0;
    for m in minutes[a..]
        .iter()
        .take_while(|m| m.minute_ms + 60_000 <= to)
    {
        merged
            .add_encoded(&m.hist)
            .expect("minute histograms are our own encoding");
        n += m.count;
    }
    (n > 0).then(|| us_to_ms(merged.histogram().value_at_quantile(0.99)))
}

/// Checks what an SQL rule returns, when it is loaded: a `value` column that is a number
/// (required with a threshold: without one the rule could never fire), and key columns that
/// can be shown as text (they name the alert instance).
fn check_rule_columns(
    schema: &arrow::datatypes::Schema,
    has_threshold: bool,
) -> Result<(), String> {
    let mut has_value = false;
    for f in schema.fields() {
        if f.name() == "value" {
            has_value = true;
            if !f.data_type().is_numeric() && f.data_type() != &DataType::Null {
                return Err(format!(
                    "its value column is {}, not a number; return a number AS value (e.g. count(*) AS value)",
                    f.data_type()
                ));
            }
        } else if !shown_as_text(f.data_type()) {
            return Err(format!(
                "its column {} is {}, which cannot name an alert; return text, numbers or times as key columns (cast it, or leave it out)",
                f.name(),
                f.data_type()
            ));
        }
    }
    if has_threshold && !has_value {
        return Err("it has a threshold (above/below) but its query returns no value column; add e.g. count(*) AS value, or remove the threshold to fire on every row returned".into());
    }
    Ok(())
}

/// Types a key column may have: those with one plain text form.
fn shown_as_text(t: &DataType) -> bool {
    match t {
        DataType::Dictionary(_, v) => shown_as_text(v),
        t => {
            t.is_numeric()
                || t.is_temporal()
                || matches!(
                    t,
                    DataType::Null
                        | DataType::Boolean
                        | DataType::Utf8
                        | DataType::LargeUtf8
                        | DataType::Utf8View
                )
        }
    }
}

/// Runs an SQL rule on the tables as of `tick`.
fn sql_values(
    rt: &tokio::runtime::Runtime,
    snap: &Snapshot,
    q: &str,
    tick: i64,
) -> Result<Values, String> {
    let view = Arc::new(snap.as_of(tick));
    let result = rt
        .block_on(sql::query_snapshot(view, q))
        .map_err(|e| e.to_string())?;
    let mut out = Values::new();
    for b in &result.batches {
        let schema = b.schema();
        let value_idx = schema.index_of("value").ok();
        let value_col = match value_idx {
            Some(i) => Some(
                arrow::compute::cast(b.column(i), &DataType::Float64)
                    .map_err(|_| "the value column must be numeric".to_string())?,
            ),
            None => None,
        };
        let keys: Vec<(String, arrow::array::ArrayRef)> = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != value_idx)
            .map(|(i, f)| {
                arrow::compute::cast(b.column(i), &DataType::Utf8)
                    .map(|c| (f.name().clone(), c))
                    .map_err(|e| format!("its column {} cannot be shown as text: {e}", f.name()))
            })
            .collect::<Result<_, _>>()?;
        for row in 0..b.num_rows() {
            let mut key = String::new();
            let mut server = None;
            for (name, col) in &keys {
                let v = col.as_string::<i32>();
                let text = if v.is_null(row) { "" } else { v.value(row) };
                if !key.is_empty() {
                    key.push(',');
                }
                key.push_str(name);
                key.push('=');
                key.push_str(text);
                if name == "server" && !v.is_null(row) {
                    server = Some(text.to_string());
                }
            }
            let value = value_col.as_ref().and_then(|c| {
                let c = c.as_primitive::<Float64Type>();
                (!c.is_null(row)).then(|| c.value(row))
            });
            out.insert(
                key,
                Observation {
                    server,
                    value,
                    present: true,
                },
            );
        }
    }
    Ok(out)
}

/// One tick of one rule: moves each instance through pending, firing and resolved.
fn step(rule: &mut Rule, tick: i64, mut values: Values, complete: bool) -> Vec<Emission> {
    let cfg = &rule.cfg;
    let mut out = Vec::new();
    // When `values` is the whole answer (SQL rules), instances seen before but absent now have
    // no data: they are not bad and are clear.
    for (k, (server, _)) in rule.instances.iter().filter(|_| complete) {
        values.entry(k.clone()).or_insert_with(|| Observation {
            server: server.clone(),
            value: None,
            present: false,
        });
    }
    for (key, obs) in values {
        let Observation {
            server,
            value,
            present,
        } = obs;
        let bad = match (cfg.threshold, value) {
            (Some(t), Some(v)) => match cfg.direction {
                Direction::Above => v > t,
                Direction::Below => v < t,
            },
            (Some(_), None) => false,
            // An SQL rule without a threshold: every row it returns is firing.
            (None, _) => present,
        };
        let clear = match (cfg.clear, value) {
            (Some(c), Some(v)) => match cfg.direction {
                Direction::Above => v <= c,
                Direction::Below => v >= c,
            },
            _ => !bad,
        };
        let record = |state: &'static str, since: i64, fired_at: i64, threshold: Option<f64>| {
            let id = format!(
                "{:016x}",
                xxhash_rust::xxh3::xxh3_64(
                    format!("{}\0{key}\0{fired_at}\0{state}", cfg.name).as_bytes()
                )
            );
            AlertRecord {
                ts: tick,
                rule: cfg.name.clone(),
                key: key.clone(),
                server: server.clone(),
                state,
                severity: cfg.severity.clone(),
                value,
                threshold,
                since,
                labels: cfg.labels.clone(),
                id,
            }
        };
        let phase = rule.instances.get(&key).map(|(_, p)| p.clone());
        let next = match phase {
            None | Some(Phase::Pending { .. }) if !bad => None,
            None | Some(Phase::Pending { .. }) => {
                let since = match phase {
                    Some(Phase::Pending { since }) => since,
                    _ => tick,
                };
                if tick - since >= cfg.for_ms {
                    out.push(Emission {
                        record: record("firing", since, tick, cfg.threshold),
                        repeat: false,
                    });
                    Some(Phase::Firing {
                        since,
                        fired_at: tick,
                        clear_since: None,
                        last_sent: tick,
                        value,
                    })
                } else {
                    Some(Phase::Pending { since })
                }
            }
            Some(Phase::Firing {
                since,
                fired_at,
                clear_since,
                last_sent,
                value: fired_value,
            }) => {
                if clear {
                    let cs = clear_since.unwrap_or(tick);
                    if tick - cs >= cfg.keep_firing_for_ms {
                        out.push(Emission {
                            record: record("resolved", fired_at, fired_at, cfg.clear),
                            repeat: false,
                        });
                        None
                    } else {
                        Some(Phase::Firing {
                            since,
                            fired_at,
                            clear_since: Some(cs),
                            last_sent,
                            value: fired_value,
                        })
                    }
                } else {
                    let mut last_sent = last_sent;
                    if let Some(r) = cfg.repeat_interval_ms {
                        if tick - last_sent >= r {
                            // The same id as the firing record it repeats.
                            out.push(Emission {
                                record: record("firing", since, fired_at, cfg.threshold),
                                repeat: true,
                            });
                            last_sent = tick;
                        }
                    }
                    Some(Phase::Firing {
                        since,
                        fired_at,
                        clear_since: None,
                        last_sent,
                        value: fired_value,
                    })
                }
            }
        };
        match next {
            Some(p) => {
                rule.instances.insert(key, (server, p));
            }
            None => {
                rule.instances.remove(&key);
            }
        }
    }
    out
}

/// Shortest wall-clock gap between two evaluation rounds of the live service while events
/// flow: rounds copy state, so they are batched; an alert is still out well within a second.
pub const LIVE_ROUND_GAP: std::time::Duration = std::time::Duration::from_millis(100);

/// The live service's evaluator and sinks, driven after each applied batch and by a clock
/// (which also notices when the input has gone quiet).
pub struct LiveAlerts {
    evaluator: Evaluator,
    sinks: sinks::Sinks,
    idle_timeout: std::time::Duration,
    last_round: Option<Instant>,
    /// Per server: its newest event time and when that last changed (wall clock).
    seen: HashMap<Arc<str>, (i64, Instant)>,
    /// When any server's newest event time last changed.
    last_change: Instant,
}

impl LiveAlerts {
    /// Wraps an evaluator and its sinks.
    pub fn new(evaluator: Evaluator, sinks: sinks::Sinks, idle_timeout_ms: i64) -> LiveAlerts {
        LiveAlerts {
            evaluator,
            sinks,
            idle_timeout: std::time::Duration::from_millis(idle_timeout_ms.max(0) as u64),
            last_round: None,
            seen: HashMap::new(),
            last_change: Instant::now(),
        }
    }

    /// Evaluates what is due, if a round is due: copies state under the engine lock, evaluates
    /// outside it, records transitions in the engine and hands everything to the sinks.
    pub fn poll(&mut self, engine: &std::sync::Mutex<Engine>) {
        if self.evaluator.is_empty() {
            return;
        }
        let servers = server_clocks(&engine.lock().expect("engine lock"));
        let now = Instant::now();
        let mut changed = false;
        for s in &servers {
            let seen = self.seen.entry(s.name.clone()).or_insert((s.newest, now));
            if seen.0 != s.newest {
                *seen = (s.newest, now);
                changed = true;
            }
        }
        if changed {
            self.last_change = now;
        }
        let all_quiet = self.last_change.elapsed() >= self.idle_timeout;
        if !all_quiet
            && self
                .last_round
                .is_some_and(|t| t.elapsed() < LIVE_ROUND_GAP)
        {
            return;
        }
        let idle = self.idle_timeout;
        let seen = &self.seen;
        let clocks = self.evaluator.clocks(
            &servers,
            |name| seen.get(name).is_some_and(|(_, at)| at.elapsed() >= idle),
            all_quiet,
        );
        let Some(need) = self.evaluator.due(&clocks) else {
            return;
        };
        self.last_round = Some(Instant::now());
        let snap = engine.lock().expect("engine lock").snapshot_of(need);
        let out = self.evaluator.advance(&snap, &clocks);
        tracing::debug!(?need, transitions = out.len(), "Alert round.");
        if !out.is_empty() {
            engine
                .lock()
                .expect("engine lock")
                .record_alerts(&table_records(&out));
            self.sinks.send(&out);
        }
    }

    /// See [`Evaluator::save_state`].
    pub fn save_state(&self) -> Vec<u8> {
        self.evaluator.save_state()
    }

    /// See [`Evaluator::restore_state`].
    pub fn restore_state(&mut self, bytes: &[u8]) -> Result<Vec<String>, DecodeError> {
        self.evaluator.restore_state(bytes)
    }

    /// Per-rule evaluation counts and cost.
    pub fn rule_stats(&self) -> Vec<RuleStats> {
        self.evaluator.stats()
    }

    /// Sink delivery counters.
    pub fn sink_stats(&self) -> Arc<sinks::SinkStats> {
        self.sinks.stats()
    }

    /// Waits (bounded) for queued records to reach the alerts topic.
    pub fn flush(&self, timeout: std::time::Duration) {
        self.sinks.flush(timeout);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ServerConfig};
    use crate::ingest::{decode_chunk, Chunk};

    fn engine(capacity: u32, servers: &[&str]) -> Engine {
        Engine::new(engine_cfg(capacity, servers))
    }

    fn engine_cfg(capacity: u32, servers: &[&str]) -> EngineConfig {
        EngineConfig {
            allowed_lateness_ms: 0,
            session_timeout_ms: 86_400_000,
            servers: servers
                .iter()
                .map(|s| {
                    (
                        s.to_string(),
                        ServerConfig {
                            capacity: Some(capacity),
                            site: None,
                        },
                    )
                })
                .collect(),
            ..EngineConfig::default()
        }
    }

    fn lateness_0() -> EngineConfig {
        EngineConfig {
            allowed_lateness_ms: 0,
            ..EngineConfig::default()
        }
    }

    fn rules(toml: &str) -> Vec<RuleConfig> {
        Config::parse(toml, "test.toml").unwrap().alerts.rules
    }

    /// `(kind, second, server, session)` events; a session's latency samples keep it alive.
    fn feed(e: &mut Engine, events: &[(&str, i64, &str, &str)]) {
        let lines: Vec<String> = events
            .iter()
            .map(|(k, s, srv, sess)| {
                format!(
                    r#"{{"type":"{k}","ts":{},"server":"{srv}","session":"{sess}","rtt_ms":1}}"#,
                    s * 1000
                )
            })
            .collect();
        let d = decode_chunk(Chunk {
            raw: lines.join("\n").into_bytes(),
            truncated: false,
            shared: None,
        });
        assert!(d.rejects.is_empty(), "{:?}", d.rejects);
        e.apply(&d.batch);
    }

    /// Replays `events` through rules and returns `(state, key, tick s, since s)`.
    fn transitions(
        e: &mut Engine,
        rule_toml: &str,
        events: &[(&str, i64, &str, &str)],
    ) -> Vec<(&'static str, String, i64, i64)> {
        let mut ev = Evaluator::new(&rules(rule_toml), &lateness_0()).unwrap();
        // Fed in slices so rounds happen mid-stream, as in replay and run.
        for part in events.chunks(7) {
            feed(e, part);
            evaluate_due_round(e, &mut ev, false);
        }
        e.flush();
        evaluate_due_round(e, &mut ev, true);
        e.snapshot()
            .alerts
            .iter()
            .map(|r| (r.state, r.key.clone(), r.ts / 1000, r.since / 1000))
            .collect()
    }

    fn connects(
        server: &str,
        at: i64,
        n: usize,
        prefix: &str,
    ) -> Vec<(&'static str, i64, String, String)> {
        (0..n)
            .map(|i| ("connect", at, server.to_string(), format!("{prefix}{i}")))
            .collect()
    }

    fn as_refs<'a>(
        v: &'a [(&'static str, i64, String, String)],
    ) -> Vec<(&'static str, i64, &'a str, &'a str)> {
        let mut r: Vec<_> = v
            .iter()
            .map(|(k, t, s, x)| (*k, *t, s.as_str(), x.as_str()))
            .collect();
        r.sort_by_key(|e| e.1);
        r
    }

    const NEAR_FULL: &str = "[[alerts.rules]]\nname = \"near-full\"\nmeasure = \"utilisation\"\nabove = 0.9\nclear = 0.8\nfor = \"30s\"\n";

    #[test]
    fn fires_after_for_holds_through_the_band_and_resolves_below_clear() {
        let mut e = engine(10, &["gw"]);
        let mut evs = connects("gw", 0, 9, "a");
        evs.extend(connects("gw", 100, 1, "b")); // 10/10 from second 100
        evs.push(("disconnect", 200, "gw".into(), "b0".into())); // 0.9: inside the band
        evs.extend(connects("gw", 220, 1, "c")); // 1.0
        evs.push(("disconnect", 240, "gw".into(), "c0".into())); // 0.9
        evs.push(("disconnect", 300, "gw".into(), "a0".into()));
        evs.push(("disconnect", 300, "gw".into(), "a1".into())); // 0.7: clear
        evs.push(("latency", 400, "gw".into(), "a2".into()));
        let got = transitions(&mut e, NEAR_FULL, &as_refs(&evs));
        // Bad from tick 110 (it sees second 109), held 30 s: fires at 140; clear at tick 310.
        assert_eq!(
            got,
            vec![
                ("firing", "gw".to_string(), 140, 110),
                ("resolved", "gw".to_string(), 310, 140)
            ]
        );
    }

    #[test]
    fn timers_and_firing_alerts_survive_a_checkpoint() {
        use crate::codec::{Dec, Enc};
        let mut evs = connects("gw", 0, 9, "a");
        evs.extend(connects("gw", 100, 1, "b"));
        evs.push(("disconnect", 200, "gw".into(), "b0".into()));
        evs.extend(connects("gw", 220, 1, "c"));
        evs.push(("disconnect", 240, "gw".into(), "c0".into()));
        evs.push(("disconnect", 300, "gw".into(), "a0".into()));
        evs.push(("disconnect", 300, "gw".into(), "a1".into()));
        evs.push(("latency", 400, "gw".into(), "a2".into()));
        let evs = as_refs(&evs);
        let straight = transitions(&mut engine(10, &["gw"]), NEAR_FULL, &evs);
        assert_eq!(straight.len(), 2);
        // Cut while `for` is running (pending since 110), while firing, and after resolving.
        for cut_at in [125, 230, 350] {
            let cut = evs.iter().position(|e| e.1 >= cut_at).unwrap();
            let mut e = engine(10, &["gw"]);
            let mut ev = Evaluator::new(&rules(NEAR_FULL), &lateness_0()).unwrap();
            feed(&mut e, &evs[..cut]);
            // A tick at the cut: `latency` keeps the clock moving without changing sessions.
            feed(&mut e, &[("latency", cut_at, "gw", "a2")]);
            evaluate_due_round(&mut e, &mut ev, false);
            let mut enc = Enc::default();
            e.encode_checkpoint(&mut enc);
            let saved = ev.save_state();
            drop((e, ev));

            let mut e = Engine::decode_checkpoint(engine_cfg(10, &["gw"]), &mut Dec::new(&enc.buf))
                .unwrap();
            let mut ev = Evaluator::new(&rules(NEAR_FULL), &lateness_0()).unwrap();
            assert_eq!(ev.restore_state(&saved).unwrap(), Vec::<String>::new());
            for part in evs[cut..].chunks(7) {
                feed(&mut e, part);
                evaluate_due_round(&mut e, &mut ev, false);
            }
            e.flush();
            evaluate_due_round(&mut e, &mut ev, true);
            let got: Vec<_> = e
                .snapshot()
                .alerts
                .iter()
                .map(|r| (r.state, r.key.clone(), r.ts / 1000, r.since / 1000))
                .collect();
            assert_eq!(got, straight, "cut at {cut_at}");
        }
        // A changed rule starts afresh.
        let mut ev =
            Evaluator::new(&rules(&NEAR_FULL.replace("0.9", "0.95")), &lateness_0()).unwrap();
        let saved = Evaluator::new(&rules(NEAR_FULL), &lateness_0())
            .unwrap()
            .save_state();
        assert_eq!(
            ev.restore_state(&saved).unwrap(),
            vec!["near-full".to_string()]
        );
    }

    #[test]
    fn does_not_fire_when_the_condition_breaks_before_for() {
        let mut e = engine(10, &["gw"]);
        let mut evs = connects("gw", 0, 9, "a");
        // 1.0 for 20 s, 0.9 for 20 s, repeatedly: never 30 s above 0.9.
        for k in 0..6 {
            let t = 100 + k * 40;
            evs.push(("connect", t, "gw".into(), format!("x{k}")));
            evs.push(("disconnect", t + 20, "gw".into(), format!("x{k}")));
        }
        evs.push(("latency", 500, "gw".into(), "a1".into()));
        assert_eq!(transitions(&mut e, NEAR_FULL, &as_refs(&evs)), vec![]);
    }

    #[test]
    fn keep_firing_for_delays_the_resolve() {
        let mut e = engine(10, &["gw"]);
        let mut evs = connects("gw", 0, 10, "a");
        for i in 0..5 {
            evs.push(("disconnect", 100, "gw".into(), format!("a{i}")));
        }
        evs.push(("latency", 300, "gw".into(), "a9".into()));
        let rule = "[[alerts.rules]]\nname = \"full\"\nmeasure = \"utilisation\"\nabove = 0.9\nkeep_firing_for = \"1m\"\n";
        let got = transitions(&mut e, rule, &as_refs(&evs));
        // Capacity is reached in second 0; tick 10 sees it. Clear from tick 110, held 60 s.
        assert_eq!(
            got,
            vec![
                ("firing", "gw".to_string(), 10, 10),
                ("resolved", "gw".to_string(), 170, 10)
            ]
        );
    }

    #[test]
    fn minutes_to_full_fires_on_a_ramp_before_capacity_and_never_on_a_flat_line() {
        let rule = "[[alerts.rules]]\nname = \"fills\"\nmeasure = \"minutes_to_full\"\nbelow = 5\nwindow = \"5m\"\n";
        // One connect every 6 s: 10 a minute toward capacity 100 (full at second 594).
        let mut e = engine(100, &["ramp"]);
        let mut evs: Vec<_> = (0..100)
            .map(|i| ("connect", i * 6, "ramp".to_string(), format!("r{i}")))
            .collect();
        evs.push(("latency", 1000, "ramp".into(), "r1".into()));
        let got = transitions(&mut e, rule, &as_refs(&evs));
        // Tick 310 sees 52 sessions, 50 more than 5 minutes earlier: 4.8 minutes to full.
        assert_eq!(got[0], ("firing", "ramp".to_string(), 310, 310));
        // Full at second 594; once the whole window is flat (tick 900) the projection has no
        // value, and the alert resolves.
        assert_eq!(got[1..], [("resolved", "ramp".to_string(), 900, 310)]);

        let mut e = engine(100, &["flat"]);
        let mut evs = connects("flat", 0, 95, "f");
        for t in (10..1200).step_by(10) {
            evs.push(("latency", t, "flat".into(), "f1".into()));
        }
        assert_eq!(transitions(&mut e, rule, &as_refs(&evs)), vec![]);
    }

    #[test]
    fn sql_rules_see_the_tables_as_of_each_tick() {
        let mut e = engine(10, &["gw"]);
        let evs: Vec<(&'static str, i64, String, String)> = vec![
            ("reject", 5, "gw".into(), "r1".into()),
            ("reject", 15, "gw".into(), "r2".into()),
            ("reject", 25, "gw".into(), "r3".into()),
            ("connect", 26, "gw".into(), "s1".into()),
            ("disconnect", 45, "gw".into(), "s1".into()),
            ("latency", 95, "gw".into(), "x".into()),
        ];
        let rule = "[[alerts.rules]]\nname = \"rejects\"\nsql = \"SELECT server, count(*) AS value FROM events WHERE type = 'reject' GROUP BY server\"\nabove = 2\nevery = \"10s\"\n\n[[alerts.rules]]\nname = \"busy\"\nsql = \"SELECT server FROM servers WHERE active > 0\"\nevery = \"10s\"\n";
        let got = transitions(&mut e, rule, &as_refs(&evs));
        assert_eq!(
            got,
            vec![
                // The third reject is at 25 s: tick 30 counts three.
                ("firing", "server=gw".to_string(), 30, 30),
                ("firing", "server=gw".to_string(), 30, 30),
                ("resolved", "server=gw".to_string(), 50, 30),
            ]
        );
        let rules: Vec<String> = e.snapshot().alerts.iter().map(|r| r.rule.clone()).collect();
        assert_eq!(rules, ["rejects", "busy", "busy"]);
    }

    #[test]
    fn servers_read_hours_apart_give_the_same_alerts_as_interleaved() {
        // Two servers filling at different times; one input has them interleaved in time
        // order, the other all of gw-a first (a partition read far ahead of the other).
        let mut a: Vec<(&'static str, i64, String, String)> = Vec::new();
        let mut b = Vec::new();
        for i in 0..10 {
            a.push(("connect", 100 + i * 30, "gw-a".into(), format!("a{i}")));
            b.push(("connect", 200 + i * 40, "gw-b".into(), format!("b{i}")));
        }
        for i in 0..5 {
            a.push(("disconnect", 600 + i * 20, "gw-a".into(), format!("a{i}")));
            b.push(("disconnect", 900 + i * 20, "gw-b".into(), format!("b{i}")));
        }
        a.push(("latency", 3000, "gw-a".into(), "a9".into()));
        b.push(("latency", 3000, "gw-b".into(), "b9".into()));
        let rule = "[[alerts.rules]]\nname = \"full\"\nmeasure = \"utilisation\"\nabove = 0.85\nclear = 0.6\nfor = \"30s\"\n[[alerts.rules]]\nname = \"n\"\nsql = \"SELECT server, count(*) AS value FROM sessions WHERE ended IS NULL GROUP BY server\"\nabove = 8\nevery = \"10s\"\n";
        let interleaved = {
            let mut all = a.clone();
            all.extend(b.clone());
            let mut e = engine(10, &["gw-a", "gw-b"]);
            let mut got = transitions(&mut e, rule, &as_refs(&all));
            got.sort();
            got
        };
        let skewed = {
            let mut e = engine(10, &["gw-a", "gw-b"]);
            let mut ev = Evaluator::new(&rules(rule), &lateness_0()).unwrap();
            // Each partition delivers a first batch, then gw-a's runs far ahead.
            let (a, b) = (as_refs(&a), as_refs(&b));
            for part in [&a[..1], &b[..1]]
                .into_iter()
                .chain(a[1..].chunks(4))
                .chain(b[1..].chunks(4))
            {
                feed(&mut e, part);
                evaluate_due_round(&mut e, &mut ev, false);
            }
            e.flush();
            evaluate_due_round(&mut e, &mut ev, true);
            let mut got: Vec<_> = e
                .snapshot()
                .alerts
                .iter()
                .map(|r| (r.state, r.key.clone(), r.ts / 1000, r.since / 1000))
                .collect();
            got.sort();
            got
        };
        assert_eq!(interleaved.len(), 8, "{interleaved:?}");
        assert_eq!(skewed, interleaved);
    }

    #[test]
    fn a_firing_alert_is_repeated_only_with_repeat_interval() {
        let mut evs = connects("gw", 0, 10, "a");
        evs.push(("latency", 100, "gw".into(), "a1".into()));
        let base = "[[alerts.rules]]\nname = \"full\"\nmeasure = \"utilisation\"\nabove = 0.9\n";
        let run = |rule: &str| {
            let mut e = engine(10, &["gw"]);
            let mut ev = Evaluator::new(&rules(rule), &lateness_0()).unwrap();
            feed(&mut e, &as_refs(&evs));
            e.flush();
            let out = evaluate_due_round(&mut e, &mut ev, true);
            let sent: Vec<(i64, bool)> =
                out.iter().map(|x| (x.record.ts / 1000, x.repeat)).collect();
            let ids: Vec<String> = out.iter().map(|x| x.record.id.clone()).collect();
            (sent, ids, e.snapshot().alerts.len())
        };
        let (sent, _, rows) = run(base);
        assert_eq!((sent, rows), (vec![(10, false)], 1));
        let (sent, ids, rows) = run(&format!("{base}repeat_interval = \"30s\"\n"));
        assert_eq!(sent, vec![(10, false), (40, true), (70, true), (100, true)]);
        assert!(
            ids.iter().all(|i| *i == ids[0]),
            "repeats carry the firing id"
        );
        assert_eq!(rows, 1, "repeats are not new rows of the alerts table");
    }

    #[test]
    fn a_bad_sql_rule_is_refused_at_start() {
        let err = Evaluator::new(
            &rules("[[alerts.rules]]\nname = \"x\"\nsql = \"SELECT nope FROM events\"\n"),
            &lateness_0(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("alert rule \"x\"") && err.contains("nope"),
            "{err}"
        );
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        let evs = {
            let mut v = connects("gw", 0, 10, "a");
            v.push(("latency", 100, "gw".into(), "a1".into()));
            v
        };
        let rule = "[[alerts.rules]]\nname = \"full\"\nmeasure = \"utilisation\"\nabove = 0.9\n";
        let ids = |_: ()| {
            let mut e = engine(10, &["gw"]);
            transitions(&mut e, rule, &as_refs(&evs));
            e.snapshot()
                .alerts
                .iter()
                .map(|r| r.id.clone())
                .collect::<Vec<_>>()
        };
        let a = ids(());
        assert_eq!(a.len(), 1);
        assert_eq!(a, ids(()));
    }
}
