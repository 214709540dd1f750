//! The six tables (docs/sql.md) as DataFusion table providers over one [`Snapshot`], and the one
//! `TableProvider` ([`GatewatchTable`]) that every gatewatch table, in memory or archived, is.
//!
//! Owns: the column names, types and meaning of `events`, `sessions`, `concurrency`, `latency`,
//! `servers` and `alerts`. A table's batches are built from the snapshot when a query scans it,
//! so a query that reads only `latency` pays nothing for `concurrency`.

use std::fmt;
use std::sync::{Arc, OnceLock};

use arrow::array::{
    ArrayRef, BinaryBuilder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::memory::{LazyBatchGenerator, LazyMemoryExec};
use datafusion::physical_plan::ExecutionPlan;

use super::bounds::{self, time_bounds};
use crate::event::{events_schema, ts_type};
use crate::state::latency::{self, Metric};
use crate::state::{timeline, Snapshot};

/// The tables gatewatch serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Every accepted event in retention.
    Events,
    /// Every session in retention.
    Sessions,
    /// One row per server per second.
    Concurrency,
    /// One row per server per metric per minute.
    Latency,
    /// The live per-server view.
    Servers,
    /// Alert transitions.
    Alerts,
}

impl Table {
    /// All tables.
    pub const ALL: [Table; 6] = [
        Table::Events,
        Table::Sessions,
        Table::Concurrency,
        Table::Latency,
        Table::Servers,
        Table::Alerts,
    ];

    /// SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Table::Events => "events",
            Table::Sessions => "sessions",
            Table::Concurrency => "concurrency",
            Table::Latency => "latency",
            Table::Servers => "servers",
            Table::Alerts => "alerts",
        }
    }

    /// Column layout.
    pub fn schema(self) -> SchemaRef {
        let ts = |n: &str, null: bool| Field::new(n, ts_type(), null);
        let s = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
        let i = |n: &str, null: bool| Field::new(n, DataType::Int64, null);
        let f = |n: &str| Field::new(n, DataType::Float64, true);
        let fields = match self {
            Table::Events => return events_schema(),
            Table::Sessions => vec![
                s("session", false),
                s("server", false),
                s("user", true),
                s("site", true),
                s("os", true),
                s("app", true),
                ts("started", false),
                ts("ended", true),
                s("end_reason", true),
                f("duration_s"),
                f("setup_ms"),
            ],
            Table::Concurrency => vec![
                ts("ts", false),
                Field::new("server", DataType::Utf8View, false),
                i("sessions", false),
                i("peak", false),
                i("connects", false),
                i("disconnects", false),
                i("rejects", false),
                i("capacity", true),
            ],
            Table::Latency => vec![
                ts("minute", false),
                s("server", false),
                s("metric", false),
                i("count", false),
                f("p50"),
                f("p90"),
                f("p99"),
                f("max"),
                Field::new("hist", DataType::Binary, false),
            ],
            Table::Servers => vec![
                s("server", false),
                s("site", true),
                s("state", true),
                i("capacity", true),
                i("active", false),
                i("peak_today", false),
                f("utilisation"),
                f("rtt_p50"),
                f("rtt_p99"),
            ],
            Table::Alerts => vec![
                ts("ts", false),
                s("rule", false),
                s("key", false),
                s("server", true),
                s("state", false),
                s("severity", true),
                f("value"),
                f("threshold"),
                ts("since", true),
                s("labels", true),
                s("id", false),
            ],
        };
        Arc::new(Schema::new(fields))
    }

    /// Builds the table's rows from a snapshot (all columns).
    pub fn batches(self, snap: &Snapshot) -> Vec<RecordBatch> {
        match self {
            Table::Events => snap.events.clone(),
            Table::Sessions => vec![sessions(snap)],
            Table::Concurrency => concurrency_all(snap),
            Table::Latency => latency_rows(snap),
            Table::Servers => vec![servers(snap)],
            Table::Alerts => vec![alerts(snap)],
        }
    }
}

fn batch(table: Table, columns: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(table.schema(), columns).expect("columns match the table schema")
}

fn ts_builder(n: usize) -> TimestampMillisecondBuilder {
    TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC")
}

