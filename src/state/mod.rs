//! All mutable telemetry state: sessions, concurrency, latency histograms, accepted events.
//!
//! Owns: the semantics of DESIGN §1 (duplicates, lateness, session lifecycle, timeouts, server
//! state and capacity) and the immutable [`Snapshot`]s that every reader gets. Knows nothing of
//! Kafka, files, SQL or HTTP: it takes decoded batches and gives snapshots.
//!
//! How exactness is kept with out-of-order input:
//! - On arrival each event is checked for a repeated `id` and for lateness against the newest
//!   event of its server. What passes is accepted: its row is kept for the `events` table, its
//!   latency samples go into the minute histograms and rejects into per-second counts at once
//!   (these do not depend on order).
//! - Events that change sessions or the server (connect, disconnect, latency, server) also go
//!   into the server's reorder buffer, and are applied in event-time order once the server's
//!   watermark (newest event minus `allowed_lateness`) has passed them. Nothing accepted later can
//!   sort before them, so the order they are applied in is the event-time order, exactly.
//! - A snapshot applies the still-buffered events to a copy of the open sessions, so live gauges
//!   never wait for the lateness window.
//! - Concurrency is not counted incrementally: it is swept from the sessions' intervals when a
//!   snapshot is read (see [`timeline`]), so it cannot drift.

pub mod alert_log;
mod clock;
pub mod encode;
pub mod events;
pub mod latency;
pub mod timeline;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use rustc_hash::FxHashMap;

use crate::config::EngineConfig;
use crate::event::{opt_f64, opt_str, ChunkView, EventType, Reason, ServerState, ShortKey};
use alert_log::{AlertLog, AlertRecord};
use clock::{StreamClock, Verdict};
use events::EventStore;
use latency::{Metric, MinuteSeries, MinuteSummary, PromHistogram};

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
}

impl Counters {
    /// All rejected inputs.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
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
        s
    }
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// A `disconnect` event, with its `reason` if it had one.
    Disconnect(Option<Arc<str>>),
    /// Its server announced `state: down`.
    ServerDown,
    /// No event for `session_timeout`.
    Expired,
}

impl EndReason {
    /// The `sessions.end_reason` value.
    pub fn as_str(&self) -> &str {
        match self {
            EndReason::Disconnect(Some(r)) => r,
            EndReason::Disconnect(None) => "disconnect",
            EndReason::ServerDown => "server_down",
            EndReason::Expired => "expired",
        }
    }
}

/// A session in a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    /// Session id.
    pub session: Arc<str>,
    /// Connect time, epoch ms.
    pub started: i64,
    /// End time, or None while active.
    pub ended: Option<i64>,
    /// Why it ended.
    pub end_reason: Option<EndReason>,
    /// Descriptive fields from the connect.
    pub user: Option<Arc<str>>,
    /// Site of the user.
    pub site: Option<Arc<str>>,
    /// Client OS.
    pub os: Option<Arc<str>>,
    /// Application.
    pub app: Option<Arc<str>>,
    /// Tunnel setup time of the connect.
    pub setup_ms: Option<f64>,
}

/// An open session: 40 bytes. Descriptive strings are symbols (0 = absent) and a missing
/// `setup_ms` is NaN, which keeps a session's whole state well under 256 bytes.
#[derive(Debug, Clone)]
struct Active {
    start: i64,
    last_seen: i64,
    setup_ms: f64,
    user: u32,
    site: u32,
    os: u32,
    app: u32,
}

impl Active {
    fn expiry(&self, timeout: i64) -> i64 {
        self.last_seen.saturating_add(timeout)
    }

    fn close(self, session: Arc<str>, end: i64, reason: EndReason, sym: &Symbols) -> SessionRow {
        let mut row = self.row(session, sym);
        row.ended = Some(end);
        row.end_reason = Some(reason);
        row
    }

    fn row(&self, session: Arc<str>, sym: &Symbols) -> SessionRow {
        SessionRow {
            session,
            started: self.start,
            ended: None,
            end_reason: None,
            user: sym.name(self.user),
            site: sym.name(self.site),
            os: sym.name(self.os),
            app: sym.name(self.app),
            setup_ms: (!self.setup_ms.is_nan()).then_some(self.setup_ms),
        }
    }
}

/// An accepted event waiting in its server's reorder buffer.
struct Pending {
    ts: i64,
    /// The rank (see [`rank`]) in the top two bits, the arrival sequence number below: one
    /// integer orders events of the same millisecond.
    order: u64,
    chunk: Arc<ChunkView>,
    row: u32,
}

impl Pending {
    const SEQ_BITS: u32 = 62;

    fn new(ts: i64, rank: u8, seq: u64, chunk: Arc<ChunkView>, row: u32) -> Self {
        Pending {
            ts,
            order: Self::order(rank, seq),
            chunk,
            row,
        }
    }

    fn order(rank: u8, seq: u64) -> u64 {
        debug_assert!(rank < 4 && seq < 1 << Self::SEQ_BITS);
        (rank as u64) << Self::SEQ_BITS | seq
    }

    fn rank(&self) -> u8 {
        (self.order >> Self::SEQ_BITS) as u8
    }

    fn seq(&self) -> u64 {
        self.order & ((1 << Self::SEQ_BITS) - 1)
    }

    fn key(&self) -> (i64, u64) {
        (self.ts, self.order)
    }
}

