//! The engine: decoded batches in, in input order; counters, positions and snapshots out.
//!
//! Owns: what happens to each row on arrival (the clock's verdict, dedupe, lateness, immediate
//! histograms and reject counts, the reorder buffer), retention and idle servers, the input
//! positions and the archive's seal. Must not touch: the order-dependent session rules (that is
//! `sessions`), how a snapshot is copied (that is `snapshot`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use rustc_hash::FxHashMap;

use super::alert_log::{AlertLog, AlertRecord};
use super::clock::{StreamClock, Verdict};
use super::dedupe::*;
use super::events::EventStore;
use super::latency::{Metric, MinuteSeries, PromHistogram};
use super::reorder::*;
use super::sessions::*;
use crate::config::EngineConfig;
use crate::event::{opt_f64, opt_str, ChunkView, EventType, Ignored, MessageId, Reason, ShortKey};

/// Counts of what the engine did with its input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Events accepted (applied and kept).
    pub accepted: u64,
    /// Accepted events by type, in [`EventType::ALL`] order.
    pub by_type: [u64; 6],
    /// Inputs rejected, by reason (decode failures and `late`).
    pub rejected: BTreeMap<Reason, u64>,
    /// Events dropped because their `id` was seen before.
    pub duplicates: u64,
    /// A `connect` for a session already active.
    pub duplicate_connects: u64,
    /// A `disconnect` or `latency` for a session not active.
    pub orphans: u64,
    /// Rows the `events` table dropped before retention to stay within `engine.events_memory`.
    pub events_dropped_early: u64,
    /// Lines of a known gateway vendor that are not about sessions (firewall traffic, admin
    /// commands…), by vendor and message id: at most [`MAX_IGNORED_KINDS`] ids per vendor,
    /// the rest counted as `other` (a hostile stream must not grow this, or `/metrics`).
    pub ignored: BTreeMap<Ignored, u64>,
}

/// Message ids counted apart per vendor in [`Counters::ignored`].
pub const MAX_IGNORED_KINDS: usize = 64;

impl Counters {
    /// All rejected inputs.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// All ignored lines.
    pub fn ignored_total(&self) -> u64 {
        self.ignored.values().sum()
    }

    /// Counts `n` lines ignored as `key` (see [`Counters::ignored`]).
    pub fn count_ignored(&mut self, key: Ignored, n: u64) {
        let key = if self.ignored.contains_key(&key)
            || self
                .ignored
                .keys()
                .filter(|k| k.format == key.format)
                .count()
                < MAX_IGNORED_KINDS
        {
            key
        } else {
            Ignored {
                message: MessageId::new("other"),
                ..key
            }
        };
        *self.ignored.entry(key).or_default() += n;
    }

    /// The one-line summary `replay` prints.
    pub fn summary_line(&self) -> String {
        let mut s = format!(
            "accepted {}, rejected {}",
            self.accepted,
            self.rejected_total()
        );
        if !self.rejected.is_empty() {
            let parts: Vec<String> = self
                .rejected
                .iter()
                .map(|(r, n)| format!("{r}: {n}"))
                .collect();
            s += &format!(" ({})", parts.join(", "));
        }
        s += &format!(
            ", duplicates {}, late {}, orphans {}, duplicate connects {}",
            self.duplicates,
            self.rejected.get(&Reason::Late).copied().unwrap_or(0),
            self.orphans,
            self.duplicate_connects
        );
        if !self.ignored.is_empty() {
            // The most frequent first: what an operator may want to stop sending.
            let mut kinds: Vec<(&Ignored, &u64)> = self.ignored.iter().collect();
            kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let parts: Vec<String> = kinds
                .iter()
                .take(8)
                .map(|(k, n)| format!("{} {}: {n}", k.format, k.message))
                .collect();
            let more = if kinds.len() > 8 { ", …" } else { "" };
            s += &format!(
                ", ignored {} ({}{more})",
                self.ignored_total(),
                parts.join(", ")
            );
        }
        s
    }
}

/// What [`Engine::apply`] did with a batch.
#[derive(Debug, Default)]
pub struct Applied {
    /// Rows of the batch that were rejected (`late`, `future`), for the dead-letter sink.
    pub rejected_rows: Vec<(u32, Reason)>,
}

