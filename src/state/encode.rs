//! The engine's whole state as bytes and back, for checkpoints.
//!
//! Owns: the encoding of every piece of engine state (open and closed sessions, the reorder
//! buffers, dedupe ids, per-second rejects and auth failures, minute histograms, capacity
//! history, counters, symbols, the `events` batches, alert transitions and input positions)
//! and the exact inverse. A restored engine answers every query, and goes on applying events,
//! exactly as the one that was saved. Must not touch: files (the caller frames, checksums and
//! writes the bytes), Kafka.
//!
//! The format is [`crate::codec`]'s little-endian stream; Arrow batches (events and buffered
//! rows) are embedded as Arrow IPC streams.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;

use arrow::array::RecordBatch;

use super::alert_log::{AlertLog, AlertRecord};
use super::dedupe::Dedupe;
use super::engine::Server;
use super::events::EventStore;
use super::latency::{MinuteSeries, MinuteSummary, PromHistogram};
use super::reorder::Pending;
use super::sessions::{Active, InOrderState, Symbols};
use super::{Counters, EndReason, Engine, SessionRow};
use crate::codec::{bad, Dec, DecodeError, Enc};
use crate::config::EngineConfig;
use crate::event::ChunkView;
use crate::event::{events_schema, Ignored, InputFormat, MessageId, Reason, ServerState};

/// Format version of the engine section.
const ENGINE_VERSION: u32 = 2;
/// The version before: no ignored-line counts (read as none).
const ENGINE_VERSION_1: u32 = 1;

fn arc(s: Option<&str>) -> Option<Arc<str>> {
    s.map(Into::into)
}

/// The engine's state ready to be written: everything but the events encoded, and the events
/// as batches (shared with the engine, not copied), so the lock is held only for the small
/// part and the big part is written outside it.
pub struct EngineParts {
    /// Everything but the `events` batches.
    pub state: Vec<u8>,
    /// Sealed `events` batches.
    pub sealed: Vec<RecordBatch>,
    /// Open (not yet sealed) `events` batches.
    pub open: Vec<RecordBatch>,
}

impl EngineParts {
    /// Appends the parts in the order [`Engine::decode_checkpoint`] reads them.
    pub fn encode(&self, out: &mut Enc) {
        out.bytes(&self.state);
        out.batches(&events_schema(), &self.sealed);
        out.batches(&events_schema(), &self.open);
    }
}

impl Engine {
    /// Appends the whole state to `out`.
    pub fn encode_checkpoint(&self, out: &mut Enc) {
        self.checkpoint_parts().encode(out);
    }

    /// The state in parts (see [`EngineParts`]).
    pub fn checkpoint_parts(&self) -> EngineParts {
        let (sealed, open) = self.events.parts();
        self.parts_of(
            &|_| true,
            &|_| true,
            &|_| true,
            &self.counters,
            sealed,
            open.to_vec(),
        )
    }

    /// The parts of the servers `keep_server` keeps, with the alert records and positions the
    /// other two keep, `counters` and the given events (already chosen by the caller). The
    /// symbol table is written whole: it is shared by every server.
    pub(super) fn parts_of(
        &self,
        keep_server: &dyn Fn(&Server) -> bool,
        keep_alert: &dyn Fn(&AlertRecord) -> bool,
        keep_position: &dyn Fn(&super::partition::PartitionKey) -> bool,
        counters: &Counters,
        sealed: Vec<RecordBatch>,
        open: Vec<RecordBatch>,
    ) -> EngineParts {
        let mut enc = Enc::default();
        let out = &mut enc;
        out.u32(ENGINE_VERSION);
        out.opt_i64(self.now_ms);
        out.u64(self.seq);
        out.i64(self.last_maintenance);
        encode_counters(out, counters);
        out.len(self.symbols.names.len());
        for n in &self.symbols.names {
            out.opt_str(n.as_deref());
        }
        let servers: Vec<&Server> = self.servers.iter().filter(|s| keep_server(s)).collect();
        out.len(servers.len());
        for s in servers {
            encode_server(out, s);
        }
        let alerts: Vec<&AlertRecord> =
            self.alerts.all().iter().filter(|a| keep_alert(a)).collect();
        out.len(alerts.len());
        for a in alerts {
            encode_alert(out, a);
        }
        let positions: Vec<_> = self
            .positions
            .iter()
            .filter(|(k, _)| keep_position(k))
            .collect();
        out.len(positions.len());
        for ((topic, partition), next) in positions {
            out.str(topic);
            out.i64(*partition as i64);
            out.i64(*next);
        }
        out.opt_i64(self.sealed_before);
        EngineParts {
            state: enc.buf,
            sealed,
            open,
        }
    }