/// Within one millisecond: connects first (a session that connects at t counts at t), then
/// samples, then disconnects, then server announcements (a `down` at t ends what is open at t).
fn rank(kind: EventType) -> u8 {
    match kind {
        EventType::Connect => 0,
        EventType::Latency => 1,
        EventType::Disconnect => 2,
        _ => 3,
    }
}

/// Strings that repeat (users, sites, OSes, apps, reasons) as small numbers. Symbol 0 is
/// "absent". The table only grows: it holds each distinct value once (a bank's users, not its
/// sessions), which is small next to retention.
#[derive(Clone)]
struct Symbols {
    ids: FxHashMap<Arc<str>, u32>,
    names: Vec<Option<Arc<str>>>,
}

impl Default for Symbols {
    fn default() -> Self {
        Symbols {
            ids: FxHashMap::default(),
            names: vec![None],
        }
    }
}

impl Symbols {
    fn intern(&mut self, s: Option<&str>) -> u32 {
        let Some(s) = s else { return 0 };
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.names.len() as u32;
        let a: Arc<str> = s.into();
        self.names.push(Some(a.clone()));
        self.ids.insert(a, id);
        id
    }

    fn arc(&mut self, s: Option<&str>) -> Option<Arc<str>> {
        let id = self.intern(s);
        self.name(id)
    }

    fn name(&self, id: u32) -> Option<Arc<str>> {
        self.names.get(id as usize).cloned().flatten()
    }
}

/// The order-dependent part of a server: open sessions, capacity and state.
#[derive(Clone, Default)]
struct Book {
    active: FxHashMap<Arc<str>, Active>,
    capacity: Option<u32>,
    state: Option<ServerState>,
}

/// Where ordered application writes what it produces.
struct Sink<'a> {
    closed: &'a mut Vec<SessionRow>,
    capacity_changes: &'a mut Vec<(i64, Option<u32>)>,
    symbols: &'a mut Symbols,
    duplicate_connects: &'a mut u64,
    orphans: &'a mut u64,
}

impl Book {
    /// Applies one event, in event-time order.
    fn apply(&mut self, p: &Pending, timeout: i64, out: &mut Sink<'_>) {
        let c = &*p.chunk;
        let row = p.row as usize;
        let ts = p.ts;
        match c.kinds[row] {
            EventType::Connect => {
                let sid = c.session.value(row);
                if let Some(a) = self.active.get_mut(sid) {
                    if a.expiry(timeout) > ts {
                        a.last_seen = ts;
                        *out.duplicate_connects += 1;
                        return;
                    }
                    let (k, a) = self.active.remove_entry(sid).expect("present");
                    let end = a.expiry(timeout);
                    out.closed
                        .push(a.close(k, end, EndReason::Expired, out.symbols));
                }
                let a = Active {
                    start: ts,
                    last_seen: ts,
                    user: out.symbols.intern(opt_str(&c.user, row)),
                    site: out.symbols.intern(opt_str(&c.site, row)),
                    os: out.symbols.intern(opt_str(&c.os, row)),
                    app: out.symbols.intern(opt_str(&c.app, row)),
                    setup_ms: opt_f64(&c.setup_ms, row).unwrap_or(f64::NAN),
                };
                self.active.insert(sid.into(), a);
            }
            EventType::Disconnect => {
                let sid = c.session.value(row);
                match self.active.remove_entry(sid) {
                    Some((k, a)) if a.expiry(timeout) <= ts => {
                        let end = a.expiry(timeout);
                        out.closed
                            .push(a.close(k, end, EndReason::Expired, out.symbols));
                        *out.orphans += 1;
                    }
                    Some((k, a)) => {
                        let reason = out.symbols.arc(opt_str(&c.reason, row));
                        out.closed
                            .push(a.close(k, ts, EndReason::Disconnect(reason), out.symbols));
                    }
                    None => *out.orphans += 1,
                }
            }
            EventType::Latency => {
                let sid = c.session.value(row);
                match self.active.get_mut(sid) {
                    Some(a) if a.expiry(timeout) > ts => a.last_seen = ts,
                    Some(_) => {
                        let (k, a) = self.active.remove_entry(sid).expect("present");
                        let end = a.expiry(timeout);
                        out.closed
                            .push(a.close(k, end, EndReason::Expired, out.symbols));
                        *out.orphans += 1;
                    }
                    None => *out.orphans += 1,
                }
            }
            EventType::Server => {
                if c.capacity.is_valid(row) {
                    let cap = u32::try_from(c.capacity.value(row)).ok();
                    self.capacity = cap;
                    out.capacity_changes.push((ts, cap));
                }
                if let Some(state) = opt_str(&c.state, row).and_then(ServerState::parse) {
                    self.state = Some(state);
                    if state == ServerState::Down {
                        for (k, a) in self.active.drain() {
                            let exp = a.expiry(timeout);
                            let row = if exp <= ts {
                                a.close(k, exp, EndReason::Expired, out.symbols)
                            } else {
                                a.close(k, ts, EndReason::ServerDown, out.symbols)
                            };
                            out.closed.push(row);
                        }
                    }
                }
            }
            EventType::AuthFail | EventType::Reject => {}
        }
    }