fn sessions(snap: &Snapshot) -> RecordBatch {
    let n: usize = snap.servers.iter().map(|s| s.sessions.len()).sum();
    let mut session = StringBuilder::with_capacity(n, n * 12);
    let mut server = StringBuilder::with_capacity(n, n * 6);
    let (mut user, mut site, mut os, mut app) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let (mut started, mut ended) = (ts_builder(n), ts_builder(n));
    let mut reason = StringBuilder::new();
    let (mut duration, mut setup) = (
        Float64Builder::with_capacity(n),
        Float64Builder::with_capacity(n),
    );
    for srv in &snap.servers {
        for s in &srv.sessions {
            session.append_value(&s.session);
            server.append_value(&srv.name);
            user.append_option(s.user.as_deref());
            site.append_option(s.site.as_deref());
            os.append_option(s.os.as_deref());
            app.append_option(s.app.as_deref());
            started.append_value(s.started);
            ended.append_option(s.ended);
            reason.append_option(s.end_reason.as_ref().map(|r| r.as_str()));
            duration.append_option(s.ended.map(|e| (e - s.started) as f64 / 1000.0));
            setup.append_option(s.setup_ms);
        }
    }
    batch(
        Table::Sessions,
        vec![
            Arc::new(session.finish()),
            Arc::new(server.finish()),
            Arc::new(user.finish()),
            Arc::new(site.finish()),
            Arc::new(os.finish()),
            Arc::new(app.finish()),
            Arc::new(started.finish()),
            Arc::new(ended.finish()),
            Arc::new(reason.finish()),
            Arc::new(duration.finish()),
            Arc::new(setup.finish()),
        ],
    )
}

/// A server of a snapshot, held by a query that may outlive the caller's borrow.
struct ServerOf(Arc<Snapshot>, usize);

impl std::ops::Deref for ServerOf {
    type Target = crate::state::ServerSnapshot;
    fn deref(&self) -> &Self::Target {
        &self.0.servers[self.1]
    }
}

/// One partition of the `concurrency` table, built as the query reads it: a batch at a time,
/// server after server. A replay of days is millions of rows; built lazily they are never all
/// in memory at once, and the aggregation that reads them runs while they are being made.
struct ConcurrencyGenerator {
    snapshot: Arc<Snapshot>,
    /// The servers of this partition, by index into the snapshot.
    servers: Vec<usize>,
    /// The one being read, its sweep, and its name repeated for its `server` column.
    current: Option<(usize, timeline::Seconds<ServerOf>, RepeatedName)>,
    cols: Vec<usize>,
    schema: SchemaRef,
    /// `[lo, hi)`, ms: the seconds the query's filters on `ts` allow.
    time_range: (i64, i64),
}

impl fmt::Debug for ConcurrencyGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConcurrencyGenerator(servers={:?})", self.servers)
    }
}

impl fmt::Display for ConcurrencyGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "concurrency: {} server(s)", self.servers.len())
    }
}

impl LazyBatchGenerator for ConcurrencyGenerator {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn generate_next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let (Some(now), Some(horizon)) = (self.snapshot.now_ms, self.snapshot.horizon_ms()) else {
            return Ok(None);
        };
        // Only the seconds the query's time filters can keep: `[lo, hi)` in ms. Starting the
        // sweep later gives the same rows from there on (it accounts for everything before).
        let (lo, hi) = self.time_range;
        let (now, horizon) = (now.min(hi.saturating_sub(1)), horizon.max(lo));
        loop {
            if let Some((si, it, names)) = self.current.as_mut() {
                let name = &self.snapshot.servers[*si].name;
                if let Some(b) = concurrency_batch(it, name, names, &self.cols, self.schema.clone())
                {
                    return Ok(Some(b));
                }
            }
            let Some(si) = self.servers.pop() else {
                return Ok(None);
            };
            let server = ServerOf(self.snapshot.clone(), si);
            self.current = Some((
                si,
                timeline::seconds(server, now, horizon),
                RepeatedName::default(),
            ));
        }
    }

    fn reset_state(&self) -> Arc<parking_lot::RwLock<dyn LazyBatchGenerator>> {
        let mut servers = self.servers.clone();
        if let Some((si, _, _)) = &self.current {
            servers.push(*si);
        }
        Arc::new(parking_lot::RwLock::new(ConcurrencyGenerator {
            snapshot: self.snapshot.clone(),
            servers,
            current: None,
            cols: self.cols.clone(),
            schema: self.schema.clone(),
            time_range: self.time_range,
        }))
    }
}