    /// The engine saved by [`Engine::encode_checkpoint`], under `cfg` (servers configured since
    /// are added; what the checkpoint knows of a server wins).
    pub fn decode_checkpoint(
        cfg: EngineConfig,
        outer: &mut Dec<'_>,
    ) -> Result<Engine, DecodeError> {
        let state = outer.bytes()?;
        let sealed = with_current_schema(outer.batches()?)?;
        let open = with_current_schema(outer.batches()?)?;
        let d = &mut Dec::new(state);
        let version = d.u32()?;
        if version != ENGINE_VERSION && version != ENGINE_VERSION_1 {
            return Err(bad(format!(
                "the checkpoint's engine section is version {version}; this gatewatch reads version {ENGINE_VERSION}"
            )));
        }
        let mut e = Engine::new(cfg);
        e.now_ms = d.opt_i64()?;
        e.seq = d.u64()?;
        e.last_maintenance = d.i64()?;
        e.counters = decode_counters(d, version)?;
        let mut symbols = Symbols {
            ids: Default::default(),
            names: Vec::new(),
        };
        for _ in 0..d.len(1)? {
            let name = arc(d.opt_str()?);
            if let Some(n) = &name {
                symbols.ids.insert(n.clone(), symbols.names.len() as u32);
            }
            symbols.names.push(name);
        }
        if symbols.names.first().is_none_or(Option::is_some) {
            return Err(bad(
                "the checkpoint's symbol table does not start with the empty symbol",
            ));
        }
        e.symbols = symbols;
        let configured = std::mem::take(&mut e.servers);
        e.server_index.clear();
        for _ in 0..d.len(8)? {
            let s = decode_server(d, e.symbols.names.len())?;
            e.server_index
                .insert(s.name.as_ref().into(), e.servers.len());
            e.servers.push(s);
        }
        for s in configured {
            if !e.server_index.contains_key(s.name.as_ref()) {
                e.server_index
                    .insert(s.name.as_ref().into(), e.servers.len());
                e.servers.push(s);
            }
        }
        e.events = EventStore::from_parts(sealed, open);
        let mut alerts = Vec::new();
        for _ in 0..d.len(8)? {
            alerts.push(decode_alert(d)?);
        }
        e.alerts = AlertLog::default();
        e.alerts.extend(&alerts);
        for _ in 0..d.len(8)? {
            let topic: Arc<str> = d.str()?.into();
            let partition =
                i32::try_from(d.i64()?).map_err(|_| bad("a partition number is out of range"))?;
            let next = d.i64()?;
            e.positions.insert((topic, partition), next);
        }
        e.sealed_before = d.opt_i64()?;
        e.rebuild_clock();
        if !d.is_empty() {
            return Err(bad(
                "the checkpoint's engine section has bytes after its end",
            ));
        }
        Ok(e)
    }
}

/// Batches of the `events` schema, those written before `duration_ms` was added (its last
/// column) given it as nulls, so that a checkpoint of the version before still restores.
fn with_current_schema(
    batches: Vec<arrow::array::RecordBatch>,
) -> Result<Vec<arrow::array::RecordBatch>, DecodeError> {
    let schema = events_schema();
    batches
        .into_iter()
        .map(|b| {
            if b.schema() == schema {
                return Ok(b);
            }
            let older = b.num_columns() + 1 == schema.fields().len()
                && schema.fields()[..b.num_columns()]
                    .iter()
                    .zip(b.schema().fields())
                    .all(|(want, have)| want == have);
            if !older {
                return Err(bad("the checkpoint's events have another schema"));
            }
            let mut columns = b.columns().to_vec();
            columns.push(arrow::array::new_null_array(
                schema.fields()[b.num_columns()].data_type(),
                b.num_rows(),
            ));
            arrow::array::RecordBatch::try_new(schema.clone(), columns)
                .map_err(|e| bad(format!("the checkpoint's events cannot be read: {e}")))
        })
        .collect()
}