    /// Closes sessions whose timeout has passed by `frontier`.
    fn expire_through(
        &mut self,
        frontier: i64,
        timeout: i64,
        closed: &mut Vec<SessionRow>,
        sym: &Symbols,
    ) {
        let expired: Vec<Arc<str>> = self
            .active
            .iter()
            .filter(|(_, a)| a.expiry(timeout) <= frontier)
            .map(|(k, _)| k.clone())
            .collect();
        for k in expired {
            let a = self.active.remove(&k).expect("present");
            let end = a.expiry(timeout);
            closed.push(a.close(k, end, EndReason::Expired, sym));
        }
    }
}

/// A pass-through hasher for keys that are already uniform hashes (xxh3-128 of event ids).
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

/// One hour's event ids.
type IdSet = HashSet<u128, BuildHasherDefault<PreHashed>>;

/// Event ids seen in retention, as 128-bit hashes (a collision is ~1e-26 likely at 10^7 ids),
/// kept per event-time hour. A redelivered event repeats its `ts`, so it is looked up in the one
/// small set of its hour: a single set of millions of ids made every lookup a cache miss and
/// cost two thirds of the engine's time. Eviction drops whole hours. The newest hour, which
/// nearly every event falls in, is kept outside the map, so its inserts walk no tree nodes.
#[derive(Default)]
struct Dedupe {
    /// The newest hour with ids, and its ids.
    newest: Option<(i64, IdSet)>,
    /// The hours before it.
    older: BTreeMap<i64, IdSet>,
}

const HOUR_MS: i64 = 3_600_000;

/// Latency minutes (all servers and metrics) from which a snapshot is copied on two threads;
/// about a day of ten busy servers.
const PARALLEL_SNAPSHOT_MINUTES: usize = 20_000;

impl Dedupe {
    fn contains(&self, h: u128, ts: i64) -> bool {
        let hour = ts.div_euclid(HOUR_MS);
        match &self.newest {
            Some((newest, ids)) if *newest == hour => ids.contains(&h),
            _ => self.older.get(&hour).is_some_and(|s| s.contains(&h)),
        }
    }

    /// False if the id was already there.
    fn insert(&mut self, h: u128, ts: i64) -> bool {
        let hour = ts.div_euclid(HOUR_MS);
        match &mut self.newest {
            Some((newest, ids)) if *newest == hour => ids.insert(h),
            Some((newest, _)) if *newest > hour => self
                .older
                .entry(hour)
                .or_insert_with(|| IdSet::with_hasher(Default::default()))
                .insert(h),
            _ => {
                // A new hour starts sized like the one before, so it is not rehashed as it fills.
                let hint = self.newest.as_ref().map_or(0, |(_, ids)| ids.len());
                let mut ids = IdSet::with_capacity_and_hasher(hint, Default::default());
                ids.insert(h);
                if let Some((before, old)) = self.newest.replace((hour, ids)) {
                    self.older.insert(before, old);
                }
                true
            }
        }
    }

    fn evict_before(&mut self, horizon: i64) {
        let hour = horizon.div_euclid(HOUR_MS);
        self.older = self.older.split_off(&hour);
        if self
            .newest
            .as_ref()
            .is_some_and(|(newest, _)| *newest < hour)
        {
            self.newest = None;
        }
    }

    /// Every hour's ids, oldest first.
    fn hours(&self) -> impl Iterator<Item = (i64, &IdSet)> {
        self.older
            .iter()
            .map(|(&hour, ids)| (hour, ids))
            .chain(self.newest.iter().map(|(hour, ids)| (*hour, ids)))
    }

    /// Built from every hour's ids.
    fn from_hours(mut by_hour: BTreeMap<i64, IdSet>) -> Dedupe {
        let newest = by_hour.pop_last();
        Dedupe {
            newest,
            older: by_hour,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.hours().map(|(_, ids)| ids.len()).sum()
    }
}

struct Server {
    name: Arc<str>,
    site: Option<Arc<str>>,
    configured_capacity: Option<u32>,
    first_ts: Option<i64>,
    max_ts: Option<i64>,
    dedupe: Dedupe,
    pending: VecDeque<Pending>,
    book: Book,
    closed: Vec<SessionRow>,
    capacity_changes: Vec<(i64, Option<u32>)>,
    rejects: BTreeMap<i64, u32>,
    auth_fails: BTreeMap<i64, u32>,
    latency: [MinuteSeries; 3],
    /// rtt and setup since start, for Prometheus.
    prom: [PromHistogram; 2],
}

impl Server {
    fn new(name: &str, site: Option<&str>, capacity: Option<u32>) -> Server {
        Server {
            name: name.into(),
            site: site.map(Into::into),
            configured_capacity: capacity,
            first_ts: None,
            max_ts: None,
            dedupe: Dedupe::default(),
            pending: VecDeque::new(),
            book: Book {
                capacity,
                ..Book::default()
            },
            closed: Vec::new(),
            capacity_changes: Vec::new(),
            rejects: BTreeMap::new(),
            auth_fails: BTreeMap::new(),
            latency: Default::default(),
            prom: Default::default(),
        }
    }

    fn watermark(&self, lateness: i64) -> Option<i64> {
        self.max_ts.map(|m| m - lateness)
    }

