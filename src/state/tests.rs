//! The engine's unit tests: semantics on hand-built streams.

use std::collections::BTreeMap;

use super::dedupe::{Dedupe, IdSet, HOUR_MS};
use super::snapshot::PARALLEL_SNAPSHOT_MINUTES;
use super::*;
use crate::config::EngineConfig;
use crate::event::{ChunkView, Reason, ServerState};
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
    let with_id =
        |ts: i64, id: &str| format!(r#"{{"type":"reject","ts":{ts},"server":"gw","id":"{id}"}}"#);
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
            let horizon = clock - next(3 * HOUR_MS as u64) as i64 + next(2) as i64 * 2 * HOUR_MS;
            d.evict_before(horizon);
            model.retain(|&(h, _)| h >= horizon.div_euclid(HOUR_MS));
        }
        if next(2_000) == 0 {
            let copy: BTreeMap<i64, IdSet> = d.hours().map(|(h, ids)| (h, ids.clone())).collect();
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
    let one = e.snapshot_copied(SnapshotScope::everything(), false);
    let two = e.snapshot_copied(SnapshotScope::everything(), true);
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
    let cap =
        |ts: i64, c: i64| format!(r#"{{"type":"server","ts":{ts},"server":"gw","capacity":{c}}}"#);
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

fn whole(ts: i64, session: &str, duration_ms: i64) -> String {
    format!(
        r#"{{"type":"disconnect","ts":{ts},"server":"gw","session":"{session}","duration_ms":{duration_ms}}}"#
    )
}

/// A whole-session record (a disconnect with `duration_ms`) counts a session whose connect was
/// never seen over its lifetime, even hours behind the watermark; with its connect seen, or after
/// another end of the same session, it changes nothing.
#[test]
fn whole_session_records_count_once() {
    let hour = 3_600_000;
    // Connect lost: the session still counts from ts - duration, and no orphan.
    let mut e = Engine::new(EngineConfig::default());
    feed(
        &mut e,
        &[ev("connect", 0, "x"), whole(3 * hour, "a", 2 * hour)],
    );
    e.flush();
    assert_eq!(
        sessions(&e)[0],
        ("a".into(), hour, Some(3 * hour), Some("disconnect".into()))
    );
    assert_eq!(e.counters().orphans, 0);
    // Connect seen (1 s off the record's start): one session, from the connect.
    let mut e = Engine::new(EngineConfig::default());
    feed(
        &mut e,
        &[ev("connect", 1_000, "a"), whole(2 * hour, "a", 2 * hour)],
    );
    e.flush();
    assert_eq!(
        sessions(&e),
        vec![("a".into(), 1_000, Some(2 * hour), Some("disconnect".into()))]
    );
    // Ended by another message first, then told whole (ASA 716002, then 113019): once, and a
    // snapshot taken while the record still waits in the reorder buffer agrees.
    let mut e = Engine::new(EngineConfig::default());
    feed(
        &mut e,
        &[
            ev("connect", 1_000, "a"),
            ev("disconnect", hour, "a"),
            whole(hour + 2_000, "a", hour),
        ],
    );
    assert_eq!(sessions(&e).len(), 1);
    e.flush();
    assert_eq!(
        sessions(&e),
        vec![("a".into(), 1_000, Some(hour), Some("disconnect".into()))]
    );
    // The same id again after its end is a new session.
    feed(&mut e, &[whole(4 * hour, "a", hour)]);
    e.flush();
    assert_eq!(sessions(&e).len(), 2);
}

/// A checkpoint keeps the ignored-line counts, and the ends whole-session records are checked
/// against (rebuilt from the closed sessions): restored, a record of a session that already
/// ended still changes nothing.
#[test]
fn checkpoints_keep_ignored_counts_and_session_ends() {
    use crate::codec::{Dec, Enc};
    use crate::event::{Ignored, InputFormat, MessageId};
    let hour = 3_600_000;
    let mut e = Engine::new(EngineConfig::default());
    feed(
        &mut e,
        &[ev("connect", 1_000, "a"), ev("disconnect", hour, "a")],
    );
    e.flush();
    let kind = Ignored {
        format: InputFormat::CiscoAsa,
        message: MessageId::number(302013),
    };
    e.count_ignored(kind, 7);
    let mut enc = Enc::default();
    e.encode_checkpoint(&mut enc);
    let mut restored =
        Engine::decode_checkpoint(EngineConfig::default(), &mut Dec::new(&enc.buf)).unwrap();
    assert_eq!(restored.counters().ignored.get(&kind), Some(&7));
    assert_eq!(restored.counters(), e.counters());
    feed(&mut restored, &[whole(hour + 2_000, "a", hour)]);
    restored.flush();
    assert_eq!(sessions(&restored).len(), 1);
}

/// Past [`MAX_IGNORED_KINDS`] message ids of one vendor, the rest count as `other`.
#[test]
fn ignored_kinds_are_bounded_per_vendor() {
    use crate::event::{Ignored, InputFormat, MessageId};
    let mut c = Counters::default();
    for id in 0..1000u32 {
        for format in [InputFormat::CiscoAsa, InputFormat::Pulse] {
            c.count_ignored(
                Ignored {
                    format,
                    message: MessageId::number(id),
                },
                1,
            );
        }
    }
    assert_eq!(c.ignored.len(), 2 * (MAX_IGNORED_KINDS + 1));
    assert_eq!(c.ignored_total(), 2000);
    let other = Ignored {
        format: InputFormat::Pulse,
        message: MessageId::new("other"),
    };
    assert_eq!(c.ignored[&other], 1000 - MAX_IGNORED_KINDS as u64);
}
