//! A partition's state moved between engines (written, read back, merged) answers exactly as if
//! it had never moved, on a disordered stream with duplicates and sessions open across the move.

use std::sync::Arc;

use super::*;
use crate::codec::{Dec, Enc};
use crate::config::EngineConfig;
use crate::ingest::{decode_chunk, Chunk};
use crate::state::Snapshot;

const SERVERS: usize = 6;
const PARTITIONS: i32 = 3;

fn key(p: i32) -> PartitionKey {
    (Arc::from("events"), p)
}

fn partition_of_server(name: &str) -> i32 {
    name[2..].parse::<i32>().unwrap() % PARTITIONS
}

/// A disordered stream: sessions on six servers, samples, rejects, some lines twice.
fn stream() -> Vec<String> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut lines = Vec::new();
    for i in 0..600u64 {
        let server = format!("gw{}", next() % SERVERS as u64);
        let start = 1_000_000 + (i as i64) * 5_000 + (next() % 4_000) as i64;
        let end = start + 30_000 + (next() % 600_000) as i64;
        let s = format!("s{i}");
        lines.push((start, format!(r#"{{"type":"connect","ts":{start},"server":"{server}","session":"{s}","user":"u{}","setup_ms":{},"id":"c{i}"}}"#, next() % 40, next() % 900)));
        lines.push((start + 10_000, format!(r#"{{"type":"latency","ts":{},"server":"{server}","session":"{s}","rtt_ms":{},"id":"l{i}"}}"#, start + 10_000, next() % 300)));
        if i % 7 != 0 {
            lines.push((end, format!(r#"{{"type":"disconnect","ts":{end},"server":"{server}","session":"{s}","id":"d{i}"}}"#)));
        }
        if i % 11 == 0 {
            lines.push((start, format!(r#"{{"type":"reject","ts":{start},"server":"{server}","reason":"capacity","id":"r{i}"}}"#)));
        }
    }
    lines.sort();
    let mut lines: Vec<String> = lines.into_iter().map(|(_, l)| l).collect();
    // Disorder within the lateness window, and redeliveries.
    for i in (0..lines.len() - 3).step_by(5) {
        lines.swap(i, i + 3);
    }
    let again: Vec<String> = lines.iter().step_by(13).cloned().collect();
    lines.extend(again);
    lines
}

fn feed(e: &mut Engine, lines: &[String], tag: bool) {
    let d = decode_chunk(Chunk {
        raw: lines.join("\n").into_bytes(),
        truncated: false,
        shared: None,
    });
    assert!(
        d.rejects.is_empty(),
        "{:?}",
        &d.rejects[..d.rejects.len().min(3)]
    );
    let view = Arc::new(crate::event::ChunkView::new(&d.batch));
    e.apply_view(view.clone());
    if tag {
        let servers = view.server.clone();
        e.note_partitions(&view, &["events"], |row| {
            (0, partition_of_server(servers.value(row)))
        });
    }
}

fn cfg() -> EngineConfig {
    EngineConfig {
        session_timeout_ms: 3_600_000,
        allowed_lateness_ms: 60_000,
        ..EngineConfig::default()
    }
}

/// What the tables are made of, in an order that does not depend on the engine's history.
fn answers(s: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for srv in &s.servers {
        let mut sessions: Vec<String> = srv.sessions.iter().map(|r| format!("{r:?}")).collect();
        sessions.sort();
        let latency: Vec<String> = srv
            .latency
            .iter()
            .flatten()
            .map(|m| {
                format!(
                    "{} {} {} {} {:?}",
                    m.minute_ms, m.count, m.p50, m.p99, m.hist
                )
            })
            .collect();
        out.push(format!(
            "{} {:?} {:?} {:?} {:?} {:?} {latency:?} {sessions:?}",
            srv.name, srv.first_ts, srv.max_ts, srv.capacity_changes, srv.rejects, srv.auth_fails
        ));
    }
    out.sort();
    let rows: usize = s.events.iter().map(|b| b.num_rows()).sum();
    out.push(format!("events {rows}"));
    out
}

/// Moves partition `p` from `from` to `to` through its checkpoint bytes.
fn hand_over(from: &mut Engine, to: &mut Engine, p: i32) -> usize {
    let mut enc = Enc::default();
    from.partition_parts(&key(p), p == 0).encode(&mut enc);
    from.remove_partition(&key(p), p == 0);
    let restored = Engine::decode_checkpoint(cfg(), &mut Dec::new(&enc.buf)).unwrap();
    let absorbed = to.absorb(restored, &key(p));
    assert!(absorbed.conflicts.is_empty(), "{:?}", absorbed.conflicts);
    absorbed.servers
}

#[test]
fn a_partition_moved_mid_stream_answers_as_if_it_had_stayed() {
    let lines = stream();
    let (first, second) = lines.split_at(lines.len() / 2);
    let mut whole = Engine::new(cfg());
    feed(&mut whole, first, false);
    feed(&mut whole, second, false);
    whole.flush();
    let counted = whole.counters().clone();
    assert!(counted.accepted > 1500, "{}", counted.summary_line());
    assert!(counted.duplicates > 50, "{}", counted.summary_line());

    // Two members: `a` reads everything first, then hands partitions 1 and 2 to `b`.
    let (mut a, mut b) = (Engine::new(cfg()), Engine::new(cfg()));
    // `b` has interned other users before (its symbol table only grows), so what it restores
    // must be renumbered into its own table.
    let other: Vec<String> = (0..50)
        .map(|i| {
            format!(
                r#"{{"type":"connect","ts":{},"server":"gw9","session":"x{i}","user":"z{i}"}}"#,
                1_000 + i
            )
        })
        .collect();
    feed(&mut b, &other, true);
    b.flush();
    b.remove_partition(&key(0), false);
    feed(&mut a, first, true);
    let moved = hand_over(&mut a, &mut b, 1) + hand_over(&mut a, &mut b, 2);
    assert_eq!(moved, 4, "gw1, gw4, gw2 and gw5 moved");
    assert_eq!(a.servers_of(&key(1)), Vec::<Arc<str>>::new());
    assert_eq!(
        b.servers_of(&key(2)),
        vec![Arc::from("gw2"), Arc::from("gw5")]
    );
    let of = |p: i32| -> Vec<String> {
        second
            .iter()
            .filter(|l| {
                let at = l.find("\"server\":\"gw").unwrap() + 12;
                l[at..at + 1].parse::<i32>().unwrap() % PARTITIONS == p
            })
            .cloned()
            .collect()
    };
    feed(&mut a, &of(0), true);
    feed(&mut b, &[of(1), of(2)].concat(), true);
    a.flush();
    b.flush();

    let merged: Vec<String> = {
        let mut v = answers(&a.snapshot());
        let events = v.pop().unwrap();
        let mut w = answers(&b.snapshot());
        let events_b = w.pop().unwrap();
        v.extend(w);
        v.sort();
        let n = |s: &str| s[7..].parse::<usize>().unwrap();
        v.push(format!("events {}", n(&events) + n(&events_b)));
        v
    };
    assert_eq!(merged, answers(&whole.snapshot()));

    // And back: `a` takes partition 1 again and still agrees for its servers.
    hand_over(&mut b, &mut a, 1);
    let a_now: Vec<String> = answers(&a.snapshot());
    let whole_now = answers(&whole.snapshot());
    for server in ["gw0 ", "gw1 ", "gw3 ", "gw4 "] {
        let pick = |v: &[String]| v.iter().find(|l| l.starts_with(server)).cloned();
        assert_eq!(pick(&a_now), pick(&whole_now), "{server}");
    }
}