/// The engine: apply decoded batches, read snapshots.
pub struct Engine {
    pub(super) cfg: EngineConfig,
    pub(super) servers: Vec<Server>,
    pub(super) server_index: FxHashMap<Box<str>, usize>,
    pub(super) symbols: Symbols,
    pub(super) events: EventStore,
    pub(super) counters: Counters,
    pub(super) now_ms: Option<i64>,
    pub(super) seq: u64,
    pub(super) last_maintenance: i64,
    pub(super) alerts: AlertLog,
    /// Per input partition (topic, partition): the next position to read, as recorded by
    /// the ingest loop with each applied batch. Checkpoints carry it so a restart resumes
    /// exactly after the state it loads.
    pub(super) positions: BTreeMap<(Arc<str>, i32), i64>,
    /// Event time before which nothing more is accepted (`late`): what has been archived is
    /// final, so the archive and the tables in memory always agree.
    pub(super) sealed_before: Option<i64>,
    /// Judges events too far ahead of the stream (or of the wall clock) as `future`.
    pub(super) clock: StreamClock,
    /// The wall clock, epoch ms, in the live service (never in `replay`: its answers must not
    /// depend on when it runs).
    pub(super) wall_clock_ms: Option<i64>,
}

impl Engine {
    /// A new engine; servers from config are known (with capacity) before any event.
    pub fn new(cfg: EngineConfig) -> Engine {
        let mut e = Engine {
            servers: Vec::new(),
            server_index: FxHashMap::default(),
            symbols: Symbols::default(),
            events: EventStore::default(),
            counters: Counters::default(),
            now_ms: None,
            seq: 0,
            last_maintenance: i64::MIN,
            alerts: AlertLog::default(),
            positions: BTreeMap::new(),
            sealed_before: None,
            clock: StreamClock::default(),
            wall_clock_ms: None,
            cfg,
        };
        let configured: Vec<_> = e
            .cfg
            .servers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (name, sc) in configured {
            e.server_index.insert(name.as_str().into(), e.servers.len());
            e.servers
                .push(Server::new(&name, sc.site.as_deref(), sc.capacity));
        }
        e
    }

    /// The configuration in force.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Counts `n` lines of a known gateway vendor that are not about sessions.
    pub fn count_ignored(&mut self, kind: Ignored, n: u64) {
        self.counters.count_ignored(kind, n);
    }

    /// Counts an input rejected before it reached the engine (decode errors).
    pub fn count_rejected(&mut self, reason: Reason, n: u64) {
        *self.counters.rejected.entry(reason).or_default() += n;
    }

    /// Sets the wall clock that events may not be more than `input.max_clock_skew` ahead of
    /// (the live service, before each batch).
    pub fn set_wall_clock(&mut self, now_ms: i64) {
        self.wall_clock_ms = Some(now_ms);
    }

