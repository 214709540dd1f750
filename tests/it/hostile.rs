//! Hostile input, as a broken gateway, a careless analyst or a hostile web page would send it
//! (issue 20): each test reproduces one way the service could be wiped or killed, through the
//! real paths (replay, HTTP, Kafka), and shows it now answers, refuses in one sentence, or
//! exits for its supervisor to restart it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use gatewatch::app::service::Embedded;
use gatewatch::config::Config;
use gatewatch::event::Reason;
use gatewatch::http_client::{request, request_with, HttpResponse, Url};

use crate::support::{config, create_topic, produce, story, tansu, unique, wait_until, Service};

const DAY_MS: i64 = 86_400_000;

fn gatewatch(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gatewatch"));
    c.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn one_sentence_failure(o: &Output, needle: &str) {
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "should fail: {e}");
    assert!(e.contains(needle), "stderr should mention {needle:?}: {e}");
    assert!(!e.contains("panicked"), "{e}");
    assert_eq!(e.trim_end().lines().count(), 1, "one line: {e}");
}

fn write_lines(dir: &std::path::Path, name: &str, lines: &[String]) -> String {
    let p = dir.join(name);
    let mut f = std::fs::File::create(&p).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
    p.display().to_string()
}

/// The story with one server's clock jumping +1 day, then +1 month, then +79 years at random
/// points (each shifted event written as epoch ms), and the same story without that server.
/// `(server key, JSON line)` pairs, as [`story`] gives them.
type Keyed = Vec<(String, String)>;

fn broken_clock_story(seed: u64) -> (Keyed, Keyed, String, usize) {
    let events = story("2020-03-24", 120, seed);
    let bad = "gw-03".to_string();
    let of_bad: Vec<usize> = (0..events.len()).filter(|&i| events[i].0 == bad).collect();
    assert!(of_bad.len() > 100, "the story has events of {bad}");
    // Jump points at random quarters of the bad server's events.
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    let q = of_bad.len() / 4;
    let jumps = [q + next(q), 2 * q + next(q), 3 * q + next(q)];
    let shift = |k: usize| match k {
        k if k >= jumps[2] => 79 * 365 * DAY_MS,
        k if k >= jumps[1] => 31 * DAY_MS,
        k if k >= jumps[0] => DAY_MS,
        _ => 0,
    };
    let mut with = events.clone();
    let mut shifted = 0;
    for (k, &i) in of_bad.iter().enumerate() {
        if shift(k) == 0 {
            continue;
        }
        let mut v: serde_json::Value = serde_json::from_str(&with[i].1).unwrap();
        let ts = gatewatch::event::parse_rfc3339_ms(v["ts"].as_str().unwrap()).unwrap();
        v["ts"] = serde_json::json!(ts + shift(k));
        with[i].1 = v.to_string();
        shifted += 1;
    }
    let without = events.into_iter().filter(|(s, _)| *s != bad).collect();
    (with, without, bad, shifted)
}

/// Questions about every server but `bad`, to compare between the two streams.
fn others(bad: &str) -> Vec<String> {
    let w = format!("server <> '{bad}'");
    vec![
        format!("SELECT type, count(*) AS n, count(DISTINCT id) AS ids, min(ts) AS first, max(ts) AS last FROM events WHERE {w} GROUP BY type ORDER BY type"),
        format!("SELECT server, max(sessions) AS peak_end, max(peak) AS peak, sum(connects) AS c, sum(disconnects) AS d, sum(rejects) AS r, count(*) AS seconds FROM concurrency WHERE {w} GROUP BY server ORDER BY server"),
        format!("SELECT server, end_reason, count(*) AS n, sum(duration_s) AS secs FROM sessions WHERE {w} GROUP BY server, end_reason ORDER BY server, end_reason"),
        format!("SELECT server, metric, count(*) AS minutes, hdr_count(hdr_merge(hist)) AS n, hdr_quantile(hdr_merge(hist), 0.99) AS p99 FROM latency WHERE {w} GROUP BY server, metric ORDER BY server, metric"),
        format!("SELECT server, site, capacity, state, active, peak_today FROM servers WHERE {w} ORDER BY server"),
        format!("SELECT rule, server, state, ts, value FROM alerts WHERE server IS NULL OR {w} ORDER BY ts, rule, server, state"),
    ]
}

