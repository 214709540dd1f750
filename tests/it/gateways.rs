//! Gateway syslog in: the same story told as gatewatch's JSON and as each vendor's syslog gives
//! the same concurrency and sessions, through the file path and through Kafka (tansu); the
//! project's own fixtures of each vendor read as documented; hostile lines each get their
//! reason and disturb nothing around them.

use std::io::Write;
use std::time::Duration;

use gatewatch::config::Config;
use gatewatch::event::InputFormat;
use gatewatch::output::{write_result, Format};
use gatewatch::sim::syslog::VendorWriter;
use gatewatch::sim::Rng;

use crate::support::*;

/// Every vendor: the formats but `json` and `auto`.
fn vendors() -> &'static [InputFormat] {
    &InputFormat::ALL[1..7]
}

/// A JSON line with its time cut to the second, as vendors' stamps have it.
fn floored(line: &str) -> String {
    let Some(at) = line.find("\"ts\":\"") else {
        return line.to_string();
    };
    let start = at + 6;
    let end = start + line[start..].find('"').unwrap();
    match line[start..end].find('.') {
        Some(dot) => format!("{}Z{}", &line[..start + dot], &line[end..]),
        None => line.to_string(),
    }
}

/// The story of one morning, with its order disturbed within a minute (the same disorder for
/// every telling): `(server, JSON line)`.
fn disordered_story(users: u32, seed: u64) -> Vec<(String, String)> {
    let mut events = story("2020-03-24", users, seed);
    let mut rng = Rng::new(seed);
    let ts = |l: &str| gatewatch::event::decode(l.as_bytes()).unwrap().ts;
    for i in 1..events.len() {
        if rng.below(20) == 0 && ts(&events[i].1) - ts(&events[i - 1].1) < 60_000 {
            events.swap(i, i - 1);
        }
    }
    events
}

/// Lines with about 3 % repeated (a relay's redelivery) and garbage between.
fn with_duplicates_and_garbage(lines: Vec<String>, seed: u64) -> Vec<String> {
    let mut rng = Rng::new(seed ^ 0x5eed);
    let mut out = Vec::with_capacity(lines.len() * 2);
    for l in lines {
        let dup = rng.below(30) == 0;
        if rng.below(60) == 0 {
            out.push("\u{1}\u{2} binary noise \u{7f}".to_string());
        }
        out.push(l.clone());
        if dup {
            out.push(l);
        }
    }
    out
}

fn write_lines(lines: &[String]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
    f.flush().unwrap();
    f
}

