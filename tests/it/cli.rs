//! The `gatewatch` binary as a user runs it: exit codes, one-sentence errors, bad input.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn gatewatch(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatewatch"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(data) = stdin {
        input.write_all(data).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const GOOD: &str = r#"{"type":"connect","ts":"2020-03-17T08:30:00Z","server":"gw-01","session":"s1","setup_ms":900}"#;
const GOOD2: &str = r#"{"type":"latency","ts":"2020-03-17T08:31:00Z","server":"gw-01","session":"s1","rtt_ms":31.5}"#;

/// A one-sentence error on stderr and a failing exit status.
fn assert_clear_error(o: &Output, needle: &str) {
    let e = stderr(o);
    assert!(!o.status.success(), "should fail: {e}");
    assert!(e.contains(needle), "stderr should mention {needle:?}: {e}");
    assert!(!e.contains("panicked"), "{e}");
    assert_eq!(e.trim_end().lines().count(), 1, "one line: {e}");
}

#[test]
fn replays_stdin_and_prints_a_summary() {
    let input = format!("{GOOD}\n{GOOD2}\n");
    let o = gatewatch(
        &[
            "replay",
            "-",
            "--sql",
            "SELECT count(*) AS n FROM events",
            "--format",
            "csv",
        ],
        Some(input.as_bytes()),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "n\n2\n");
    assert!(
        stderr(&o).contains("accepted 2, rejected 0"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn formats_json_and_table() {
    let input = format!("{GOOD}\n");
    let o = gatewatch(
        &[
            "replay",
            "-",
            "--sql",
            "SELECT server, setup_ms FROM sessions",
            "--format",
            "json",
        ],
        Some(input.as_bytes()),
    );
    assert_eq!(
        stdout(&o).trim(),
        r#"[{"server":"gw-01","setup_ms":900.0}]"#
    );
    let o = gatewatch(
        &[
            "replay",
            "-",
            "--sql",
            "SELECT server FROM sessions WHERE false",
        ],
        Some(input.as_bytes()),
    );
    assert!(stdout(&o).contains("| server |"), "{}", stdout(&o));
    let o = gatewatch(
        &[
            "replay",
            "-",
            "--sql",
            "SELECT server FROM sessions WHERE false",
            "--format",
            "json",
        ],
        Some(input.as_bytes()),
    );
    assert_eq!(stdout(&o).trim(), "[]");
}

#[test]
fn bad_lines_are_dead_lettered_without_disturbing_good_ones() {
    let dir = tempfile::tempdir().unwrap();
    let dlq = dir.path().join("dead.ndjson");
    let mut input = Vec::new();
    input.extend_from_slice(GOOD.as_bytes());
    input.extend_from_slice(b"\n{\"type\":\"latency\",\"ts\":1,\"server\":\"\xff\xfe\"}\n");
    input.extend_from_slice(b"{\"type\":\"reject\",\"ts\":1,\"server\":\"gw-01\",\"pad\":\"");
    input.extend(std::iter::repeat_n(b'x', 10 << 20));
    input.extend_from_slice(b"\"}\nnot json at all\n\n");
    input.extend_from_slice(GOOD2.as_bytes());
    input.push(b'\n');
    let o = gatewatch(
        &[
            "replay",
            "-",
            "--sql",
            "SELECT type, rtt_ms FROM events ORDER BY ts",
            "--format",
            "csv",
            "--dead-letter",
            dlq.to_str().unwrap(),
        ],
        Some(&input),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "type,rtt_ms\nconnect,\nlatency,31.5\n");
    let e = stderr(&o);
    assert!(
        e.contains("accepted 2, rejected 3 (invalid_utf8: 1, invalid_json: 1, line_too_long: 1)"),
        "{e}"
    );
    let dead: Vec<serde_json::Value> = std::fs::read_to_string(&dlq)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reasons: Vec<(&str, u64)> = dead
        .iter()
        .map(|d| {
            (
                d["reason"].as_str().unwrap(),
                d["line_no"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("invalid_utf8", 2),
            ("line_too_long", 3),
            ("invalid_json", 4)
        ]
    );
    assert!(dead[1]["line"].as_str().unwrap().len() <= 1024);
    assert_eq!(dead[2]["line"], "not json at all");
}

#[test]
fn empty_input_and_only_garbage_are_fine() {
    let o = gatewatch(
        &[
            "replay",
            "-",
            "--sql",
            "SELECT count(*) AS n FROM concurrency",
            "--format",
            "csv",
        ],
        Some(b""),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "n\n0\n");
    let garbage: Vec<u8> = (0..5000u32)
        .flat_map(|i| format!("garbage {i} {{[\n").into_bytes())
        .collect();
    let o = gatewatch(
        &["replay", "-", "--sql", "SELECT * FROM servers"],
        Some(&garbage),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("accepted 0, rejected 5000 (invalid_json: 5000)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_sql_missing_files_and_bad_config_fail_in_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, format!("{GOOD}\n")).unwrap();
    let input = input.to_str().unwrap();
    assert_clear_error(
        &gatewatch(&["replay", input, "--sql", "SELEC 1"], None),
        "SQL error",
    );
    assert_clear_error(
        &gatewatch(
            &["replay", input, "--sql", "SELECT nope FROM sessions"],
            None,
        ),
        "nope",
    );
    assert_clear_error(
        &gatewatch(
            &["replay", "/no/such/file.ndjson", "--sql", "SELECT 1"],
            None,
        ),
        "cannot open input file /no/such/file.ndjson",
    );
    assert_clear_error(
        &gatewatch(&["replay", input, "--sql-file", "/no/such.sql"], None),
        "cannot read the SQL file",
    );
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[engine]\nallowed_lateness = 5\n").unwrap();
    assert_clear_error(
        &gatewatch(
            &[
                "replay",
                input,
                "--sql",
                "SELECT 1",
                "--config",
                cfg.to_str().unwrap(),
            ],
            None,
        ),
        "is not valid",
    );
    // clap's own errors: non-zero too.
    let o = gatewatch(&["replay", input], None);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--sql"), "{}", stderr(&o));
}

#[test]
fn sql_is_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, format!("{GOOD}\n")).unwrap();
    let input = input.to_str().unwrap();
    for sql in [
        "CREATE TABLE t AS SELECT 1",
        "CREATE VIEW v AS SELECT 1",
        "DROP TABLE events",
        "INSERT INTO events SELECT * FROM events",
        "COPY (SELECT 1) TO '/tmp/gatewatch-should-not-exist.csv'",
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
        "SET datafusion.execution.batch_size = 1",
    ] {
        assert_clear_error(
            &gatewatch(&["replay", input, "--sql", sql], None),
            "read-only",
        );
    }
    assert!(!std::path::Path::new("/tmp/gatewatch-should-not-exist.csv").exists());
    // A file path is not a table: refused as such, as the README says (not "not found").
    assert_clear_error(
        &gatewatch(
            &["replay", input, "--sql", "SELECT * FROM '/etc/passwd'"],
            None,
        ),
        "read-only",
    );
}

#[test]
fn simulate_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for p in [&a, &b] {
        let o = gatewatch(
            &[
                "simulate",
                "--scenario",
                "march-2020",
                "--seed",
                "3",
                "--users",
                "40",
                "--out",
                p.to_str().unwrap(),
            ],
            None,
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn replay_backtests_rules_with_capacity_what_ifs() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[alerts.rules]]\nname = \"busy\"\nmeasure = \"utilisation\"\nabove = 0.5\n",
    )
    .unwrap();
    let input = format!("{GOOD}\n{GOOD2}\n");
    let sql = "SELECT rule, key, state, value, threshold FROM alerts";
    // One session on one seat (what-if) is 100 % from the second after the connect.
    let o = gatewatch(
        &[
            "replay",
            "-",
            "--config",
            rules.to_str().unwrap(),
            "--capacity",
            "gw-01=1",
            "--format",
            "csv",
            "--sql",
            sql,
        ],
        Some(input.as_bytes()),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "rule,key,state,value,threshold\nbusy,gw-01,firing,1.0,0.5\n"
    );
    // Without a capacity there is no utilisation, so nothing fires.
    let o = gatewatch(
        &[
            "replay",
            "-",
            "--config",
            rules.to_str().unwrap(),
            "--format",
            "csv",
            "--sql",
            sql,
        ],
        Some(input.as_bytes()),
    );
    assert_eq!(stdout(&o), "rule,key,state,value,threshold\n");

    let o = gatewatch(
        &["replay", "-", "--capacity", "gw-01", "--sql", "SELECT 1"],
        Some(input.as_bytes()),
    );
    assert_clear_error(&o, "--capacity \"gw-01\" is not SERVER=N");
    std::fs::write(
        &rules,
        "[[alerts.rules]]\nname = \"q\"\nsql = \"SELECT nope FROM servers\"\n",
    )
    .unwrap();
    let o = gatewatch(&["check-config", rules.to_str().unwrap()], None);
    assert_clear_error(&o, "alert rule \"q\"");
    let o = gatewatch(
        &[
            "replay",
            "-",
            "--config",
            rules.to_str().unwrap(),
            "--sql",
            "SELECT 1",
        ],
        Some(input.as_bytes()),
    );
    assert_clear_error(&o, "fix the rule's sql");
}