fn encode_counters(out: &mut Enc, c: &Counters) {
    out.u64(c.accepted);
    for n in c.by_type {
        out.u64(n);
    }
    out.len(c.rejected.len());
    for (r, n) in &c.rejected {
        out.str(&r.to_string());
        out.u64(*n);
    }
    out.u64(c.duplicates);
    out.u64(c.duplicate_connects);
    out.u64(c.orphans);
    out.u64(c.events_dropped_early);
    out.len(c.ignored.len());
    for (k, n) in &c.ignored {
        out.str(k.format.as_str());
        out.str(k.message.as_str());
        out.u64(*n);
    }
}

fn decode_counters(d: &mut Dec<'_>, version: u32) -> Result<Counters, DecodeError> {
    let mut c = Counters {
        accepted: d.u64()?,
        ..Counters::default()
    };
    for n in &mut c.by_type {
        *n = d.u64()?;
    }
    for _ in 0..d.len(9)? {
        let code = d.str()?;
        let r = Reason::parse(code).ok_or_else(|| bad(format!("unknown reason code {code:?}")))?;
        c.rejected.insert(r, d.u64()?);
    }
    c.duplicates = d.u64()?;
    c.duplicate_connects = d.u64()?;
    c.orphans = d.u64()?;
    c.events_dropped_early = d.u64()?;
    if version >= 2 {
        for _ in 0..d.len(24)? {
            let format = d.str()?;
            let format = InputFormat::parse(format)
                .ok_or_else(|| bad(format!("unknown input format {format:?}")))?;
            let message = MessageId::new(d.str()?);
            c.ignored.insert(Ignored { format, message }, d.u64()?);
        }
    }
    Ok(c)
}

fn encode_state(out: &mut Enc, s: Option<ServerState>) {
    out.u8(match s {
        None => 0,
        Some(ServerState::Up) => 1,
        Some(ServerState::Draining) => 2,
        Some(ServerState::Down) => 3,
    });
}

fn decode_state(d: &mut Dec<'_>) -> Result<Option<ServerState>, DecodeError> {
    Ok(match d.u8()? {
        0 => None,
        1 => Some(ServerState::Up),
        2 => Some(ServerState::Draining),
        3 => Some(ServerState::Down),
        _ => return Err(bad("unknown server state in the checkpoint")),
    })
}

fn encode_server(out: &mut Enc, s: &Server) {
    out.str(&s.name);
    out.opt_str(s.site.as_deref());
    out.opt_u32(s.configured_capacity);
    out.opt_i64(s.first_ts);
    out.opt_i64(s.max_ts);
    out.len(s.dedupe.hours().count());
    for (hour, ids) in s.dedupe.hours() {
        out.i64(hour);
        out.len(ids.len());
        for id in ids {
            out.u64(*id as u64);
            out.u64((*id >> 64) as u64);
        }
    }
    out.opt_u32(s.in_order.capacity);
    encode_state(out, s.in_order.state);
    out.len(s.in_order.active.len());
    for (sid, a) in &s.in_order.active {
        out.str(sid);
        out.i64(a.start);
        out.i64(a.last_seen);
        out.f64(a.setup_ms);
        for sym in [a.user, a.site, a.os, a.app] {
            out.u32(sym);
        }
    }
    out.len(s.closed.len());
    for r in &s.closed {
        encode_session(out, r);
    }
    out.len(s.capacity_changes.len());
    for (ts, cap) in &s.capacity_changes {
        out.i64(*ts);
        out.opt_u32(*cap);
    }
    for per_second in [&s.rejects, &s.auth_fails] {
        out.len(per_second.len());
        for (ts, n) in per_second {
            out.i64(*ts);
            out.u32(*n);
        }
    }
    for series in &s.latency {
        let (open, sealed) = series.parts();
        out.len(open.len());
        for (minute, samples) in open {
            out.i64(*minute);
            out.len(samples.len());
            for v in samples {
                out.u64(*v);
            }
        }
        out.len(sealed.len());
        for m in sealed.values() {
            out.i64(m.minute_ms);
            out.u64(m.count);
            for v in [m.p50, m.p90, m.p99, m.max] {
                out.f64(v);
            }
            out.bytes(&m.hist);
        }
    }
    for p in &s.prom {
        for b in p.buckets {
            out.u64(b);
        }
        out.f64(p.sum_s);
        out.u64(p.count);
    }
    // The reorder buffer: its rows copied out of their batches into one, in buffer order.
    out.len(s.pending.len());
    if !s.pending.is_empty() {
        let mut chunks: Vec<&RecordBatch> = Vec::new();
        let mut index: Vec<(usize, usize)> = Vec::with_capacity(s.pending.len());
        let mut last: Option<*const ChunkView> = None;
        for p in &s.pending {
            let ptr = Arc::as_ptr(&p.chunk);
            if last != Some(ptr) {
                chunks.push(&p.chunk.batch);
                last = Some(ptr);
            }
            index.push((chunks.len() - 1, p.row as usize));
        }
        let rows = arrow::compute::interleave_record_batch(&chunks, &index)
            .expect("buffered rows share the events schema");
        out.batches(&events_schema(), &[rows]);
        for p in &s.pending {
            out.i64(p.ts);
            out.u8(p.rank());
            out.u64(p.seq());
        }
    }
}

