//! Guardrails and access control of the live service: the bearer token (header, browser cookie,
//! `/healthz` open), the body size limit, the row limit, the query timeout and memory pool (with
//! ingest going on during a runaway query), and SQL that would write or read files refused.

use std::time::Duration;

use gatewatch::app::service::Embedded;
use gatewatch::config::Config;
use gatewatch::http_client::{request, request_with, HttpResponse, Url};

use crate::support::{wait_until, Service};

const TOKEN: &str = "test-token-0123456789abcdef";

fn guarded_service() -> Service {
    let mut cfg = Config::default();
    cfg.http.bind = "127.0.0.1:0".parse().unwrap();
    cfg.http.token = Some(TOKEN.into());
    cfg.http.max_body_bytes = 4096;
    cfg.http.max_rows = 1000;
    cfg.http.query_timeout_ms = 2_000;
    cfg.http.query_memory_bytes = 2 << 20;
    // A paced morning: events keep arriving for minutes.
    Service::start(cfg, Some(Embedded::story(120.0)))
}

fn call(s: &Service, method: &str, path: &str, body: &[u8], token: Option<&str>) -> HttpResponse {
    request(
        &Url::parse(&s.url()).unwrap(),
        method,
        path,
        "application/json",
        body,
        token,
    )
    .unwrap()
}

fn error_of(r: &HttpResponse) -> String {
    let v: serde_json::Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&r.body)));
    v["error"].as_str().unwrap().to_string()
}

