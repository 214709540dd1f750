//! What a rule measures at a tick: the built-in per-server measures (utilisation, rates, exact
//! p99s merged from minute histograms, time to full) and the rows of an SQL rule.
//!
//! Owns: each measure's arithmetic and an SQL rule's column checks. Must not touch: what a
//! value means for the alert's state (that is `transitions`).

use super::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Each in-scope server's concurrency per second over the round, swept once per round.
pub(super) struct Timelines {
    pub(super) rows: HashMap<Arc<str>, (i64, Vec<SecondRow>)>,
}

impl Timelines {
    pub(super) fn new(snap: &Snapshot, from: i64, through: i64) -> Timelines {
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
    pub(super) fn at(&self, server: &str, ts: i64) -> Option<&SecondRow> {
        let (first, rows) = self.rows.get(server)?;
        if ts < *first {
            return None;
        }
        rows.get(((ts - first) / 1000) as usize)
    }
}

pub(super) fn in_scope(scope: &Scope, s: &ServerSnapshot) -> bool {
    match scope {
        Scope::All => true,
        Scope::Servers(list) => list.iter().any(|n| **n == *s.name),
        Scope::Site(site) => s.site.as_deref() == Some(site.as_str()),
    }
}

/// One instance's observation at a tick.
#[derive(Debug, Clone)]
pub(super) struct Observation {
    pub(super) server: Option<String>,
    pub(super) value: Option<f64>,
    /// False for an instance that produced nothing at this tick (no data, no SQL row).
    pub(super) present: bool,
}

pub(super) type Values = BTreeMap<String, Observation>;

/// A built-in measure of one server at `tick` (no value before the server's first event).
pub(super) fn server_value(
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
pub(super) fn per_minute(counts: &[(i64, u32)], tick: i64, window: i64) -> f64 {
    let a = counts.partition_point(|(t, _)| *t < tick - window);
    let b = counts.partition_point(|(t, _)| *t < tick);
    let n: u64 = counts[a..b].iter().map(|(_, c)| *c as u64).sum();
    n as f64 / (window as f64 / 60_000.0)
}

/// The exact p99 of the whole minutes in `[from, to)`, merged; `None` with no samples.
pub(super) fn p99(
    minutes: &[crate::state::latency::MinuteSummary],
    from: i64,
    to: i64,
) -> Option<f64> {
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
pub(super) fn check_rule_columns(
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
pub(super) fn shown_as_text(t: &DataType) -> bool {
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
pub(super) fn sql_values(
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
