//! Exactness against an independent brute-force model.
//!
//! Random event streams (several servers, out-of-order arrival within the lateness bound, some
//! events delayed past it, duplicate ids, events without ids, garbage lines, a server going down,
//! sessions that go idle and expire, disconnects arriving before their connects, capacity
//! changes) are written as NDJSON and replayed through `gatewatch`'s real file path. The model
//! below computes the expected answers its own way: lateness and duplicates by a plain walk over
//! arrival order, sessions by walking each session's own events, concurrency by counting the
//! intervals that contain each instant, percentiles by nearest rank over sorted samples. Every
//! second of `concurrency`, every session, every minute's percentiles and the counters must agree.

// Result columns are read side by side by row index; an index loop says that most plainly.
#![allow(clippy::needless_range_loop)]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Write;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type, TimestampMillisecondType};
use gatewatch::config::Config;
use gatewatch::event::{format_rfc3339_ms, Reason};
use gatewatch::sim::Rng;
use gatewatch::state::Snapshot;

const LATENESS: i64 = 5 * 60_000;
const TIMEOUT: i64 = 15 * 60_000;
const T0: i64 = 1_584_428_400_000; // 2020-03-17T07:00:00Z

#[derive(Clone, Debug)]
pub(crate) struct Ev {
    kind: &'static str,
    ts: i64,
    server: String,
    session: Option<String>,
    id: Option<String>,
    rtt: Option<f64>,
    jitter: Option<f64>,
    setup: Option<f64>,
    capacity: Option<i64>,
    state: Option<&'static str>,
}

impl Ev {
    fn new(kind: &'static str, ts: i64, server: &str) -> Ev {
        Ev {
            kind,
            ts,
            server: server.into(),
            session: None,
            id: None,
            rtt: None,
            jitter: None,
            setup: None,
            capacity: None,
            state: None,
        }
    }

