//! Ingest rate of the live service while a runaway query runs, against the same service idle.
//!
//! Produces the simulator's story to a fresh 4-partition topic, then runs the whole service
//! (`app::service::serve`: Kafka consumer, engine, HTTP) in this process, each round in a fresh
//! consumer group from the earliest offset. In a "runaway" round a client posts a cross join
//! over `events` to `POST /api/sql` again and again (each one is stopped by `http.query_timeout`,
//! 2 s here) for as long as ingest runs; in a "quiet" round nobody queries. The rate is measured
//! from `gatewatch_kafka_messages_total` between 10 % and 90 % of the topic, so group joins and
//! the tail are not timed. Rounds alternate; prints every round, the medians and their ratio.
//!
//! Run: `bash benches/query_isolation.sh [DAYS]` (starts tansu), or with
//! `GATEWATCH_BENCH_BROKERS=host:port cargo bench --bench query_isolation`. Also
//! `GATEWATCH_BENCH_DAYS` (default 12) and `GATEWATCH_BENCH_ROUNDS` (5).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatewatch::http_client::{request, Url};
use gatewatch::sim::{self, KafkaSink, Playback};

const RUNAWAY: &str =
    "SELECT count(*) FROM events a, events b, events c WHERE a.server <> c.server";

mod common;
use common::{config, create_topic, Service};

fn main() {
    let brokers = std::env::var("GATEWATCH_BENCH_BROKERS")
        .expect("set GATEWATCH_BENCH_BROKERS, or run benches/query_isolation.sh");
    let env_num = |k: &str, d: u32| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let days = env_num("GATEWATCH_BENCH_DAYS", 12);
    let rounds = env_num("GATEWATCH_BENCH_ROUNDS", 5);
    let topic = format!("isolation-{}", std::process::id());
    create_topic(&brokers, &topic, 4);
    let mut sink = KafkaSink::new(&brokers, &topic, &Default::default()).unwrap();
    let playback = Playback {
        start_day: gatewatch::event::parse_rfc3339_ms("2020-03-16T00:00:00Z").unwrap() / 86_400_000,
        days,
        seed: 1,
        users: None,
        speed: 0.0,
        fast_until: None,
        output: Default::default(),
    };
    let n = sim::play(&playback, &mut sink, &AtomicBool::new(false)).unwrap();
    sink.finish().unwrap();
    println!("produced {n} events ({days} days of the story) to {topic}");

    let (mut quiet, mut runaway) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for with_query in [round % 2 == 1, round % 2 == 0] {
            let (rate, queries) = one_round(&brokers, &topic, n, with_query, round);
            if with_query {
                println!("round {round}: runaway queries: {rate:>10.0} events/s ({queries} queries stopped by the timeout)");
                runaway.push(rate);
            } else {
                println!("round {round}: quiet:           {rate:>10.0} events/s");
                quiet.push(rate);
            }
        }
    }
    let (q, r) = (median(&mut quiet), median(&mut runaway));
    println!(
        "median ingest: quiet {q:.0} events/s, during runaway queries {r:.0} events/s; ratio {:.2} (target >= 0.80)",
        r / q
    );
}

/// One service from the earliest offset; returns (events/s between 10 % and 90 %, queries run).
fn one_round(brokers: &str, topic: &str, n: u64, with_query: bool, round: u32) -> (f64, u64) {
    let group = format!("isolation-{}-{round}-{with_query}", std::process::id());
    let mut cfg = config(brokers, topic, &group);
    cfg.http.query_timeout_ms = 2_000;
    let service = Service::start(cfg, None);
    let url = Url::parse(&service.url()).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let queries = Arc::new(AtomicU64::new(0));
    let client = with_query.then(|| {
        let (url, done, queries) = (url.clone(), done.clone(), queries.clone());
        std::thread::spawn(move || {
            // From the first events on (a cross join of an empty table is instant).
            while consumed_at(&url) == 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
            while !done.load(Ordering::Relaxed) {
                let r = request(
                    &url,
                    "POST",
                    "/api/sql",
                    "application/json",
                    RUNAWAY.as_bytes(),
                    None,
                )
                .unwrap();
                let body = String::from_utf8_lossy(&r.body);
                assert!(
                    body.contains("query_timeout"),
                    "the runaway query should be stopped by the timeout: {} {body}",
                    r.status
                );
                queries.fetch_add(1, Ordering::Relaxed);
            }
        })
    });
    let consumed = || consumed_at(&url);
    let (lo, hi) = (n / 10, n * 9 / 10);
    let mut start = None;
    let rate = loop {
        let c = consumed();
        let now = Instant::now();
        if start.is_none() && c >= lo {
            start = Some((now, c));
        }
        if c >= hi {
            let (t0, c0) = start.unwrap();
            break (c - c0) as f64 / (now - t0).as_secs_f64();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    done.store(true, Ordering::Relaxed);
    if let Some(c) = client {
        c.join().unwrap();
    }
    service.stop().unwrap();
    (rate, queries.load(Ordering::Relaxed))
}

/// Messages the service at `url` has read.
fn consumed_at(url: &Url) -> u64 {
    let r = request(url, "GET", "/metrics", "text/plain", b"", None).unwrap();
    String::from_utf8_lossy(&r.body)
        .lines()
        .find(|l| l.starts_with("gatewatch_kafka_messages_total "))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
