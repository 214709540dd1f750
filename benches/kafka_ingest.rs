//! End-to-end Kafka ingest against a bare consumer, in one run, on the same broker and topic.
//!
//! Produces the simulator's story (about 250k events per weekday) to a fresh 4-partition topic,
//! then alternately (a) a bare rdkafka `BaseConsumer` that only reads every message and (b)
//! gatewatch's consumer loop (`ingest::kafka::consume`: decode, apply to the engine, store
//! offsets), each in a fresh consumer group from the earliest offset. Each clock starts once
//! the first batch (up to 8192 messages) is in hand and stops at the last message (bare) or
//! when the last event is applied (gatewatch); the first batch is not counted. So group joins
//! are not timed. Rounds alternate who reads first; prints every round, the medians and the
//! ratio of the medians.
//!
//! Run: `bash benches/kafka_vs_bare.sh [DAYS]` (starts tansu), or with
//! `GATEWATCH_BENCH_BROKERS=host:port cargo bench --bench kafka_ingest`. Also:
//! `GATEWATCH_BENCH_DAYS` (default 4), `GATEWATCH_BENCH_ROUNDS` (3), and
//! `GATEWATCH_BENCH_PROPS="k=v,k=v"` to try librdkafka tunings on gatewatch's consumer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gatewatch::config::KafkaConfig;
use gatewatch::ingest::kafka::{self, KafkaStatus, MAX_BATCH};
use gatewatch::sim::{self, KafkaSink, Playback};
use gatewatch::state::Engine;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Message;

mod common;
use common::create_topic;

fn main() {
    let brokers = std::env::var("GATEWATCH_BENCH_BROKERS")
        .expect("set GATEWATCH_BENCH_BROKERS, or run benches/kafka_vs_bare.sh");
    let days: u32 = std::env::var("GATEWATCH_BENCH_DAYS")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(4);
    let rounds: usize = std::env::var("GATEWATCH_BENCH_ROUNDS")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(3);
    let topic = format!("bench-{}", std::process::id());
    create_topic(&brokers, &topic);

    let t = Instant::now();
    let mut sink = KafkaSink::new(&brokers, &topic, &Default::default()).unwrap();
    let start_day =
        gatewatch::event::parse_rfc3339_ms("2020-03-16T00:00:00Z").unwrap() / 86_400_000;
    let playback = Playback {
        start_day,
        days,
        seed: 1,
        users: None,
        speed: 0.0,
        fast_until: None,
    };
    let n = sim::play(&playback, &mut sink, &AtomicBool::new(false)).unwrap();
    sink.finish().unwrap();
    println!(
        "produced {n} events ({days} days of the story) to {topic} in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let mut bare = Vec::new();
    let mut ours = Vec::new();
    for round in 0..rounds {
        // Alternate who goes first, so neither always reads a colder broker.
        let (b, g) = if round % 2 == 1 {
            let g = gatewatch_consumer(&brokers, &topic, n, round);
            (bare_consumer(&brokers, &topic, n, round), g)
        } else {
            let b = bare_consumer(&brokers, &topic, n, round);
            (b, gatewatch_consumer(&brokers, &topic, n, round))
        };
        println!(
            "round {round}: bare {:>10.0} msg/s   gatewatch {:>10.0} events/s",
            b, g
        );
        bare.push(b);
        ours.push(g);
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (b, g) = (med(&mut bare), med(&mut ours));
    println!("median: bare rdkafka consumer {b:.0} msg/s; gatewatch decode+apply+offsets {g:.0} events/s");
    println!("ratio gatewatch / bare = {:.2} (target >= 0.7)", g / b);
}

fn group_props() -> Vec<(&'static str, &'static str)> {
    vec![
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "500"),
    ]
}

/// Reads all `n` messages and touches each payload; returns messages per second.
fn bare_consumer(brokers: &str, topic: &str, n: u64, round: usize) -> f64 {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("group.id", format!("bare-{}-{round}", std::process::id()))
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    for (k, v) in group_props() {
        c.set(k, v);
    }
    let consumer: BaseConsumer = c.create().unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let (mut read, mut bytes) = (0u64, 0usize);
    let mut clock: Option<(Instant, u64)> = None;
    while read < n {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            bytes += m.payload().map_or(0, |p| p.len());
            read += 1;
            if read == MAX_BATCH as u64 {
                clock = Some((Instant::now(), read));
            }
        }
    }
    let (start, before) = clock.expect("more messages than one batch");
    std::hint::black_box(bytes);
    (n - before) as f64 / start.elapsed().as_secs_f64()
}

/// (start and the events before it, end) of a timed consumer run.
type Clock = (Option<(Instant, u64)>, Option<Instant>);

/// Runs gatewatch's consumer loop into a fresh engine until `n` events are applied; returns
/// events per second.
fn gatewatch_consumer(brokers: &str, topic: &str, n: u64, round: usize) -> f64 {
    let mut cfg = KafkaConfig {
        brokers: Some(brokers.to_string()),
        topics: vec![topic.to_string()],
        group: format!("gatewatch-{}-{round}", std::process::id()),
        ..KafkaConfig::default()
    };
    for (k, v) in group_props() {
        cfg.properties.insert(k.into(), v.into());
    }
    // Extra librdkafka properties for gatewatch's consumer, to try tunings: "k=v,k=v".
    if let Ok(extra) = std::env::var("GATEWATCH_BENCH_PROPS") {
        for kv in extra.split(',').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .expect("GATEWATCH_BENCH_PROPS is k=v,k=v");
            cfg.properties.insert(k.into(), v.into());
        }
    }
    let engine = Arc::new(Mutex::new(Engine::new(Default::default())));
    let status = Arc::new(KafkaStatus::default());
    let stop = Arc::new(AtomicBool::new(false));
    // (start, events before start, end): the clock starts when the first batch has been polled
    // (as the bare consumer's starts after one batch of messages) and stops when the batch
    // holding the last event is applied.
    let clock: Arc<Mutex<Clock>> = Arc::default();
    let worker = {
        let (engine, status, stop, clock) =
            (engine.clone(), status.clone(), stop.clone(), clock.clone());
        let brokers = brokers.to_string();
        std::thread::spawn(move || {
            kafka::check_topics(&cfg, &brokers, &[]).unwrap();
            let mut seen = 0u64;
            kafka::consume(&cfg, &brokers, status, &stop, None, |batch, rejects, _| {
                let now = Instant::now();
                let mut e = engine.lock().unwrap();
                for &r in rejects {
                    e.count_rejected(r, 1);
                }
                let late = e.apply_view(batch.clone()).late_rows;
                let rows = (batch.num_rows() + rejects.len()) as u64;
                let mut c = clock.lock().unwrap();
                // The first batch was polled before the clock started: do not count it.
                c.0.get_or_insert((now, rows));
                seen += rows;
                if seen >= n {
                    c.1.get_or_insert_with(Instant::now);
                }
                late
            })
            .unwrap();
        })
    };
    while clock.lock().unwrap().1.is_none() {
        std::thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Ordering::Relaxed);
    worker.join().unwrap();
    let (start, before) = clock.lock().unwrap().0.unwrap();
    let end = clock.lock().unwrap().1.unwrap();
    let accepted = engine.lock().unwrap().counters().accepted;
    assert_eq!(accepted, n, "every produced event is applied once");
    (n - before) as f64 / (end - start).as_secs_f64()
}