fn rules() -> Config {
    Config::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docker/alert-rules.toml"
    )))
    .unwrap()
}

fn replay_answers(lines: &[String], cfg: &Config, sqls: &[String]) -> (Vec<String>, u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_lines(dir.path(), "in.ndjson", lines);
    let out = gatewatch::app::replay_files(&[path], cfg, None, 2, false).unwrap();
    let future = out
        .counters
        .rejected
        .get(&Reason::Future)
        .copied()
        .unwrap_or(0);
    let answers = sqls
        .iter()
        .map(|q| {
            let r = gatewatch::app::run_sql(out.snapshot.clone(), q).unwrap();
            let mut o = Vec::new();
            gatewatch::output::write_result(&r, gatewatch::output::Format::Csv, &mut o).unwrap();
            String::from_utf8(o).unwrap()
        })
        .collect();
    (answers, future)
}

#[test]
fn a_broken_clock_in_replay_changes_nothing_of_the_other_servers() {
    for seed in [3, 11] {
        let (with, without, bad, shifted) = broken_clock_story(seed);
        let lines = |v: &[(String, String)]| v.iter().map(|(_, l)| l.clone()).collect::<Vec<_>>();
        let cfg = rules();
        let sqls = others(&bad);
        let (a, refused) = replay_answers(&lines(&with), &cfg, &sqls);
        let (b, none) = replay_answers(&lines(&without), &cfg, &sqls);
        assert_eq!(
            refused, shifted as u64,
            "every jumped event is refused as future"
        );
        assert_eq!(none, 0);
        for ((q, a), b) in sqls.iter().zip(&a).zip(&b) {
            assert_eq!(a, b, "seed {seed}, the broken clock changed: {q}");
            assert!(a.lines().count() > 1, "no rows for {q}");
        }
    }
}

#[test]
fn a_broken_clock_through_kafka_changes_nothing_of_the_other_servers() {
    let brokers = tansu();
    let (with, without, bad, shifted) = broken_clock_story(5);
    let topic = unique("broken-clock");
    // One partition: live alerts must not depend on how partitions stall on a busy machine (a
    // server whose partition is quiet for `idle_timeout` is moved on without its data, by
    // design; see alerts/mod.rs), only on what the broken clock does.
    create_topic(brokers, &topic, 1);
    produce(brokers, &topic, &with);
    let mut cfg = config(brokers, &topic, &unique("g"));
    let rules = rules();
    cfg.alerts = rules.alerts.clone();
    cfg.alerts.topic = unique("broken-clock-alerts");
    // A partition that stalls longer than idle_timeout on a busy machine would be moved on
    // without its data (see alerts/mod.rs); 20 s is longer than any stall here.
    cfg.alerts.idle_timeout_ms = 20_000;
    cfg.engine.allowed_lateness_ms = rules.engine.allowed_lateness_ms;
    let svc = Service::start(cfg, None);
    svc.wait_for_messages(with.len() as u64, Duration::from_secs(120));
    let sqls = others(&bad);
    let (reference, _) = replay_answers(
        &without.iter().map(|(_, l)| l.clone()).collect::<Vec<_>>(),
        &rules,
        &sqls,
    );
    for (q, want) in sqls.iter().zip(&reference).take(5) {
        assert_eq!(&svc.sql_csv(q), want, "live, the broken clock changed: {q}");
    }
    // After idle_timeout the service evaluates up to the newest event, as replay does at the
    // end of its input: the other servers' alerts are those of the stream without gw-03.
    // (Evaluating a day of rules live in a debug build on a busy machine takes a while.)
    let (alerts, want) = (&sqls[5], reference.last().unwrap());
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut live = svc.sql_csv(alerts);
    while &live != want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        live = svc.sql_csv(alerts);
    }
    assert_eq!(
        &live, want,
        "live alerts differ from replay's without gw-03"
    );
    let (_, metrics) = svc.get("/metrics");
    let refused = metrics
        .lines()
        .find(|l| l.starts_with("gatewatch_rejected_total{reason=\"future\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no future counter in:\n{metrics}"));
    assert_eq!(refused as usize, shifted);
    svc.stop().unwrap();
}

