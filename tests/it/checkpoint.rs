//! Checkpoints: an engine saved part-way and restored answers exactly like one that never
//! stopped, and damaged checkpoint files are refused with a clear reason (the previous good one
//! is used instead).
//!
//! The streams are the exactness test's (disorder within lateness, late events, duplicates,
//! garbage, a server going down, idle sessions expiring), so a cut lands with events waiting in
//! reorder buffers, duplicates of events from before the cut still to come, and open minutes.

use std::sync::Arc;

use gatewatch::checkpoint::{self, Checkpoint};
use gatewatch::codec::{Dec, Enc};
use gatewatch::config::Config;
use gatewatch::ingest::{decode_chunk, Chunk};
use gatewatch::state::Engine;

use crate::exactness::generate;

const TABLES: [&str; 6] = [
    "events",
    "sessions",
    "concurrency",
    "latency",
    "servers",
    "alerts",
];

fn cfg() -> Config {
    Config::parse(
        "[engine]\nallowed_lateness = \"5m\"\nsession_timeout = \"15m\"\nretention = \"30d\"\n",
        "test",
    )
    .unwrap()
}

fn apply_lines(engine: &mut Engine, lines: &[String], chunk: usize) {
    for part in lines.chunks(chunk) {
        let mut raw = part.join("\n").into_bytes();
        raw.push(b'\n');
        let d = decode_chunk(Chunk {
            raw,
            truncated: false,
            shared: None,
        });
        for (_, reason) in &d.rejects {
            engine.count_rejected(*reason, 1);
        }
        engine.apply(&d.batch);
    }
}

/// Every table as sorted CSV lines: the whole observable state.
fn tables(engine: &Engine) -> Vec<(String, Vec<String>)> {
    let snap = Arc::new(engine.snapshot());
    TABLES
        .iter()
        .map(|t| {
            let r = gatewatch::app::run_sql(snap.clone(), &format!("SELECT * FROM {t}")).unwrap();
            let mut out = Vec::new();
            gatewatch::output::write_result(&r, gatewatch::output::Format::Csv, &mut out).unwrap();
            let mut lines: Vec<String> = String::from_utf8(out)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect();
            lines.sort();
            (t.to_string(), lines)
        })
        .collect()
}

fn assert_same(a: &Engine, b: &Engine, what: &str) {
    for ((t, x), (_, y)) in tables(a).into_iter().zip(tables(b)) {
        assert_eq!(x.len(), y.len(), "{what}: table {t} row counts differ");
        for (i, (l, r)) in x.iter().zip(&y).enumerate() {
            assert_eq!(l, r, "{what}: table {t} differs at sorted row {i}");
        }
    }
    assert_eq!(a.counters(), b.counters(), "{what}: counters");
    assert_eq!(a.positions(), b.positions(), "{what}: positions");
}

#[test]
fn a_restored_engine_continues_exactly_like_one_that_never_stopped() {
    for seed in [3u64, 11, 2024] {
        let stream = generate(seed);
        let lines: Vec<String> = stream.arrivals.iter().map(|(_, l, _)| l.clone()).collect();
        let n = lines.len();
        for cut in [n / 5, n / 2, n * 4 / 5] {
            let mut straight = Engine::new(cfg().engine);
            apply_lines(&mut straight, &lines[..cut], 97);
            straight.record_positions([("gateway.sessions", 0, cut as i64)]);

            let mut enc = Enc::default();
            straight.encode_checkpoint(&mut enc);
            let mut d = Dec::new(&enc.buf);
            let mut restored = Engine::decode_checkpoint(cfg().engine, &mut d).unwrap();
            assert!(d.is_empty(), "the engine section is read to its end");
            assert_same(
                &straight,
                &restored,
                &format!("seed {seed}, right after the cut at {cut}"),
            );

            // Both go on with the same input: every table stays equal, to the end.
            apply_lines(&mut straight, &lines[cut..], 89);
            apply_lines(&mut restored, &lines[cut..], 89);
            straight.flush();
            restored.flush();
            assert_same(
                &straight,
                &restored,
                &format!("seed {seed}, cut at {cut}, at the end"),
            );
        }
    }
}

#[test]
fn damaged_checkpoints_are_refused_and_the_previous_one_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let stream = generate(5);
    let lines: Vec<String> = stream.arrivals.iter().map(|(_, l, _)| l.clone()).collect();
    let mut engine = Engine::new(cfg().engine);
    apply_lines(&mut engine, &lines[..lines.len() / 2], 97);
    engine.record_positions([("t", 0, 10)]);
    let first = Checkpoint::capture(&engine, Vec::new());
    let first_path = checkpoint::write(dir.path(), &first, 3).unwrap();
    apply_lines(&mut engine, &lines[lines.len() / 2..], 97);
    engine.record_positions([("t", 0, 20)]);
    let second_path =
        checkpoint::write(dir.path(), &Checkpoint::capture(&engine, Vec::new()), 3).unwrap();

    let load = || checkpoint::load_newest(dir.path(), &cfg().engine).unwrap();
    let (newest, skipped) = load();
    assert!(skipped.is_empty());
    assert_eq!(
        newest.unwrap().engine.positions(),
        vec![("t".to_string(), 0, 20)]
    );

    // One flipped byte in the middle of the newest file: its checksum fails, the first is used.
    let mut bytes = std::fs::read(&second_path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&second_path, &bytes).unwrap();
    let (loaded, skipped) = load();
    assert_eq!(
        loaded.unwrap().engine.positions(),
        vec![("t".to_string(), 0, 10)]
    );
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].contains("checksum"), "{skipped:?}");

    // Cut short (a crash while writing would leave only a temp file, but a disk can lie).
    std::fs::write(&second_path, &bytes[..bytes.len() / 3]).unwrap();
    let (loaded, skipped) = load();
    assert_eq!(
        loaded.unwrap().engine.positions(),
        vec![("t".to_string(), 0, 10)]
    );
    assert!(
        skipped[0].contains("short") || skipped[0].contains("checksum"),
        "{skipped:?}"
    );

    // Not a checkpoint at all; and a temp file left by a crash mid-write is ignored.
    std::fs::write(&second_path, b"hello").unwrap();
    std::fs::write(
        dir.path().join("checkpoint-99999999999999999999.gwc.tmp"),
        b"partial",
    )
    .unwrap();
    let (loaded, skipped) = load();
    assert_eq!(
        loaded.unwrap().engine.positions(),
        vec![("t".to_string(), 0, 10)]
    );
    assert!(
        skipped[0].contains("not a gatewatch checkpoint"),
        "{skipped:?}"
    );

    // Nothing usable: a clean start, with every reason reported.
    std::fs::write(&first_path, b"").unwrap();
    let (loaded, skipped) = load();
    assert!(loaded.is_none());
    assert_eq!(skipped.len(), 2);
}

#[test]
fn only_the_newest_checkpoints_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(cfg().engine);
    let mut paths = Vec::new();
    for _ in 0..5 {
        paths.push(
            checkpoint::write(dir.path(), &Checkpoint::capture(&engine, Vec::new()), 2).unwrap(),
        );
    }
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&paths[4]) && left.contains(&paths[3]));
}