fn csv(snapshot: std::sync::Arc<gatewatch::state::Snapshot>, sql: &str) -> String {
    let r = gatewatch::app::run_sql(snapshot, sql).unwrap();
    let mut out = Vec::new();
    write_result(&r, Format::Csv, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn in_2020() -> Config {
    // OpenVPN's and PAN-OS's syslog stamps have no year.
    Config::parse("[input]\nyear = 2020\n", "test").unwrap()
}

/// What a telling is compared on: every second in which something happened (quiet seconds
/// differ only in where a server's first row is: the JSON story's midnight announcements), and
/// every session's interval. Pulse cannot say a refusal: its comparison leaves rejects out.
fn questions(format: InputFormat) -> [String; 2] {
    let rejects = if format == InputFormat::Pulse {
        ""
    } else {
        ", rejects"
    };
    let busy = if format == InputFormat::Pulse {
        "sessions > 0 OR connects > 0 OR disconnects > 0"
    } else {
        "sessions > 0 OR connects > 0 OR disconnects > 0 OR rejects > 0"
    };
    [
        format!("SELECT server, ts, sessions, peak, connects, disconnects{rejects} FROM concurrency WHERE {busy} ORDER BY server, ts"),
        "SELECT server, started, ended FROM sessions ORDER BY server, started, ended".to_string(),
    ]
}

/// Each vendor's syslog of a disordered storm morning, with redeliveries and garbage, answers
/// as the JSON story does (times cut to the second) through `replay`.
#[test]
fn each_vendor_s_syslog_tells_the_json_story() {
    let story = disordered_story(90, 11);
    let json: Vec<String> = story.iter().map(|(_, l)| floored(l)).collect();
    let json_file = write_lines(&with_duplicates_and_garbage(json, 1));
    let reference = gatewatch::app::replay_files(
        &[json_file.path().display().to_string()],
        &in_2020(),
        None,
        2,
        false,
    )
    .unwrap();
    for &format in vendors() {
        let mut w = VendorWriter::new(format);
        let mut lines = Vec::new();
        for (_, l) in &story {
            w.render(l, &mut lines);
        }
        let file = write_lines(&with_duplicates_and_garbage(lines, 2));
        let got = gatewatch::app::replay_files_as(
            &[file.path().display().to_string()],
            format,
            &in_2020(),
            None,
            2,
            false,
        )
        .unwrap();
        for q in questions(format) {
            let want = csv(reference.snapshot.clone(), &q);
            assert!(want.lines().count() > 50, "a story worth comparing: {q}");
            assert_eq!(csv(got.snapshot.clone(), &q), want, "{format}: {q}");
        }
        let c = &got.counters;
        assert!(
            c.duplicates > 0,
            "{format}: redeliveries are dropped by id: {}",
            c.summary_line()
        );
        assert!(
            c.rejected
                .keys()
                .all(|r| r.to_string() == format!("unparsed:{format}")),
            "{format}: only the noise is rejected: {:?}",
            c.rejected
        );
        // Under `auto`, the same lines give the same answers; the noise is of no format.
        let auto = gatewatch::app::replay_files_as(
            &[file.path().display().to_string()],
            InputFormat::Auto,
            &in_2020(),
            None,
            2,
            false,
        )
        .unwrap();
        for q in questions(format) {
            assert_eq!(
                csv(auto.snapshot.clone(), &q),
                csv(got.snapshot.clone(), &q),
                "auto vs {format}: {q}"
            );
        }
        assert_eq!(
            auto.counters
                .rejected
                .keys()
                .map(|r| r.to_string())
                .collect::<Vec<_>>(),
            vec!["unknown_format".to_string()]
        );
    }
}

/// Through Kafka: ASA syslog on one topic (`format = "cisco-asa"`), firewall lines and
/// unreadable session lines among it, answers as the JSON story does; the firewall lines are
/// counted as ignored in /metrics, the unreadable ones dead-lettered with their reason.
#[test]
fn asa_syslog_through_tansu_tells_the_json_story() {
    let brokers = tansu();
    let topic = unique("asa");
    let group = unique("g");
    create_topic(brokers, &topic, 2);
    let story = disordered_story(40, 5);
    let mut w = VendorWriter::new(InputFormat::CiscoAsa);
    let mut events: Vec<(String, String)> = Vec::new();
    let mut lines = Vec::new();
    for (server, l) in &story {
        lines.clear();
        w.render(l, &mut lines);
        events.extend(lines.iter().map(|x| (server.clone(), x.clone())));
    }
    let firewall = "<166>Mar 24 2020 08:00:00 gw-01 : %ASA-6-302013: Built outbound TCP connection 1588662 for outside:192.0.2.2/80 (192.0.2.2/80) to inside:10.10.10.10/54839 (10.10.10.10/54839)";
    let unreadable = "<166>Mar 24 2020 08:00:00 gw-02 : %ASA-6-113039: Group <g> AnyConnect parent session started.";
    let n = events.len();
    for i in 0..3 {
        events.insert(n / 4 * (i + 1), ("gw-01".into(), firewall.into()));
    }
    events.insert(n / 2, ("gw-02".into(), unreadable.into()));
    produce(brokers, &topic, &events);

    let mut cfg = config(brokers, &topic, &group);
    cfg.kafka
        .formats
        .insert(topic.clone(), InputFormat::CiscoAsa);
    cfg.input = in_2020().input;
    // The story is from 2020: the wall clock must not refuse it.
    cfg.engine.max_clock_skew_ms = i64::MAX / 4;
    // Every busy second of the day is compared.
    cfg.http.max_rows = 10_000_000;
    let svc = Service::start(cfg, None);
    svc.wait_for_messages(events.len() as u64, Duration::from_secs(60));

    let json: Vec<String> = story.iter().map(|(_, l)| floored(l)).collect();
    let json_file = write_lines(&json);
    let reference = gatewatch::app::replay_files(
        &[json_file.path().display().to_string()],
        &Config::default(),
        None,
        2,
        false,
    )
    .unwrap();
    for q in questions(InputFormat::CiscoAsa) {
        let want = csv(reference.snapshot.clone(), &q);
        wait_until(Duration::from_secs(20), "the service to agree", || {
            svc.sql_csv(&q) == want
        });
    }
    let (_, metrics) = svc.get("/metrics");
    assert!(
        metrics.contains("gatewatch_ignored_total{format=\"cisco-asa\",message=\"302013\"} 3"),
        "{metrics}"
    );
    assert_eq!(
        svc.metric("gatewatch_dead_lettered_by_reason_total{reason=\"unparsed:cisco-asa\"}"),
        1.0
    );
    svc.stop().unwrap();
}

/// The project's fixtures (tests/fixtures/gateways/, written from the vendors' documented
/// formats: every message kind read, spacing and quoting oddities, missing fields, escaped
/// quotes, IPv6, year-less stamps) read as `expected.txt` says, with their own format and under
/// `auto`.
#[test]
fn vendor_fixtures_read_as_documented() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gateways");
    let expected = std::fs::read_to_string(format!("{dir}/expected.txt")).unwrap();
    let mut seen = 0;
    for block in expected.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut lines = block.lines().filter(|l| !l.starts_with('#'));
        let Some(name) = lines.next() else {
            continue; // the header's comments
        };
        let name = name.trim();
        let want: Vec<&str> = lines.collect();
        let format = InputFormat::parse(name).unwrap();
        let path = format!("{dir}/{name}.log");
        for as_format in [format, InputFormat::Auto] {
            let out = gatewatch::app::replay_files_as(
                std::slice::from_ref(&path),
                as_format,
                &in_2020(),
                None,
                2,
                false,
            )
            .unwrap();
            let got = csv(
                out.snapshot.clone(),
                "SELECT type, server, coalesce(session, '-') AS session, coalesce(user, '-') AS user, coalesce(reason, '-') AS reason, coalesce(CAST(duration_ms AS VARCHAR), '-') AS duration_ms, coalesce(CAST(rtt_ms AS VARCHAR), '-') AS rtt_ms, ts FROM events ORDER BY ts, type, session",
            );
            let got: Vec<String> = got
                .lines()
                .skip(1)
                .map(str::to_string)
                .chain(std::iter::once(format!(
                    "summary: {}",
                    out.counters.summary_line()
                )))
                .collect();
            assert_eq!(got, want, "{name} read as {as_format}");
        }
        seen += 1;
    }
    assert_eq!(seen, vendors().len(), "a fixture per vendor");
}