/// Every row and column of the `concurrency` table, at once.
fn concurrency_all(snap: &Snapshot) -> Vec<RecordBatch> {
    let (Some(now), Some(horizon)) = (snap.now_ms, snap.horizon_ms()) else {
        return vec![];
    };
    let (cols, schema): (Vec<usize>, SchemaRef) = ((0..8).collect(), Table::Concurrency.schema());
    let mut out = Vec::new();
    for srv in &snap.servers {
        let mut it = timeline::seconds(srv, now, horizon);
        let mut names = RepeatedName::default();
        while let Some(b) = concurrency_batch(&mut it, &srv.name, &mut names, &cols, schema.clone())
        {
            out.push(b);
        }
    }
    out
}

/// The `concurrency` table's columns `cols` (indexes into its schema) as `partitions` lazy
/// generators, servers spread over them, sweeping only `time_range` (`[lo, hi)`, ms).
fn concurrency(
    snap: &Arc<Snapshot>,
    cols: &[usize],
    partitions: usize,
    time_range: (i64, i64),
) -> Result<Arc<dyn ExecutionPlan>> {
    let schema = Arc::new(Table::Concurrency.schema().project(cols)?);
    let generators = servers_by_partition(snap.servers.len(), partitions)
        .into_iter()
        .map(|servers| {
            Arc::new(parking_lot::RwLock::new(ConcurrencyGenerator {
                snapshot: snap.clone(),
                servers,
                current: None,
                cols: cols.to_vec(),
                schema: schema.clone(),
                time_range,
            })) as Arc<parking_lot::RwLock<dyn LazyBatchGenerator>>
        })
        .collect();
    Ok(Arc::new(LazyMemoryExec::try_new(schema, generators)?))
}

/// `servers` servers (by index) dealt round-robin over at most `partitions` lazy generators
/// (at least one), each list reversed: the generators pop from the back, so each reads its
/// servers in order.
fn servers_by_partition(servers: usize, partitions: usize) -> Vec<Vec<usize>> {
    let parts = partitions.min(servers).max(1);
    (0..parts)
        .map(|p| (p..servers).step_by(parts).rev().collect())
        .collect()
}

/// `n` copies of `s` as a string-view array: one view repeated, pointing at one copy of the
/// bytes (names of up to 12 bytes, like `gw-03`, sit inside the view itself). Grouping by a
/// view column of short strings hashes and compares 16-byte integers instead of bytes, which
/// halves what `GROUP BY server` over millions of `concurrency` rows costs.
fn repeated(s: &str, n: usize) -> arrow::array::StringViewArray {
    let view = arrow::array::builder::make_view(s.as_bytes(), 0, 0);
    let buffers = if s.len() > 12 {
        vec![arrow::buffer::Buffer::from(s.as_bytes())]
    } else {
        vec![]
    };
    arrow::array::StringViewArray::new(vec![view; n].into(), buffers, None)
}

/// One server's name repeated as often as its largest batch needs, sliced (no copy) for each
/// batch: the `server` column of `concurrency` is one value over millions of rows.
#[derive(Default)]
struct RepeatedName(Option<arrow::array::StringViewArray>);

impl RepeatedName {
    fn column(&mut self, name: &str, n: usize) -> ArrayRef {
        // A sweep's first batch is its largest, so this builds once per server.
        use arrow::array::Array;
        if self.0.as_ref().is_none_or(|a| a.len() < n) {
            self.0 = Some(repeated(name, n));
        }
        Arc::new(self.0.as_ref().expect("built above").slice(0, n))
    }
}

/// Rows per `concurrency` batch.
const CONCURRENCY_BATCH_ROWS: usize = 65_536;