    fn line(&self, rng: &mut Rng) -> String {
        let ts = match rng.below(3) {
            0 => self.ts.to_string(),
            1 => format!("\"{}\"", format_rfc3339_ms(self.ts)),
            _ => {
                // Same instant written with a +01:00 offset.
                let s = format_rfc3339_ms(self.ts + 3_600_000);
                format!("\"{}+01:00\"", s.trim_end_matches('Z'))
            }
        };
        let mut o = format!(
            r#"{{"type":"{}","ts":{ts},"server":"{}""#,
            self.kind, self.server
        );
        if let Some(s) = &self.session {
            o += &format!(r#","session":"{s}","user":"user-{s}""#);
        }
        if let Some(i) = &self.id {
            o += &format!(r#","id":"{i}""#);
        }
        for (k, v) in [
            ("rtt_ms", self.rtt),
            ("jitter_ms", self.jitter),
            ("setup_ms", self.setup),
        ] {
            if let Some(v) = v {
                o += &format!(r#","{k}":{v}"#);
            }
        }
        if let Some(c) = self.capacity {
            o += &format!(r#","capacity":{c}"#);
        }
        if let Some(s) = self.state {
            o += &format!(r#","state":"{s}""#);
        }
        o + r#","extra":{"ignored":[1,2]}}"#
    }
}

pub(crate) struct Stream {
    /// Lines in arrival order; `None` marks garbage with its expected reason.
    pub(crate) arrivals: Vec<(Option<Ev>, String, Option<&'static str>)>,
}

pub(crate) fn generate(seed: u64) -> Stream {
    let mut rng = Rng::new(seed);
    let servers = ["gw-a", "gw-b", "gw-c"];
    let span = 2 * 3_600_000;
    let mut evs: Vec<Ev> = Vec::new();
    let mut n_id = 0u64;
    for (si, srv) in servers.iter().enumerate() {
        let mut cap = Ev::new("server", T0 + si as i64, srv);
        cap.capacity = Some(30);
        cap.state = Some("up");
        evs.push(cap);
        let mut change = Ev::new("server", T0 + rng.below(span as u64) as i64, srv);
        change.capacity = Some(45);
        evs.push(change);
        if si == 1 {
            let down_at = T0 + span / 2 + rng.below(600_000) as i64;
            let mut down = Ev::new("server", down_at, srv);
            down.state = Some("down");
            evs.push(down);
            let mut up = Ev::new("server", down_at + 300_000, srv);
            up.state = Some("up");
            evs.push(up);
        }
        for k in 0..70 {
            let sid = format!("{srv}-s{k}");
            let start = T0 + rng.below((span * 9 / 10) as u64) as i64;
            let style = rng.below(100);
            let dur = if style < 10 {
                500 + rng.below(90_000) as i64
            } else {
                60_000 + rng.below(5_400_000) as i64
            };
            let end = start + dur;
            let mut c = Ev::new("connect", start, srv);
            c.session = Some(sid.clone());
            c.setup = Some((rng.below(50_000) as f64) / 10.0);
            evs.push(c);
            let gap = if (80..90).contains(&style) {
                let g0 = start + rng.below(dur.max(1) as u64) as i64;
                Some((g0, g0 + TIMEOUT + rng.below(600_000) as i64))
            } else {
                None
            };
            let mut t = start + 1 + rng.below(60_000) as i64;
            while t < end {
                if !gap.is_some_and(|(a, b)| t >= a && t < b) {
                    let mut l = Ev::new("latency", t, srv);
                    l.session = Some(sid.clone());
                    l.rtt = Some(
                        (rng.below(2_000) as f64) / 10.0
                            + if rng.below(50) == 0 { 400.0 } else { 0.0 },
                    );
                    if rng.below(3) == 0 {
                        l.jitter = Some((rng.below(300) as f64) / 10.0);
                    }
                    evs.push(l);
                }
                t += 40_000 + rng.below(40_000) as i64;
            }
            if (90..95).contains(&style) {
                // A second connect for the same session while it is active.
                let mut c2 = Ev::new("connect", start + dur / 2, srv);
                c2.session = Some(sid.clone());
                evs.push(c2);
            }
            if !(75..80).contains(&style) {
                let mut d = Ev::new("disconnect", end, srv);
                d.session = Some(sid.clone());
                evs.push(d);
            } // else: never disconnects: idles out (or stays open at the end).
        }
        // Orphans: events for sessions never opened.
        for k in 0..5 {
            let mut o = Ev::new(
                if k % 2 == 0 { "disconnect" } else { "latency" },
                T0 + rng.below(span as u64) as i64,
                srv,
            );
            o.session = Some(format!("{srv}-ghost{k}"));
            if o.kind == "latency" {
                o.rtt = Some(12.5);
            }
            evs.push(o);
        }
        for _ in 0..40 {
            evs.push(Ev::new(
                if rng.below(2) == 0 {
                    "reject"
                } else {
                    "auth_fail"
                },
                T0 + rng.below(span as u64) as i64,
                srv,
            ));
        }
    }
    for e in &mut evs {
        if rng.below(10) != 0 {
            n_id += 1;
            e.id = Some(format!("e{n_id}"));
        }
    }
    // Arrival: disorder within 0.9 x lateness; 1% pushed well beyond it.
    let mut keyed: Vec<(i64, u64, Option<Ev>, Option<&'static str>)> = Vec::new();
    for e in &evs {
        let delay = if rng.below(100) == 0 {
            LATENESS + 60_000 + rng.below(600_000) as i64
        } else {
            rng.below((LATENESS * 9 / 10) as u64) as i64
        };
        keyed.push((e.ts + delay, rng.next_u64(), Some(e.clone()), None));
        if e.id.is_some() && rng.below(50) == 0 {
            // A redelivered copy, possibly far later.
            keyed.push((
                e.ts + delay + rng.below(1_200_000) as i64,
                rng.next_u64(),
                Some(e.clone()),
                None,
            ));
        }
    }
    let garbage: [(&str, &str); 6] = [
        ("{not json", "invalid_json"),
        ("[1,2,3]", "not_an_object"),
        (
            r#"{"type":"latency","ts":1,"server":"gw-a","session":"x","rtt_ms":-1}"#,
            "bad_value:rtt_ms",
        ),
        (r#"{"type":"warp","ts":1,"server":"gw-a"}"#, "unknown_type"),
        (
            r#"{"type":"connect","server":"gw-a","session":"x"}"#,
            "missing_field:ts",
        ),
        (
            r#"{"type":"latency","ts":"noon","server":"gw-a","session":"x","rtt_ms":1}"#,
            "bad_value:ts",
        ),
    ];
    for _ in 0..60 {
        let (_, reason) = garbage[rng.below(garbage.len() as u64) as usize];
        keyed.push((
            T0 + rng.below(span as u64) as i64,
            rng.next_u64(),
            None,
            Some(reason),
        ));
    }
    keyed.sort_by_key(|k| (k.0, k.1));
    let mut arrivals = Vec::new();
    for (_, _, ev, reason) in keyed {
        match ev {
            Some(e) => {
                let line = e.line(&mut rng);
                arrivals.push((Some(e), line, None));
            }
            None => {
                let reason = reason.unwrap();
                let line = garbage
                    .iter()
                    .find(|g| g.1 == reason)
                    .unwrap()
                    .0
                    .to_string();
                arrivals.push((None, line, Some(reason)));
            }
        }
    }
    Stream { arrivals }
}

#[derive(Debug, Clone, PartialEq)]
struct ModelSession {
    server: String,
    session: String,
    start: i64,
    end: Option<i64>,
    reason: Option<&'static str>,
}

/// A session's events: (ts, rank, arrival index, kind).
type SessionEvents = Vec<(i64, u8, usize, &'static str)>;

#[derive(Default)]
struct Model {
    accepted: Vec<(usize, Ev)>,
    late: u64,
    duplicates: u64,
    orphans: u64,
    duplicate_connects: u64,
    rejected: BTreeMap<String, u64>,
    sessions: Vec<ModelSession>,
    now: i64,
}

fn model(stream: &Stream) -> Model {
    let mut m = Model::default();
    let mut newest: HashMap<String, i64> = HashMap::new();
    let mut seen: HashSet<(String, String)> = HashSet::new();
    for (i, (ev, _, reason)) in stream.arrivals.iter().enumerate() {
        let Some(e) = ev else {
            *m.rejected.entry(reason.unwrap().to_string()).or_default() += 1;
            continue;
        };
        let key = e.id.clone().map(|id| (e.server.clone(), id));
        if key.as_ref().is_some_and(|k| seen.contains(k)) {
            m.duplicates += 1;
            continue;
        }
        if newest.get(&e.server).is_some_and(|&n| e.ts < n - LATENESS) {
            m.late += 1;
            *m.rejected.entry("late".into()).or_default() += 1;
            continue;
        }
        if let Some(k) = key {
            seen.insert(k);
        }
        let n = newest.entry(e.server.clone()).or_insert(e.ts);
        *n = (*n).max(e.ts);
        m.now = m.now.max(e.ts);
        m.accepted.push((i, e.clone()));
    }
    // Sessions: each session's own events in event-time order, with its server's downs.
    let rank = |k: &str| match k {
        "connect" => 0,
        "latency" => 1,
        "disconnect" => 2,
        _ => 3,
    };
    let mut by_session: BTreeMap<(String, String), SessionEvents> = BTreeMap::new();
    let mut downs: HashMap<String, Vec<(i64, usize)>> = HashMap::new();
    for (i, e) in &m.accepted {
        match (&e.session, e.kind) {
            (Some(s), "connect" | "latency" | "disconnect") => by_session
                .entry((e.server.clone(), s.clone()))
                .or_default()
                .push((e.ts, rank(e.kind), *i, e.kind)),
            (_, "server") if e.state == Some("down") => {
                downs.entry(e.server.clone()).or_default().push((e.ts, *i))
            }
            _ => {}
        }
    }
    for ((server, session), mut evs) in by_session {
        for &(t, i) in downs.get(&server).into_iter().flatten() {
            evs.push((t, 3, i, "down"));
        }
        evs.sort();
        let mut open: Option<(i64, i64)> = None; // (start, last event)
        let mut close = |start: i64, end: i64, reason: &'static str| {
            m.sessions.push(ModelSession {
                server: server.clone(),
                session: session.clone(),
                start,
                end: Some(end),
                reason: Some(reason),
            })
        };
        for (t, _, _, kind) in evs {
            if let Some((s, last)) = open {
                if last + TIMEOUT <= t {
                    close(s, last + TIMEOUT, "expired");
                    open = None;
                }
            }
            match (kind, open) {
                ("connect", Some((s, _))) => {
                    m.duplicate_connects += 1;
                    open = Some((s, t));
                }
                ("connect", None) => open = Some((t, t)),
                ("latency", Some((s, _))) => open = Some((s, t)),
                ("disconnect", Some((s, _))) => {
                    close(s, t, "disconnect");
                    open = None;
                }
                ("down", Some((s, _))) => {
                    close(s, t, "server_down");
                    open = None;
                }
                ("latency" | "disconnect", None) => m.orphans += 1,
                _ => {}
            }
        }
        if let Some((s, last)) = open {
            if last + TIMEOUT <= m.now {
                close(s, last + TIMEOUT, "expired");
            } else {
                m.sessions.push(ModelSession {
                    server: server.clone(),
                    session: session.clone(),
                    start: s,
                    end: None,
                    reason: None,
                });
            }
        }
    }
    m
}

fn replay(stream: &Stream) -> Arc<Snapshot> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.ndjson");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for (_, line, _) in &stream.arrivals {
        writeln!(f, "{line}").unwrap();
    }
    f.flush().unwrap();
    drop(f);
    let cfg = Config::parse(
        "[engine]\nallowed_lateness = \"5m\"\nsession_timeout = \"15m\"\nretention = \"30d\"\n",
        "test",
    )
    .unwrap();
    let out =
        gatewatch::app::replay_files(&[path.display().to_string()], &cfg, None, 2, false).unwrap();
    out.snapshot
}

fn sql(snap: &Arc<Snapshot>, q: &str) -> Vec<RecordBatch> {
    gatewatch::app::run_sql(snap.clone(), q).unwrap().batches
}

fn i64s(b: &RecordBatch, c: usize) -> Vec<Option<i64>> {
    let a = b.column(c);
    match a.data_type() {
        arrow::datatypes::DataType::Timestamp(..) => a
            .as_primitive::<TimestampMillisecondType>()
            .iter()
            .collect(),
        _ => a.as_primitive::<Int64Type>().iter().collect(),
    }
}

fn strs(b: &RecordBatch, c: usize) -> Vec<Option<String>> {
    // `concurrency.server` is a string view; the other string columns are plain strings.
    arrow::compute::cast(b.column(c), &arrow::datatypes::DataType::Utf8)
        .unwrap()
        .as_string::<i32>()
        .iter()
        .map(|s| s.map(String::from))
        .collect()
}

/// Concurrency at instant `t`: intervals [start, end) that contain it.
fn active_at(sessions: &[&ModelSession], t: i64) -> i64 {
    sessions
        .iter()
        .filter(|s| s.start <= t && s.end.is_none_or(|e| t < e))
        .count() as i64
}

fn check_seed(seed: u64) {
    let stream = generate(seed);
    let m = model(&stream);
    let snap = replay(&stream);
    let c = &snap.counters;

    // Counters.
    let rejected: BTreeMap<String, u64> = c
        .rejected
        .iter()
        .map(|(r, n)| (r.to_string(), *n))
        .collect();
    assert_eq!(rejected, m.rejected, "seed {seed}: rejected by reason");
    assert_eq!(
        c.rejected.get(&Reason::Late).copied().unwrap_or(0),
        m.late,
        "seed {seed}: late"
    );
    assert!(
        m.late > 0 && m.duplicates > 0,
        "seed {seed}: the stream must exercise late and duplicate events"
    );
    assert_eq!(c.duplicates, m.duplicates, "seed {seed}: duplicates");
    assert_eq!(c.accepted, m.accepted.len() as u64, "seed {seed}: accepted");
    assert_eq!(c.orphans, m.orphans, "seed {seed}: orphans");
    assert_eq!(
        c.duplicate_connects, m.duplicate_connects,
        "seed {seed}: duplicate connects"
    );
    let n_events = sql(&snap, "SELECT count(*) AS n FROM events");
    assert_eq!(i64s(&n_events[0], 0), vec![Some(m.accepted.len() as i64)]);

    // Sessions, exactly.
    let mut got: Vec<ModelSession> = Vec::new();
    for b in sql(
        &snap,
        "SELECT server, session, started, ended, end_reason FROM sessions",
    ) {
        let (sv, ss, st, en, re) = (
            strs(&b, 0),
            strs(&b, 1),
            i64s(&b, 2),
            i64s(&b, 3),
            strs(&b, 4),
        );
        for i in 0..b.num_rows() {
            let reason = re[i].as_deref().map(|r| match r {
                "expired" => "expired",
                "server_down" => "server_down",
                _ => "disconnect",
            });
            got.push(ModelSession {
                server: sv[i].clone().unwrap(),
                session: ss[i].clone().unwrap(),
                start: st[i].unwrap(),
                end: en[i],
                reason,
            });
        }
    }
    let key = |s: &ModelSession| (s.server.clone(), s.session.clone(), s.start);
    got.sort_by_key(key);
    let mut want = m.sessions.clone();
    want.sort_by_key(key);
    assert!(
        want.iter().any(|s| s.reason == Some("expired")),
        "seed {seed}: some sessions must expire"
    );
    assert!(
        want.iter().any(|s| s.reason == Some("server_down")),
        "seed {seed}: the down must end sessions"
    );
    assert_eq!(got, want, "seed {seed}: sessions");

    // Every second of concurrency, by counting intervals at each instant.
    let rows = sql(&snap, "SELECT server, ts, sessions, peak, connects, disconnects, rejects, capacity FROM concurrency ORDER BY server, ts");
    let mut per_server: BTreeMap<String, Vec<[Option<i64>; 7]>> = BTreeMap::new();
    for b in &rows {
        let s = strs(b, 0);
        let cols: Vec<Vec<Option<i64>>> = (1..8).map(|c| i64s(b, c)).collect();
        for i in 0..b.num_rows() {
            per_server
                .entry(s[i].clone().unwrap())
                .or_default()
                .push(std::array::from_fn(|c| cols[c][i]));
        }
    }
    let mut seconds_checked = 0;
    for (server, got_rows) in &per_server {
        let sess: Vec<&ModelSession> = m.sessions.iter().filter(|s| &s.server == server).collect();
        let evs: Vec<&Ev> = m
            .accepted
            .iter()
            .map(|(_, e)| e)
            .filter(|e| &e.server == server)
            .collect();
        let first = evs.iter().map(|e| e.ts).min().unwrap();
        let first_sec = first - first.rem_euclid(1000);
        let last_sec = m.now - m.now.rem_euclid(1000);
        assert_eq!(
            got_rows.len() as i64,
            (last_sec - first_sec) / 1000 + 1,
            "{server}: one row per second"
        );
        let mut caps: Vec<(i64, i64)> = evs
            .iter()
            .filter_map(|e| e.capacity.map(|c| (e.ts, c)))
            .collect();
        caps.sort();
        for (k, row) in got_rows.iter().enumerate() {
            let s = first_sec + k as i64 * 1000;
            let e = s + 999;
            let mut instants: BTreeSet<i64> = sess
                .iter()
                .map(|x| x.start)
                .filter(|t| *t > s && *t <= e)
                .collect();
            instants.insert(s);
            let peak = instants.iter().map(|&t| active_at(&sess, t)).max().unwrap();
            let expect = [
                Some(s),
                Some(active_at(&sess, e)),
                Some(peak),
                Some(sess.iter().filter(|x| x.start >= s && x.start <= e).count() as i64),
                Some(
                    sess.iter()
                        .filter(|x| x.end.is_some_and(|t| t >= s && t <= e))
                        .count() as i64,
                ),
                Some(
                    evs.iter()
                        .filter(|x| x.kind == "reject" && x.ts >= s && x.ts <= e)
                        .count() as i64,
                ),
                caps.iter().rev().find(|(t, _)| *t <= e).map(|c| c.1),
            ];
            assert_eq!(
                row,
                &expect,
                "seed {seed}: {server} second {}",
                format_rfc3339_ms(s)
            );
            seconds_checked += 1;
        }
    }
    assert!(
        seconds_checked > 3 * 7000,
        "checked {seconds_checked} seconds"
    );

    // Time windows: `concurrency` sweeps only the seconds a query's filters on `ts` allow
    // (starting the sweep late must not change a row); the rows must be those of the whole
    // table, just checked against the model, that the same condition keeps.
    let all: Vec<(&String, [Option<i64>; 7])> = per_server
        .iter()
        .flat_map(|(s, rows)| rows.iter().map(move |r| (s, *r)))
        .collect();
    let t0 = all.iter().map(|r| r.1[0].unwrap()).min().unwrap();
    let t1 = all.iter().map(|r| r.1[0].unwrap()).max().unwrap();
    let mut rng = Rng::new(seed ^ 0x5eed);
    for _ in 0..4 {
        // Not on second boundaries, and sometimes reaching past either end.
        let a = t0 - 5_000 + rng.below((t1 - t0 + 10_000) as u64) as i64;
        let b = a + rng.below(900_000) as i64;
        let (fa, fb) = (format_rfc3339_ms(a), format_rfc3339_ms(b));
        type Keep = Box<dyn Fn(i64) -> bool>;
        let windows: Vec<(String, Keep)> = vec![
            (
                format!("ts BETWEEN '{fa}' AND '{fb}'"),
                Box::new(move |t| t >= a && t <= b),
            ),
            (
                format!("ts >= '{fa}' AND ts < '{fb}'"),
                Box::new(move |t| t >= a && t < b),
            ),
            (
                format!("'{fa}' < ts AND ts <= '{fb}'"),
                Box::new(move |t| t > a && t <= b),
            ),
            (
                format!("ts > '{fa}' OR ts < '{fb}'"),
                Box::new(move |t| t > a || t < b),
            ),
            (format!("ts < '{fa}'"), Box::new(move |t| t < a)),
        ];
        for (cond, keep) in windows {
            let q = format!("SELECT server, ts, sessions, peak, connects, disconnects, rejects, capacity FROM concurrency WHERE {cond} ORDER BY server, ts");
            let mut got = Vec::new();
            for b in &sql(&snap, &q) {
                let s = strs(b, 0);
                let cols: Vec<Vec<Option<i64>>> = (1..8).map(|c| i64s(b, c)).collect();
                for i in 0..b.num_rows() {
                    got.push((s[i].clone().unwrap(), std::array::from_fn(|c| cols[c][i])));
                }
            }
            let want: Vec<(String, [Option<i64>; 7])> = all
                .iter()
                .filter(|r| keep(r.1[0].unwrap()))
                .map(|r| (r.0.clone(), r.1))
                .collect();
            assert_eq!(got, want, "seed {seed}: concurrency WHERE {cond}");
        }
    }

    // Percentiles per server per minute per metric, nearest rank on sorted samples.
    let mut samples: BTreeMap<(String, i64, String), Vec<f64>> = BTreeMap::new();
    for (_, e) in &m.accepted {
        let minute = e.ts - e.ts.rem_euclid(60_000);
        for (metric, v) in [("rtt", e.rtt), ("jitter", e.jitter), ("setup", e.setup)] {
            if let Some(v) = v {
                samples
                    .entry((e.server.clone(), minute, metric.to_string()))
                    .or_default()
                    .push(v);
            }
        }
    }
    let nearest_rank = |v: &[f64], q: f64| v[((q * v.len() as f64).ceil() as usize).max(1) - 1];
    let close = |got: f64, want: f64| (got - want).abs() <= want * 1e-3 + 1e-3;
    let mut minutes = 0;
    // Every row of `latency`, as checked here, for the window checks below.
    type LatencyRow = (String, i64, String, Option<i64>, [u64; 4]);
    let mut latency_rows: Vec<LatencyRow> = Vec::new();
    for b in sql(
        &snap,
        "SELECT server, minute, metric, count, p50, p90, p99, max FROM latency",
    ) {
        let (sv, mi, me) = (strs(&b, 0), i64s(&b, 1), strs(&b, 2));
        let cnt = i64s(&b, 3);
        let q: Vec<Vec<Option<f64>>> = (4..8)
            .map(|c| b.column(c).as_primitive::<Float64Type>().iter().collect())
            .collect();
        for i in 0..b.num_rows() {
            let metric = me[i].clone().unwrap();
            let mut v = samples
                .remove(&(sv[i].clone().unwrap(), mi[i].unwrap(), metric.clone()))
                .unwrap_or_else(|| panic!("no samples for {:?} {:?} {metric}", sv[i], mi[i]));
            v.sort_by(f64::total_cmp);
            assert_eq!(cnt[i], Some(v.len() as i64));
            for (j, qq) in [0.5, 0.9, 0.99, 1.0].iter().enumerate() {
                let (g, w) = (q[j][i].unwrap(), nearest_rank(&v, *qq));
                assert!(
                    close(g, w),
                    "seed {seed}: {:?} {metric} q{qq}: got {g}, want {w}",
                    sv[i]
                );
            }
            minutes += 1;
            latency_rows.push((
                sv[i].clone().unwrap(),
                mi[i].unwrap(),
                metric,
                cnt[i],
                std::array::from_fn(|j| q[j][i].unwrap().to_bits()),
            ));
        }
    }
    assert!(
        samples.is_empty(),
        "minutes missing from latency: {:?}",
        samples.keys().take(3).collect::<Vec<_>>()
    );
    assert!(minutes > 300);

    // Windows and metrics: `latency` builds only the minutes and metrics its filters allow;
    // the rows must be those of the whole table, just checked, that the condition keeps.
    latency_rows.sort();
    let (m0, m1) = (
        latency_rows.iter().map(|r| r.1).min().unwrap(),
        latency_rows.iter().map(|r| r.1).max().unwrap(),
    );
    let mut rng = Rng::new(seed ^ 0x1a7e);
    for _ in 0..3 {
        let a = m0 - 90_000 + rng.below((m1 - m0 + 180_000) as u64) as i64;
        let b = a + rng.below(3_600_000) as i64;
        let (fa, fb) = (format_rfc3339_ms(a), format_rfc3339_ms(b));
        let (ma, mb) = (a - a.rem_euclid(60_000), b - b.rem_euclid(60_000));
        let (ga, gb) = (format_rfc3339_ms(ma), format_rfc3339_ms(mb));
        type Keep = Box<dyn Fn(&LatencyRow) -> bool>;
        let conditions: Vec<(String, Keep)> = vec![
            (
                format!("minute BETWEEN '{fa}' AND '{fb}'"),
                Box::new(move |r| r.1 >= a && r.1 <= b),
            ),
            (
                format!("metric = 'rtt' AND minute >= '{fa}' AND minute < '{fb}'"),
                Box::new(move |r| r.2 == "rtt" && r.1 >= a && r.1 < b),
            ),
            (
                // On minute boundaries: both end minutes are in.
                format!("minute >= '{ga}' AND minute <= '{gb}'"),
                Box::new(move |r| r.1 >= ma && r.1 <= mb),
            ),
            (
                "metric IN ('setup', 'jitter')".to_string(),
                Box::new(|r| r.2 == "setup" || r.2 == "jitter"),
            ),
            (
                format!("metric = 'setup' OR minute < '{fa}'"),
                Box::new(move |r| r.2 == "setup" || r.1 < a),
            ),
            (
                "metric = 'rtt' AND metric = 'setup'".to_string(),
                Box::new(|_| false),
            ),
        ];
        for (cond, keep) in conditions {
            let q = format!("SELECT server, minute, metric, count, p50, p90, p99, max FROM latency WHERE {cond}");
            let mut got: Vec<LatencyRow> = Vec::new();
            for b in &sql(&snap, &q) {
                let (sv, mi, me, cnt) = (strs(b, 0), i64s(b, 1), strs(b, 2), i64s(b, 3));
                let q: Vec<Vec<Option<f64>>> = (4..8)
                    .map(|c| b.column(c).as_primitive::<Float64Type>().iter().collect())
                    .collect();
                for i in 0..b.num_rows() {
                    got.push((
                        sv[i].clone().unwrap(),
                        mi[i].unwrap(),
                        me[i].clone().unwrap(),
                        cnt[i],
                        std::array::from_fn(|j| q[j][i].unwrap().to_bits()),
                    ));
                }
            }
            got.sort();
            let want: Vec<LatencyRow> = latency_rows.iter().filter(|r| keep(r)).cloned().collect();
            assert_eq!(got, want, "seed {seed}: latency WHERE {cond}");
        }
    }

    // Exact merge over the whole window equals nearest rank over all samples.
    let merged = sql(&snap, "SELECT server, hdr_quantile(hdr_merge(hist), 0.99) AS p99, hdr_count(hdr_merge(hist)) AS n, hdr_max(hdr_merge(hist)) AS mx FROM latency WHERE metric = 'rtt' GROUP BY server");
    for b in merged {
        let sv = strs(&b, 0);
        for i in 0..b.num_rows() {
            let server = sv[i].clone().unwrap();
            let mut v: Vec<f64> = m
                .accepted
                .iter()
                .filter(|(_, e)| e.server == server)
                .filter_map(|(_, e)| e.rtt)
                .collect();
            v.sort_by(f64::total_cmp);
            let p99 = b.column(1).as_primitive::<Float64Type>().value(i);
            let n = b.column(2).as_primitive::<Int64Type>().value(i);
            let mx = b.column(3).as_primitive::<Float64Type>().value(i);
            assert_eq!(n as usize, v.len());
            assert!(
                close(p99, nearest_rank(&v, 0.99)),
                "{server}: merged p99 {p99} vs {}",
                nearest_rank(&v, 0.99)
            );
            assert!(close(mx, *v.last().unwrap()));
        }
    }

    // The live view agrees with the last second of concurrency.
    for b in sql(&snap, "SELECT s.server, s.active, c.sessions FROM servers s JOIN concurrency c ON s.server = c.server WHERE c.ts = (SELECT max(ts) FROM concurrency)") {
        assert_eq!(i64s(&b, 1), i64s(&b, 2));
    }
}

#[test]
fn replay_matches_brute_force_model() {
    for seed in 1..=4 {
        check_seed(seed);
    }
}