#[test]
fn the_wall_clock_refuses_an_event_from_2099_live() {
    let mut cfg = Config::default();
    cfg.http.bind = "127.0.0.1:0".parse().unwrap();
    let brokers = tansu();
    let topic = unique("wall-clock");
    create_topic(brokers, &topic, 1);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let line = |server: &str, ts: i64| {
        format!(r#"{{"type":"auth_fail","ts":{ts},"server":"{server}","user":"u1"}}"#)
    };
    let events = vec![
        ("gw-01".to_string(), line("gw-01", now - 60_000)),
        ("gw-01".to_string(), line("gw-01", now - 30_000)),
        (
            "broken-clock".to_string(),
            r#"{"type":"auth_fail","ts":"2099-01-01T00:00:00Z","server":"broken-clock"}"#
                .to_string(),
        ),
        // 1 hour ahead of the wall clock: the stream alone would allow it, the wall clock not.
        ("gw-02".to_string(), line("gw-02", now + 3_600_000)),
        ("gw-01".to_string(), line("gw-01", now)),
    ];
    produce(brokers, &topic, &events);
    let mut c = config(brokers, &topic, &unique("g"));
    c.http = cfg.http;
    let svc = Service::start(c, None);
    svc.wait_for_messages(events.len() as u64, Duration::from_secs(60));
    wait_until(Duration::from_secs(30), "three events applied", || {
        svc.sql_csv("SELECT count(*) AS n FROM events") == "n\n3\n"
    });
    assert_eq!(
        svc.sql_csv("SELECT server, count(*) AS n FROM events GROUP BY server"),
        "server,n\ngw-01,3\n"
    );
    svc.stop().unwrap();
}

fn post_sql(s: &Service, sql: &str) -> HttpResponse {
    request(
        &Url::parse(&s.url()).unwrap(),
        "POST",
        "/api/sql",
        "application/json",
        sql.as_bytes(),
        None,
    )
    .unwrap()
}

fn error_of(r: &HttpResponse) -> String {
    let v: serde_json::Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&r.body)));
    v["error"].as_str().unwrap().to_string()
}

fn embedded_service(tune: impl FnOnce(&mut Config)) -> Service {
    let mut cfg = Config::default();
    cfg.http.bind = "127.0.0.1:0".parse().unwrap();
    tune(&mut cfg);
    Service::start(cfg, Some(Embedded::story(600.0)))
}

fn chain(op: &str, n: usize) -> String {
    let mut s = String::from("SELECT ");
    for i in 0..n {
        if i > 0 {
            s.push_str(op);
        }
        s.push_str(if op == " OR " { "1 = 1" } else { "1" });
    }
    s
}

