//! The PostgreSQL front door with real clients, against a service fed through Kafka (tansu):
//! Debian's psql (and psql 16 for `\bind`), psycopg 3 and pandas, node-postgres, and the
//! catalogue queries Grafana and DBeaver send. No mock of the protocol anywhere: the clients
//! are installed by tests/pg/clients.sh and run as processes; their answers are checked against
//! the same questions over `POST /api/sql` and against `queries/expected/`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use gatewatch::config::Config;

use crate::support::{config, create_topic, produce, tansu, unique, wait_until, Service};

const FIXTURE: &str = "tests/data/incident-2020-03-24.ndjson";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Where tests/pg/clients.sh put the clients (`PSQL`, `PSQL16`, `PYTHON`, `NODE_PATH`, ...).
/// A client that cannot be installed is a failure, never a skip.
fn clients() -> &'static HashMap<String, String> {
    static CLIENTS: OnceLock<HashMap<String, String>> = OnceLock::new();
    CLIENTS.get_or_init(|| {
        let out = Command::new("bash")
            .arg(root().join("tests/pg/clients.sh"))
            .arg("install")
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("bash runs tests/pg/clients.sh");
        assert!(
            out.status.success(),
            "tests/pg/clients.sh could not install the PostgreSQL clients (psql from Debian, psycopg and pandas from PyPI, pg from npm)"
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    })
}

pub(crate) fn client(key: &str) -> &'static str {
    clients()
        .get(key)
        .unwrap_or_else(|| panic!("clients.sh printed no {key}"))
}

/// The incident fixture through Kafka into a service with its PostgreSQL side on a free port;
/// `adjust` changes the config first. Returns once every message is consumed.
fn fed_service(adjust: impl FnOnce(&mut Config)) -> Service {
    let brokers = tansu();
    let topic = unique("pg");
    create_topic(brokers, &topic, 3);
    let text = std::fs::read_to_string(root().join(FIXTURE)).unwrap();
    let mut events: Vec<(String, String)> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["server"].as_str().unwrap().to_string(), l.to_string())
        })
        .collect();
    // Redelivered events and garbage change no answer: they are dropped and dead-lettered.
    let again: Vec<_> = events.iter().step_by(37).cloned().collect();
    events.extend(again);
    events.push(("gw-01".into(), "{\"type\":\"connect\",\"ts\":".into()));
    events.push(("gw-02".into(), "\u{0}\u{1}binary noise".into()));
    produce(brokers, &topic, &events);
    let mut cfg = config(brokers, &topic, &unique("pg-group"));
    cfg.pg.bind = Some("127.0.0.1:0".parse().unwrap());
    cfg.pg.bind_configured = true;
    adjust(&mut cfg);
    let token = cfg.http.token.clone();
    let svc = Service::start(cfg, None);
    match token {
        None => svc.wait_for_messages(events.len() as u64, Duration::from_secs(120)),
        Some(t) => wait_until(Duration::from_secs(120), "every message consumed", || {
            svc.metric_with_token("gatewatch_kafka_messages_total", &t) as usize >= events.len()
        }),
    }
    svc
}

fn pg(svc: &Service) -> SocketAddr {
    svc.pg.expect("the PostgreSQL side listens")
}

/// `psql` (Debian's) with `args`, no psqlrc, stopping at the first error.
fn psql(svc: &Service, args: &[&str]) -> Output {
    psql_with(client("PSQL"), svc, args, &[])
}