/// The next batch of a server's sweep (`None` at its end), with the columns `cols`.
fn concurrency_batch<S: std::ops::Deref<Target = crate::state::ServerSnapshot>>(
    it: &mut timeline::Seconds<S>,
    name: &str,
    names: &mut RepeatedName,
    cols: &[usize],
    schema: SchemaRef,
) -> Option<RecordBatch> {
    let batch_rows = CONCURRENCY_BATCH_ROWS;
    let want = |c: usize| cols.contains(&c);
    let (w_ts, w_cap) = (want(0), want(7));
    let w_int: [bool; 5] = std::array::from_fn(|k| want(2 + k));
    let n = it.remaining().min(batch_rows);
    if n == 0 {
        return None;
    }
    {
        // Only the projected columns are filled; the others stay empty.
        let mut ts: Vec<i64> = Vec::with_capacity(if w_ts { n } else { 0 });
        let mut ints: [Vec<i64>; 5] =
            std::array::from_fn(|k| Vec::with_capacity(if w_int[k] { n } else { 0 }));
        let mut cap = arrow::array::Int64Builder::with_capacity(if w_cap { n } else { 0 });
        let mut filled = 0;
        while filled < n {
            // Runs of quiet seconds (most of a day) are filled in bulk.
            let (r, k) = match it.quiet_run(n - filled) {
                0 => (it.next().expect("rows remain"), 1),
                k => (it.skip_quiet(k), k),
            };
            filled += k;
            if w_ts {
                ts.extend((0..k as i64).map(|i| r.ts + 1000 * i));
            }
            let vals = [r.sessions, r.peak, r.connects, r.disconnects, r.rejects];
            for j in 0..5 {
                if w_int[j] {
                    ints[j].resize(ints[j].len() + k, vals[j] as i64);
                }
            }
            if w_cap {
                match r.capacity {
                    Some(c) => cap.append_value_n(i64::from(c), k),
                    None => cap.append_nulls(k),
                }
            }
        }
        let mut ints = ints.map(Some);
        let mut ts = Some(ts);
        let columns: Vec<ArrayRef> = cols
            .iter()
            .map(|&c| match c {
                0 => Arc::new(
                    arrow::array::TimestampMillisecondArray::new(
                        ts.take().unwrap_or_default().into(),
                        None,
                    )
                    .with_timezone("UTC"),
                ) as ArrayRef,
                1 => names.column(name, n),
                2..=6 => Arc::new(arrow::array::Int64Array::new(
                    ints[c - 2].take().unwrap_or_default().into(),
                    None,
                )),
                _ => Arc::new(cap.finish()),
            })
            .collect();
        Some(
            RecordBatch::try_new_with_options(
                schema,
                columns,
                &arrow::array::RecordBatchOptions::new().with_row_count(Some(n)),
            )
            .expect("columns match the concurrency schema"),
        )
    }
}

/// The `latency` table: one batch per server.
fn latency_rows(snap: &Snapshot) -> Vec<RecordBatch> {
    latency_batches(snap, None, (i64::MIN, i64::MAX))
}

/// The `latency` rows of `metrics` (all when `None`) whose minute starts in `[lo, hi)`, one
/// batch per server with any.
fn latency_batches(
    snap: &Snapshot,
    metrics: Option<&[String]>,
    range: (i64, i64),
) -> Vec<RecordBatch> {
    let wanted = wanted_metrics(metrics);
    (0..snap.servers.len())
        .filter_map(|si| latency_batch(snap, si, &wanted, range))
        .collect()
}

/// The metrics a query's `metric` filter allows (all when `None`), with their index.
fn wanted_metrics(metrics: Option<&[String]>) -> Vec<(usize, Metric)> {
    Metric::ALL
        .into_iter()
        .enumerate()
        .filter(|(_, m)| metrics.is_none_or(|ms| ms.iter().any(|x| x == m.as_str())))
        .collect()
}