#[test]
fn no_sql_text_however_deep_takes_the_service_down() {
    let s = embedded_service(|_| {});
    let nested = |open: &str, close: &str, n: usize, inner: &str| {
        format!("SELECT {}{inner}{}", open.repeat(n), close.repeat(n))
    };
    let mut deep = vec![
        chain("+", 2_000),
        chain(" OR ", 3_000),
        nested("(", ")", 5_000, "1"),
        nested("(SELECT ", ")", 2_000, "1"),
        nested("CASE WHEN true THEN ", " END", 2_000, "1"),
        nested("abs(", ")", 3_000, "1"),
    ];
    // Up to http.max_body (1 MiB): half a million terms.
    deep.push(chain("+", (1 << 20) / 2 - 8));
    for sql in &deep {
        let r = post_sql(&s, sql);
        assert_eq!(r.status, 400, "{}…", &sql[..60.min(sql.len())]);
        let e = error_of(&r);
        assert!(e.contains("nests about"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }
    // Long but flat is fine: an IN list of 20,000 values, 500 chained terms.
    let list: Vec<String> = (0..20_000).map(|i| i.to_string()).collect();
    let r = post_sql(&s, &format!("SELECT 5 IN ({}) AS hit", list.join(",")));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = post_sql(&s, &chain("+", 500));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("500"));
    // The service and its ingest are alive.
    assert_eq!(s.get("/healthz").0, 200);
    let before = s.metric("gatewatch_kafka_messages_total");
    wait_until(Duration::from_secs(30), "ingest to go on", || {
        s.metric("gatewatch_kafka_messages_total") > before
    });
    s.stop().unwrap();
}

#[test]
fn replay_answers_a_10000_term_query_with_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(
        dir.path(),
        "e.ndjson",
        &[r#"{"type":"auth_fail","ts":"2020-03-17T08:30:00Z","server":"gw-01"}"#.to_string()],
    );
    let o = gatewatch(&["replay", &input, "--sql", &chain("+", 10_000)])
        .output()
        .unwrap();
    one_sentence_failure(&o, "nests about");
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn huge_values_bursts_and_big_results_cannot_take_memory_from_ingest() {
    let s = embedded_service(|c| {
        c.http.max_queries = 1;
        c.http.max_result_bytes = 256 << 10;
        c.http.query_timeout_ms = 3_000;
    });
    for sql in [
        "SELECT length(repeat('a', 1500000000)) AS n",
        "SELECT length(lpad('a', 1500000000)) AS n",
        "SELECT length(replace(repeat('ab', 1000000), 'a', repeat('c', 1000))) AS n",
    ] {
        let r = post_sql(&s, sql);
        assert_eq!(r.status, 400, "{sql}");
        let e = error_of(&r);
        assert!(e.contains("MiB gatewatch allows"), "{e}");
    }
    // Small ones answer as DataFusion's own functions do.
    let r = post_sql(&s, "SELECT repeat('ab', 3) AS r");
    assert!(String::from_utf8_lossy(&r.body).contains("ababab"));
    // A result over http.max_result.
    let r = post_sql(
        &s,
        "SELECT repeat('x', 1000) AS wide FROM generate_series(1, 2000)",
    );
    assert_eq!(r.status, 400);
    assert!(error_of(&r).contains("http.max_result"), "{}", error_of(&r));
    // A burst: one slot and four places in the queue; the rest get 503 with Retry-After.
    let slow = "SELECT count(*) AS n FROM generate_series(1, 100000000000) a";
    let url = Url::parse(&s.url()).unwrap();
    let burst: Vec<_> = (0..12)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                request_with(
                    &url,
                    "POST",
                    "/api/sql",
                    "application/json",
                    "text/plain",
                    slow.as_bytes(),
                    Duration::from_secs(60),
                    None,
                )
                .unwrap()
            })
        })
        .collect();
    let answers: Vec<HttpResponse> = burst.into_iter().map(|t| t.join().unwrap()).collect();
    let busy: Vec<_> = answers.iter().filter(|r| r.status == 503).collect();
    assert!(
        busy.len() >= 7,
        "statuses {:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(error_of(busy[0]).contains("http.max_queries"));
    assert_eq!(s.get("/healthz").0, 200);
    s.stop().unwrap();
}

#[test]
fn slow_clients_are_cut_off_and_cannot_hold_every_connection() {
    let s = embedded_service(|c| {
        c.http.max_connections = 8;
        c.http.header_timeout_ms = 1_000;
        c.http.body_timeout_ms = 1_000;
    });
    // Eight clients that send one byte of a request and then nothing.
    let mut slow: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut c = TcpStream::connect(s.http).unwrap();
            c.write_all(b"G").unwrap();
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // A ninth connection is closed at once rather than left waiting.
    let mut ninth = TcpStream::connect(s.http).unwrap();
    ninth
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = ninth.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let mut buf = [0u8; 64];
    assert!(
        matches!(ninth.read(&mut buf), Ok(0) | Err(_)),
        "the ninth is refused"
    );
    // The slow ones are closed after http.header_timeout, and the service answers again.
    let t = Instant::now();
    for c in &mut slow {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = c.read(&mut buf);
    }
    assert!(
        t.elapsed() < Duration::from_secs(9),
        "cut off after the header timeout"
    );
    wait_until(Duration::from_secs(10), "/healthz to answer", || {
        s.get("/healthz").0 == 200
    });
    // A body that never comes: 408 after http.body_timeout.
    let mut c = TcpStream::connect(s.http).unwrap();
    c.write_all(b"POST /api/sql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nSELECT")
        .unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("http.body_timeout"), "{answer}");
    s.stop().unwrap();
}