/// No line of any format panics, stalls or disturbs the lines around it: a 1 MiB line, binary
/// noise, a truncated record, a CSV record with a quote left open each get their reason, and
/// the good lines on either side are read.
#[test]
fn hostile_syslog_lines_each_get_their_reason() {
    let good = |min: u32| {
        format!("<166>Mar 24 2020 08:{min:02}:00 gw-01 : %ASA-6-113039: Group <g> User <u{min}> IP <10.0.0.{min}> AnyConnect parent session started.")
    };
    let huge = format!(
        "<166>Mar 24 2020 08:00:00 gw-01 : %ASA-6-113039: Group <{}>",
        "x".repeat(1 << 20)
    );
    let cases: Vec<(InputFormat, String, &str)> = vec![
        (InputFormat::CiscoAsa, huge, "line_too_long"),
        (InputFormat::CiscoAsa, "\u{0}\u{1}\u{fffd}\u{7f}".into(), "unparsed:cisco-asa"),
        (InputFormat::CiscoAsa, "<166>Mar 24 2020 08:00:00 gw-01 : %ASA-6-113019: Group = g, Usern".into(), "unparsed:cisco-asa"),
        (InputFormat::GlobalProtect, "Mar 24 08:00:00 1,2020/03/24 08:00:00,0123,GLOBALPROTECT,0,2305,2020/03/24 08:00:00,vsys1,gateway-setup-ipsec,tunnel,,IPSec,\"anna,FR".into(), "unparsed:globalprotect"),
        (InputFormat::FortiGate, "date=2020-03-24 time=08:00:00 devname=\"fgt-1\" logid=\"0101039424\" subtype=\"vpn\" action=\"tunnel-up\" user=\"an".into(), "unparsed:fortigate"),
        (InputFormat::CitrixAdc, "<134> 03/24/2020:08:00:00 GMT vpx 0-PPE-0 : default SSLVPN LOGIN 1 0 : Client_ip 10.0.0.1".into(), "unparsed:citrix-adc"),
        (InputFormat::Pulse, "<134>1 2020-03-24T08:00:00Z pcs PulseSecure: - - - 2020-03-24 08:00:00 - pcs - [10.0.0.1] anna(Staff)[] - VPN Tunneling: Session started for user (session: )".into(), "unparsed:pulse"),
        (InputFormat::OpenVpn, "<29>Mar 24 08:00:00 vpn1 openvpn[1]: 10.0.0.1:5000 Peer Connection Initiated with [AF_INET]10.0.0.1:5000".into(), "unparsed:openvpn"),
        (InputFormat::Auto, "what is this".into(), "unknown_format"),
    ];
    for (format, bad, reason) in cases {
        // The good lines are ASA: under another vendor's format they are that vendor's noise.
        let (first, last) = (good(1), good(2));
        let file = write_lines(&[first, bad, last]);
        let dead = tempfile::NamedTempFile::new().unwrap();
        let out = gatewatch::app::replay_files_as(
            &[file.path().display().to_string()],
            format,
            &in_2020(),
            Some(dead.path()),
            2,
            false,
        )
        .unwrap();
        let letters = std::fs::read_to_string(dead.path()).unwrap();
        let reasons: Vec<String> = letters
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["reason"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        let asa = matches!(format, InputFormat::CiscoAsa | InputFormat::Auto);
        if asa {
            assert_eq!(reasons, vec![reason.to_string()], "{format}: {letters}");
            assert_eq!(
                out.counters.accepted, 2,
                "{format}: the lines around are read"
            );
        } else {
            assert_eq!(reasons.len(), 3, "{format}: {letters}");
            assert_eq!(reasons[1], reason, "{format}");
        }
    }
}