/// Server `si`'s `latency` rows of the `wanted` metrics whose minute starts in `[lo, hi)`, if
/// any. Builders are sized first: grown by doubling, they were most of the page faults of a
/// replay's query.
fn latency_batch(
    snap: &Snapshot,
    si: usize,
    wanted: &[(usize, Metric)],
    (lo, hi): (i64, i64),
) -> Option<RecordBatch> {
    let horizon = snap.horizon_ms().unwrap_or(i64::MIN);
    let srv = &snap.servers[si];
    let keep = |s: &&latency::MinuteSummary| {
        s.minute_ms + 60_000 > horizon && s.count > 0 && (lo..hi).contains(&s.minute_ms)
    };
    let (mut n, mut hist_bytes) = (0, 0);
    for &(mi, _) in wanted {
        for s in srv.latency[mi].iter().filter(keep) {
            n += 1;
            hist_bytes += s.hist.len();
        }
    }
    if n == 0 {
        return None;
    }
    let mut minute = ts_builder(n);
    let mut server = StringBuilder::with_capacity(n, n * srv.name.len());
    let mut metric = StringBuilder::with_capacity(n, n * 6);
    let mut count = Int64Builder::with_capacity(n);
    let mut q: [Float64Builder; 4] = std::array::from_fn(|_| Float64Builder::with_capacity(n));
    let mut hist = BinaryBuilder::with_capacity(n, hist_bytes);
    for &(mi, m) in wanted {
        for s in srv.latency[mi].iter().filter(keep) {
            minute.append_value(s.minute_ms);
            server.append_value(&srv.name);
            metric.append_value(m.as_str());
            count.append_value(s.count as i64);
            q[0].append_value(s.p50);
            q[1].append_value(s.p90);
            q[2].append_value(s.p99);
            q[3].append_value(s.max);
            hist.append_value(&s.hist);
        }
    }
    let [mut p50, mut p90, mut p99, mut max] = q;
    Some(batch(
        Table::Latency,
        vec![
            Arc::new(minute.finish()),
            Arc::new(server.finish()),
            Arc::new(metric.finish()),
            Arc::new(count.finish()),
            Arc::new(p50.finish()),
            Arc::new(p90.finish()),
            Arc::new(p99.finish()),
            Arc::new(max.finish()),
            Arc::new(hist.finish()),
        ],
    ))
}

/// One partition of the `latency` table, built as the query reads it, a server at a time: the
/// partitions build their servers' rows in parallel, and the aggregation reading one server's
/// rows runs while the next server's are being built.
struct LatencyGenerator {
    snapshot: Arc<Snapshot>,
    /// This partition's servers still to build, by index into the snapshot (popped).
    servers: Vec<usize>,
    wanted: Vec<(usize, Metric)>,
    /// `[lo, hi)`, ms: the minutes the query's filters on `minute` allow.
    time_range: (i64, i64),
    /// Columns to keep, as indexes into the table's schema.
    cols: Vec<usize>,
}

impl fmt::Debug for LatencyGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LatencyGenerator(servers={:?})", self.servers)
    }
}

impl fmt::Display for LatencyGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "latency: {} server(s)", self.servers.len())
    }
}

impl LazyBatchGenerator for LatencyGenerator {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn generate_next_batch(&mut self) -> Result<Option<RecordBatch>> {
        while let Some(si) = self.servers.pop() {
            if let Some(b) = latency_batch(&self.snapshot, si, &self.wanted, self.time_range) {
                return Ok(Some(b.project(&self.cols)?));
            }
        }
        Ok(None)
    }

    fn reset_state(&self) -> Arc<parking_lot::RwLock<dyn LazyBatchGenerator>> {
        Arc::new(parking_lot::RwLock::new(LatencyGenerator {
            snapshot: self.snapshot.clone(),
            servers: self.servers.clone(),
            wanted: self.wanted.clone(),
            time_range: self.time_range,
            cols: self.cols.clone(),
        }))
    }
}

/// The `latency` table's columns `cols` as `partitions` lazy generators, servers spread over
/// them, building only the `metrics` and `time_range` (`[lo, hi)`, ms) the filters allow.
fn latency(
    snap: &Arc<Snapshot>,
    cols: &[usize],
    partitions: usize,
    metrics: Option<&[String]>,
    time_range: (i64, i64),
) -> Result<Arc<dyn ExecutionPlan>> {
    let schema = Arc::new(Table::Latency.schema().project(cols)?);
    let wanted = wanted_metrics(metrics);
    let generators = servers_by_partition(snap.servers.len(), partitions)
        .into_iter()
        .map(|servers| {
            Arc::new(parking_lot::RwLock::new(LatencyGenerator {
                snapshot: snap.clone(),
                servers,
                wanted: wanted.clone(),
                time_range,
                cols: cols.to_vec(),
            })) as Arc<parking_lot::RwLock<dyn LazyBatchGenerator>>
        })
        .collect();
    Ok(Arc::new(LazyMemoryExec::try_new(schema, generators)?))
}

