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
//! gatewatch takes its messages in batches through librdkafka's C API
//! (`rd_kafka_consume_batch_queue`), which the rdkafka crate does not offer. For comparison each
//! round also times (c) a bare reader doing the same: partitions assigned by hand (no group
//! rebalance to serve), every message taken in batches from the consumer queue, touched and
//! freed. The target is (b) / (a); (b) / (c) is printed beside it.
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
    create_topic(&brokers, &topic, 4);

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
        output: Default::default(),
    };
    let n = sim::play(&playback, &mut sink, &AtomicBool::new(false)).unwrap();
    sink.finish().unwrap();
    println!(
        "produced {n} events ({days} days of the story) to {topic} in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let mut bare = Vec::new();
    let mut ours = Vec::new();
    let mut batched = Vec::new();
    for round in 0..rounds {
        // Alternate who goes first, so neither always reads a colder broker.
        let (b, g) = if round % 2 == 1 {
            let g = gatewatch_consumer(&brokers, &topic, n, round);
            (bare_consumer(&brokers, &topic, n, round), g)
        } else {
            let b = bare_consumer(&brokers, &topic, n, round);
            (b, gatewatch_consumer(&brokers, &topic, n, round))
        };
        let c = bare_batch_consumer(&brokers, &topic, n, round);
        println!(
            "round {round}: bare {b:>10.0} msg/s   gatewatch {g:>10.0} events/s   bare batched {c:>10.0} msg/s"
        );
        bare.push(b);
        ours.push(g);
        batched.push(c);
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (b, g, c) = (med(&mut bare), med(&mut ours), med(&mut batched));
    println!("median: bare rdkafka consumer {b:.0} msg/s; gatewatch decode+apply+offsets {g:.0} events/s; bare batched reader {c:.0} msg/s");
    println!("ratio gatewatch / bare = {:.2} (target >= 0.7)", g / b);
    println!(
        "ratio gatewatch / bare batched reader = {:.2} (for comparison)",
        g / c
    );
}

/// Reads all `n` messages in batches of up to `MAX_BATCH` through librdkafka's C API, as
/// gatewatch does, touching each payload; returns messages per second.
fn bare_batch_consumer(brokers: &str, topic: &str, n: u64, round: usize) -> f64 {
    use rdkafka::bindings as rdsys;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set(
            "group.id",
            format!("batched-{}-{round}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning)
            .unwrap();
    }
    // Assigned by hand: no rebalance op ever reaches the queue read below.
    consumer.assign(&tpl).unwrap();
    let rk = consumer.client().native_ptr();
    // SAFETY: a live client; the queue handle is released before the consumer is dropped.
    let queue = unsafe { rdsys::rd_kafka_queue_get_consumer(rk) };
    assert!(!queue.is_null());
    let mut slots: Vec<*mut rdsys::rd_kafka_message_t> = Vec::with_capacity(MAX_BATCH);
    let (mut read, mut bytes) = (0u64, 0usize);
    let mut clock: Option<(Instant, u64)> = None;
    while read < n {
        // SAFETY: room for MAX_BATCH pointers; librdkafka fills the first `got`, each
        // destroyed once after it is read.
        unsafe {
            let got = rdsys::rd_kafka_consume_batch_queue(queue, 20, slots.as_mut_ptr(), MAX_BATCH);
            for i in 0..usize::try_from(got).unwrap_or(0) {
                let m = *slots.as_ptr().add(i);
                assert_eq!(
                    (*m).err,
                    rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR
                );
                bytes += (*m).len;
                read += 1;
                rdsys::rd_kafka_message_destroy(m);
            }
        }
        if clock.is_none() && read > 0 {
            clock = Some((Instant::now(), read));
        }
    }
    // SAFETY: obtained above, released once.
    unsafe { rdsys::rd_kafka_queue_destroy(queue) };
    let (start, before) = clock.expect("some messages");
    std::hint::black_box(bytes);
    (n - before) as f64 / start.elapsed().as_secs_f64()
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
            let input = gatewatch::config::InputConfig::default();
            kafka::consume(
                &cfg,
                &brokers,
                status,
                &stop,
                Default::default(),
                input,
                |polled| {
                    let (batch, rejects) = (polled.batch, polled.rejects);
                    let now = Instant::now();
                    let mut e = engine.lock().unwrap();
                    for &r in rejects {
                        e.count_rejected(r, 1);
                    }
                    let late = e.apply_view(batch.clone()).rejected_rows;
                    let rows = (batch.num_rows() + rejects.len()) as u64;
                    let mut c = clock.lock().unwrap();
                    // The first batch was polled before the clock started: do not count it.
                    c.0.get_or_insert((now, rows));
                    seen += rows;
                    if seen >= n {
                        c.1.get_or_insert_with(Instant::now);
                    }
                    late
                },
            )
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