fn raw_request(s: &Service, head: &str) -> String {
    let mut c = TcpStream::connect(s.http).unwrap();
    c.write_all(head.as_bytes()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    answer
}

#[test]
fn foreign_hosts_and_cross_site_requests_are_refused_without_a_token() {
    let s = embedded_service(|_| {});
    let port = s.http.port();
    let get = |host: &str, extra: &str| {
        raw_request(
            &s,
            &format!(
                "GET /api/servers HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n"
            ),
        )
    };
    assert!(get(&format!("127.0.0.1:{port}"), "").starts_with("HTTP/1.1 200"));
    assert!(get(&format!("localhost:{port}"), "").starts_with("HTTP/1.1 200"));
    // DNS rebinding: a page of evil.example whose name now points at 127.0.0.1.
    let rebound = get(&format!("evil.example:{port}"), "");
    assert!(rebound.starts_with("HTTP/1.1 403"), "{rebound}");
    // A cross-site POST of text/plain (no preflight) from a page in the operator's browser.
    let body = "SELECT 1";
    let cross = raw_request(
        &s,
        &format!("POST /api/sql HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://evil.example\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()),
    );
    assert!(cross.starts_with("HTTP/1.1 403"), "{cross}");
    let fetch_site = get(
        &format!("127.0.0.1:{port}"),
        "Sec-Fetch-Site: cross-site\r\n",
    );
    assert!(fetch_site.starts_with("HTTP/1.1 403"), "{fetch_site}");
    // The dashboard's own requests are same-origin.
    let own = get(
        &format!("127.0.0.1:{port}"),
        &format!("Origin: http://127.0.0.1:{port}\r\nSec-Fetch-Site: same-origin\r\n"),
    );
    assert!(own.starts_with("HTTP/1.1 200"), "{own}");
    s.stop().unwrap();
}

#[test]
fn a_bearer_scheme_in_any_case_is_accepted() {
    let token = "hostile-test-token-0123456789";
    let s = embedded_service(|c| c.http.token = Some(token.into()));
    let port = s.http.port();
    for scheme in ["Bearer", "BEARER", "bearer"] {
        let a = raw_request(
            &s,
            &format!("GET /api/servers HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {scheme} {token}\r\nConnection: close\r\n\r\n"),
        );
        assert!(a.starts_with("HTTP/1.1 200"), "{scheme}: {a}");
    }
    s.stop().unwrap();
}

/// `gatewatch check-config` of a file holding `rules`, written into `dir` as `name`.
fn check_rules(dir: &std::path::Path, name: &str, rules: &str) -> (String, Output) {
    let path = dir.join(name);
    std::fs::write(&path, rules).unwrap();
    let path = path.display().to_string();
    let o = gatewatch(&["check-config", &path]).output().unwrap();
    (path, o)
}

#[test]
fn a_rule_that_cannot_be_shown_is_refused_when_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, o) = check_rules(
        dir.path(),
        "rules.toml",
        "[[alerts.rules]]\nname = \"struct\"\nsql = \"SELECT server, named_struct('a', 1) AS st, count(*) AS value FROM events GROUP BY server\"\nabove = 1\n",
    );
    one_sentence_failure(&o, "struct");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("valid"));
    let input = write_lines(
        dir.path(),
        "e.ndjson",
        &[r#"{"type":"auth_fail","ts":"2020-03-17T08:30:00Z","server":"gw-01"}"#.to_string()],
    );
    let o = gatewatch(&["replay", &input, "--config", &cfg, "--sql", "SELECT 1"])
        .output()
        .unwrap();
    one_sentence_failure(&o, "struct");
    // A threshold with no value column is an error, not a rule that never fires.
    let (_, o) = check_rules(
        dir.path(),
        "novalue.toml",
        "[[alerts.rules]]\nname = \"nv\"\nsql = \"SELECT server FROM events\"\nabove = 1\n",
    );
    one_sentence_failure(&o, "value");
    // Bad SQL: one message, never "valid" first.
    let (_, o) = check_rules(
        dir.path(),
        "bad.toml",
        "[[alerts.rules]]\nname = \"bad\"\nsql = \"SELEKT 1\"\nabove = 1\n",
    );
    one_sentence_failure(&o, "bad");
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn a_panicking_worker_ends_the_process_with_one_line() {
    let mut child = gatewatch(&["run", "--http", "127.0.0.1:0"])
        .env("GATEWATCH_FAULT", "panic-in-apply")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "the process lingers after a worker panicked"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(70));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        err.lines()
            .any(|l| l.contains("kafka-apply") && l.contains("exits with status 70")),
        "{err}"
    );
}

