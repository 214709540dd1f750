//! The alert module's unit tests: exact transitions on hand-built streams.

use super::*;
use crate::config::{Config, ServerConfig};
use crate::ingest::{decode_chunk, Chunk};

fn engine(capacity: u32, servers: &[&str]) -> Engine {
    Engine::new(engine_cfg(capacity, servers))
}

fn engine_cfg(capacity: u32, servers: &[&str]) -> EngineConfig {
    EngineConfig {
        allowed_lateness_ms: 0,
        session_timeout_ms: 86_400_000,
        servers: servers
            .iter()
            .map(|s| {
                (
                    s.to_string(),
                    ServerConfig {
                        capacity: Some(capacity),
                        site: None,
                    },
                )
            })
            .collect(),
        ..EngineConfig::default()
    }
}

fn lateness_0() -> EngineConfig {
    EngineConfig {
        allowed_lateness_ms: 0,
        ..EngineConfig::default()
    }
}

fn rules(toml: &str) -> Vec<RuleConfig> {
    Config::parse(toml, "test.toml").unwrap().alerts.rules
}

/// `(kind, second, server, session)` events; a session's latency samples keep it alive.
fn feed(e: &mut Engine, events: &[(&str, i64, &str, &str)]) {
    let lines: Vec<String> = events
        .iter()
        .map(|(k, s, srv, sess)| {
            format!(
                r#"{{"type":"{k}","ts":{},"server":"{srv}","session":"{sess}","rtt_ms":1}}"#,
                s * 1000
            )
        })
        .collect();
    let d = decode_chunk(Chunk {
        raw: lines.join("\n").into_bytes(),
        truncated: false,
        shared: None,
    });
    assert!(d.rejects.is_empty(), "{:?}", d.rejects);
    e.apply(&d.batch);
}

/// Replays `events` through rules and returns `(state, key, tick s, since s)`.
fn transitions(
    e: &mut Engine,
    rule_toml: &str,
    events: &[(&str, i64, &str, &str)],
) -> Vec<(&'static str, String, i64, i64)> {
    let mut ev = Evaluator::new(&rules(rule_toml), &lateness_0()).unwrap();
    // Fed in slices so rounds happen mid-stream, as in replay and run.
    for part in events.chunks(7) {
        feed(e, part);
        evaluate_due_round(e, &mut ev, false);
    }
    e.flush();
    evaluate_due_round(e, &mut ev, true);
    e.snapshot()
        .alerts
        .iter()
        .map(|r| (r.state, r.key.clone(), r.ts / 1000, r.since / 1000))
        .collect()
}

fn connects(
    server: &str,
    at: i64,
    n: usize,
    prefix: &str,
) -> Vec<(&'static str, i64, String, String)> {
    (0..n)
        .map(|i| ("connect", at, server.to_string(), format!("{prefix}{i}")))
        .collect()
}

fn as_refs<'a>(
    v: &'a [(&'static str, i64, String, String)],
) -> Vec<(&'static str, i64, &'a str, &'a str)> {
    let mut r: Vec<_> = v
        .iter()
        .map(|(k, t, s, x)| (*k, *t, s.as_str(), x.as_str()))
        .collect();
    r.sort_by_key(|e| e.1);
    r
}

const NEAR_FULL: &str = "[[alerts.rules]]\nname = \"near-full\"\nmeasure = \"utilisation\"\nabove = 0.9\nclear = 0.8\nfor = \"30s\"\n";

#[test]
fn fires_after_for_holds_through_the_band_and_resolves_below_clear() {
    let mut e = engine(10, &["gw"]);
    let mut evs = connects("gw", 0, 9, "a");
    evs.extend(connects("gw", 100, 1, "b")); // 10/10 from second 100
    evs.push(("disconnect", 200, "gw".into(), "b0".into())); // 0.9: inside the band
    evs.extend(connects("gw", 220, 1, "c")); // 1.0
    evs.push(("disconnect", 240, "gw".into(), "c0".into())); // 0.9
    evs.push(("disconnect", 300, "gw".into(), "a0".into()));
    evs.push(("disconnect", 300, "gw".into(), "a1".into())); // 0.7: clear
    evs.push(("latency", 400, "gw".into(), "a2".into()));
    let got = transitions(&mut e, NEAR_FULL, &as_refs(&evs));
    // Bad from tick 110 (it sees second 109), held 30 s: fires at 140; clear at tick 310.
    assert_eq!(
        got,
        vec![
            ("firing", "gw".to_string(), 140, 110),
            ("resolved", "gw".to_string(), 310, 140)
        ]
    );
}

