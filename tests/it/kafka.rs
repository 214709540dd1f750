//! The service against a real Kafka-protocol broker (tansu over TCP): every produced event is
//! applied once (the answers equal a replay of the same events), rejects land on the
//! dead-letter topic with their reason, and a restarted consumer resumes after its commits.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::support::*;

/// Bad messages, each with the reason it must be dead-lettered with.
const GARBAGE: [(&str, &str, &str); 5] = [
    ("gw-01", "not json at all", "invalid_json"),
    (
        "gw-02",
        r#"{"type":"connect","server":"gw-02","session":"x"}"#,
        "missing_field:ts",
    ),
    (
        "gw-03",
        r#"{"type":"teleport","ts":1,"server":"gw-03"}"#,
        "unknown_type",
    ),
    ("gw-04", "[1,2,3]", "not_an_object"),
    // Hours older than what gw-05 already sent: past allowed_lateness.
    (
        "gw-05",
        r#"{"type":"reject","ts":"2020-03-24T00:00:01Z","server":"gw-05","reason":"capacity"}"#,
        "late",
    ),
];

#[test]
fn tansu_applies_every_event_once_dead_letters_rejects_and_resumes_after_restart() {
    let brokers = tansu();
    let topic = unique("e2e");
    let group = unique("g");
    create_topic(brokers, &topic, 4);

    // A storm morning, with garbage and redelivered duplicates mixed in.
    let mut events: Vec<(String, String)> = story("2020-03-24", 60, 3)
        .into_iter()
        .filter(|(_, l)| l.contains("T0") || l.contains("T10:"))
        .collect();
    let n = events.len();
    for (i, (k, v, _)) in GARBAGE.iter().enumerate() {
        let at = if *k == "gw-05" { n } else { n / 5 * (i + 1) };
        events.insert(at.min(events.len()), (k.to_string(), v.to_string()));
    }
    let redelivered: Vec<(String, String)> = events[1000..1050].to_vec();
    events.extend(redelivered);
    produce(brokers, &topic, &events);
    // One more bad message, with headers of its own: its dead letter must carry them on.
    let with_headers: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let own_headers = OwnedHeaders::new()
        .insert(Header {
            key: "trace",
            value: Some("t-1"),
        })
        .insert(Header {
            key: "empty",
            value: None::<&[u8]>,
        });
    with_headers
        .send(
            BaseRecord::to(&topic)
                .key("gw-06")
                .payload("{\"type\":")
                .headers(own_headers),
        )
        .unwrap();
    with_headers.flush(Duration::from_secs(10)).unwrap();
    let dead_letters = GARBAGE.len() + 1;

    let svc = Service::start(config(brokers, &topic, &group), None);
    svc.wait_for_messages(events.len() as u64 + 1, Duration::from_secs(120));
    let lines: Vec<String> = events.iter().map(|e| e.1.clone()).collect();
    assert_same_as_replay(&svc, &lines);
    assert_eq!(svc.metric("gatewatch_duplicates_total"), 50.0);
    assert_eq!(
        svc.metric("gatewatch_dead_lettered_total"),
        dead_letters as f64
    );
    assert_eq!(svc.get("/readyz").0, 200);

    // The dead letters: original bytes and key, reason and source in the headers.
    let dlq: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("dlq-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&format!("{topic}.dlq"), 0, Offset::Beginning)
        .unwrap();
    dlq.assign(&tpl).unwrap();
    let mut seen = Vec::new();
    wait_until(Duration::from_secs(30), "dead letters", || {
        if let Some(Ok(m)) = dlq.poll(Duration::from_millis(200)) {
            let h = m.headers().expect("dead letters carry headers");
            let header = |name: &str| {
                h.iter()
                    .find(|x| x.key == name)
                    .and_then(|x| x.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            };
            assert_eq!(header("source_topic"), topic);
            assert!(header("source_offset").parse::<i64>().is_ok());
            assert!(header("source_partition").parse::<i32>().is_ok());
            if m.key() == Some(b"gw-06".as_slice()) {
                let own: Vec<(&str, Option<&[u8]>)> =
                    h.iter().take(2).map(|x| (x.key, x.value)).collect();
                assert_eq!(
                    own,
                    [("trace", Some(b"t-1".as_slice())), ("empty", None)],
                    "the message's own headers come first, as they were"
                );
            }
            seen.push((
                String::from_utf8_lossy(m.key().unwrap()).into_owned(),
                String::from_utf8_lossy(m.payload().unwrap()).into_owned(),
                header("reason"),
            ));
        }
        seen.len() >= dead_letters
    });
    seen.sort();
    let mut want: Vec<(String, String, String)> = GARBAGE
        .iter()
        .map(|(k, v, r)| (k.to_string(), v.to_string(), r.to_string()))
        .chain([(
            "gw-06".to_string(),
            "{\"type\":".to_string(),
            "invalid_json".to_string(),
        )])
        .collect();
    want.sort();
    assert_eq!(seen, want);
    svc.stop().unwrap();

    // A restart with the same group reads only what came after its commits.
    let more: Vec<(String, String)> = story("2020-03-25", 60, 3).into_iter().take(400).collect();
    produce(brokers, &topic, &more);
    let svc = Service::start(config(brokers, &topic, &group), None);
    svc.wait_for_messages(more.len() as u64, Duration::from_secs(120));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        svc.metric("gatewatch_kafka_messages_total"),
        more.len() as f64,
        "a restarted consumer must not re-read committed messages"
    );
    assert_eq!(
        svc.sql_csv("SELECT count(*) AS n FROM events"),
        format!("n\n{}\n", more.len())
    );
    svc.stop().unwrap();
}

#[test]
fn run_names_a_missing_topic_and_exits() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_gatewatch"))
        .args([
            "run",
            "--brokers",
            tansu(),
            "--topic",
            "no-such-topic-here",
            "--http",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        e.contains("topic \"no-such-topic-here\" does not exist"),
        "{e}"
    );
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
}

#[test]
fn simulate_produces_the_story_to_a_topic() {
    let brokers = tansu();
    let topic = unique("sim");
    create_topic(brokers, &topic, 2);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_gatewatch"))
        .args([
            "simulate",
            "--users",
            "20",
            "--start",
            "2020-03-09",
            "--brokers",
            brokers,
            "--topic",
            &topic,
        ])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{e}");
    let n: u64 = e.split_whitespace().nth(2).unwrap().parse().unwrap();
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("sim-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..2 {
        tpl.add_partition_offset(&topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut read = 0u64;
    wait_until(
        Duration::from_secs(60),
        &format!("{n} simulated events"),
        || {
            while let Some(m) = c.poll(Duration::from_millis(100)) {
                let m = m.unwrap();
                let key = String::from_utf8_lossy(m.key().expect("keyed by server")).into_owned();
                let payload = String::from_utf8_lossy(m.payload().unwrap()).into_owned();
                assert!(
                    payload.contains(&format!("\"server\":\"{key}\"")),
                    "key {key} for {payload}"
                );
                read += 1;
            }
            read >= n
        },
    );
    assert_eq!(read, n);
}
