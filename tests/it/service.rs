//! `gatewatch run` as a user starts it: the embedded default (no Kafka installed), the HTTP API
//! and its content types, `gatewatch query`, `check-config`, and clear errors for bad flags.

use std::process::Command;
use std::time::Duration;

use gatewatch::http_client::{request, Url};

use crate::support::{start_run, wait_until};

fn gatewatch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gatewatch"))
}

#[test]
fn embedded_default_serves_live_data_sql_and_metrics() {
    let (mut running, url) = start_run(&["--http", "127.0.0.1:0", "--speed", "1200"]);
    let u = Url::parse(&url).unwrap();
    let get = |path: &str, accept: &str| {
        let r = request(&u, "GET", path, accept, b"", None).unwrap();
        (r.status, String::from_utf8_lossy(&r.body).into_owned())
    };
    let post = |sql: &str, accept: &str| {
        request(&u, "POST", "/api/sql", accept, sql.as_bytes(), None).unwrap()
    };

    assert_eq!(get("/healthz", "*/*"), (200, "ok\n".into()));
    let (s, page) = get("/", "text/html");
    assert!(s == 200 && page.contains("<h1>gatewatch</h1>"), "{s}");
    wait_until(
        Duration::from_secs(90),
        "live sessions on /api/servers",
        || {
            let (s, body) = get("/api/servers", "application/json");
            s == 200 && {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                let rows = v.as_array().unwrap();
                rows.len() >= 6 && rows.iter().any(|r| r["active"].as_i64().unwrap_or(0) > 0)
            }
        },
    );
    assert_eq!(get("/readyz", "*/*").0, 200);

    // Content types.
    let csv = post(
        "SELECT server, capacity FROM servers ORDER BY server",
        "text/csv",
    );
    assert_eq!(csv.status, 200);
    assert!(csv.content_type.unwrap().starts_with("text/csv"));
    assert!(String::from_utf8(csv.body)
        .unwrap()
        .starts_with("server,capacity\ngw-01,"));
    let json = post("SELECT count(*) AS n FROM events", "application/json");
    let v: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
    assert!(v[0]["n"].as_i64().unwrap() > 0);
    let arrow = post("SELECT server FROM servers", gatewatch::http::ARROW_STREAM);
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(arrow.body), None).unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert!(rows >= 6);
    let bad = post("SELECT nope FROM servers", "application/json");
    assert_eq!(bad.status, 400);
    let msg: serde_json::Value = serde_json::from_slice(&bad.body).unwrap();
    assert!(msg["error"].as_str().unwrap().contains("nope"), "{msg}");
    let write = post("COPY servers TO '/tmp/x.csv'", "application/json");
    assert_eq!(write.status, 400);

    // The CLI client.
    let o = gatewatch()
        .args([
            "query",
            "--url",
            &url,
            "--format",
            "csv",
            "SELECT count(DISTINCT server) AS n FROM servers",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let n: i64 = String::from_utf8_lossy(&o.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(n >= 6);
    let o = gatewatch()
        .args(["query", "--url", &url, "SELEC 1"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stderr)
            .trim_end()
            .lines()
            .count(),
        1
    );

    wait_until(Duration::from_secs(30), "consumer lag on /metrics", || {
        get("/metrics", "text/plain")
            .1
            .contains("gatewatch_kafka_consumer_lag{topic=\"gateway.sessions\",partition=\"3\"}")
    });
    let (_, metrics) = get("/metrics", "text/plain");
    for name in [
        "gatewatch_kafka_messages_total",
        "gatewatch_events_total{type=\"connect\"}",
        "gatewatch_ready 1",
        "gatewatch_server_active_sessions{server=\"gw-01\"}",
        "gatewatch_server_capacity_sessions{server=\"gw-01\"} 100",
        "gatewatch_server_state{server=\"gw-01\",state=\"up\"} 1",
        "gatewatch_rtt_seconds_bucket{server=\"gw-01\",le=\"+Inf\"}",
        "gatewatch_setup_seconds_count{server=\"gw-01\"}",
        "gatewatch_alert_rule_evaluations_total{rule=\"gateway-near-full\"}",
        "gatewatch_late_events_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    // Prometheus's own linter accepts the exposition (names, types, units, HELP).
    if let Err(said) = crate::support::promtool_check_metrics(&metrics) {
        panic!("{said}");
    }
    // The example Grafana dashboard only asks for metrics the service exports, and the
    // compose file's Prometheus config is valid.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docker/grafana/gatewatch.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut asked = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(i) = rest.find(|c: char| c.is_ascii_lowercase()) {
                rest = &rest[i..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                let word = &rest[..end];
                if word.starts_with("gatewatch_") || word.starts_with("process_") {
                    asked.push(word.to_string());
                }
                rest = &rest[end..];
            }
        }
    }
    assert!(asked.len() >= 10, "{asked:?}");
    for name in asked {
        assert!(
            metrics.contains(&format!("# TYPE {name} "))
                || metrics.contains(&format!("{name}{{"))
                || metrics.contains(&format!("\n{name} ")),
            "the Grafana dashboard asks for {name}, which /metrics does not export"
        );
    }
    let config = Command::new("promtool")
        .args(["check", "config"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docker/prometheus/prometheus.yml"
        ))
        .output()
        .unwrap();
    assert!(config.status.success(), "{config:?}");

    // SIGTERM stops it cleanly.
    let pid = running.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = running.0.wait().unwrap();
    assert!(status.success(), "exit after SIGTERM: {status:?}");
}

#[test]
fn check_config_explains_and_run_refuses_bad_flags() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[kafka]\nbrokers = \"k1:9092\"\ntopics = [\"gateway.sessions\"]\n[kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\n[http]\nbind = \"0.0.0.0:8080\"\n[servers.gw-01]\ncapacity = 100\n",
    )
    .unwrap();
    let o = gatewatch()
        .args(["check-config", good.to_str().unwrap()])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(
        out.contains("valid") && out.contains("k1:9092") && out.contains("gateway.sessions.dlq"),
        "{out}"
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[kafka]\nbroker = \"k1:9092\"\n").unwrap();
    let o = gatewatch()
        .args(["check-config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        e.contains("unknown field `broker`") && e.contains("line 2"),
        "{e}"
    );
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");

    for (args, needle) in [
        (vec!["run", "--http", "localhost"], "IP:PORT"),
        (
            vec!["run", "--topic", "bad topic"],
            "not a valid Kafka topic name",
        ),
        (
            vec!["run", "--topic", "ok.topic,bad/topic"],
            "\"bad/topic\" is not a valid Kafka topic name",
        ),
        (vec!["run", "--speed", "0"], "--speed"),
        (
            vec!["run", "--config", "/no/such/file.toml"],
            "cannot read config file",
        ),
    ] {
        let o = gatewatch().args(&args).output().unwrap();
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?}");
        assert!(e.contains(needle), "{args:?}: {e}");
        assert_eq!(e.trim_end().lines().count(), 1, "{args:?}: {e}");
    }
    // The HTTP port taken: one sentence, non-zero exit.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = gatewatch().args(["run", "--http", &addr]).output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(e.contains("cannot listen on"), "{e}");
}
