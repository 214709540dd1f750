//! Snapshots: immutable copies of the engine's state for readers (SQL, HTTP, alerts, the
//! archive), current to the newest event: events still in the reorder buffers are applied to a
//! copy of the open sessions.
//!
//! Owns: what a snapshot holds, [`SnapshotScope`], copying on two threads when the state is big.
//! Must not touch: the live state (a snapshot only reads it, under the caller's lock).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::RecordBatch;

use super::alert_log::AlertRecord;
use super::engine::*;
use super::latency::{MinuteSeries, MinuteSummary};
use super::sessions::*;
use crate::event::ServerState;

/// Latency minutes (all servers and metrics) from which a snapshot is copied on two threads;
/// about a day of ten busy servers.
pub(super) const PARALLEL_SNAPSHOT_MINUTES: usize = 20_000;

/// What a snapshot copies. Readers that need less than everything say so, because copying
/// the `events` table or summarising a busy open minute (which sorts its samples) is most of
/// the cost of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotScope {
    /// Only what happened at or after this time (sessions still open then, rejects, minutes);
    /// `None`: everything in retention.
    pub since: Option<i64>,
    /// Copy the `events` table.
    pub events: bool,
    /// Summarise the latency minutes.
    pub latency: bool,
}

impl SnapshotScope {
    /// Everything: what SQL over the whole state needs.
    pub fn everything() -> SnapshotScope {
        SnapshotScope {
            since: None,
            events: true,
            latency: true,
        }
    }

    /// Everything from `since` on.
    pub fn since(since: Option<i64>) -> SnapshotScope {
        SnapshotScope {
            since,
            ..SnapshotScope::everything()
        }
    }

    /// The same, without the `events` table.
    pub fn without_events(self) -> SnapshotScope {
        SnapshotScope {
            events: false,
            ..self
        }
    }

    /// The same, without latency minutes.
    pub fn without_latency(self) -> SnapshotScope {
        SnapshotScope {
            latency: false,
            ..self
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
    /// A snapshot of nothing (a cluster member's queries read the members' own).
    pub fn empty() -> Snapshot {
        Snapshot {
            now_ms: None,
            retention_ms: 0,
            servers: Vec::new(),
            events: Vec::new(),
            counters: Counters::default(),
            alerts: Arc::from(Vec::new()),
        }
    }

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
            events: self
                .events
                .iter()
                .map(|b| super::events::before(b, t))
                .collect(),
            counters: self.counters.clone(),
            alerts: self.alerts.iter().filter(|a| a.ts < t).cloned().collect(),
        }
    }
}

impl Engine {
    /// An immutable copy of everything, with buffered events applied to a copy of the open
    /// sessions so that it is current to the newest event.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_of(SnapshotScope::everything())
    }

    /// A snapshot of part of the state (see [`SnapshotScope`]): answers about times at or after
    /// its `since` are those of [`Engine::snapshot`].
    pub fn snapshot_of(&self, scope: SnapshotScope) -> Snapshot {
        // A big state (days of replayed minutes and sessions) is copied on two threads: the
        // copy is on the path of every query, and of a replay's answer.
        let parallel = self.latency_minutes() >= PARALLEL_SNAPSHOT_MINUTES;
        self.snapshot_copied(scope, parallel)
    }

    /// Latency minutes held, all servers and metrics.
    pub(super) fn latency_minutes(&self) -> usize {
        self.servers
            .iter()
            .flat_map(|s| &s.latency)
            .map(MinuteSeries::minutes)
            .sum()
    }

    pub(super) fn snapshot_copied(&self, scope: SnapshotScope, parallel: bool) -> Snapshot {
        let SnapshotScope {
            since,
            events: with_events,
            latency: with_latency,
        } = scope;
        let timeout = self.cfg.session_timeout_ms;
        let now = self.now_ms;
        let retention_horizon = now.map(|n| n - self.cfg.retention_ms);
        let horizon = match (retention_horizon, since) {
            (Some(h), Some(s)) => Some(h.max(s)),
            (h, _) => h,
        };
        let overrides = &self.cfg.capacity_overrides;
        let server_snapshot = |srv: &Server| {
            let mut in_order = srv.in_order.clone();
            let mut closed = Vec::new();
            let mut ended = Default::default();
            let mut capacity_changes = srv.capacity_changes.clone();
            // Buffered events may bring new strings: intern them in a copy, made only for a
            // server that has buffered events.
            let mut symbols = std::borrow::Cow::Borrowed(&self.symbols);
            if !srv.pending.is_empty() {
                let (mut dc, mut orph) = (0, 0);
                let mut sink = InOrderOutput {
                    closed: &mut closed,
                    capacity_changes: &mut capacity_changes,
                    symbols: symbols.to_mut(),
                    duplicate_connects: &mut dc,
                    orphans: &mut orph,
                    ended: Ended {
                        own: &mut ended,
                        before: Some(&srv.ended),
                    },
                };
                for p in &srv.pending {
                    in_order.apply(p, timeout, &mut sink);
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
            for (k, a) in in_order.active {
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
                state: in_order.state,
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
}