#[test]
fn timers_and_firing_alerts_survive_a_checkpoint() {
    use crate::codec::{Dec, Enc};
    let mut evs = connects("gw", 0, 9, "a");
    evs.extend(connects("gw", 100, 1, "b"));
    evs.push(("disconnect", 200, "gw".into(), "b0".into()));
    evs.extend(connects("gw", 220, 1, "c"));
    evs.push(("disconnect", 240, "gw".into(), "c0".into()));
    evs.push(("disconnect", 300, "gw".into(), "a0".into()));
    evs.push(("disconnect", 300, "gw".into(), "a1".into()));
    evs.push(("latency", 400, "gw".into(), "a2".into()));
    let evs = as_refs(&evs);
    let straight = transitions(&mut engine(10, &["gw"]), NEAR_FULL, &evs);
    assert_eq!(straight.len(), 2);
    // Cut while `for` is running (pending since 110), while firing, and after resolving.
    for cut_at in [125, 230, 350] {
        let cut = evs.iter().position(|e| e.1 >= cut_at).unwrap();
        let mut e = engine(10, &["gw"]);
        let mut ev = Evaluator::new(&rules(NEAR_FULL), &lateness_0()).unwrap();
        feed(&mut e, &evs[..cut]);
        // A tick at the cut: `latency` keeps the clock moving without changing sessions.
        feed(&mut e, &[("latency", cut_at, "gw", "a2")]);
        evaluate_due_round(&mut e, &mut ev, false);
        let mut enc = Enc::default();
        e.encode_checkpoint(&mut enc);
        let saved = ev.save_state();
        drop((e, ev));

        let mut e =
            Engine::decode_checkpoint(engine_cfg(10, &["gw"]), &mut Dec::new(&enc.buf)).unwrap();
        let mut ev = Evaluator::new(&rules(NEAR_FULL), &lateness_0()).unwrap();
        assert_eq!(ev.restore_state(&saved).unwrap(), Vec::<String>::new());
        for part in evs[cut..].chunks(7) {
            feed(&mut e, part);
            evaluate_due_round(&mut e, &mut ev, false);
        }
        e.flush();
        evaluate_due_round(&mut e, &mut ev, true);
        let got: Vec<_> = e
            .snapshot()
            .alerts
            .iter()
            .map(|r| (r.state, r.key.clone(), r.ts / 1000, r.since / 1000))
            .collect();
        assert_eq!(got, straight, "cut at {cut_at}");
    }
    // A changed rule starts afresh.
    let mut ev = Evaluator::new(&rules(&NEAR_FULL.replace("0.9", "0.95")), &lateness_0()).unwrap();
    let saved = Evaluator::new(&rules(NEAR_FULL), &lateness_0())
        .unwrap()
        .save_state();
    assert_eq!(
        ev.restore_state(&saved).unwrap(),
        vec!["near-full".to_string()]
    );
}

#[test]
fn does_not_fire_when_the_condition_breaks_before_for() {
    let mut e = engine(10, &["gw"]);
    let mut evs = connects("gw", 0, 9, "a");
    // 1.0 for 20 s, 0.9 for 20 s, repeatedly: never 30 s above 0.9.
    for k in 0..6 {
        let t = 100 + k * 40;
        evs.push(("connect", t, "gw".into(), format!("x{k}")));
        evs.push(("disconnect", t + 20, "gw".into(), format!("x{k}")));
    }
    evs.push(("latency", 500, "gw".into(), "a1".into()));
    assert_eq!(transitions(&mut e, NEAR_FULL, &as_refs(&evs)), vec![]);
}

