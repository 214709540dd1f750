//! Event to alert record on the Kafka topic, under 100k events/s, end to end.
//!
//! librdkafka's in-process cluster (the real Kafka protocol over TCP) carries a steady stream
//! of latency samples from 11 servers at `GATEWATCH_BENCH_RATE` events/s (default 100 000),
//! stamped with the wall clock (gw-x among them), into `gatewatch run` (the service, in this process: consumer,
//! engine, evaluator, sinks). One rule watches gw-x: utilisation above 0.9, evaluated every
//! second, no `for`. Every 4 s the bench connects 11 more sessions to gw-x (80 -> 91 of 100)
//! and, 2 s later, disconnects them. For each firing record read back from the alerts topic it
//! prints two latencies:
//! - trigger -> record: from producing the connects to reading the record. Includes waiting
//!   for the evaluation tick (ticks are whole seconds of event time, and a tick is evaluated
//!   once events past it arrive: up to 1 s + allowed_lateness, set to 0 here).
//! - tick -> record: from the moment event time passed the tick that fired (the wall clock, as
//!   events carry wall-clock times) to reading the record: gatewatch's own processing.
//!
//! Run: `cargo bench --bench alert_latency` (GATEWATCH_BENCH_TRIALS, default 10).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gatewatch::config::Config;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::Message;

mod common;
use common::Service;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn env<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GATEWATCH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let rate: u64 = env("GATEWATCH_BENCH_RATE", 100_000);
    let trials: usize = env("GATEWATCH_BENCH_TRIALS", 10);
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("gw.in", 4, 1).unwrap();
    cluster.create_topic("gw.in.dlq", 1, 1).unwrap();
    cluster.create_topic("gw.alerts", 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();

    let toml = format!(
        r#"
[engine]
allowed_lateness = "0s"
[kafka]
brokers = "{brokers}"
topics = ["gw.in"]
group = "bench"
[kafka.properties]
"session.timeout.ms" = "6000"
[http]
bind = "127.0.0.1:0"
[alerts]
topic = "gw.alerts"
[[alerts.rules]]
name = "gw-x-full"
measure = "utilisation"
above = 0.9
every = "1s"
servers = ["gw-x"]
"#
    );
    let cfg = Config::parse(&toml, "bench").unwrap();
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let producer = Arc::new(producer);
    let send = |p: &ThreadedProducer<DefaultProducerContext>, key: &str, line: &str| {
        let mut rec = BaseRecord::to("gw.in").key(key).payload(line);
        loop {
            match p.send(rec) {
                Ok(()) => return,
                Err((_, r)) => {
                    rec = r;
                    p.poll(Duration::from_millis(1));
                }
            }
        }
    };
    let service = Service::start_with_workers(cfg, None, 1);
    eprintln!("service at {}", service.url());

    // Every server streams samples, gw-x too: a server's alerts are evaluated on its own
    // event-time clock.
    let servers: Vec<String> = (1..=10)
        .map(|i| format!("gw-{i:02}"))
        .chain(["gw-x".to_string()])
        .collect();
    // The steady background stream, paced in 10 ms slices.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let background = {
        let (producer, stop, sent, servers) = (
            producer.clone(),
            stop.clone(),
            sent.clone(),
            servers.clone(),
        );
        std::thread::spawn(move || {
            let per_slice = (rate / 100).max(1);
            let start = Instant::now();
            let mut slice = 0u64;
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let ts = now_ms();
                for _ in 0..per_slice {
                    let s = &servers[(n % servers.len() as u64) as usize];
                    let line = format!(
                        r#"{{"type":"latency","ts":{ts},"server":"{s}","session":"{s}-{}","rtt_ms":{}.5,"id":"b{n}"}}"#,
                        n % 50,
                        20 + n % 30
                    );
                    send(&producer, s, &line);
                    n += 1;
                }
                sent.store(n, Ordering::Relaxed);
                slice += 1;
                let due = start + Duration::from_millis(10 * slice);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
        })
    };

    let alerts: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "bench-alerts")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap();
    alerts.subscribe(&["gw.alerts"]).unwrap();
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_secs(5) {
        let _ = alerts.poll(Duration::from_millis(100));
    }

    // gw-x at 80 of 100 (sent once the service has joined its group), plus sessions for the
    // background samples.
    let t0 = now_ms();
    send(
        &producer,
        "gw-x",
        &format!(r#"{{"type":"server","ts":{t0},"server":"gw-x","capacity":100,"state":"up"}}"#),
    );
    for s in &servers {
        for i in 0..if s == "gw-x" { 80 } else { 50 } {
            send(
                &producer,
                s,
                &format!(
                    r#"{{"type":"connect","ts":{t0},"server":"{s}","session":"{s}-{i}","user":"u{i}"}}"#
                ),
            );
        }
    }

    producer.flush(Duration::from_secs(10)).unwrap();
    std::thread::sleep(Duration::from_secs(2));

    let mut trigger_to_record = Vec::new();
    let mut tick_to_record = Vec::new();
    let bench_start = Instant::now();
    let sent_before = sent.load(Ordering::Relaxed);
    for trial in 0..trials {
        let trigger = now_ms();
        for i in 0..11 {
            send(
                &producer,
                "gw-x",
                &format!(
                    r#"{{"type":"connect","ts":{trigger},"server":"gw-x","session":"t{trial}-{i}","user":"x"}}"#
                ),
            );
        }
        producer.flush(Duration::from_secs(1)).ok();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut fired = None;
        while fired.is_none() && Instant::now() < deadline {
            if let Some(Ok(m)) = alerts.poll(Duration::from_millis(5)) {
                let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
                if v["state"] == "firing" {
                    let tick =
                        gatewatch::event::parse_rfc3339_ms(v["ts"].as_str().unwrap()).unwrap();
                    fired = Some((now_ms(), tick));
                }
            }
        }
        let Some((received, tick)) = fired else {
            println!("trial {trial}: no firing record within 10 s");
            continue;
        };
        trigger_to_record.push(received - trigger);
        tick_to_record.push(received - tick);
        println!(
            "trial {trial}: trigger -> record {} ms, tick -> record {} ms",
            received - trigger,
            received - tick
        );
        std::thread::sleep(Duration::from_millis(2000));
        let off = now_ms();
        for i in 0..11 {
            send(
                &producer,
                "gw-x",
                &format!(
                    r#"{{"type":"disconnect","ts":{off},"server":"gw-x","session":"t{trial}-{i}"}}"#
                ),
            );
        }
        std::thread::sleep(Duration::from_millis(2000));
        while alerts.poll(Duration::from_millis(10)).is_some() {}
    }
    let secs = bench_start.elapsed().as_secs_f64();
    let produced = sent.load(Ordering::Relaxed) - sent_before;
    stop.store(true, Ordering::Relaxed);
    background.join().unwrap();
    service.stop().unwrap();
    drop(cluster);

    let summary = |name: &str, v: &mut Vec<i64>| {
        v.sort_unstable();
        if v.is_empty() {
            println!("{name}: no samples");
            return;
        }
        println!(
            "{name}: median {} ms, max {} ms over {} trials",
            v[v.len() / 2],
            v[v.len() - 1],
            v.len()
        );
    };
    println!(
        "background stream: {:.0} events/s offered during the trials",
        produced as f64 / secs
    );
    summary(
        "trigger -> record on the alerts topic",
        &mut trigger_to_record,
    );
    summary(
        "tick passed -> record on the alerts topic",
        &mut tick_to_record,
    );
}