    /// Buffers an event in order. The fields come in separately and the event is built in
    /// the buffer: a `Pending` built on the stack and then moved was copied with 16-byte loads
    /// over its 8- and 4-byte stores, a store-forwarding stall on every event.
    #[inline(never)]
    fn push_pending(&mut self, ts: i64, rank: u8, seq: u64, chunk: &Arc<ChunkView>, row: u32) {
        let key = (ts, Pending::order(rank, seq));
        if self.pending.back().is_some_and(|last| last.key() > key) {
            let at = self.pending.partition_point(|q| q.key() <= key);
            let p = Pending::new(ts, rank, seq, chunk.clone(), row);
            self.pending.insert(at, p);
        } else if self.pending.len() == self.pending.capacity() {
            self.grow_pending();
            self.pending
                .push_back(Pending::new(ts, rank, seq, chunk.clone(), row));
        } else {
            // Here the compiler knows the buffer has room: `push_back` then has no call to
            // grow, so nothing is spilled around one and the fields are stored in place.
            self.pending.push_back(Pending {
                ts,
                order: key.1,
                chunk: chunk.clone(),
                row,
            });
        }
    }

    #[cold]
    #[inline(never)]
    fn grow_pending(&mut self) {
        self.pending.reserve(self.pending.len().max(64));
    }

    /// Applies buffered events up to `frontier` in order.
    fn drain_through(
        &mut self,
        frontier: i64,
        timeout: i64,
        symbols: &mut Symbols,
        counters: &mut Counters,
    ) {
        let mut sink = Sink {
            closed: &mut self.closed,
            capacity_changes: &mut self.capacity_changes,
            symbols,
            duplicate_connects: &mut counters.duplicate_connects,
            orphans: &mut counters.orphans,
        };
        while self.pending.front().is_some_and(|p| p.ts <= frontier) {
            let p = self.pending.pop_front().expect("front exists");
            self.book.apply(&p, timeout, &mut sink);
        }
        for series in &mut self.latency {
            series.seal_through(frontier);
        }
    }
}

/// A server as of a snapshot.
#[derive(Debug, Clone)]
pub struct ServerSnapshot {
    /// Server id.
    pub name: Arc<str>,
    /// Site, from config or the server's own events.
    pub site: Option<Arc<str>>,
    /// Announced state (None if never announced).
    pub state: Option<ServerState>,
    /// Capacity at the start of the record, before any change below.
    pub base_capacity: Option<u32>,
    /// Capacity changes in event time.
    pub capacity_changes: Vec<(i64, Option<u32>)>,
    /// First accepted event of the server, epoch ms.
    pub first_ts: Option<i64>,
    /// Newest accepted event of the server.
    pub max_ts: Option<i64>,
    /// Sessions in retention: closed ones and those still open.
    pub sessions: Vec<SessionRow>,
    /// Reject events per second (second start ms -> count).
    pub rejects: Vec<(i64, u32)>,
    /// Auth failures per second (second start ms -> count).
    pub auth_fails: Vec<(i64, u32)>,
    /// Minute histograms per metric, in [`Metric::ALL`] order.
    pub latency: [Vec<MinuteSummary>; 3],
}

impl ServerSnapshot {
    /// Capacity in effect at `t`.
    pub fn capacity_at(&self, t: i64) -> Option<u32> {
        let i = self.capacity_changes.partition_point(|(ts, _)| *ts <= t);
        if i == 0 {
            self.base_capacity
        } else {
            self.capacity_changes[i - 1].1
        }
    }

    /// The current capacity.
    pub fn capacity(&self) -> Option<u32> {
        self.capacity_at(i64::MAX)
    }
}

/// An immutable view of all state, for SQL, alerts and HTTP.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Newest event time seen across all servers (None before any event).
    pub now_ms: Option<i64>,
    /// Configured retention.
    pub retention_ms: i64,
    /// Servers, sorted by name.
    pub servers: Vec<ServerSnapshot>,
    /// Accepted events in retention.
    pub events: Vec<RecordBatch>,
    /// Counters at the time of the snapshot.
    pub counters: Counters,
    /// Alert transitions in retention, oldest first.
    pub alerts: Arc<[AlertRecord]>,
}

impl Snapshot {
    /// Oldest event time still in retention.
    pub fn horizon_ms(&self) -> Option<i64> {
        self.now_ms.map(|n| n - self.retention_ms)
    }