#[test]
fn keep_firing_for_delays_the_resolve() {
    let mut e = engine(10, &["gw"]);
    let mut evs = connects("gw", 0, 10, "a");
    for i in 0..5 {
        evs.push(("disconnect", 100, "gw".into(), format!("a{i}")));
    }
    evs.push(("latency", 300, "gw".into(), "a9".into()));
    let rule = "[[alerts.rules]]\nname = \"full\"\nmeasure = \"utilisation\"\nabove = 0.9\nkeep_firing_for = \"1m\"\n";
    let got = transitions(&mut e, rule, &as_refs(&evs));
    // Capacity is reached in second 0; tick 10 sees it. Clear from tick 110, held 60 s.
    assert_eq!(
        got,
        vec![
            ("firing", "gw".to_string(), 10, 10),
            ("resolved", "gw".to_string(), 170, 10)
        ]
    );
}

#[test]
fn minutes_to_full_fires_on_a_ramp_before_capacity_and_never_on_a_flat_line() {
    let rule = "[[alerts.rules]]\nname = \"fills\"\nmeasure = \"minutes_to_full\"\nbelow = 5\nwindow = \"5m\"\n";
    // One connect every 6 s: 10 a minute toward capacity 100 (full at second 594).
    let mut e = engine(100, &["ramp"]);
    let mut evs: Vec<_> = (0..100)
        .map(|i| ("connect", i * 6, "ramp".to_string(), format!("r{i}")))
        .collect();
    evs.push(("latency", 1000, "ramp".into(), "r1".into()));
    let got = transitions(&mut e, rule, &as_refs(&evs));
    // Tick 310 sees 52 sessions, 50 more than 5 minutes earlier: 4.8 minutes to full.
    assert_eq!(got[0], ("firing", "ramp".to_string(), 310, 310));
    // Full at second 594; once the whole window is flat (tick 900) the projection has no
    // value, and the alert resolves.
    assert_eq!(got[1..], [("resolved", "ramp".to_string(), 900, 310)]);

    let mut e = engine(100, &["flat"]);
    let mut evs = connects("flat", 0, 95, "f");
    for t in (10..1200).step_by(10) {
        evs.push(("latency", t, "flat".into(), "f1".into()));
    }
    assert_eq!(transitions(&mut e, rule, &as_refs(&evs)), vec![]);
}

#[test]
fn sql_rules_see_the_tables_as_of_each_tick() {
    let mut e = engine(10, &["gw"]);
    let evs: Vec<(&'static str, i64, String, String)> = vec![
        ("reject", 5, "gw".into(), "r1".into()),
        ("reject", 15, "gw".into(), "r2".into()),
        ("reject", 25, "gw".into(), "r3".into()),
        ("connect", 26, "gw".into(), "s1".into()),
        ("disconnect", 45, "gw".into(), "s1".into()),
        ("latency", 95, "gw".into(), "x".into()),
    ];
    let rule = "[[alerts.rules]]\nname = \"rejects\"\nsql = \"SELECT server, count(*) AS value FROM events WHERE type = 'reject' GROUP BY server\"\nabove = 2\nevery = \"10s\"\n\n[[alerts.rules]]\nname = \"busy\"\nsql = \"SELECT server FROM servers WHERE active > 0\"\nevery = \"10s\"\n";
    let got = transitions(&mut e, rule, &as_refs(&evs));
    assert_eq!(
        got,
        vec![
            // The third reject is at 25 s: tick 30 counts three.
            ("firing", "server=gw".to_string(), 30, 30),
            ("firing", "server=gw".to_string(), 30, 30),
            ("resolved", "server=gw".to_string(), 50, 30),
        ]
    );
    let rules: Vec<String> = e.snapshot().alerts.iter().map(|r| r.rule.clone()).collect();
    assert_eq!(rules, ["rejects", "busy", "busy"]);
}