    /// Rebuilds the stream clock from the servers' newest events (after a restore).
    pub(crate) fn rebuild_clock(&mut self) {
        self.clock = StreamClock::from_newest(
            self.servers
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.max_ts.map(|t| (i, t))),
        );
    }

    pub(super) fn server_slot(&mut self, name: &str) -> usize {
        if let Some(&i) = self.server_index.get(name) {
            return i;
        }
        let i = self.servers.len();
        self.servers.push(Server::new(name, None, None));
        self.server_index.insert(name.into(), i);
        i
    }

    /// Applies a batch of decoded events (the `events` schema), in arrival order.
    pub fn apply(&mut self, batch: &RecordBatch) -> Applied {
        self.apply_view(Arc::new(ChunkView::new(batch)))
    }

    /// [`Engine::apply`] of a batch already wrapped (see [`ChunkView::new`]): `replay` wraps
    /// on its decoding threads, so what wrapping costs is not on the ordered thread.
    pub fn apply_view(&mut self, view: Arc<ChunkView>) -> Applied {
        let batch = &view.batch;
        let n = batch.num_rows();
        let mut applied = Applied::default();
        if n == 0 {
            return applied;
        }
        let lateness = self.cfg.allowed_lateness_ms;
        let prometheus = self.cfg.keep_prometheus;
        let max_lead = self.cfg.max_lead_ms;
        let wall = self.wall_clock_ms.map(|w| (w, self.cfg.max_clock_skew_ms));
        let mut keep = arrow::array::BooleanBufferBuilder::new(n);
        let mut dropped = 0usize;
        let mut touched: Vec<usize> = Vec::new();
        // Server names seen in this batch, packed for comparison without `memcmp` calls.
        let mut recent: Vec<(ShortKey, usize)> = Vec::new();
        for row in 0..n {
            let ts = view.ts[row];
            let kind = view.kinds[row];
            let name = view.server.value(row);
            let si = match ShortKey::of(name.as_bytes()) {
                Some(k) => match recent.iter().find(|r| r.0 == k) {
                    Some(&(_, si)) => si,
                    None => {
                        let si = self.server_slot(name);
                        if recent.len() < 64 {
                            recent.push((k, si));
                        }
                        si
                    }
                },
                None => self.server_slot(name),
            };
            let srv = &mut self.servers[si];
            let id_hash = view.id.is_valid(row).then(|| view.id_hashes[row]);
            let late = srv.max_ts.is_some_and(|m| ts < m - lateness)
                || self.sealed_before.is_some_and(|floor| ts < floor);
            if late {
                if id_hash.is_some_and(|h| srv.dedupe.contains(h, ts)) {
                    self.counters.duplicates += 1;
                } else {
                    *self.counters.rejected.entry(Reason::Late).or_default() += 1;
                    applied.rejected_rows.push((row as u32, Reason::Late));
                }
                keep.append(false);
                dropped += 1;
                continue;
            }
            if self.clock.judge(si, ts, wall, max_lead) == Verdict::Future {
                *self.counters.rejected.entry(Reason::Future).or_default() += 1;
                applied.rejected_rows.push((row as u32, Reason::Future));
                keep.append(false);
                dropped += 1;
                continue;
            }
            if let Some(h) = id_hash {
                if !srv.dedupe.insert(h, ts) {
                    self.counters.duplicates += 1;
                    keep.append(false);
                    dropped += 1;
                    continue;
                }
            }
            keep.append(true);
            self.counters.accepted += 1;
            self.counters.by_type[kind as usize] += 1;
            if srv.max_ts.is_none_or(|m| ts > m) {
                // The watermark moved: buffered events may now be final.
                srv.max_ts = Some(ts);
                self.clock.accepted(si, ts);
                if !touched.contains(&si) {
                    touched.push(si);
                }
            }
            if srv.first_ts.is_none_or(|f| ts < f) {
                srv.first_ts = Some(ts);
            }
            if self.now_ms.is_none_or(|m| ts > m) {
                self.now_ms = Some(ts);
            }
            match kind {
                EventType::Latency => {
                    srv.latency[0].record(ts, view.rtt_ms.value(row));
                    if prometheus {
                        srv.prom[0].observe_ms(view.rtt_ms.value(row));
                    }
                    if let Some(j) = opt_f64(&view.jitter_ms, row) {
                        srv.latency[2].record(ts, j);
                    }
                }
                EventType::Connect => {
                    if let Some(s) = opt_f64(&view.setup_ms, row) {
                        srv.latency[1].record(ts, s);
                        if prometheus {
                            srv.prom[1].observe_ms(s);
                        }
                    }
                }
                EventType::Reject => {
                    *srv.rejects.entry(ts - ts.rem_euclid(1000)).or_default() += 1;
                    continue;
                }
                EventType::AuthFail => {
                    *srv.auth_fails.entry(ts - ts.rem_euclid(1000)).or_default() += 1;
                    continue;
                }
                EventType::Disconnect => {
                    // A whole-session record may start the server's story earlier than any
                    // line it sent (see `InOrderState::apply`): concurrency is shown from there.
                    if view.duration_ms.is_valid(row) {
                        let start = ts.saturating_sub(view.duration_ms.value(row));
                        if srv.first_ts.is_none_or(|f| start < f) {
                            srv.first_ts = Some(start);
                        }
                    }
                }
                EventType::Server => {
                    if srv.site.is_none() {
                        srv.site = opt_str(&view.site, row).map(Into::into);
                    }
                }
            }
            self.seq += 1;
            srv.push_pending(ts, rank(kind), self.seq, &view, row as u32);
        }
        let timeout = self.cfg.session_timeout_ms;
        for si in touched {
            let srv = &mut self.servers[si];
            if let Some(w) = srv.watermark(lateness) {
                srv.drain_through(w, timeout, &mut self.symbols, &mut self.counters);
            }
        }
        if self.cfg.keep_events {
            assert!(
                !view.for_engine,
                "a batch decoded for the engine only is not kept as the events table"
            );
            let kept = if dropped == 0 {
                batch.clone()
            } else {
                let mask = arrow::array::BooleanArray::new(keep.finish(), None);
                arrow::compute::filter_record_batch(batch, &mask).expect("mask matches batch")
            };
            self.events.push(kept);
        }
        let dropped_early = self.events.shrink_to(self.cfg.events_memory_bytes);
        if dropped_early > 0 {
            if self.counters.events_dropped_early == 0 {
                tracing::warn!(
                    limit_mib = self.cfg.events_memory_bytes >> 20,
                    "The events table reached engine.events_memory; its oldest rows now go before retention (sessions, concurrency and latency keep everything). Raise engine.events_memory or lower engine.retention."
                );
            }
            self.counters.events_dropped_early += dropped_early;
        }
        self.maintain(false);
        applied
    }

    /// End of input: every buffered event is applied (nothing can arrive to reorder it).
    pub fn flush(&mut self) {
        let timeout = self.cfg.session_timeout_ms;
        for srv in &mut self.servers {
            srv.drain_through(i64::MAX, timeout, &mut self.symbols, &mut self.counters);
        }
        self.maintain(true);
    }

    /// Every 10 minutes of event time: retention and expiry of idle sessions.
    /// None of it changes an answer (ends are computed from the last event, and snapshots
    /// filter by the horizon); it only bounds memory, so it need not run often.
    pub(super) fn maintain(&mut self, force: bool) {
        let Some(now) = self.now_ms else { return };
        if !force && now.saturating_sub(self.last_maintenance) < 600_000 {
            return;
        }
        self.last_maintenance = now;
        let horizon = now - self.cfg.retention_ms;
        let timeout = self.cfg.session_timeout_ms;
        let lateness = self.cfg.allowed_lateness_ms;
        for srv in &mut self.servers {
            if let Some(w) = srv.watermark(lateness) {
                let frontier = srv.pending.front().map_or(w, |p| p.ts.min(w));
                srv.in_order.expire_through(
                    frontier,
                    timeout,
                    &mut srv.closed,
                    &mut srv.ended,
                    &self.symbols,
                );
            }
            srv.closed.retain(|s| s.ended.is_none_or(|e| e >= horizon));
            srv.ended.retain(|_, e| *e >= horizon);
            srv.dedupe.evict_before(horizon);
            srv.rejects = srv.rejects.split_off(&(horizon - horizon.rem_euclid(1000)));
            srv.auth_fails = srv
                .auth_fails
                .split_off(&(horizon - horizon.rem_euclid(1000)));
            for series in &mut srv.latency {
                series.evict_before(horizon);
            }
            // Capacity changes before the horizon collapse into the base capacity.
            let cut = srv
                .capacity_changes
                .partition_point(|(ts, _)| *ts < horizon);
            if cut > 0 {
                srv.fold_into_base_capacity(cut);
            }
        }
        self.events.evict_before(horizon);
        self.alerts.evict_before(horizon);
        self.forget_idle_servers(horizon);
    }

    /// Servers that are not configured and have nothing in retention (no event since
    /// `horizon`, no open or buffered session, no minute, reject or failure left) are
    /// forgotten: an id seen once (a typo, a test, a broken clock's rejected events) must not
    /// cost memory and a `servers` row forever. Configured servers always stay.
    pub(super) fn forget_idle_servers(&mut self, horizon: i64) {
        let configured = &self.cfg.servers;
        let idle = |s: &Server| {
            !configured.contains_key(&*s.name)
                && s.max_ts.is_none_or(|m| m < horizon)
                && s.pending.is_empty()
                && s.in_order.active.is_empty()
                && s.closed.is_empty()
                && s.rejects.is_empty()
                && s.auth_fails.is_empty()
                && s.latency.iter().all(|m| m.minutes() == 0)
        };
        if !self.servers.iter().any(idle) {
            return;
        }
        let before = self.servers.len();
        self.servers.retain(|s| !idle(s));
        tracing::debug!(
            forgotten = before - self.servers.len(),
            "Forgot servers with nothing in retention."
        );
        self.reindex_servers();
    }
}

