//! A cluster through a real broker (tansu) and real processes: three `gatewatch run` members
//! of one group on a 6-partition topic, fed a simulated day with disorder, duplicates and
//! garbage, one of them killed with -9 mid-stream and a fourth joining. Whatever moved, the
//! members' answers together equal a single replay of the same events. And a state store that
//! cannot be written is reported while ingest goes on, with nothing already written damaged.

use std::path::Path;
use std::time::{Duration, Instant};

use gatewatch::output::write_result;
use gatewatch::output::Format;

use crate::support::*;

const PARTITIONS: i32 = 6;

fn config_file(dir: &Path, brokers: &str, topic: &str, group: &str, store: &str) -> String {
    let path = dir.join("gatewatch.toml");
    std::fs::write(
        &path,
        format!(
            "[kafka]\nbrokers = \"{brokers}\"\ntopics = [\"{topic}\"]\ngroup = \"{group}\"\n\
             [kafka.properties]\n\"session.timeout.ms\" = 6000\n\"heartbeat.interval.ms\" = 500\n\
             [checkpoint]\ninterval = \"1s\"\nkeep = 2\n\
             [cluster]\nstate_store = \"{store}\"\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

fn member(config: &str) -> (Running, String) {
    start_run(&["--config", config, "--http", "127.0.0.1:0", "--pg", "off"])
}

fn csv(url: &str, sql: &str) -> Option<String> {
    let r = gatewatch::app::query_service(url, sql, None).ok()?;
    let mut out = Vec::new();
    write_result(&r, Format::Csv, &mut out).unwrap();
    Some(String::from_utf8(out).unwrap())
}

fn get(url: &str, path: &str) -> Option<(u16, String)> {
    let r = gatewatch::http_client::request(
        &gatewatch::http_client::Url::parse(url).unwrap(),
        "GET",
        path,
        "*/*",
        b"",
        None,
    )
    .ok()?;
    Some((r.status, String::from_utf8_lossy(&r.body).into_owned()))
}

/// The partitions a member says it owns with their state restored.
fn restored(url: &str) -> Vec<String> {
    get(url, "/readyz").map_or(Vec::new(), |(_, body)| {
        body.lines()
            .filter_map(|l| l.strip_prefix("partition "))
            .filter_map(|l| l.strip_suffix(" restored"))
            .map(str::to_string)
            .collect()
    })
}

/// Every partition owned and restored by exactly one of `urls`.
fn settled(urls: &[&str]) -> bool {
    let mut all: Vec<String> = urls.iter().flat_map(|u| restored(u)).collect();
    let n = all.len();
    all.sort();
    all.dedup();
    n == PARTITIONS as usize && all.len() == n
}

/// The fixed questions: per-server peak, per-second concurrency at chosen instants, sessions
/// open, exact-merge p99, connects and rejects per server, and events.
const QUESTIONS: [&str; 8] = [
    "SELECT count(*) AS n FROM events",
    "SELECT * FROM servers ORDER BY server",
    "SELECT server, max(sessions) AS peak, sum(connects) AS connects, sum(rejects) AS rejects, sum(disconnects) AS disconnects FROM concurrency GROUP BY server ORDER BY server",
    "SELECT server, ts, sessions FROM concurrency WHERE ts IN (TIMESTAMP '2020-03-17T08:30:00Z', TIMESTAMP '2020-03-17T09:00:00Z', TIMESTAMP '2020-03-17T12:15:30Z', TIMESTAMP '2020-03-17T17:45:00Z') ORDER BY server, ts",
    // The simulated day ends with everyone gone: sessions still open at the end of the morning.
    "SELECT server, count(*) AS open FROM sessions WHERE started <= TIMESTAMP '2020-03-17T12:00:00Z' AND (ended IS NULL OR ended > TIMESTAMP '2020-03-17T12:00:00Z') GROUP BY server ORDER BY server",
    "SELECT server, end_reason, count(*) AS n, sum(duration_s) AS secs FROM sessions GROUP BY server, end_reason ORDER BY server, end_reason",
    "SELECT server, metric, hdr_count(hdr_merge(hist)) AS n, hdr_quantile(hdr_merge(hist), 0.99) AS p99 FROM latency GROUP BY server, metric ORDER BY server, metric",
    "SELECT type, server, count(*) AS n, count(DISTINCT id) AS ids FROM events GROUP BY type, server ORDER BY type, server",
];

/// Events in the whole cluster, as the first of `urls` answers (0 while it cannot).
fn events_in(urls: &[&str]) -> usize {
    csv(urls[0], "SELECT count(*) AS n FROM events")
        .and_then(|c| c.lines().nth(1).and_then(|n| n.parse::<usize>().ok()))
        .unwrap_or(0)
}

/// The day, keyed by server, with redeliveries and garbage mixed in.
fn day_with_faults() -> Vec<(String, String)> {
    let mut events = story("2020-03-17", 120, 33);
    let mut mixed = Vec::with_capacity(events.len() + events.len() / 20);
    for (i, e) in events.drain(..).enumerate() {
        if i % 97 == 0 {
            mixed.push((e.0.clone(), "{\"type\":\"connect\",\"ts\":".to_string()));
        }
        if i % 41 == 0 {
            mixed.push(e.clone()); // delivered twice
        }
        mixed.push(e);
    }
    mixed
}

#[test]
fn three_members_then_a_kill_9_and_a_fourth_answer_as_one_replay() {
    let brokers = tansu();
    let topic = unique("cluster");
    create_topic(brokers, &topic, PARTITIONS);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let config = config_file(
        dir.path(),
        brokers,
        &topic,
        &unique("g"),
        &format!("file://{}", store.display()),
    );
    let events = day_with_faults();
    let lines: Vec<String> = events.iter().map(|e| e.1.clone()).collect();
    let expected_events: usize = replay_csv(&lines, "SELECT count(*) AS n FROM events")
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();

    let (m1, u1) = member(&config);
    let (m2, u2) = member(&config);
    let (mut m3, u3) = member(&config);
    wait_until(
        Duration::from_secs(60),
        "three members to share 6 partitions",
        || settled(&[&u1, &u2, &u3]) && [&u1, &u2, &u3].iter().all(|u| !restored(u).is_empty()),
    );

    // The day goes in 40 parts over ~20 s; one member is killed with -9 a third of the way.
    let producer = {
        let (brokers, topic, events) = (brokers.to_string(), topic.clone(), events.clone());
        std::thread::spawn(move || {
            for part in events.chunks(events.len().div_ceil(40)) {
                produce(&brokers, &topic, part);
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };
    wait_until(
        Duration::from_secs(60),
        "a third of the day applied",
        || events_in(&[&u1, &u2, &u3]) > expected_events / 3,
    );
    // Let a periodic checkpoint of the partitions land, then kill without any warning.
    std::thread::sleep(Duration::from_millis(1500));
    let lost = restored(&u3);
    m3.0.kill().unwrap();
    m3.0.wait().unwrap();
    let killed = Instant::now();
    wait_until(
        Duration::from_secs(60),
        "the survivors to take over",
        || settled(&[&u1, &u2]),
    );
    let recovery = killed.elapsed();

    // A fourth joins while events still arrive: partitions move again.
    let (_m4, u4) = member(&config);
    wait_until(
        Duration::from_secs(60),
        "the fourth member to get partitions",
        || settled(&[&u1, &u2, &u4]) && !restored(&u4).is_empty(),
    );
    producer.join().unwrap();
    let urls = [u1.as_str(), u2.as_str(), u4.as_str()];
    wait_until(Duration::from_secs(120), "every event applied once", || {
        settled(&urls) && events_in(&urls) == expected_events
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        events_in(&urls),
        expected_events,
        "counted twice after settling"
    );

    // Give the members' entries (rewritten every 2 s) time to carry their newest event.
    std::thread::sleep(Duration::from_secs(3));
    let reference: Vec<String> = QUESTIONS.iter().map(|q| replay_csv(&lines, q)).collect();
    // (a, b) Any member answers for the whole cluster, as one replay of everything would.
    for url in [&u1, &u4] {
        for (q, want) in QUESTIONS.iter().zip(&reference) {
            let got = csv(url, q).unwrap_or_else(|| panic!("{url} did not answer {q}"));
            assert_eq!(&got, want, "{url} and replay differ on: {q}");
            assert!(
                got.lines().count() > 2 || q.contains("count(*) AS n FROM events"),
                "no rows for {q}"
            );
        }
    }
    // (c) Queries while partitions move (a fifth member joins, then the second leaves cleanly):
    // each answer is exact or says which partitions are in transit; never a wrong one.
    let asking = {
        let (u1, questions, reference) = (u1.clone(), QUESTIONS, reference.clone());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = stop.clone();
        let t = std::thread::spawn(move || {
            let (mut exact, mut in_transit) = (0, 0);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                for (q, want) in questions.iter().zip(&reference).take(2) {
                    match gatewatch::app::query_service(&u1, q, None) {
                        Ok(r) => {
                            let mut out = Vec::new();
                            write_result(&r, Format::Csv, &mut out).unwrap();
                            assert_eq!(
                                &String::from_utf8(out).unwrap(),
                                want,
                                "an answer while partitions moved: {q}"
                            );
                            exact += 1;
                        }
                        Err(e) => {
                            assert!(e.to_string().contains("moving between members"), "{e}");
                            in_transit += 1;
                        }
                    }
                }
            }
            (exact, in_transit)
        });
        (t, stop)
    };
    // The fifth also answers PostgreSQL's clients, for the whole cluster.
    let (_m5, u5, said) = start_run_saying(&[
        "--config",
        &config,
        "--http",
        "127.0.0.1:0",
        "--pg",
        "127.0.0.1:0",
    ]);
    let pg = said
        .iter()
        .find_map(|l| l.split("PostgreSQL at ").nth(1)?.split_whitespace().next())
        .expect("the member says where PostgreSQL listens")
        .to_string();
    wait_until(
        Duration::from_secs(60),
        "the fifth member to get partitions",
        || settled(&[&u1, &u2, &u4, &u5]) && !restored(&u5).is_empty(),
    );
    // SIGTERM: the second member hands its partitions over (final checkpoints) and leaves.
    unsafe {
        libc::kill(m2.0.id() as i32, libc::SIGTERM);
    }
    wait_until(
        Duration::from_secs(60),
        "the others to take the second's partitions",
        || settled(&[&u1, &u4, &u5]),
    );
    std::thread::sleep(Duration::from_secs(3));
    asking.1.store(true, std::sync::atomic::Ordering::Relaxed);
    let (exact, in_transit) = asking.0.join().unwrap();
    assert!(exact > 0, "no query answered while partitions moved");
    for (q, want) in QUESTIONS.iter().zip(&reference) {
        assert_eq!(&csv(&u5, q).unwrap(), want, "after the moves: {q}");
    }
    let (host, port) = pg.rsplit_once(':').unwrap();
    let psql = std::process::Command::new(crate::postgres::client("PSQL"))
        .args([
            "-X",
            "-w",
            "-At",
            "-h",
            host,
            "-p",
            port,
            "-U",
            "gatewatch",
            "-d",
            "gatewatch",
        ])
        .args(["-c", "SELECT count(*) FROM events"])
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&psql.stdout).trim(),
        expected_events.to_string(),
        "psql: {}",
        String::from_utf8_lossy(&psql.stderr)
    );
    // The dashboard of any member shows every server.
    let (_, servers) = get(&u1, "/api/servers").unwrap();
    let listed: serde_json::Value = serde_json::from_str(&servers).unwrap();
    let want = reference[1].lines().count() - 1;
    assert_eq!(listed.as_array().map(Vec::len), Some(want), "{servers}");
    let (_, live) = get(&u4, "/api/live").unwrap();
    let live: serde_json::Value = serde_json::from_str(&live).unwrap();
    assert_eq!(
        live["servers"].as_array().map(Vec::len),
        Some(want),
        "{live}"
    );

    let (_, metrics) = get(&u4, "/metrics").unwrap();
    promtool_check_metrics(&metrics).unwrap();
    assert!(
        metrics.contains("gatewatch_cluster_partition_owned{member="),
        "{metrics}"
    );
    drop((m1, m2));
    eprintln!(
        "cluster: {} events; killed a member owning {lost:?}; survivors owned and restored every partition {:.1} s later (session timeout 6 s); while partitions moved, {exact} answers were exact and {in_transit} said partitions were in transit",
        lines.len(),
        recovery.as_secs_f64()
    );
}

#[test]
fn an_unwritable_state_store_is_reported_and_ingest_goes_on() {
    let brokers = tansu();
    let topic = unique("cstore");
    create_topic(brokers, &topic, 2);
    let dir = tempfile::tempdir().unwrap();
    // The member writes through a symlink; pointing it at a file makes every write fail.
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = dir.path().join("store");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let config = config_file(
        dir.path(),
        brokers,
        &topic,
        &unique("g"),
        &format!("file://{}", link.display()),
    );
    let events = story("2020-03-18", 30, 4);
    let (a, rest) = events.split_at(events.len() / 2);
    let (_m, url) = member(&config);
    let metric = |name: &str| -> f64 {
        get(&url, "/metrics")
            .and_then(|(_, t)| {
                t.lines()
                    .find(|l| l.starts_with(name) && !l.starts_with('#'))
                    .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            })
            .unwrap_or(-1.0)
    };
    let feed = |part: &[(String, String)]| {
        // Checkpoints are taken between batches: keep batches coming for a few seconds.
        for chunk in part.chunks(part.len().div_ceil(12)) {
            produce(brokers, &topic, chunk);
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    wait_until(
        Duration::from_secs(60),
        "the member to hold its partitions",
        || get(&url, "/readyz").is_some_and(|(code, _)| code == 200),
    );
    feed(a);
    wait_until(Duration::from_secs(60), "a partition checkpoint", || {
        metric("gatewatch_cluster_checkpoints_total") >= 2.0
    });
    let snapshot_of = |root: &Path| -> Vec<(String, Vec<u8>)> {
        let mut files = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "gwc") {
                    files.push((p.display().to_string(), std::fs::read(&p).unwrap()));
                }
            }
        }
        files.sort();
        files
    };
    std::fs::remove_file(&link).unwrap();
    std::fs::write(&link, b"not a directory").unwrap();
    // Hold the checkpoints as they are once the writer is past any write it had started.
    std::thread::sleep(Duration::from_millis(1500));
    let before = snapshot_of(&real);
    assert!(!before.is_empty());
    feed(rest);
    wait_until(
        Duration::from_secs(60),
        "a failed partition checkpoint",
        || metric("gatewatch_cluster_checkpoint_failures_total") >= 1.0,
    );
    let (code, body) = get(&url, "/readyz").unwrap();
    assert!(
        body.contains("state store error: state store file://"),
        "{body}"
    );
    assert!(body.contains("check that it exists"), "{body}");
    assert_eq!(
        code, 200,
        "ingest goes on, so the member stays ready: {body}"
    );
    assert_eq!(metric("gatewatch_cluster_state_store_up"), 0.0);
    // Ingest goes on: every message produced is read and applied.
    wait_until(Duration::from_secs(60), "every message read", || {
        metric("gatewatch_kafka_messages_total") >= events.len() as f64
    });
    // A whole-cluster query needs the members' entries: it fails with the store's sentence.
    let err = gatewatch::app::query_service(&url, "SELECT count(*) FROM events", None)
        .map(|_| ())
        .expect_err("no members can be found without the store")
        .to_string();
    assert!(err.contains("state store file://"), "{err}");
    assert_eq!(
        snapshot_of(&real),
        before,
        "checkpoints already written were changed"
    );

    // A store that is missing at start (its directory cannot be made: a file is in the way)
    // is reported at once, and the member still starts and reads.
    let second = dir.path().join("second");
    std::fs::create_dir(&second).unwrap();
    let missing = config_file(
        &second,
        brokers,
        &topic,
        &unique("g"),
        &format!("file://{}/store", link.display()),
    );
    let (_m2, url2) = member(&missing);
    wait_until(Duration::from_secs(60), "the second member to read", || {
        get(&url2, "/readyz").is_some_and(|(code, body)| {
            code == 200 && body.contains("state store error: state store file://")
        })
    });
}