fn decode_server(d: &mut Dec<'_>, symbols: usize) -> Result<Server, DecodeError> {
    let name = d.str()?;
    let site = d.opt_str()?;
    let capacity = d.opt_u32()?;
    let mut s = Server::new(name, site, capacity);
    s.first_ts = d.opt_i64()?;
    s.max_ts = d.opt_i64()?;
    let mut by_hour = BTreeMap::new();
    for _ in 0..d.len(16)? {
        let hour = d.i64()?;
        let n = d.len(16)?;
        let mut ids = HashSet::with_capacity_and_hasher(n, Default::default());
        for _ in 0..n {
            let lo = d.u64()? as u128;
            let hi = d.u64()? as u128;
            ids.insert(lo | (hi << 64));
        }
        by_hour.insert(hour, ids);
    }
    s.dedupe = Dedupe::from_hours(by_hour);
    let mut in_order = InOrderState {
        capacity: d.opt_u32()?,
        state: decode_state(d)?,
        ..InOrderState::default()
    };
    for _ in 0..d.len(48)? {
        let sid: Arc<str> = d.str()?.into();
        let start = d.i64()?;
        let last_seen = d.i64()?;
        let setup_ms = d.f64()?;
        let mut sym = [0u32; 4];
        for v in &mut sym {
            *v = d.u32()?;
            if *v as usize >= symbols {
                return Err(bad(
                    "a session refers to a symbol the checkpoint does not have",
                ));
            }
        }
        in_order.active.insert(
            sid,
            Active {
                start,
                last_seen,
                setup_ms,
                user: sym[0],
                site: sym[1],
                os: sym[2],
                app: sym[3],
            },
        );
    }
    s.in_order = in_order;
    for _ in 0..d.len(16)? {
        s.closed.push(decode_session(d)?);
    }
    for row in &s.closed {
        if let Some(end) = row.ended {
            let last = s.ended.entry(row.session.clone()).or_insert(end);
            *last = (*last).max(end);
        }
    }
    for _ in 0..d.len(9)? {
        s.capacity_changes.push((d.i64()?, d.opt_u32()?));
    }
    for per_second in [&mut s.rejects, &mut s.auth_fails] {
        for _ in 0..d.len(12)? {
            let ts = d.i64()?;
            per_second.insert(ts, d.u32()?);
        }
    }
    for series in &mut s.latency {
        let mut open = Vec::new();
        for _ in 0..d.len(16)? {
            let minute = d.i64()?;
            let n = d.len(8)?;
            let mut samples = Vec::with_capacity(n);
            for _ in 0..n {
                samples.push(d.u64()?);
            }
            open.push((minute, samples));
        }
        let mut sealed = BTreeMap::new();
        for _ in 0..d.len(56)? {
            let minute_ms = d.i64()?;
            let count = d.u64()?;
            let (p50, p90, p99, max) = (d.f64()?, d.f64()?, d.f64()?, d.f64()?);
            let hist: Arc<[u8]> = d.bytes()?.into();
            sealed.insert(
                minute_ms,
                MinuteSummary {
                    minute_ms,
                    count,
                    p50,
                    p90,
                    p99,
                    max,
                    hist,
                },
            );
        }
        *series = MinuteSeries::from_parts(open, sealed);
    }
    for p in &mut s.prom {
        let mut h = PromHistogram::default();
        for b in &mut h.buckets {
            *b = d.u64()?;
        }
        h.sum_s = d.f64()?;
        h.count = d.u64()?;
        *p = h;
    }
    let n = d.len(17)?;
    if n > 0 {
        let batches = d.batches()?;
        let [rows] = batches.as_slice() else {
            return Err(bad("a reorder buffer of the checkpoint is not one batch"));
        };
        if rows.num_rows() != n || rows.schema() != events_schema() {
            return Err(bad(
                "a reorder buffer of the checkpoint does not match its rows",
            ));
        }
        let view = Arc::new(ChunkView::new(rows));
        let mut pending = VecDeque::with_capacity(n);
        for row in 0..n {
            let (ts, rank, seq) = (d.i64()?, d.u8()?, d.u64()?);
            if rank > 3 || seq >= 1 << Pending::SEQ_BITS {
                return Err(bad(format!(
                    "buffered event with rank {rank} and sequence {seq}"
                )));
            }
            pending.push_back(Pending::new(ts, rank, seq, view.clone(), row as u32));
        }
        s.pending = pending;
    }
    Ok(s)
}