fn psql_with(bin: &str, svc: &Service, args: &[&str], env: &[(&str, &str)]) -> Output {
    let addr = pg(svc);
    let mut cmd = Command::new(bin);
    cmd.args(["-X", "-w", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(addr.ip().to_string())
        .arg("-p")
        .arg(addr.port().to_string())
        .args(["-U", "gatewatch", "-d", "gatewatch"])
        .args(args)
        .env("PGCONNECT_TIMEOUT", "10");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("psql runs")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "psql failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn failed(out: Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure, got:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

/// Runs a helper script of tests/pg/ with `interpreter`; fails with its output.
fn script(interpreter: &str, name: &str, args: &[String], env: &[(&str, &str)]) -> String {
    let out = Command::new(interpreter)
        .arg(root().join("tests/pg").join(name))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("{interpreter} {name}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// CSV cells, with quoted fields.
fn cells(csv: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for line in csv.lines().filter(|l| !l.is_empty()) {
        let (mut row, mut cell, mut quoted, mut chars) =
            (Vec::new(), String::new(), false, line.chars().peekable());
        while let Some(c) = chars.next() {
            match (c, quoted) {
                ('"', true) if chars.peek() == Some(&'"') => {
                    cell.push('"');
                    chars.next();
                }
                ('"', _) => quoted = !quoted,
                (',', false) => row.push(std::mem::take(&mut cell)),
                (c, _) => cell.push(c),
            }
        }
        row.push(cell);
        rows.push(row);
    }
    rows
}

/// A cell as both writers can say it: an instant as epoch ms, a number as f64, else the text.
fn comparable(cell: &str) -> String {
    let instant = chrono::DateTime::parse_from_rfc3339(cell)
        .ok()
        .or_else(|| chrono::DateTime::parse_from_str(cell, "%Y-%m-%d %H:%M:%S%.f%#z").ok())
        .map(|t| t.timestamp_millis())
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(cell, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc().timestamp_millis())
        });
    if let Some(ms) = instant {
        return format!("t{ms}");
    }
    match cell.parse::<f64>() {
        Ok(x) => format!("n{x}"),
        Err(_) => format!("s{cell}"),
    }
}

fn same_csv(name: &str, got: &str, want: &str) {
    let norm = |csv: &str| -> Vec<Vec<String>> {
        cells(csv)
            .into_iter()
            .map(|r| r.iter().map(|c| comparable(c)).collect())
            .collect()
    };
    assert_eq!(
        norm(got),
        norm(want),
        "{name}: psql and the reference differ\n--- psql\n{got}\n--- reference\n{want}"
    );
}

#[test]
fn psql_browses_answers_every_query_file_and_is_refused_writes() {
    let svc = fed_service(|_| {});
    // A query per table, answered as over HTTP.
    for table in gatewatch::sql::tables::Table::ALL.map(|t| t.name()) {
        let sql = format!("SELECT count(*) AS n FROM {table}");
        let got = ok(psql(&svc, &["--csv", "-c", &sql]));
        same_csv(table, &got, &svc.sql_csv(&sql));
    }
    let all = ok(psql(&svc, &["--csv", "-c", "SELECT * FROM servers"]));
    same_csv(
        "servers",
        &all,
        &svc.sql_csv("SELECT * FROM servers ORDER BY server"),
    );

    // Browsing.
    let dt = ok(psql(&svc, &["-c", "\\dt"]));
    for table in [
        "alerts",
        "concurrency",
        "events",
        "latency",
        "servers",
        "sessions",
    ] {
        assert!(
            dt.contains(&format!("| {table} ")),
            "\\dt lacks {table}:\n{dt}"
        );
    }
    let d = ok(psql(&svc, &["-c", "\\d concurrency"]));
    assert!(d.contains("Table \"public.concurrency\""), "{d}");
    assert!(
        d.contains(" ts          | timestamp with time zone |           | not null |"),
        "{d}"
    );
    assert!(d.contains(" capacity    | bigint "), "{d}");
    let df = ok(psql(&svc, &["-c", "\\df hdr_*"]));
    assert!(df.contains("hdr_merge    | bytea"), "{df}");
    assert!(
        df.contains("hdr_quantile | double precision | bytea, double precision"),
        "{df}"
    );

    // An error, with its SQLSTATE and where it is.
    let e = failed(psql(
        &svc,
        &[
            "-v",
            "VERBOSITY=verbose",
            "-c",
            "SELECT server, nope FROM servers",
        ],
    ));
    assert!(e.contains("ERROR:  42703: No field named nope"), "{e}");
    assert!(
        e.contains("LINE 1: SELECT server, nope FROM servers"),
        "{e}"
    );
    assert!(
        e.contains("                       ^"),
        "the caret under nope:\n{e}"
    );
    // A refused write: PostgreSQL's read_only_sql_transaction, HTTP's words.
    let e = failed(psql(
        &svc,
        &["-v", "VERBOSITY=verbose", "-c", "DROP TABLE events"],
    ));
    assert!(
        e.contains("ERROR:  25006: gatewatch SQL is read-only"),
        "{e}"
    );
    assert_eq!(
        ok(psql(&svc, &["-tA", "-c", "SELECT count(*) FROM events"]))
            .trim()
            .parse::<u64>()
            .unwrap(),
        10001
    );
    // Session settings: the harmless ones are kept and shown back; DataFusion's own are not
    // reachable; answers are in UTC.
    let shown = ok(psql(
        &svc,
        &[
            "-tA",
            "-c",
            "SET DateStyle = 'ISO, DMY'",
            "-c",
            "SHOW DateStyle",
            "-c",
            "SHOW server_version_num",
            "-c",
            "SELECT version()",
        ],
    ));
    assert_eq!(
        shown.lines().filter(|l| *l != "SET").collect::<Vec<_>>(),
        [
            "ISO, DMY",
            "160006",
            "PostgreSQL 16.6 (gatewatch 0.1.0), read-only, on Apache DataFusion"
        ],
        "{shown}"
    );
    let e = failed(psql(
        &svc,
        &[
            "-v",
            "VERBOSITY=verbose",
            "-c",
            "SET datafusion.execution.batch_size = 1",
        ],
    ));
    assert!(
        e.contains("ERROR:  0A000: SET datafusion.execution.batch_size is not supported"),
        "{e}"
    );
    let e = failed(psql(&svc, &["-c", "SET TIME ZONE 'Europe/Paris'"]));
    assert!(e.contains("gatewatch answers in UTC"), "{e}");

    // Hostile input: binary noise, a start-up message claiming 2 GiB, and a 600 KB expression
    // nested 300,000 deep are each turned away; the service answers the next client.
    for bytes in [
        (0..65_536u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<u8>>(),
        [0x7fff_ffffu32.to_be_bytes(), 0x0003_0000u32.to_be_bytes()].concat(),
    ] {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(pg(&svc)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(&bytes);
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    }
    let deep = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        deep.path(),
        format!("SELECT {};\n", vec!["1"; 300_000].join("+")),
    )
    .unwrap();
    let e = failed(psql(&svc, &["-f", deep.path().to_str().unwrap()]));
    assert!(
        e.contains("the query nests about 300003 levels deep"),
        "{e}"
    );
    // Just under the limit: answered.
    let sum = format!("SELECT {} AS n", vec!["1"; 900].join("+"));
    assert_eq!(ok(psql(&svc, &["-tA", "-c", &sum])).trim(), "900");

    // Every queries/*.sql through psql equals its expected output.
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("queries"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    assert!(files.len() >= 8);
    for f in &files {
        let got = ok(psql(&svc, &["--csv", "-f", f.to_str().unwrap()]));
        let name = f.file_stem().unwrap().to_str().unwrap();
        let want =
            std::fs::read_to_string(root().join("queries/expected").join(format!("{name}.csv")))
                .unwrap();
        same_csv(name, &got, &want);
    }

    // A parameterised query with \bind (psql 16: Debian 12's psql 15 has no \bind).
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        script.path(),
        "SELECT server, max(sessions) AS peak FROM concurrency WHERE ts >= $1 AND ts < $2 AND server <> $3 GROUP BY server ORDER BY server \\bind '2020-03-24 08:30:00+00' '2020-03-24 09:15:00+00' gw-99 \\g\n",
    )
    .unwrap();
    let bound = ok(psql_with(
        client("PSQL16"),
        &svc,
        &["--csv", "-f", script.path().to_str().unwrap()],
        &[("LD_LIBRARY_PATH", client("PSQL16_LIB"))],
    ));
    same_csv(
        "\\bind",
        &bound,
        &svc.sql_csv("SELECT server, max(sessions) AS peak FROM concurrency WHERE ts >= TIMESTAMP '2020-03-24 08:30:00' AND ts < TIMESTAMP '2020-03-24 09:15:00' GROUP BY server ORDER BY server"),
    );
}

#[test]
fn drivers_and_the_catalogue_queries_of_grafana_and_dbeaver() {
    let svc = fed_service(|_| {});
    let addr = pg(&svc);
    let args = vec![addr.ip().to_string(), addr.port().to_string(), svc.url()];
    let said = script(client("PYTHON"), "drivers.py", &args, &[]);
    assert!(said.contains("all checks passed"), "{said}");
    let said = script(
        "node",
        "node_pg.js",
        &args,
        &[("NODE_PATH", client("NODE_PATH"))],
    );
    assert!(said.contains("all checks passed"), "{said}");
    // The catalogue queries through the extended protocol (psycopg), then the simple one (psql).
    let files: Vec<String> = ["grafana.sql", "dbeaver.sql"]
        .iter()
        .map(|f| {
            root()
                .join("tests/pg/catalogue")
                .join(f)
                .display()
                .to_string()
        })
        .collect();
    let mut py = args[..2].to_vec();
    py.extend(files.iter().cloned());
    let said = script(client("PYTHON"), "catalogue.py", &py, &[]);
    assert!(said.contains("every statement answered"), "{said}");
    let grafana = std::fs::read_to_string(&files[0]).unwrap();
    let out = ok(psql(&svc, &["--csv", "-c", &statements(&grafana)[1]]));
    assert_eq!(out, "version\n1600\n");

    // The example Grafana dashboard on the PostgreSQL data source: every panel's SQL, with
    // Grafana's macros expanded as its PostgreSQL data source does, answers with rows.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("docker/grafana/gatewatch-sql.json")).unwrap(),
    )
    .unwrap();
    let source = std::fs::read_to_string(
        root().join("docker/grafana/provisioning/datasources/gatewatch-sql.yml"),
    )
    .unwrap();
    let mut panels = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        let uid = panel["datasource"]["uid"].as_str().unwrap();
        assert!(
            source.contains(&format!("uid: {uid}")),
            "no data source {uid}"
        );
        for target in panel["targets"].as_array().unwrap() {
            let sql = grafana_macros(
                target["rawSql"].as_str().unwrap(),
                "2020-03-24T08:30:00Z",
                "2020-03-24T09:15:00Z",
            );
            let out = ok(psql(&svc, &["--csv", "-c", &sql]));
            let is_alerts = sql.contains("FROM alerts");
            assert!(
                is_alerts || out.lines().count() > 1,
                "no rows for the panel {}:\n{sql}",
                panel["title"]
            );
            panels += 1;
        }
    }
    assert!(panels >= 5, "{panels} panel queries");
}

/// Grafana's PostgreSQL macros (pkg/tsdb/grafana-postgresql-datasource/macros.go) for a time
/// range: `$__timeFilter(c)`, `$__timeGroupAlias(c, interval)`, `$__timeFrom()`, `$__timeTo()`.
fn grafana_macros(sql: &str, from: &str, to: &str) -> String {
    let mut out = String::new();
    let mut rest = sql;
    while let Some(at) = rest.find("$__") {
        out.push_str(&rest[..at]);
        let open = rest[at..].find('(').unwrap() + at;
        let close = rest[open..].find(')').unwrap() + open;
        let name = &rest[at + 3..open];
        let args: Vec<&str> = rest[open + 1..close].split(',').map(str::trim).collect();
        let seconds = |i: &str| -> u64 {
            let (n, unit) = i.split_at(i.len() - 1);
            n.parse::<u64>().unwrap() * if unit == "m" { 60 } else { 1 }
        };
        out.push_str(&match name {
            "timeFilter" => format!("{} BETWEEN '{from}' AND '{to}'", args[0]),
            "timeGroupAlias" => {
                let s = seconds(args[1]);
                format!("floor(extract(epoch from {})/{s})*{s} AS \"time\"", args[0])
            }
            "timeFrom" => format!("'{from}'"),
            "timeTo" => format!("'{to}'"),
            other => panic!("no expansion for $__{other}"),
        });
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// The statements of a tests/pg/catalogue file (blocks ending with a line holding only ';').
fn statements(text: &str) -> Vec<String> {
    text.split("\n;\n")
        .map(|b| {
            b.lines()
                .filter(|l| !l.starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|s| !s.trim().is_empty())
        .collect()
}

#[test]
fn token_tls_connection_limit_cancel_and_hang_up() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl makes a test certificate");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let token = "a-token-of-thirty-two-characters!";
    let svc = fed_service(|c| {
        c.http.token = Some(token.into());
        c.http.query_timeout_ms = 120_000;
        c.pg.max_connections = 4;
        c.pg.tls_cert = Some(cert.clone());
        c.pg.tls_key = Some(key.clone());
    });
    let q = ["-tA", "-c", "SELECT count(*) FROM servers"];
    // No password, a wrong one: refused. The token, over TLS or not: in.
    let e = failed(psql_with(client("PSQL"), &svc, &q, &[]));
    assert!(e.contains("password"), "{e}");
    let e = failed(psql_with(
        client("PSQL"),
        &svc,
        &q,
        &[("PGPASSWORD", "not-the-token-at-all")],
    ));
    assert!(
        e.contains("password authentication failed") || e.contains("28P01") || e.contains("auth"),
        "{e}"
    );
    let servers: std::collections::BTreeSet<String> = std::fs::read_to_string(root().join(FIXTURE))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["server"].as_str().map(str::to_string))
        .collect();
    let servers = servers.len() as f64;
    for mode in ["require", "disable"] {
        let out = ok(psql_with(
            client("PSQL"),
            &svc,
            &q,
            &[("PGPASSWORD", token), ("PGSSLMODE", mode)],
        ));
        assert_eq!(
            out.trim().parse::<f64>().unwrap(),
            servers,
            "sslmode={mode}"
        );
    }
    // The connection limit, cancellation and a client hanging up, from psycopg.
    let addr = pg(&svc);
    let said = script(
        client("PYTHON"),
        "guards.py",
        &[
            addr.ip().to_string(),
            addr.port().to_string(),
            svc.url(),
            token.to_string(),
            "4".into(),
        ],
        &[],
    );
    assert!(said.contains("all checks passed"), "{said}");
    // Shown with --nocapture: how long the killed client's query ran on.
    println!("{said}");
    wait_until(Duration::from_secs(10), "no query left running", || {
        svc.metric_with_token("gatewatch_sql_queries_running", token) == 0.0
    });
}

/// A `gatewatch serve-archive` child process, killed when dropped.
struct ServeArchive(std::process::Child);

impl Drop for ServeArchive {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_archive_answers_from_parquet_alone() {
    // The incident fixture replayed and written as an archive, as `run --archive` seals hours.
    let dir = tempfile::tempdir().unwrap();
    let out = gatewatch::app::replay_files(
        &[root().join(FIXTURE).display().to_string()],
        &Config::default(),
        None,
        2,
        false,
    )
    .unwrap();
    let hour = gatewatch::sql::archive::HOUR_MS;
    let day = 1_585_008_000_000; // 2020-03-24T00:00:00Z
    gatewatch::sql::archive::write_hours(
        dir.path(),
        out.snapshot.clone(),
        day,
        day + 24 * hour,
        &Default::default(),
    )
    .unwrap();

    // Not an archive: one sentence, exit 1.
    let empty = tempfile::tempdir().unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_gatewatch"))
        .args(["serve-archive", "--pg", "127.0.0.1:0", "--archive"])
        .arg(empty.path())
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("is not a gatewatch archive"), "{said}");

    let mut child = Command::new(env!("CARGO_BIN_EXE_gatewatch"))
        .args(["serve-archive", "--pg", "127.0.0.1:0", "--archive"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _serving = ServeArchive(child);
    let line = std::io::BufRead::lines(std::io::BufReader::new(stdout))
        .next()
        .expect("serve-archive says where it listens")
        .unwrap();
    let addr: SocketAddr = line
        .split(" at ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .parse()
        .unwrap();
    let psql = |args: &[&str]| {
        Command::new(client("PSQL"))
            .args(["-X", "-w", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(addr.ip().to_string())
            .arg("-p")
            .arg(addr.port().to_string())
            .args(["-U", "analyst", "-d", "gatewatch"])
            .args(args)
            .output()
            .unwrap()
    };
    let counts = ok(psql(&[
        "-tA",
        "-c",
        "SELECT (SELECT count(*) FROM events) || ' ' || (SELECT count(*) FROM sessions)",
    ]));
    assert_eq!(
        counts.trim(),
        "10001 0",
        "events from Parquet; sessions are not archived"
    );
    for name in ["peak_vs_capacity", "login_storm", "setup_p50_p99_5min"] {
        let got = ok(psql(&[
            "--csv",
            "-f",
            root().join(format!("queries/{name}.sql")).to_str().unwrap(),
        ]));
        let want =
            std::fs::read_to_string(root().join(format!("queries/expected/{name}.csv"))).unwrap();
        same_csv(name, &got, &want);
    }
    let dt = ok(psql(&["-c", "\\dt"]));
    assert!(dt.contains("| events "), "{dt}");
}