    /// The tables as they stood just before event time `t`: only what happened before `t`,
    /// whatever arrived since. SQL alert rules evaluated at `t` read this, so their answer does
    /// not depend on how far ingest has run ahead. (A server's `state` is its latest: server
    /// states are not kept as a history.)
    pub fn as_of(&self, t: i64) -> Snapshot {
        let servers = self
            .servers
            .iter()
            .filter(|s| s.first_ts.is_none_or(|f| f < t))
            .map(|s| {
                let sessions = s
                    .sessions
                    .iter()
                    .filter(|r| r.started < t)
                    .map(|r| {
                        let mut r = r.clone();
                        if r.ended.is_some_and(|e| e >= t) {
                            r.ended = None;
                            r.end_reason = None;
                        }
                        r
                    })
                    .collect();
                let before = |v: &[(i64, u32)]| -> Vec<(i64, u32)> {
                    v.iter().copied().filter(|(k, _)| *k + 1000 <= t).collect()
                };
                ServerSnapshot {
                    name: s.name.clone(),
                    site: s.site.clone(),
                    state: s.state,
                    base_capacity: s.base_capacity,
                    capacity_changes: s
                        .capacity_changes
                        .iter()
                        .copied()
                        .filter(|(ts, _)| *ts < t)
                        .collect(),
                    first_ts: s.first_ts,
                    max_ts: s.max_ts.map(|m| m.min(t - 1)),
                    sessions,
                    rejects: before(&s.rejects),
                    auth_fails: before(&s.auth_fails),
                    latency: s.latency.clone().map(|minutes| {
                        minutes
                            .into_iter()
                            .filter(|m| m.minute_ms + 60_000 <= t)
                            .collect()
                    }),
                }
            })
            .collect();
        Snapshot {
            now_ms: self.now_ms.map(|n| n.min(t - 1)),
            retention_ms: self.retention_ms,
            servers,
            events: self.events.iter().map(|b| events::before(b, t)).collect(),
            counters: self.counters.clone(),
            alerts: self.alerts.iter().filter(|a| a.ts < t).cloned().collect(),
        }
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
    cfg: EngineConfig,
    servers: Vec<Server>,
    server_index: FxHashMap<Box<str>, usize>,
    symbols: Symbols,
    events: EventStore,
    counters: Counters,
    now_ms: Option<i64>,
    seq: u64,
    last_maintenance: i64,
    alerts: AlertLog,
    /// Per input partition (topic, partition): the next position to read, as recorded by
    /// the ingest loop with each applied batch. Checkpoints carry it so a restart resumes
    /// exactly after the state it loads.
    positions: BTreeMap<(Arc<str>, i32), i64>,
    /// Event time before which nothing more is accepted (`late`): what has been archived is
    /// final, so the archive and the tables in memory always agree.
    sealed_before: Option<i64>,
    /// Judges events too far ahead of the stream (or of the wall clock) as `future`.
    clock: StreamClock,
    /// The wall clock, epoch ms, in the live service (never in `replay`: its answers must not
    /// depend on when it runs).
    wall_clock_ms: Option<i64>,
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

    fn server_slot(&mut self, name: &str) -> usize {
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
                EventType::Disconnect => {}
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
    fn maintain(&mut self, force: bool) {
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
                srv.book
                    .expire_through(frontier, timeout, &mut srv.closed, &self.symbols);
            }
            srv.closed.retain(|s| s.ended.is_none_or(|e| e >= horizon));
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
                srv.book_base_capacity(cut);
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
    fn forget_idle_servers(&mut self, horizon: i64) {
        let configured = &self.cfg.servers;
        let idle = |s: &Server| {
            !configured.contains_key(&*s.name)
                && s.max_ts.is_none_or(|m| m < horizon)
                && s.pending.is_empty()
                && s.book.active.is_empty()
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
        self.server_index = self
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| (Box::<str>::from(&*s.name), i))
            .collect();
        // The clock keys servers by their index, which just changed.
        self.rebuild_clock();
    }

    /// An immutable copy of everything, with buffered events applied to a copy of the open
    /// sessions so that it is current to the newest event.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_scoped(None, true, true)
    }

    /// A snapshot for the alert evaluator: only what happened at or after `since` (sessions
    /// still open then, rejects, minutes), the `events` table and the latency minutes only if
    /// asked for (summarising a busy open minute sorts its samples). Answers about times at or
    /// after `since` are those of [`Engine::snapshot`].
    pub fn snapshot_since(
        &self,
        since: Option<i64>,
        with_events: bool,
        with_latency: bool,
    ) -> Snapshot {
        self.snapshot_scoped(since, with_events, with_latency)
    }

    fn snapshot_scoped(
        &self,
        since: Option<i64>,
        with_events: bool,
        with_latency: bool,
    ) -> Snapshot {
        // A big state (days of replayed minutes and sessions) is copied on two threads: the
        // copy is on the path of every query, and of a replay's answer.
        let parallel = self.latency_minutes() >= PARALLEL_SNAPSHOT_MINUTES;
        self.snapshot_copied(since, with_events, with_latency, parallel)
    }

    /// Latency minutes held, all servers and metrics.
    fn latency_minutes(&self) -> usize {
        self.servers
            .iter()
            .flat_map(|s| &s.latency)
            .map(MinuteSeries::minutes)
            .sum()
    }

    fn snapshot_copied(
        &self,
        since: Option<i64>,
        with_events: bool,
        with_latency: bool,
        parallel: bool,
    ) -> Snapshot {
        let timeout = self.cfg.session_timeout_ms;
        let now = self.now_ms;
        let retention_horizon = now.map(|n| n - self.cfg.retention_ms);
        let horizon = match (retention_horizon, since) {
            (Some(h), Some(s)) => Some(h.max(s)),
            (h, _) => h,
        };
        let overrides = &self.cfg.capacity_overrides;
        let server_snapshot = |srv: &Server| {
            let mut book = srv.book.clone();
            let mut closed = Vec::new();
            let mut capacity_changes = srv.capacity_changes.clone();
            // Buffered events may bring new strings: intern them in a copy, made only for a
            // server that has buffered events.
            let mut symbols = std::borrow::Cow::Borrowed(&self.symbols);
            if !srv.pending.is_empty() {
                let (mut dc, mut orph) = (0, 0);
                let mut sink = Sink {
                    closed: &mut closed,
                    capacity_changes: &mut capacity_changes,
                    symbols: symbols.to_mut(),
                    duplicate_connects: &mut dc,
                    orphans: &mut orph,
                };
                for p in &srv.pending {
                    book.apply(p, timeout, &mut sink);
                }
            }
            let mut sessions: Vec<SessionRow> = srv
                .closed
                .iter()
                .chain(closed.iter())
                .filter(|s| match (s.ended, horizon) {
                    (Some(e), Some(h)) => e >= h,
                    _ => true,
                })
                .cloned()
                .collect();
            for (k, a) in book.active {
                let exp = a.expiry(timeout);
                let row = if now.is_some_and(|n| exp <= n) {
                    a.close(k, exp, EndReason::Expired, &symbols)
                } else {
                    a.row(k, &symbols)
                };
                sessions.push(row);
            }
            sessions.sort_by(|a, b| (a.started, &a.session).cmp(&(b.started, &b.session)));
            let mut base_capacity = srv.configured_capacity;
            if let Some(&c) = overrides.get(&*srv.name).or_else(|| overrides.get("*")) {
                // What-if: the override is the capacity all along.
                base_capacity = Some(c);
                capacity_changes.clear();
            }
            let per_second = |m: &BTreeMap<i64, u32>| -> Vec<(i64, u32)> {
                let from = since.map_or(i64::MIN, |s| s - s.rem_euclid(1000));
                m.range(from..).map(|(k, v)| (*k, *v)).collect()
            };
            let minutes_from = since.unwrap_or(i64::MIN);
            let minutes = |m: usize| {
                if with_latency {
                    srv.latency[m].summaries_from(minutes_from)
                } else {
                    Vec::new()
                }
            };
            ServerSnapshot {
                name: srv.name.clone(),
                site: srv.site.clone(),
                state: book.state,
                base_capacity,
                capacity_changes,
                first_ts: srv.first_ts,
                max_ts: srv.max_ts,
                sessions,
                rejects: per_second(&srv.rejects),
                auth_fails: per_second(&srv.auth_fails),
                latency: [minutes(0), minutes(1), minutes(2)],
            }
        };
        let mut servers: Vec<ServerSnapshot> = if parallel {
            let (first, second) = self.servers.split_at(self.servers.len() / 2);
            std::thread::scope(|scope| {
                let other = scope.spawn(|| second.iter().map(server_snapshot).collect::<Vec<_>>());
                let mut servers: Vec<ServerSnapshot> = first.iter().map(server_snapshot).collect();
                servers.extend(other.join().expect("a snapshot copy does not panic"));
                servers
            })
        } else {
            self.servers.iter().map(server_snapshot).collect()
        };
        servers.sort_by(|a, b| a.name.cmp(&b.name));
        Snapshot {
            now_ms: now,
            retention_ms: self.cfg.retention_ms,
            servers,
            events: if with_events {
                self.events.batches(horizon)
            } else {
                Vec::new()
            },
            counters: self.counters.clone(),
            alerts: self.alerts.records(retention_horizon),
        }
    }

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
        self.servers.iter().map(|s| s.book.active.len()).sum()
    }
}

