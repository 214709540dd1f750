//! Sessions in event-time order: the rules of connect, disconnect, latency and server events
//! applied to one server's open sessions, capacity and state, and idle expiry.
//!
//! Owns: session lifecycle (duplicate connects, orphans, timeouts, server down), the interned
//! strings of session rows. Must not touch: arrival order (events come here already ordered by
//! `reorder`).

use std::sync::Arc;

use arrow::array::Array;
use rustc_hash::FxHashMap;

use super::reorder::*;
use crate::event::{opt_f64, opt_str, EventType, ServerState};

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
pub(super) struct Active {
    pub(super) start: i64,
    pub(super) last_seen: i64,
    pub(super) setup_ms: f64,
    pub(super) user: u32,
    pub(super) site: u32,
    pub(super) os: u32,
    pub(super) app: u32,
}

impl Active {
    pub(super) fn expiry(&self, timeout: i64) -> i64 {
        self.last_seen.saturating_add(timeout)
    }

    pub(super) fn close(
        self,
        session: Arc<str>,
        end: i64,
        reason: EndReason,
        sym: &Symbols,
    ) -> SessionRow {
        let mut row = self.row(session, sym);
        row.ended = Some(end);
        row.end_reason = Some(reason);
        row
    }

    pub(super) fn row(&self, session: Arc<str>, sym: &Symbols) -> SessionRow {
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

/// Strings that repeat (users, sites, OSes, apps, reasons) as small numbers. Symbol 0 is
/// "absent". The table only grows: it holds each distinct value once (a bank's users, not its
/// sessions), which is small next to retention.
#[derive(Clone)]
pub(super) struct Symbols {
    pub(super) ids: FxHashMap<Arc<str>, u32>,
    pub(super) names: Vec<Option<Arc<str>>>,
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
    pub(super) fn intern(&mut self, s: Option<&str>) -> u32 {
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

    pub(super) fn arc(&mut self, s: Option<&str>) -> Option<Arc<str>> {
        let id = self.intern(s);
        self.name(id)
    }

    pub(super) fn name(&self, id: u32) -> Option<Arc<str>> {
        self.names.get(id as usize).cloned().flatten()
    }
}

/// The part of a server that depends on event-time order: its open sessions, capacity and
/// state, as of the last event that left the reorder buffer.
#[derive(Clone, Default)]
pub(super) struct InOrderState {
    pub(super) active: FxHashMap<Arc<str>, Active>,
    pub(super) capacity: Option<u32>,
    pub(super) state: Option<ServerState>,
}

/// Where ordered application writes what it produces.
pub(super) struct InOrderOutput<'a> {
    pub(super) closed: &'a mut Vec<SessionRow>,
    pub(super) capacity_changes: &'a mut Vec<(i64, Option<u32>)>,
    pub(super) symbols: &'a mut Symbols,
    pub(super) duplicate_connects: &'a mut u64,
    pub(super) orphans: &'a mut u64,
    /// When each session id last ended (see [`Ended`]).
    pub(super) ended: Ended<'a>,
}

/// When each session id last ended, within retention: a whole-session record (a `disconnect`
/// with `duration_ms`) for a session that already ended within the interval it reports is that
/// same session told twice (ASA logs 716002 and then 113019 for one session), not another.
pub(super) struct Ended<'a> {
    /// Ends recorded here.
    pub(super) own: &'a mut FxHashMap<Arc<str>, i64>,
    /// Ends recorded before, read only (a snapshot applies buffered events to a copy of the
    /// state and must not copy this map, which holds every session of the retention window).
    pub(super) before: Option<&'a FxHashMap<Arc<str>, i64>>,
}

impl Ended<'_> {
    fn get(&self, sid: &str) -> Option<i64> {
        self.own
            .get(sid)
            .or_else(|| self.before.and_then(|b| b.get(sid)))
            .copied()
    }
}

impl InOrderOutput<'_> {
    fn push_closed(&mut self, row: SessionRow) {
        if let Some(end) = row.ended {
            self.ended.own.insert(row.session.clone(), end);
        }
        self.closed.push(row);
    }
}

impl InOrderState {
    /// Applies one event, in event-time order.
    pub(super) fn apply(&mut self, p: &Pending, timeout: i64, out: &mut InOrderOutput<'_>) {
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
                    out.push_closed(a.close(k, end, EndReason::Expired, out.symbols));
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
                        out.push_closed(a.close(k, end, EndReason::Expired, out.symbols));
                        *out.orphans += 1;
                    }
                    Some((k, a)) => {
                        let reason = out.symbols.arc(opt_str(&c.reason, row));
                        out.push_closed(a.close(k, ts, EndReason::Disconnect(reason), out.symbols));
                    }
                    // A whole-session record (the gateway reports how long the session
                    // lasted) whose connect was never seen: the session still counts over its
                    // lifetime. When the connect was seen, the arm above closed it: never twice.
                    None => match c
                        .duration_ms
                        .is_valid(row)
                        .then(|| c.duration_ms.value(row))
                    {
                        Some(d)
                            if out
                                .ended
                                .get(sid)
                                .is_some_and(|e| e >= ts.saturating_sub(d)) => {}
                        Some(d) => {
                            let a = Active {
                                start: ts.saturating_sub(d),
                                last_seen: ts,
                                user: out.symbols.intern(opt_str(&c.user, row)),
                                site: out.symbols.intern(opt_str(&c.site, row)),
                                os: out.symbols.intern(opt_str(&c.os, row)),
                                app: out.symbols.intern(opt_str(&c.app, row)),
                                setup_ms: f64::NAN,
                            };
                            let reason = out.symbols.arc(opt_str(&c.reason, row));
                            out.push_closed(a.close(
                                sid.into(),
                                ts,
                                EndReason::Disconnect(reason),
                                out.symbols,
                            ));
                        }
                        None => *out.orphans += 1,
                    },
                }
            }
            EventType::Latency => {
                let sid = c.session.value(row);
                match self.active.get_mut(sid) {
                    Some(a) if a.expiry(timeout) > ts => a.last_seen = ts,
                    Some(_) => {
                        let (k, a) = self.active.remove_entry(sid).expect("present");
                        let end = a.expiry(timeout);
                        out.push_closed(a.close(k, end, EndReason::Expired, out.symbols));
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
                            out.push_closed(row);
                        }
                    }
                }
            }
            EventType::AuthFail | EventType::Reject => {}
        }
    }

    /// Closes sessions whose timeout has passed by `frontier`.
    pub(super) fn expire_through(
        &mut self,
        frontier: i64,
        timeout: i64,
        closed: &mut Vec<SessionRow>,
        ended: &mut FxHashMap<Arc<str>, i64>,
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
            ended.insert(k.clone(), end);
            closed.push(a.close(k, end, EndReason::Expired, sym));
        }
    }
}
