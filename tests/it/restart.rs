//! Restarts without loss, through a real broker (tansu): `gatewatch run` killed with SIGKILL at
//! random points while events are being produced, restarted from its checkpoints, must end with
//! exactly the answers of a replay of the same events (0 lost, 0 counted twice). And a
//! checkpoint directory that stops being writable is a logged, counted error: ingest goes on
//! and the checkpoints already written stay intact.

use std::path::Path;
use std::time::Duration;

use gatewatch::output::write_result;
use gatewatch::output::Format;
use gatewatch::sim::Rng;

use crate::support::*;

fn config_file(dir: &Path, brokers: &str, topic: &str, group: &str, checkpoints: &Path) -> String {
    let path = dir.join("gatewatch.toml");
    std::fs::write(
        &path,
        format!(
            "[kafka]\nbrokers = \"{brokers}\"\ntopics = [\"{topic}\"]\ngroup = \"{group}\"\n\
             [kafka.properties]\n\"session.timeout.ms\" = 6000\n\"heartbeat.interval.ms\" = 500\n\
             [checkpoint]\ndir = \"{}\"\ninterval = \"1s\"\nkeep = 2\n",
            checkpoints.display()
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// Starts `gatewatch run` with `config`.
fn start(config: &str) -> (Running, String) {
    start_run(&["--config", config, "--http", "127.0.0.1:0"])
}

fn csv(url: &str, sql: &str) -> Option<String> {
    let r = gatewatch::app::query_service(url, sql, None).ok()?;
    let mut out = Vec::new();
    write_result(&r, Format::Csv, &mut out).unwrap();
    Some(String::from_utf8(out).unwrap())
}

fn events_applied(url: &str) -> Option<usize> {
    csv(url, "SELECT count(*) AS n FROM events")?
        .lines()
        .nth(1)?
        .parse()
        .ok()
}

#[test]
fn kill_9_at_random_points_then_restart_loses_nothing_and_counts_nothing_twice() {
    let brokers = tansu();
    let topic = unique("kill9");
    create_topic(brokers, &topic, 4);
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = dir.path().join("checkpoints");
    let config = config_file(dir.path(), brokers, &topic, &unique("g"), &checkpoints);
    let events = story("2020-03-17", 60, 21);
    let lines: Vec<String> = events.iter().map(|e| e.1.clone()).collect();

    // The simulator's day goes to Kafka in 60 parts over ~30 s while gatewatch is killed and
    // restarted underneath it (four rounds of start, progress and a random wait take about as
    // long, so most kills land while events are still arriving).
    let producer = {
        let (brokers, topic, events) = (brokers.to_string(), topic.clone(), events.clone());
        std::thread::spawn(move || {
            for part in events.chunks(events.len().div_ceil(60)) {
                produce(&brokers, &topic, part);
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };
    let mut rng = Rng::new(9);
    let mut kills = Vec::new();
    let mut last = 0;
    for round in 0..4 {
        let (mut child, url) = start(&config);
        // Let it resume and make progress past where the last one was killed, then kill it
        // at a random moment (a checkpoint is written every second while it applies).
        // (Once everything produced is applied, there is no more progress to make.)
        let total = lines.len();
        wait_until(
            Duration::from_secs(90),
            &format!("progress past {last} of {total} events after restart {round}"),
            || events_applied(&url).is_some_and(|n| n > last || n == total),
        );
        std::thread::sleep(Duration::from_millis(300 + rng.below(2500)));
        last = events_applied(&url).unwrap_or(last);
        let checkpoints_then = std::fs::read_dir(&checkpoints).map_or(0, |d| d.count());
        // SIGKILL: no shutdown, no final commit, no final checkpoint.
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        kills.push((round, last, checkpoints_then));
    }
    producer.join().unwrap();
    let (_child, url, said) = start_run_saying(&["--config", &config, "--http", "127.0.0.1:0"]);
    // It says which checkpoint it resumed from, where the operator looks first.
    assert!(
        said.iter().any(|l| l.contains("resumed from checkpoint")),
        "{said:?}"
    );
    wait_until(Duration::from_secs(120), "every event applied", || {
        events_applied(&url) == Some(lines.len())
    });
    // Once all are in, a little longer: nothing more may arrive (no double counting).
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(events_applied(&url), Some(lines.len()));
    // It resumed from a checkpoint: this run read only what came after it, not the topic.
    let metrics = gatewatch::http_client::request(
        &gatewatch::http_client::Url::parse(&url).unwrap(),
        "GET",
        "/metrics",
        "text/plain",
        b"",
        None,
    )
    .unwrap();
    let read: f64 = String::from_utf8_lossy(&metrics.body)
        .lines()
        .find_map(|l| l.strip_prefix("gatewatch_kafka_messages_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (read as usize) < lines.len(),
        "the last run re-read {read} messages: it did not resume from its checkpoint"
    );
    for q in COMPARED {
        let live = csv(&url, q).unwrap();
        assert_eq!(
            live,
            replay_csv(&lines, q),
            "after {kills:?}, live and replay differ on: {q}"
        );
    }
    let files = std::fs::read_dir(&checkpoints).unwrap().count();
    assert!(
        (1..=3).contains(&files),
        "{files} checkpoint files (keep = 2, plus one being written)"
    );
    assert!(
        kills.iter().any(|k| k.2 > 0),
        "no kill happened after a checkpoint was written: {kills:?}"
    );
    assert!(
        kills.iter().filter(|k| k.1 < lines.len()).count() >= 2,
        "fewer than two kills happened mid-stream: {kills:?}"
    );
    eprintln!(
        "kill -9: {} events; kills at {kills:?} (round, events applied just before, checkpoint files)",
        lines.len()
    );
}

#[test]
fn an_unwritable_checkpoint_directory_is_reported_and_ingest_goes_on() {
    let brokers = tansu();
    let topic = unique("ckdir");
    create_topic(brokers, &topic, 2);
    let dir = tempfile::tempdir().unwrap();
    // The service writes through a symlink; pointing it at a file makes every write fail with
    // "not a directory" (this works as root too, unlike permissions).
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = dir.path().join("checkpoints");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let mut cfg = config(brokers, &topic, &unique("g"));
    cfg.checkpoint.dir = Some(link.clone());
    cfg.checkpoint.interval_ms = 1000;
    let events = story("2020-03-18", 30, 4);
    let (a, rest) = events.split_at(events.len() / 3);
    let (b, c) = rest.split_at(rest.len() / 2);
    let svc = Service::start(cfg, None);
    // Batches keep arriving so checkpoints come due.
    let feed = |part: &[(String, String)]| {
        for chunk in part.chunks(part.len().div_ceil(10)) {
            produce(brokers, &topic, chunk);
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    feed(a);
    wait_until(Duration::from_secs(60), "a checkpoint", || {
        svc.metric("gatewatch_checkpoints_written_total") >= 1.0
    });
    let before: Vec<(std::path::PathBuf, Vec<u8>)> = std::fs::read_dir(&real)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();

    std::fs::remove_file(&link).unwrap();
    std::fs::write(&link, b"not a directory").unwrap();
    feed(b);
    wait_until(Duration::from_secs(60), "a failed checkpoint", || {
        svc.metric("gatewatch_checkpoint_failures_total") >= 1.0
    });
    for (p, bytes) in &before {
        assert_eq!(
            &std::fs::read(p).unwrap(),
            bytes,
            "{} was changed",
            p.display()
        );
    }

    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let written = svc.metric("gatewatch_checkpoints_written_total");
    feed(c);
    wait_until(Duration::from_secs(60), "checkpoints again", || {
        svc.metric("gatewatch_checkpoints_written_total") > written
    });
    let want = format!("n\n{}\n", events.len());
    wait_until(Duration::from_secs(60), "every event applied", || {
        svc.sql_csv("SELECT count(*) AS n FROM events") == want
    });
    let lines: Vec<String> = events.iter().map(|e| e.1.clone()).collect();
    assert_same_as_replay(&svc, &lines);
    svc.stop().unwrap();
    // The newest checkpoint (the final one, at shutdown) holds everything.
    let (restored, skipped) =
        gatewatch::checkpoint::load_newest(&real, &Default::default()).unwrap();
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_eq!(
        restored.unwrap().engine.counters().accepted,
        events.len() as u64
    );
}
