//! Alerts: rules evaluated in event time, their transitions, and the sinks they go to.
//!
//! Rooms: the evaluator and its clock (this file), what a rule measures (`measures`), one
//! rule's state machine (`transitions`), the live service's rounds (`live`), where records go
//! ([`sinks`]).
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

mod live;
mod measures;
pub mod sinks;
#[cfg(test)]
mod tests;
mod transitions;

pub use live::{LiveAlerts, LIVE_ROUND_GAP};
use measures::*;
use transitions::*;

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
    /// SQL rules are evaluated (false on a cluster member that does not own the home
    /// partition: one member evaluates them).
    sql_rules: bool,
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
            sql_rules: true,
        })
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Turns the evaluation of SQL rules on or off (rules on measures go on either way).
    pub fn set_sql_rules(&mut self, on: bool) {
        self.sql_rules = on;
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
                RuleSource::Sql(_) if !self.sql_rules => {}
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
                    if !self.sql_rules {
                        continue;
                    }
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