#[test]
fn servers_read_hours_apart_give_the_same_alerts_as_interleaved() {
    // Two servers filling at different times; one input has them interleaved in time
    // order, the other all of gw-a first (a partition read far ahead of the other).
    let mut a: Vec<(&'static str, i64, String, String)> = Vec::new();
    let mut b = Vec::new();
    for i in 0..10 {
        a.push(("connect", 100 + i * 30, "gw-a".into(), format!("a{i}")));
        b.push(("connect", 200 + i * 40, "gw-b".into(), format!("b{i}")));
    }
    for i in 0..5 {
        a.push(("disconnect", 600 + i * 20, "gw-a".into(), format!("a{i}")));
        b.push(("disconnect", 900 + i * 20, "gw-b".into(), format!("b{i}")));
    }
    a.push(("latency", 3000, "gw-a".into(), "a9".into()));
    b.push(("latency", 3000, "gw-b".into(), "b9".into()));
    let rule = "[[alerts.rules]]\nname = \"full\"\nmeasure = \"utilisation\"\nabove = 0.85\nclear = 0.6\nfor = \"30s\"\n[[alerts.rules]]\nname = \"n\"\nsql = \"SELECT server, count(*) AS value FROM sessions WHERE ended IS NULL GROUP BY server\"\nabove = 8\nevery = \"10s\"\n";
    let interleaved = {
        let mut all = a.clone();
        all.extend(b.clone());
        let mut e = engine(10, &["gw-a", "gw-b"]);
        let mut got = transitions(&mut e, rule, &as_refs(&all));
        got.sort();
        got
    };
    let skewed = {
        let mut e = engine(10, &["gw-a", "gw-b"]);
        let mut ev = Evaluator::new(&rules(rule), &lateness_0()).unwrap();
        // Each partition delivers a first batch, then gw-a's runs far ahead.
        let (a, b) = (as_refs(&a), as_refs(&b));
        for part in [&a[..1], &b[..1]]
            .into_iter()
            .chain(a[1..].chunks(4))
            .chain(b[1..].chunks(4))
        {
            feed(&mut e, part);
            evaluate_due_round(&mut e, &mut ev, false);
        }
        e.flush();
        evaluate_due_round(&mut e, &mut ev, true);
        let mut got: Vec<_> = e
            .snapshot()
            .alerts
            .iter()
            .map(|r| (r.state, r.key.clone(), r.ts / 1000, r.since / 1000))
            .collect();
        got.sort();
        got
    };
    assert_eq!(interleaved.len(), 8, "{interleaved:?}");
    assert_eq!(skewed, interleaved);
}

#[test]
fn a_firing_alert_is_repeated_only_with_repeat_interval() {
    let mut evs = connects("gw", 0, 10, "a");
    evs.push(("latency", 100, "gw".into(), "a1".into()));
    let base = "[[alerts.rules]]\nname = \"full\"\nmeasure = \"utilisation\"\nabove = 0.9\n";
    let run = |rule: &str| {
        let mut e = engine(10, &["gw"]);
        let mut ev = Evaluator::new(&rules(rule), &lateness_0()).unwrap();
        feed(&mut e, &as_refs(&evs));
        e.flush();
        let out = evaluate_due_round(&mut e, &mut ev, true);
        let sent: Vec<(i64, bool)> = out.iter().map(|x| (x.record.ts / 1000, x.repeat)).collect();
        let ids: Vec<String> = out.iter().map(|x| x.record.id.clone()).collect();
        (sent, ids, e.snapshot().alerts.len())
    };
    let (sent, _, rows) = run(base);
    assert_eq!((sent, rows), (vec![(10, false)], 1));
    let (sent, ids, rows) = run(&format!("{base}repeat_interval = \"30s\"\n"));
    assert_eq!(sent, vec![(10, false), (40, true), (70, true), (100, true)]);
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "repeats carry the firing id"
    );
    assert_eq!(rows, 1, "repeats are not new rows of the alerts table");
}

#[test]
fn a_bad_sql_rule_is_refused_at_start() {
    let err = Evaluator::new(
        &rules("[[alerts.rules]]\nname = \"x\"\nsql = \"SELECT nope FROM events\"\n"),
        &lateness_0(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("alert rule \"x\"") && err.contains("nope"),
        "{err}"
    );
}

#[test]
fn ids_are_stable_and_distinct() {
    let evs = {
        let mut v = connects("gw", 0, 10, "a");
        v.push(("latency", 100, "gw".into(), "a1".into()));
        v
    };
    let rule = "[[alerts.rules]]\nname = \"full\"\nmeasure = \"utilisation\"\nabove = 0.9\n";
    let ids = |_: ()| {
        let mut e = engine(10, &["gw"]);
        transitions(&mut e, rule, &as_refs(&evs));
        e.snapshot()
            .alerts
            .iter()
            .map(|r| r.id.clone())
            .collect::<Vec<_>>()
    };
    let a = ids(());
    assert_eq!(a.len(), 1);
    assert_eq!(a, ids(()));
}