fn encode_session(out: &mut Enc, r: &SessionRow) {
    out.str(&r.session);
    out.i64(r.started);
    out.opt_i64(r.ended);
    match &r.end_reason {
        None => out.u8(0),
        Some(EndReason::Disconnect(reason)) => {
            out.u8(1);
            out.opt_str(reason.as_deref());
        }
        Some(EndReason::ServerDown) => out.u8(2),
        Some(EndReason::Expired) => out.u8(3),
    }
    for v in [&r.user, &r.site, &r.os, &r.app] {
        out.opt_str(v.as_deref());
    }
    out.opt_f64(r.setup_ms);
}

fn decode_session(d: &mut Dec<'_>) -> Result<SessionRow, DecodeError> {
    let session: Arc<str> = d.str()?.into();
    let started = d.i64()?;
    let ended = d.opt_i64()?;
    let end_reason = match d.u8()? {
        0 => None,
        1 => Some(EndReason::Disconnect(arc(d.opt_str()?))),
        2 => Some(EndReason::ServerDown),
        3 => Some(EndReason::Expired),
        _ => return Err(bad("unknown session end reason in the checkpoint")),
    };
    Ok(SessionRow {
        session,
        started,
        ended,
        end_reason,
        user: arc(d.opt_str()?),
        site: arc(d.opt_str()?),
        os: arc(d.opt_str()?),
        app: arc(d.opt_str()?),
        setup_ms: d.opt_f64()?,
    })
}

/// Writes one alert record (also used by the evaluator for its firing instances).
pub fn encode_alert(out: &mut Enc, a: &AlertRecord) {
    out.i64(a.ts);
    out.str(&a.rule);
    out.str(&a.key);
    out.opt_str(a.server.as_deref());
    out.str(a.state);
    out.str(&a.severity);
    out.opt_f64(a.value);
    out.opt_f64(a.threshold);
    out.i64(a.since);
    out.len(a.labels.len());
    for (k, v) in &a.labels {
        out.str(k);
        out.str(v);
    }
    out.str(&a.id);
}

/// Reads one alert record.
pub fn decode_alert(d: &mut Dec<'_>) -> Result<AlertRecord, DecodeError> {
    let ts = d.i64()?;
    let rule = d.str()?.to_string();
    let key = d.str()?.to_string();
    let server = d.opt_str()?.map(str::to_string);
    let state = match d.str()? {
        "firing" => "firing",
        "resolved" => "resolved",
        other => {
            return Err(bad(format!(
                "unknown alert state {other:?} in the checkpoint"
            )))
        }
    };
    let severity = d.str()?.to_string();
    let value = d.opt_f64()?;
    let threshold = d.opt_f64()?;
    let since = d.i64()?;
    let mut labels = BTreeMap::new();
    for _ in 0..d.len(16)? {
        let k = d.str()?.to_string();
        labels.insert(k, d.str()?.to_string());
    }
    Ok(AlertRecord {
        ts,
        rule,
        key,
        server,
        state,
        severity,
        value,
        threshold,
        since,
        labels,
        id: d.str()?.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events saved by the version before `duration_ms` (18 columns) restore with it as nulls;
    /// any other schema is refused.
    #[test]
    fn events_of_the_schema_before_restore() {
        let mut cols = crate::event::EventColumns::with_capacity(1);
        cols.push(&crate::event::decode(br#"{"type":"reject","ts":1,"server":"gw"}"#).unwrap());
        let now = cols.finish();
        let older = now.project(&(0..18).collect::<Vec<_>>()).unwrap();
        let restored = with_current_schema(vec![older]).unwrap();
        assert_eq!(restored[0].schema(), events_schema());
        assert_eq!(restored[0].column(18).null_count(), 1);
        assert_eq!(restored[0].column(2), now.column(2));
        let odd = now.project(&[0, 1, 2]).unwrap();
        assert!(with_current_schema(vec![odd]).is_err());
    }
}