impl Server {
    /// Folds the first `cut` capacity changes into the configured base, keeping `capacity_at`
    /// answers unchanged for every time still in retention.
    fn book_base_capacity(&mut self, cut: usize) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{decode_chunk, Chunk};

    const L: i64 = 300_000;

    fn engine() -> Engine {
        Engine::new(EngineConfig {
            session_timeout_ms: 3_600_000,
            ..EngineConfig::default()
        })
    }

    fn feed(e: &mut Engine, lines: &[String]) -> Applied {
        let d = decode_chunk(Chunk {
            raw: lines.join("\n").into_bytes(),
            truncated: false,
            shared: None,
        });
        assert!(d.rejects.is_empty(), "{:?}", d.rejects);
        e.apply(&d.batch)
    }

    /// The decoder's own types and id hashes are those the engine would read back out of the
    /// batch: every type, with and without an id, an escaped id, garbage between.
    #[test]
    fn decoded_rows_wrap_like_their_batch() {
        let raw = [
            r#"{"type":"connect","ts":1,"server":"gw","session":"s","id":"a"}"#,
            r#"{"type":"disconnect","ts":2,"server":"gw","session":"s"}"#,
            "garbage",
            r#"{"type":"latency","ts":3,"server":"gw","session":"s","rtt_ms":1,"id":"b\u0041"}"#,
            r#"{"type":"auth_fail","ts":4,"server":"gw","id":""}"#,
            r#"{"type":"auth_fail","ts":4,"server":"gw","id":"c"}"#,
            r#"{"type":"reject","ts":5,"server":"gw","id":null}"#,
            r#"{"type":"server","ts":6,"server":"gw","capacity":3,"id":"d"}"#,
        ]
        .join("\n");
        let d = decode_chunk(Chunk {
            raw: raw.into_bytes(),
            truncated: false,
            shared: None,
        });
        assert_eq!(d.batch.num_rows(), 6);
        let read_back = ChunkView::new(&d.batch);
        assert_eq!(d.view.kinds, read_back.kinds);
        assert_eq!(d.view.id_hashes, read_back.id_hashes);
        assert_eq!(d.view.num_rows(), 6);
        assert_eq!(d.view.id_hashes[2], crate::event::id_hash("bA"));
        assert_eq!(d.view.id_hashes[1], 0);
    }