fn consumed(s: &Service) -> u64 {
    let r = call(s, "GET", "/metrics", b"", Some(TOKEN));
    let text = String::from_utf8(r.body).unwrap();
    text.lines()
        .find(|l| l.starts_with("gatewatch_kafka_messages_total"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap() as u64
}

#[test]
fn token_body_rows_timeout_memory_and_read_only() {
    let s = guarded_service();

    // Access control: only /healthz is open.
    assert_eq!(call(&s, "GET", "/healthz", b"", None).status, 200);
    for path in [
        "/",
        "/api/servers",
        "/api/live",
        "/api/alerts",
        "/metrics",
        "/readyz",
    ] {
        let r = call(&s, "GET", path, b"", None);
        assert_eq!(r.status, 401, "{path} without a token");
        assert!(error_of(&r).contains("Bearer"), "{path}");
        assert_eq!(
            call(&s, "GET", path, b"", Some("wrong-token-0123456789abc")).status,
            401,
            "{path} with a wrong token"
        );
        // (/readyz may still say 503 "not ready" this early; it must not say 401.)
        assert_ne!(
            call(&s, "GET", path, b"", Some(TOKEN)).status,
            401,
            "{path}"
        );
    }
    let r = call(&s, "POST", "/api/sql", b"SELECT 1", None);
    assert_eq!(r.status, 401);

    // A browser: /?token=... moves the token into a cookie, which then opens everything.
    let r = call(&s, "GET", &format!("/?token={TOKEN}"), b"", None);
    assert_eq!(r.status, 303);
    let r = call(&s, "GET", "/?token=nope", b"", None);
    assert_eq!(r.status, 401);
    let with_cookie = |cookie: &str| {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(s.http).unwrap();
        write!(
            c,
            "GET /api/live HTTP/1.1\r\nHost: x\r\nCookie: other=1; gatewatch_token={cookie}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out.split_whitespace().nth(1).unwrap().to_string()
    };
    assert_eq!(with_cookie(TOKEN), "200");
    assert_eq!(with_cookie("nope"), "401");

    wait_until(Duration::from_secs(120), "events ingested", || {
        consumed(&s) > 5_000
    });

    // Body size limit.
    let big = format!("SELECT 1 -- {}", "x".repeat(5000));
    let r = call(&s, "POST", "/api/sql", big.as_bytes(), Some(TOKEN));
    assert_eq!(r.status, 413);
    assert!(error_of(&r).contains("http.max_body"), "{}", error_of(&r));

    // Row limit.
    let r = call(&s, "POST", "/api/sql", b"SELECT * FROM events", Some(TOKEN));
    assert_eq!(r.status, 400);
    assert!(error_of(&r).contains("http.max_rows"), "{}", error_of(&r));
    let r = call(
        &s,
        "POST",
        "/api/sql",
        b"SELECT * FROM events LIMIT 1000",
        Some(TOKEN),
    );
    assert_eq!(r.status, 200);

    // A runaway query times out, and ingest goes on while it runs.
    let before = consumed(&s);
    let r = call(
        &s,
        "POST",
        "/api/sql",
        b"SELECT count(*) FROM events a, events b, events c WHERE a.server <> c.server",
        Some(TOKEN),
    );
    assert_eq!(r.status, 400);
    assert!(
        error_of(&r).contains("http.query_timeout"),
        "{}",
        error_of(&r)
    );
    assert!(consumed(&s) > before, "ingest stalled during the query");

    // Memory pool: sorting a big join cannot spill to disk, so it fails with a clear error.
    let r = call(
        &s,
        "POST",
        "/api/sql",
        b"SELECT a.id, b.id FROM events a JOIN events b ON a.server = b.server ORDER BY a.ts, b.ts",
        Some(TOKEN),
    );
    assert_eq!(r.status, 400);
    assert!(
        error_of(&r).contains("http.query_memory"),
        "{}",
        error_of(&r)
    );

    // The service still answers afterwards.
    let r = call(
        &s,
        "POST",
        "/api/sql",
        b"SELECT count(*) AS n FROM servers",
        Some(TOKEN),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    // SQL that would write, change settings, or read files and URLs is refused.
    let marker = std::env::temp_dir().join(format!("gatewatch-guard-{}", std::process::id()));
    let marker = marker.to_str().unwrap();
    for sql in [
        format!("COPY (SELECT 1) TO '{marker}.csv'"),
        format!("COPY servers TO '{marker}.parquet'"),
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'".into(),
        "CREATE TABLE t AS SELECT 1".into(),
        "INSERT INTO events SELECT * FROM events".into(),
        "DROP TABLE events".into(),
        "SET datafusion.execution.batch_size = 1".into(),
        "SELECT * FROM '/etc/passwd'".into(),
        "SELECT * FROM 'file:///etc/passwd'".into(),
        "SELECT * FROM 'http://127.0.0.1:9/x.csv'".into(),
        "SELECT * FROM read_csv('/etc/passwd')".into(),
        "SELECT * FROM read_parquet('/etc/passwd')".into(),
    ] {
        let r = call(&s, "POST", "/api/sql", sql.as_bytes(), Some(TOKEN));
        assert_eq!(r.status, 400, "{sql} should be refused");
        let e = error_of(&r);
        assert!(
            e.contains("read-only") || e.contains("not found") || e.contains("not exist"),
            "{sql}: {e}"
        );
    }
    for ext in ["csv", "parquet"] {
        assert!(!std::path::Path::new(&format!("{marker}.{ext}")).exists());
    }

    // The CLI client sends the token, from the flag or the environment.
    let cli = |args: &[&str], env_token: Option<&str>| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_gatewatch"));
        c.args(["query", "--url", &s.url(), "--format", "csv"])
            .args(args)
            .env_remove("GATEWATCH_HTTP_TOKEN");
        if let Some(t) = env_token {
            c.env("GATEWATCH_HTTP_TOKEN", t);
        }
        c.output().unwrap()
    };
    let o = cli(&["SELECT 7 AS n"], None);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("token"));
    let o = cli(&["--token", TOKEN, "SELECT 7 AS n"], None);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "n\n7\n", "{o:?}");
    let o = cli(&["SELECT 7 AS n"], Some(TOKEN));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "n\n7\n", "{o:?}");

    // Probes that send no token and want a quick answer still get /healthz.
    let r = request_with(
        &Url::parse(&s.url()).unwrap(),
        "GET",
        "/healthz",
        "*/*",
        "text/plain",
        b"",
        Duration::from_secs(5),
        None,
    )
    .unwrap();
    assert_eq!(r.status, 200);
    s.stop().unwrap();
}

#[test]
fn bad_http_limits_and_short_tokens_are_config_errors() {
    for (toml, needle) in [
        ("[http]\ntoken = \"short\"\n", "at least 16"),
        ("[http]\nmax_body = \"12 parsecs\"\n", "http.max_body"),
        ("[http]\nmax_rows = 0\n", "http.max_rows"),
        ("[http]\nquery_timeout = \"soon\"\n", "http.query_timeout"),
        ("[http]\nquery_memory = -1\n", "http.query_memory"),
    ] {
        let e = Config::parse(toml, "t.toml").unwrap_err().to_string();
        assert!(e.contains(needle), "{toml}: {e}");
    }
    let c = Config::parse(
        "[http]\ntoken = \"0123456789abcdef\"\nmax_body = \"64KiB\"\nmax_rows = 5\nquery_timeout = \"1m\"\nquery_memory = \"256MiB\"\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.http.max_body_bytes, 64 << 10);
    assert_eq!(c.http.max_rows, 5);
    assert_eq!(c.http.query_timeout_ms, 60_000);
    assert_eq!(c.http.query_memory_bytes, 256 << 20);
}