#[test]
fn secrets_outputs_and_brokers_are_checked_before_anything_runs() {
    // An empty token in the environment is an error, as `token = ""` is.
    let dir = tempfile::tempdir().unwrap();
    let empty_cfg = dir.path().join("empty.toml");
    std::fs::write(&empty_cfg, "").unwrap();
    for empty in ["", "   "] {
        let o = gatewatch(&["check-config", &empty_cfg.display().to_string()])
            .env("GATEWATCH_HTTP_TOKEN", empty)
            .output()
            .unwrap();
        one_sentence_failure(&o, "GATEWATCH_HTTP_TOKEN");
    }
    // The dead-letter file is the input, by name or by a hard link: refused, input intact.
    let line = r#"{"type":"auth_fail","ts":"2020-03-17T08:30:00Z","server":"gw-01"}"#;
    let input = write_lines(
        dir.path(),
        "self.ndjson",
        &[line.to_string(), "garbage".into()],
    );
    let link = dir.path().join("link.ndjson");
    std::fs::hard_link(&input, &link).unwrap();
    for out in [input.clone(), link.display().to_string()] {
        let o = gatewatch(&["replay", &input, "--dead-letter", &out, "--sql", "SELECT 1"])
            .output()
            .unwrap();
        one_sentence_failure(&o, "input");
        assert_eq!(
            std::fs::metadata(&input).unwrap().len() as usize,
            line.len() + 9
        );
    }
    // Brokers that cannot be addresses fail at once, in one sentence.
    for brokers in ["not a broker", "127.0.0.1:99999", ":::"] {
        let t = Instant::now();
        let o = gatewatch(&[
            "run",
            "--brokers",
            brokers,
            "--topic",
            "t",
            "--http",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
        one_sentence_failure(&o, "broker");
        assert!(t.elapsed() < Duration::from_secs(30));
    }
    // An unknown librdkafka property is not "valid".
    let cfg = dir.path().join("k.toml");
    std::fs::write(&cfg, "[kafka]\nbrokers = \"127.0.0.1:9092\"\ntopics = [\"t\"]\n[kafka.properties]\n\"no.such.property\" = \"1\"\n").unwrap();
    let o = gatewatch(&["check-config", &cfg.display().to_string()])
        .output()
        .unwrap();
    one_sentence_failure(&o, "no.such.property");
    // A directory as input: the OS cause once.
    let o = gatewatch(&[
        "replay",
        &dir.path().display().to_string(),
        "--sql",
        "SELECT 1",
    ])
    .output()
    .unwrap();
    one_sentence_failure(&o, "directory");
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(e.matches("directory").count(), 1, "{e}");
}

#[test]
fn a_reader_that_stops_early_ends_a_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (0..20_000)
        .map(|i| {
            format!(
                r#"{{"type":"auth_fail","ts":{},"server":"gw-01"}}"#,
                1_584_432_000_000i64 + i
            )
        })
        .collect();
    let input = write_lines(dir.path(), "e.ndjson", &lines);
    let cfg = concat!(env!("CARGO_MANIFEST_DIR"), "/docker/gatewatch.toml");
    for args in [
        vec![
            "replay",
            &input,
            "--sql",
            "SELECT * FROM events",
            "--format",
            "csv",
        ],
        vec!["check-config", cfg],
    ] {
        let mut child = gatewatch(&args).spawn().unwrap();
        // `| head -c 1`: read one byte, then go away.
        let mut out = child.stdout.take().unwrap();
        let _ = out.read(&mut [0u8; 1]);
        drop(out);
        let o = child.wait_with_output().unwrap();
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(
            !e.contains("panicked") && !e.contains("Broken pipe"),
            "{args:?}: {e}"
        );
        assert!(
            o.status.success() || o.status.signal() == Some(libc::SIGPIPE),
            "{args:?}: {:?}",
            o.status
        );
    }
}

#[test]
fn a_closed_stdin_is_an_error_not_empty_input() {
    use std::os::unix::process::CommandExt;
    let mut c = gatewatch(&["replay", "-", "--sql", "SELECT count(*) FROM events"]);
    // SAFETY: close(2) of our own descriptor 0 in the child, before exec.
    unsafe {
        c.pre_exec(|| {
            libc::close(0);
            Ok(())
        });
    }
    let o = c.output().unwrap();
    one_sentence_failure(&o, "standard input is closed");
}

#[test]
fn out_of_range_values_are_dead_lettered_and_labels_stay_valid() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        r#"{"type":"server","ts":"2020-03-17T08:00:00Z","server":"gw-01","capacity":4294967296}"#,
        r#"{"type":"latency","ts":"2020-03-17T08:00:01Z","server":"gw-01","session":"s","rtt_ms":1e308}"#,
        r#"{"type":"latency","ts":"2020-03-17T08:00:02Z","server":"gw-01","session":"s","rtt_ms":3600001}"#,
        r#"{"type":"connect","ts":"2020-03-17T08:00:03Z","server":"gw-01","session":"s","setup_ms":1e12}"#,
        r#"{"type":"latency","ts":"2020-03-17T08:00:04Z","server":"gw-01","session":"s","rtt_ms":20,"loss_pct":101}"#,
        r#"{"type":"auth_fail","ts":"2020-03-17T08:00:05Z","server":"gw-01"}"#,
    ];
    let input = write_lines(dir.path(), "e.ndjson", &lines.map(String::from));
    let dl = dir.path().join("dl.ndjson");
    let o = gatewatch(&[
        "replay",
        &input,
        "--dead-letter",
        &dl.display().to_string(),
        "--sql",
        "SELECT count(*) AS n FROM events",
        "--format",
        "csv",
    ])
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "n\n1\n");
    let dead = std::fs::read_to_string(&dl).unwrap();
    for field in ["capacity", "rtt_ms", "setup_ms", "loss_pct"] {
        assert!(
            dead.contains(&format!("bad_value:{field}")),
            "{field}: {dead}"
        );
    }
    assert_eq!(dead.lines().count(), 5);
}