/// `rtt_p50`/`rtt_p99` window of the `servers` table: the current minute and the 4 before it.
const SERVERS_RTT_MINUTES: i64 = 5;

fn alerts(snap: &Snapshot) -> RecordBatch {
    let n = snap.alerts.len();
    let (mut ts, mut since) = (ts_builder(n), ts_builder(n));
    let (mut rule, mut key, mut server, mut state, mut severity, mut labels, mut id) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let (mut value, mut threshold) = (
        Float64Builder::with_capacity(n),
        Float64Builder::with_capacity(n),
    );
    for a in snap.alerts.iter() {
        ts.append_value(a.ts);
        rule.append_value(&a.rule);
        key.append_value(&a.key);
        server.append_option(a.server.as_deref());
        state.append_value(a.state);
        severity.append_value(&a.severity);
        value.append_option(a.value);
        threshold.append_option(a.threshold);
        since.append_value(a.since);
        labels.append_value(a.labels_json());
        id.append_value(&a.id);
    }
    batch(
        Table::Alerts,
        vec![
            Arc::new(ts.finish()),
            Arc::new(rule.finish()),
            Arc::new(key.finish()),
            Arc::new(server.finish()),
            Arc::new(state.finish()),
            Arc::new(severity.finish()),
            Arc::new(value.finish()),
            Arc::new(threshold.finish()),
            Arc::new(since.finish()),
            Arc::new(labels.finish()),
            Arc::new(id.finish()),
        ],
    )
}

fn servers(snap: &Snapshot) -> RecordBatch {
    let n = snap.servers.len();
    let (mut server, mut site, mut state) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let (mut capacity, mut active, mut peak_today) = (
        Int64Builder::with_capacity(n),
        Int64Builder::with_capacity(n),
        Int64Builder::with_capacity(n),
    );
    let (mut util, mut p50, mut p99) = (
        Float64Builder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
    );
    for srv in &snap.servers {
        let (act, peak) = match snap.now_ms {
            Some(now) => {
                let day_start = now - now.rem_euclid(86_400_000);
                timeline::seconds(srv, now, day_start)
                    .fold((0, 0), |(_, peak), r| (r.sessions, peak.max(r.peak)))
            }
            None => (0, 0),
        };
        let cap = srv.capacity();
        server.append_value(&srv.name);
        site.append_option(srv.site.as_deref());
        state.append_option(srv.state.map(|s| s.as_str()).or(srv.first_ts.map(|_| "up")));
        capacity.append_option(cap.map(i64::from));
        active.append_value(act as i64);
        peak_today.append_value(peak as i64);
        util.append_option(cap.map(|c| act as f64 / c as f64));
        let mut merged = latency::MergedCounts::default();
        if let Some(now) = snap.now_ms {
            let from = now - now.rem_euclid(60_000) - (SERVERS_RTT_MINUTES - 1) * 60_000;
            for s in srv.latency[0].iter().filter(|s| s.minute_ms >= from) {
                // Our own encodings: cannot fail; skip rather than fail the live view.
                let _ = merged.add_encoded(&s.hist);
            }
        }
        let merged = Some(merged.histogram());
        let merged = merged.filter(|h| !h.is_empty());
        p50.append_option(
            merged
                .as_ref()
                .map(|h| latency::us_to_ms(h.value_at_quantile(0.5))),
        );
        p99.append_option(
            merged
                .as_ref()
                .map(|h| latency::us_to_ms(h.value_at_quantile(0.99))),
        );
    }
    batch(
        Table::Servers,
        vec![
            Arc::new(server.finish()),
            Arc::new(site.finish()),
            Arc::new(state.finish()),
            Arc::new(capacity.finish()),
            Arc::new(active.finish()),
            Arc::new(peak_today.finish()),
            Arc::new(util.finish()),
            Arc::new(p50.finish()),
            Arc::new(p99.finish()),
        ],
    )
}