    fn ev(kind: &str, ts: i64, session: &str) -> String {
        format!(r#"{{"type":"{kind}","ts":{ts},"server":"gw","session":"{session}","rtt_ms":1}}"#)
    }

    fn sessions(e: &Engine) -> Vec<(String, i64, Option<i64>, Option<String>)> {
        let snap = e.snapshot();
        let mut v: Vec<_> = snap.servers[0]
            .sessions
            .iter()
            .map(|s| {
                (
                    s.session.to_string(),
                    s.started,
                    s.ended,
                    s.end_reason.as_ref().map(|r| r.as_str().to_string()),
                )
            })
            .collect();
        v.sort();
        v
    }

    /// The `/metrics` histograms count every sample, unless the run keeps none (`replay`);
    /// the minute histograms count them either way.
    #[test]
    fn prometheus_histograms_are_kept_only_when_asked_for() {
        for keep in [true, false] {
            let mut e = Engine::new(EngineConfig {
                keep_prometheus: keep,
                ..EngineConfig::default()
            });
            feed(&mut e, &[ev("connect", 0, "a"), ev("latency", 1_000, "a")]);
            let [rtt, _setup] = &e.latency_histograms()[0].1;
            assert_eq!(rtt.count, u64::from(keep));
            e.flush();
            let minutes = e.snapshot().servers[0].latency[0].clone();
            assert_eq!(minutes.iter().map(|m| m.count).sum::<u64>(), 1);
        }
    }

    #[test]
    fn disconnect_before_connect_is_matched() {
        let mut e = engine();
        feed(
            &mut e,
            &[ev("disconnect", 10_000, "a"), ev("connect", 1_000, "a")],
        );
        e.flush();
        assert_eq!(
            sessions(&e),
            vec![("a".into(), 1_000, Some(10_000), Some("disconnect".into()))]
        );
        assert_eq!(e.counters().orphans, 0);
    }

    #[test]
    fn same_millisecond_connect_then_disconnect_even_if_they_arrive_reversed() {
        let mut e = engine();
        feed(
            &mut e,
            &[ev("disconnect", 5_000, "a"), ev("connect", 5_000, "a")],
        );
        e.flush();
        assert_eq!(
            sessions(&e),
            vec![("a".into(), 5_000, Some(5_000), Some("disconnect".into()))]
        );
        assert_eq!(e.counters().orphans, 0);
    }

    #[test]
    fn lateness_boundary_is_inclusive() {
        let mut e = engine();
        let applied = feed(
            &mut e,
            &[
                ev("connect", 1_000_000, "a"),
                ev("connect", 1_000_000 - L, "b"),
                ev("connect", 1_000_000 - L - 1, "c"),
            ],
        );
        assert_eq!(applied.rejected_rows, vec![(2, Reason::Late)]);
        assert_eq!(e.counters().rejected[&Reason::Late], 1);
        // Lateness is per server: another server far behind is not late.
        feed(
            &mut e,
            &[r#"{"type":"connect","ts":5,"server":"other","session":"z"}"#.to_string()],
        );
        assert_eq!(e.counters().rejected[&Reason::Late], 1);
    }

    #[test]
    fn repeated_ids_are_dropped_even_when_they_come_back_late() {
        let mut e = engine();
        let with_id = |ts: i64, id: &str| {
            format!(r#"{{"type":"reject","ts":{ts},"server":"gw","id":"{id}"}}"#)
        };
        feed(
            &mut e,
            &[
                with_id(1_000, "x"),
                with_id(1_000, "x"),
                with_id(9_000_000, "y"),
                with_id(1_000, "x"),
            ],
        );
        assert_eq!(e.counters().duplicates, 2);
        assert_eq!(e.counters().accepted, 2);
        assert!(!e.counters().rejected.contains_key(&Reason::Late));
        // Documented limit: ids are remembered per event-time hour, so an id reused on an event
        // of another hour is a new event.
        feed(
            &mut e,
            &[with_id(9_100_000, "y"), with_id(3_600_000 * 3, "y")],
        );
        assert_eq!(e.counters().duplicates, 3);
        assert_eq!(e.counters().accepted, 3);
    }

    #[test]
    fn a_session_expires_exactly_timeout_after_its_last_event() {
        let mut e = engine();
        feed(
            &mut e,
            &[
                ev("connect", 0, "a"),
                ev("latency", 60_000, "a"),
                ev("connect", 3_660_000, "b"),
            ],
        );
        e.flush();
        let s = sessions(&e);
        assert_eq!(
            s[0],
            ("a".into(), 0, Some(3_660_000), Some("expired".into()))
        );
        assert_eq!(s[1].2, None);
        // A sample after the expiry is an orphan, not a revival.
        feed(&mut e, &[ev("latency", 3_700_000, "a")]);
        e.flush();
        assert_eq!(e.counters().orphans, 1);
    }

    #[test]
    fn server_down_ends_open_sessions_but_not_already_expired_ones() {
        let mut e = engine();
        feed(
            &mut e,
            &[
                ev("connect", 0, "idle"),
                ev("connect", 4_000_000, "busy"),
                r#"{"type":"server","ts":4_100_000,"server":"gw","state":"down"}"#.replace('_', ""),
            ],
        );
        e.flush();
        let s = sessions(&e);
        assert_eq!(
            s[0],
            (
                "busy".into(),
                4_000_000,
                Some(4_100_000),
                Some("server_down".into())
            )
        );
        assert_eq!(
            s[1],
            ("idle".into(), 0, Some(3_600_000), Some("expired".into()))
        );
        assert_eq!(e.snapshot().servers[0].state, Some(ServerState::Down));
    }

    #[test]
    fn live_snapshot_does_not_wait_for_the_lateness_window() {
        let mut e = engine();
        feed(
            &mut e,
            &[
                ev("connect", 1_000, "a"),
                ev("connect", 2_000, "b"),
                ev("disconnect", 3_000, "a"),
            ],
        );
        // Nothing is final yet (watermark = 3000 - 5 min), but the snapshot is current.
        let snap = e.snapshot();
        let rows: Vec<_> = timeline::seconds(&snap.servers[0], snap.now_ms.unwrap(), 0).collect();
        assert_eq!(
            rows.iter().map(|r| r.sessions).collect::<Vec<_>>(),
            vec![1, 2, 1]
        );
    }

    /// The duplicate-id sets answer like a plain set of (hour, id), through inserts into the
    /// newest, older and new hours, evictions, and a checkpoint's round trip.
    #[test]
    fn dedupe_sets_answer_like_a_plain_set() {
        let mut rng = crate::sim::Rng::new(7);
        let mut next = move |n: u64| rng.below(n);
        let mut d = Dedupe::default();
        let mut model: std::collections::BTreeSet<(i64, u128)> = Default::default();
        let mut clock = 0i64;
        for step in 0..20_000 {
            // Time mostly moves on; some events are from earlier hours (also before any kept).
            clock += next(40_000) as i64;
            let ts = match next(10) {
                0 => clock - next(5 * HOUR_MS as u64) as i64,
                _ => clock,
            };
            let id = next(300) as u128;
            let hour = ts.div_euclid(HOUR_MS);
            assert_eq!(
                d.contains(id, ts),
                model.contains(&(hour, id)),
                "step {step}"
            );
            assert_eq!(d.insert(id, ts), model.insert((hour, id)), "step {step}");
            if next(500) == 0 {
                // Also past everything kept (a quiet server, a short retention).
                let horizon =
                    clock - next(3 * HOUR_MS as u64) as i64 + next(2) as i64 * 2 * HOUR_MS;
                d.evict_before(horizon);
                model.retain(|&(h, _)| h >= horizon.div_euclid(HOUR_MS));
            }
            if next(2_000) == 0 {
                let copy: BTreeMap<i64, IdSet> =
                    d.hours().map(|(h, ids)| (h, ids.clone())).collect();
                d = Dedupe::from_hours(copy);
            }
            assert_eq!(d.len(), model.len());
        }
        let kept: Vec<(i64, u128)> = {
            let mut v: Vec<(i64, u128)> = d
                .hours()
                .flat_map(|(h, ids)| ids.iter().map(move |&id| (h, id)))
                .collect();
            v.sort();
            v
        };
        assert_eq!(kept, model.into_iter().collect::<Vec<_>>());
    }

    /// The snapshot copied on two threads equals the one copied on one, and a big state takes
    /// the two-thread path.
    #[test]
    fn a_snapshot_copied_on_two_threads_equals_one_copied_on_one() {
        let mut e = Engine::new(EngineConfig {
            retention_ms: 30 * 24 * 3_600_000,
            ..EngineConfig::default()
        });
        let mut lines = Vec::new();
        for server in ["gw-1", "gw-2", "gw-3"] {
            lines.push(format!(
                r#"{{"type":"connect","ts":0,"server":"{server}","session":"s","user":"u"}}"#
            ));
            // A latency sample every minute for ten days: 14,400 minutes per server.
            for m in 0..14_400i64 {
                lines.push(format!(
                    r#"{{"type":"latency","ts":{},"server":"{server}","session":"s","rtt_ms":{}}}"#,
                    m * 60_000 + 7,
                    10 + m % 90
                ));
            }
        }
        feed(&mut e, &lines);
        e.flush();
        assert!(e.latency_minutes() >= PARALLEL_SNAPSHOT_MINUTES);
        let one = e.snapshot_copied(None, true, true, false);
        let two = e.snapshot_copied(None, true, true, true);
        assert_eq!(format!("{:?}", one.servers), format!("{:?}", two.servers));
        assert_eq!(one.servers.len(), 3);
    }

    #[test]
    fn retention_bounds_memory() {
        let mut e = Engine::new(EngineConfig {
            retention_ms: 3_600_000,
            ..EngineConfig::default()
        });
        for h in 0..10 {
            let lines: Vec<String> = (0..1000)
                .map(|i| {
                    let ts = h * 3_600_000 + i * 3_600;
                    format!(r#"{{"type":"latency","ts":{ts},"server":"gw","session":"s{h}-{i}","rtt_ms":5,"id":"{h}-{i}"}}"#)
                })
                .collect();
            feed(&mut e, &lines);
        }
        e.flush();
        let snap = e.snapshot();
        let rows: usize = snap.events.iter().map(|b| b.num_rows()).sum();
        assert!(rows <= 2000, "events kept: {rows}");
        assert!(snap.servers[0].latency[0].len() <= 62);
        assert!(e.servers[0].dedupe.len() <= 3000);
    }

    #[test]
    fn capacity_changes_in_event_time() {
        let mut e = engine();
        let cap = |ts: i64, c: i64| {
            format!(r#"{{"type":"server","ts":{ts},"server":"gw","capacity":{c}}}"#)
        };
        feed(&mut e, &[cap(5_000, 20), cap(1_000, 10)]);
        e.flush();
        let s = &e.snapshot().servers[0];
        assert_eq!(
            (
                s.capacity_at(999),
                s.capacity_at(1_000),
                s.capacity_at(5_000)
            ),
            (None, Some(10), Some(20))
        );
    }
}