#[test]
fn control_characters_in_server_names_keep_metrics_parseable() {
    let brokers = tansu();
    let topic = unique("control");
    create_topic(brokers, &topic, 1);
    let events = vec![
        ("a".to_string(), r#"{"type":"connect","ts":"2020-03-17T08:00:00Z","server":"gw\u0000nul","session":"s1","setup_ms":10}"#.to_string()),
        ("b".to_string(), r#"{"type":"connect","ts":"2020-03-17T08:00:01Z","server":"gw\n\"quoted\"\\","session":"s2","setup_ms":10}"#.to_string()),
    ];
    produce(brokers, &topic, &events);
    let svc = Service::start(config(brokers, &topic, &unique("g")), None);
    svc.wait_for_messages(2, Duration::from_secs(60));
    let (status, text) = svc.get("/metrics");
    assert_eq!(status, 200);
    assert!(!text.contains('\0'));
    // The escaped labels are valid exposition text: promtool accepts it with nothing to say.
    if let Err(said) = crate::support::promtool_check_metrics(&text) {
        panic!("{said}");
    }
    svc.stop().unwrap();
}

#[test]
fn a_server_seen_once_ages_out_and_configured_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines =
        vec![r#"{"type":"auth_fail","ts":"2020-03-17T08:00:00Z","server":"typo-gw"}"#.to_string()];
    for day in 17..21 {
        for h in 0..24 {
            lines.push(format!(
                r#"{{"type":"auth_fail","ts":"2020-03-{day}T{h:02}:00:00Z","server":"gw-01"}}"#
            ));
        }
    }
    let input = write_lines(dir.path(), "e.ndjson", &lines);
    let cfg = Config::parse("[servers.gw-quiet]\ncapacity = 10\n", "test").unwrap();
    let out = gatewatch::app::replay_files(&[input], &cfg, None, 2, false).unwrap();
    let r = gatewatch::app::run_sql(out.snapshot, "SELECT server FROM servers ORDER BY server")
        .unwrap();
    let mut o = Vec::new();
    gatewatch::output::write_result(&r, gatewatch::output::Format::Csv, &mut o).unwrap();
    assert_eq!(String::from_utf8(o).unwrap(), "server\ngw-01\ngw-quiet\n");
}

#[test]
fn documented_edges_of_sql_and_timestamps_hold() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(
        dir.path(),
        "e.ndjson",
        &[
            r#"{"type":"auth_fail","ts":1585038722120.0,"server":"gw-01"}"#.to_string(),
            r#"{"type":"auth_fail","ts":1e3,"server":"gw-02"}"#.to_string(),
            r#"{"type":"auth_fail","ts":"2016-12-31T23:59:60Z","server":"gw-03"}"#.to_string(),
        ],
    );
    let dl = dir.path().join("dl");
    let o = gatewatch(&[
        "replay",
        &input,
        "--dead-letter",
        &dl.display().to_string(),
        "--sql",
        "SELECT server FROM events ORDER BY server",
        "--format",
        "csv",
    ])
    .output()
    .unwrap();
    // 1e3 is accepted (and, 50 years before the rest, out of retention at once).
    assert_eq!(String::from_utf8_lossy(&o.stdout), "server\ngw-01\n");
    assert!(String::from_utf8_lossy(&o.stderr).contains("accepted 2, rejected 1"));
    let dead = std::fs::read_to_string(&dl).unwrap();
    assert_eq!(dead.lines().count(), 1);
    assert!(dead.contains("2016-12-31T23:59:60Z"), "{dead}");
    // A file path as a table name is refused as read-only, not "not found".
    let o = gatewatch(&["replay", &input, "--sql", "SELECT * FROM '/etc/passwd'"])
        .output()
        .unwrap();
    one_sentence_failure(&o, "read-only");
    // information_schema is there, as documented.
    let o = gatewatch(&[
        "replay",
        &input,
        "--sql",
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
        "--format",
        "csv",
    ])
    .output()
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "table_name\nalerts\nconcurrency\nevents\nlatency\nservers\nsessions\n"
    );
}

#[test]
fn accept_q_values_choose_the_format() {
    let s = embedded_service(|_| {});
    let url = Url::parse(&s.url()).unwrap();
    let ask =
        |accept: &str| request(&url, "POST", "/api/sql", accept, b"SELECT 1 AS one", None).unwrap();
    for (accept, want) in [
        ("text/csv;q=0.1, application/json", "application/json"),
        ("application/json;q=0.2, text/csv", "text/csv"),
        ("text/csv;q=0, */*", "application/json"),
    ] {
        let got = ask(accept).content_type.unwrap_or_default();
        assert!(got.starts_with(want), "{accept}: {got}");
    }
    s.stop().unwrap();
}