/// A table over one snapshot; rows are built on first scan and reused by later scans of the
/// same query (self-joins).
pub struct SnapshotTable {
    table: Table,
    snapshot: Arc<Snapshot>,
    built: OnceLock<Vec<RecordBatch>>,
}

impl SnapshotTable {
    /// A provider for `table` over `snapshot`.
    pub fn new(table: Table, snapshot: Arc<Snapshot>) -> Self {
        SnapshotTable {
            table,
            snapshot,
            built: OnceLock::new(),
        }
    }
}

impl fmt::Debug for SnapshotTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SnapshotTable({})", self.table.name())
    }
}

#[async_trait]
impl RowSource for SnapshotTable {
    fn table(&self) -> Table {
        self.table
    }

    fn pushdown(&self) -> TableProviderFilterPushDown {
        // `concurrency` sweeps only the seconds filters on `ts` allow, `latency` builds only the
        // minutes and metrics its filters allow; DataFusion still applies every filter
        // (Inexact), so the result is exact whatever the filter says.
        if matches!(self.table, Table::Concurrency | Table::Latency) {
            TableProviderFilterPushDown::Inexact
        } else {
            TableProviderFilterPushDown::Unsupported
        }
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let parts = state.config().target_partitions().max(1);
        // `concurrency` can be millions of rows: only the columns the query reads, only the
        // seconds its filters on `ts` allow, made as it reads them. The other tables are small
        // enough to build whole once per query.
        if self.table == Table::Concurrency {
            let cols: Vec<usize> = projection.cloned().unwrap_or_else(|| (0..8).collect());
            let range = time_bounds(filters, "ts");
            return concurrency(&self.snapshot, &cols, parts, range);
        }
        if self.table == Table::Latency {
            let cols: Vec<usize> = projection.cloned().unwrap_or_else(|| (0..9).collect());
            let metrics = bounds::string_values(filters, "metric");
            let range = time_bounds(filters, "minute");
            return latency(&self.snapshot, &cols, parts, metrics.as_deref(), range);
        }
        let batches = self
            .built
            .get_or_init(|| self.table.batches(&self.snapshot));
        let (schema, projection) = (self.table.schema(), projection.cloned());
        // Spread batches over the configured partitions so scans use every core.
        let mut partitions: Vec<Vec<RecordBatch>> =
            vec![Vec::new(); parts.min(batches.len()).max(1)];
        let k = partitions.len();
        for (i, b) in batches.iter().enumerate() {
            partitions[i % k].push(b.clone());
        }
        let exec = MemorySourceConfig::try_new_exec(&partitions, schema, projection)?;
        Ok(exec)
    }
}

/// Where a table's rows come from: what differs between gatewatch's table providers (memory,
/// archive). [`GatewatchTable`] is the one `TableProvider` around each.
#[async_trait]
pub trait RowSource: fmt::Debug + Send + Sync + 'static {
    /// The table the rows belong to (its schema is the table's).
    fn table(&self) -> Table;
    /// How the source uses a query's filters. `Inexact` at most: DataFusion always applies
    /// them again, so a source may use a filter to skip rows but never has to be exact.
    fn pushdown(&self) -> TableProviderFilterPushDown;
    /// The plan that reads the rows.
    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>>;
}

/// A gatewatch table for DataFusion: the table's schema, a base table, its source's scan.
#[derive(Debug)]
pub struct GatewatchTable<S>(pub S);

impl<S: RowSource> GatewatchTable<S> {
    /// `source` as a table provider.
    pub fn provider(source: S) -> Arc<dyn TableProvider> {
        Arc::new(GatewatchTable(source))
    }
}

#[async_trait]
impl<S: RowSource> TableProvider for GatewatchTable<S> {
    fn schema(&self) -> SchemaRef {
        self.0.table().schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![self.0.pushdown(); filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.0.scan(state, projection, filters, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_server_goes_to_exactly_one_partition_in_order() {
        assert_eq!(servers_by_partition(0, 4), vec![Vec::<usize>::new()]);
        assert_eq!(servers_by_partition(3, 0), vec![vec![2, 1, 0]]);
        assert_eq!(servers_by_partition(5, 2), vec![vec![4, 2, 0], vec![3, 1]]);
        assert_eq!(servers_by_partition(2, 8), vec![vec![0], vec![1]]);
    }
}