impl Engine {
    /// Records, with an applied batch, the next position to read of each input partition in it.
    pub fn record_positions<'a>(&mut self, next: impl IntoIterator<Item = (&'a str, i32, i64)>) {
        for (topic, partition, offset) in next {
            match self.positions.get_mut(&(topic.into(), partition)) {
                Some(o) => *o = (*o).max(offset),
                None => {
                    self.positions.insert((topic.into(), partition), offset);
                }
            }
        }
    }

    /// The next position to read per (topic, partition) the state reflects.
    pub fn positions(&self) -> Vec<(String, i32, i64)> {
        self.positions
            .iter()
            .map(|((t, p), o)| (t.to_string(), *p, *o))
            .collect()
    }

    /// From now on, events before `t` are `late` whatever their server (the archive holds
    /// everything before `t`). Never moves backwards.
    pub fn seal_before(&mut self, t: i64) {
        self.sealed_before = Some(self.sealed_before.map_or(t, |s| s.max(t)));
    }

    /// See [`Engine::seal_before`].
    pub fn sealed_before(&self) -> Option<i64> {
        self.sealed_before
    }

    /// Records alert transitions (from the evaluator) for the `alerts` table.
    pub fn record_alerts(&mut self, records: &[AlertRecord]) {
        self.alerts.extend(records);
    }

    /// Alert transitions in retention (without a whole snapshot).
    pub fn alert_records(&self) -> Arc<[AlertRecord]> {
        self.alerts
            .records(self.now_ms.map(|n| n - self.cfg.retention_ms))
    }

    /// Per server: cumulative rtt and setup histograms since start (for Prometheus).
    pub fn latency_histograms(&self) -> Vec<(Arc<str>, [PromHistogram; 2])> {
        let mut v: Vec<_> = self
            .servers
            .iter()
            .map(|s| (s.name.clone(), s.prom.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Per server with events: `(name, first event, newest event)`, epoch ms.
    pub fn server_clocks(&self) -> Vec<(Arc<str>, i64, i64)> {
        self.servers
            .iter()
            .filter_map(|s| Some((s.name.clone(), s.first_ts?, s.max_ts?)))
            .collect()
    }

    /// The newest event time seen, epoch ms.
    pub fn now_ms(&self) -> Option<i64> {
        self.now_ms
    }

    /// Approximate heap bytes of the latency histograms, for the memory budget.
    pub fn latency_heap_bytes(&self) -> usize {
        self.servers
            .iter()
            .flat_map(|s| s.latency.iter())
            .map(MinuteSeries::heap_bytes)
            .sum()
    }

    /// Sessions open in finalized state, over all servers (for memory accounting).
    pub fn open_sessions(&self) -> usize {
        self.servers.iter().map(|s| s.in_order.active.len()).sum()
    }
}

impl Server {
    /// Folds the first `cut` capacity changes into the configured base, keeping `capacity_at`
    /// answers unchanged for every time still in retention.
    pub(super) fn fold_into_base_capacity(&mut self, cut: usize) {
        self.configured_capacity = self.capacity_changes[cut - 1].1;
        self.capacity_changes.drain(..cut);
    }
}

/// Metric index in [`ServerSnapshot::latency`].
pub fn metric_index(m: Metric) -> usize {
    match m {
        Metric::Rtt => 0,
        Metric::Setup => 1,
        Metric::Jitter => 2,
    }
}

pub(super) struct Server {
    pub(super) name: Arc<str>,
    pub(super) site: Option<Arc<str>>,
    pub(super) configured_capacity: Option<u32>,
    pub(super) first_ts: Option<i64>,
    pub(super) max_ts: Option<i64>,
    pub(super) dedupe: Dedupe,
    pub(super) pending: VecDeque<Pending>,
    pub(super) in_order: InOrderState,
    pub(super) closed: Vec<SessionRow>,
    /// When each session id of `closed` last ended (see `sessions::Ended`); rebuilt from
    /// `closed` when a checkpoint is restored.
    pub(super) ended: rustc_hash::FxHashMap<Arc<str>, i64>,
    pub(super) capacity_changes: Vec<(i64, Option<u32>)>,
    pub(super) rejects: BTreeMap<i64, u32>,
    pub(super) auth_fails: BTreeMap<i64, u32>,
    pub(super) latency: [MinuteSeries; 3],
    /// rtt and setup since start, for Prometheus.
    pub(super) prom: [PromHistogram; 2],
    /// The input partition this server's events come from, in a cluster (see `partition`).
    pub(super) partition: Option<super::partition::PartitionKey>,
}

impl Server {
    pub(super) fn new(name: &str, site: Option<&str>, capacity: Option<u32>) -> Server {
        Server {
            name: name.into(),
            site: site.map(Into::into),
            configured_capacity: capacity,
            first_ts: None,
            max_ts: None,
            dedupe: Dedupe::default(),
            pending: VecDeque::new(),
            in_order: InOrderState {
                capacity,
                ..InOrderState::default()
            },
            closed: Vec::new(),
            ended: Default::default(),
            capacity_changes: Vec::new(),
            rejects: BTreeMap::new(),
            auth_fails: BTreeMap::new(),
            latency: Default::default(),
            prom: Default::default(),
            partition: None,
        }
    }
}
