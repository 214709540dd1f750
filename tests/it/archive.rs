//! The Parquet archive through a real broker (tansu): `run --archive` writes each sealed hour of
//! `events`, `concurrency` and `latency`; `query --archive` answers offline exactly as a replay
//! of the same events; the live tables span archive and memory and still equal replay's; a
//! query's time filter prunes whole hour directories (a damaged file outside the window does
//! not matter, inside it does); and an archive directory that stops being writable is counted
//! while ingest goes on, with every file already written left as it was.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

fn offline(dir: &Path, sql: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gatewatch"))
        .args([
            "query",
            "--archive",
            dir.to_str().unwrap(),
            "--format",
            "csv",
            sql,
        ])
        .output()
        .unwrap()
}

fn offline_csv(dir: &Path, sql: &str) -> String {
    let o = offline(dir, sql);
    assert!(
        o.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                let bytes = std::fs::read(&p).unwrap();
                out.push((p, bytes));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn archive_answers_offline_like_replay_prunes_hours_and_survives_an_unwritable_directory() {
    let brokers = tansu();
    let topic = unique("archive");
    create_topic(brokers, &topic, 4);
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("archive");
    std::fs::create_dir(&real).unwrap();
    let link = tmp.path().join("archive-link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let mut cfg = config(brokers, &topic, &unique("g"));
    cfg.archive = Some(link.clone());
    let svc = Service::start(cfg, None);

    let events = story("2020-03-17", 40, 31);
    let lines: Vec<String> = events.iter().map(|e| e.1.clone()).collect();
    let noon = events
        .iter()
        .position(|e| e.1.contains("T12:"))
        .expect("the day has a noon");
    let through = || svc.metric("gatewatch_archive_through_timestamp_seconds") as i64 * 1000;
    // Sealed: the hours that end before the newest event minus the allowed lateness.
    let newest = lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            gatewatch::event::parse_rfc3339_ms(v["ts"].as_str().unwrap()).unwrap()
        })
        .max()
        .unwrap();
    let sealed = newest - gatewatch::config::DEFAULT_LATENESS_MS;
    let day_through = sealed - sealed.rem_euclid(3_600_000);
    let hour =
        |h: u32| gatewatch::event::parse_rfc3339_ms(&format!("2020-03-17T{h:02}:00:00Z")).unwrap();

    // Morning: hours are sealed and archived as event time passes them.
    produce(brokers, &topic, &events[..noon]);
    wait_until(Duration::from_secs(90), "the morning archived", || {
        through() >= hour(11)
    });
    let written = files_under(&real);
    assert!(written.len() >= 10, "{} files", written.len());
    assert!(real
        .join("events/date=2020-03-17/hour=08/part-0.parquet")
        .is_file());

    // The directory goes away (a symlink turned into a file): counted, ingest goes on, nothing
    // already archived changes.
    std::fs::remove_file(&link).unwrap();
    std::fs::write(&link, b"not a directory").unwrap();
    produce(brokers, &topic, &events[noon..]);
    wait_until(Duration::from_secs(90), "a failed archive attempt", || {
        svc.metric("gatewatch_archive_failures_total") >= 1.0
    });
    let want = format!("n\n{}\n", events.len());
    wait_until(Duration::from_secs(90), "every event applied", || {
        svc.sql_csv("SELECT count(*) AS n FROM events") == want
    });
    assert_eq!(
        files_under(&real),
        written,
        "archived files changed while failing"
    );

    // Back: the rest of the sealed hours are archived.
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    wait_until(Duration::from_secs(90), "the day archived", || {
        through() == day_through
    });
    assert!(day_through > hour(12), "the afternoon is archived too");

    // Live answers span archive and memory and equal replay's.
    assert_same_as_replay(&svc, &lines);
    svc.stop().unwrap();

    // Offline, no service: the archived hours answer as a replay restricted to them.
    let t = gatewatch::event::format_rfc3339_ms(day_through);
    for q in [
        format!("SELECT type, count(*) AS n, count(DISTINCT id) AS ids FROM events WHERE ts < '{t}' GROUP BY type ORDER BY type"),
        format!("SELECT server, max(sessions) AS peak_end, max(peak) AS peak, sum(connects) AS c, sum(disconnects) AS d, sum(rejects) AS r, count(*) AS seconds FROM concurrency WHERE ts < '{t}' GROUP BY server ORDER BY server"),
        format!("SELECT server, metric, hdr_count(hdr_merge(hist)) AS n, hdr_quantile(hdr_merge(hist), 0.99) AS p99, hdr_max(hdr_merge(hist)) AS mx FROM latency WHERE minute < '{t}' GROUP BY server, metric ORDER BY server, metric"),
    ] {
        assert_eq!(offline_csv(&real, &q), replay_csv(&lines, &q), "offline archive vs replay: {q}");
    }
    let window = "SELECT server, max(peak) AS peak, sum(rejects) AS rejects FROM concurrency WHERE ts BETWEEN '2020-03-17T08:00:00Z' AND '2020-03-17T09:29:59Z' GROUP BY server ORDER BY server";
    let answer = offline_csv(&real, window);
    assert_eq!(answer, replay_csv(&lines, window));

    // Pruning: damage an hour outside the window; the window's answer is unchanged (that
    // hour's directory is never opened), while a query over everything trips on it.
    let night = real.join("concurrency/date=2020-03-17/hour=03/part-0.parquet");
    std::fs::write(&night, b"PAR1 damaged PAR1").unwrap();
    assert_eq!(offline_csv(&real, window), answer);
    let o = offline(&real, "SELECT count(*) FROM concurrency");
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(e.trim_end().lines().count(), 1, "one line: {e}");

    // Not an archive: one sentence.
    let o = offline(tmp.path(), "SELECT 1");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a gatewatch archive"));
}
