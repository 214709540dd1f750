//! The scenario generator: deterministic synthetic gateway traffic as NDJSON.
//!
//! Owns: the `march-2020` story. A 150-seat pilot on 6 servers; the week of 9 March ramps to
//! 400–450 users; from 17 March 600–700 users, most connecting between 08:00 and 09:30 (UTC), so
//! servers fill, connects are rejected and retried, and `setup_ms`/`rtt_ms` climb with load;
//! a few percent of token failures; spare servers gw-07/08 on 19 March; gw-04 crashes on the
//! morning of 18 March and gw-06 on 24 March; Customer Care (110 more users) on softphones (with jitter) from 23 March; gw-09/10 and new
//! recruits in April. Every event has an `id`; output is sorted by time. It is a simulation, not
//! a model of any real bank: the numbers are chosen to make the contention visible.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufWriter, Write};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use crate::event::{format_rfc3339_ms, parse_rfc3339_ms, InputFormat};

pub mod syslog;

/// SplitMix64: small, fast, and the same on every platform.
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.f64().max(1e-12);
        let v = self.f64();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// One day, in ms.
pub const DAY: i64 = 86_400_000;
const MIN: i64 = 60_000;
const SITES: [&str; 4] = ["gland", "zurich", "geneva", "lausanne"];
const OSES: [(&str, f64); 5] = [
    ("windows-10", 0.55),
    ("windows-7", 0.2),
    ("macos", 0.15),
    ("ubuntu-18.04", 0.07),
    ("ios", 0.03),
];

fn day_of(date: &str) -> i64 {
    parse_rfc3339_ms(&format!("{date}T00:00:00Z")).expect("valid date") / DAY
}

/// Who works and on what, on a given day.
struct DayPlan {
    users: usize,
    servers: Vec<(String, u32)>,
    softphone_share: f64,
    storm: bool,
}

fn plan(day: i64) -> DayPlan {
    let d = |s: &str| day_of(s);
    let mut servers: Vec<(String, u32)> = (1..=6).map(|i| (format!("gw-{i:02}"), 25)).collect();
    let users;
    if day < d("2020-03-09") {
        users = 150;
    } else if day < d("2020-03-17") {
        users = 300 + ((day - d("2020-03-09")) * 25).min(150) as usize;
        servers.iter_mut().for_each(|s| s.1 = 80);
    } else {
        // Customer Care (about 110 agents) joins from 23 March; recruits keep coming in April.
        users = if day < d("2020-03-23") {
            680
        } else if day < d("2020-04-01") {
            790
        } else {
            790 + ((day - d("2020-04-01")) * 3).min(60) as usize
        };
        servers.iter_mut().for_each(|s| s.1 = 100);
        if day >= d("2020-03-19") {
            servers.push(("gw-07".into(), 100));
            servers.push(("gw-08".into(), 100));
        }
        if day >= d("2020-04-02") {
            servers.push(("gw-09".into(), 100));
            servers.push(("gw-10".into(), 100));
        }
    }
    DayPlan {
        users,
        servers,
        softphone_share: if day >= d("2020-03-23") { 0.15 } else { 0.0 },
        storm: day >= d("2020-03-17"),
    }
}

/// Where [`simulate`] writes.
#[derive(Debug, Clone)]
pub enum Target {
    /// NDJSON into this file.
    File(std::path::PathBuf),
    /// Produce to this topic (key: the server id).
    Kafka {
        /// Bootstrap servers.
        brokers: String,
        /// Topic.
        topic: String,
    },
}

/// Plays `plan` into `target`; returns the number of events written.
pub fn simulate(plan: &Playback, target: &Target) -> anyhow::Result<u64> {
    let stop = AtomicBool::new(false);
    match target {
        Target::File(path) => {
            let f = File::create(path).with_context(|| {
                format!(
                    "cannot create {}; check that its directory exists",
                    path.display()
                )
            })?;
            let mut sink = FileSink {
                out: BufWriter::with_capacity(1 << 20, f),
                paced: plan.speed > 0.0,
            };
            let n = play(plan, &mut sink, &stop)?;
            sink.out.flush()?;
            Ok(n)
        }
        Target::Kafka { brokers, topic } => {
            let mut sink = KafkaSink::new(brokers, topic, &Default::default())?;
            let n = play(plan, &mut sink, &stop)?;
            sink.finish()?;
            Ok(n)
        }
    }
}

/// What to play and how fast.
#[derive(Debug, Clone)]
pub struct Playback {
    /// First day, in days since 1970-01-01.
    pub start_day: i64,
    /// Days to play.
    pub days: u32,
    /// Seed.
    pub seed: u64,
    /// Scale to this many users.
    pub users: Option<u32>,
    /// Event-time seconds per wall-clock second; 0 = as fast as possible.
    pub speed: f64,
    /// Events before this event time go out at full speed; pacing starts there.
    pub fast_until: Option<i64>,
    /// How the story is written: gatewatch's JSON, or a gateway vendor's syslog
    /// ([`syslog::VendorWriter`]).
    pub output: InputFormat,
}

/// Where simulated events go.
pub trait SimSink {
    /// Sends one event; `server` is its Kafka key.
    fn send(&mut self, server: &str, line: &str) -> anyhow::Result<()>;
    /// Makes what was sent visible (called when pacing waits).
    fn flush(&mut self) -> anyhow::Result<()>;
}

struct FileSink {
    out: BufWriter<File>,
    paced: bool,
}

impl SimSink for FileSink {
    fn send(&mut self, _server: &str, line: &str) -> anyhow::Result<()> {
        self.out.write_all(line.as_bytes())?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        if self.paced {
            self.out.flush()?;
        }
        Ok(())
    }
}

/// Counts what the broker refused.
struct SimProducerContext {
    failed: AtomicU64,
}

impl ClientContext for SimProducerContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32) && fac != "CONFWARN" {
            tracing::warn!(%fac, "librdkafka (simulator): {message}");
        }
    }
}

impl ProducerContext for SimProducerContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            if self.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::error!(error = %e, "The simulator's events are not being delivered.");
            }
        }
    }
}

/// Produces to a Kafka topic, keyed by server so each server's events stay in order.
pub struct KafkaSink {
    producer: ThreadedProducer<SimProducerContext>,
    topic: String,
    brokers: String,
}

impl KafkaSink {
    /// Connects and checks that `topic` exists.
    pub fn new(
        brokers: &str,
        topic: &str,
        properties: &std::collections::BTreeMap<String, String>,
    ) -> anyhow::Result<KafkaSink> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", brokers)
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "500000")
            .set("enable.idempotence", "true");
        for (k, v) in properties {
            c.set(k, v);
        }
        let producer: ThreadedProducer<SimProducerContext> = c
            .create_with_context(SimProducerContext {
                failed: AtomicU64::new(0),
            })
            .with_context(|| format!("cannot create a Kafka producer for {brokers}"))?;
        let md = producer
            .client()
            .fetch_metadata(None, Duration::from_secs(10))
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot reach Kafka at {brokers} ({e}); check --brokers and that the broker is running"
                )
            })?;
        let exists = md
            .topics()
            .iter()
            .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
        if !exists {
            anyhow::bail!(
                "topic {topic:?} does not exist on {brokers}; create it first (several partitions let consumers share the work)"
            );
        }
        Ok(KafkaSink {
            producer,
            topic: topic.to_string(),
            brokers: brokers.to_string(),
        })
    }

    /// Waits for every event to be delivered; errors if any was refused.
    pub fn finish(self) -> anyhow::Result<()> {
        while self.producer.in_flight_count() > 0 {
            if self.producer.flush(Duration::from_secs(30)).is_err() {
                tracing::warn!(brokers = %self.brokers, "Still waiting for Kafka to accept the simulator's events.");
            }
        }
        let failed = self.producer.context().failed.load(Ordering::Relaxed);
        if failed > 0 {
            anyhow::bail!(
                "{failed} events were not delivered to {} on {}; see the log above",
                self.topic,
                self.brokers
            );
        }
        Ok(())
    }
}

impl SimSink for KafkaSink {
    fn send(&mut self, server: &str, line: &str) -> anyhow::Result<()> {
        let mut record = BaseRecord::to(&self.topic).key(server).payload(line);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((e, _)) => anyhow::bail!("cannot produce to {}: {e}", self.topic),
            }
        }
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Plays `plan` into `sink`, pacing event time if asked, until done or `stop`. Returns the
/// number of events sent.
pub fn play(plan: &Playback, sink: &mut dyn SimSink, stop: &AtomicBool) -> anyhow::Result<u64> {
    let mut n = 0u64;
    // (wall clock, event time) where pacing starts.
    let mut anchor: Option<(Instant, i64)> = None;
    let mut vendor = plan
        .output
        .is_syslog()
        .then(|| syslog::VendorWriter::new(plan.output));
    let mut lines = Vec::new();
    for d in 0..plan.days as i64 {
        let day = simulate_day(plan.start_day + d, plan.seed, plan.users);
        for e in &day.events {
            if plan.speed > 0.0 && plan.fast_until.is_none_or(|f| e.ts >= f) {
                let (wall0, ts0) = *anchor.get_or_insert((Instant::now(), e.ts));
                let due =
                    wall0 + Duration::from_secs_f64((e.ts - ts0) as f64 / 1000.0 / plan.speed);
                let mut flushed = false;
                loop {
                    if stop.load(Ordering::Relaxed) {
                        return Ok(n);
                    }
                    let now = Instant::now();
                    if now >= due {
                        break;
                    }
                    if !flushed {
                        sink.flush()?;
                        flushed = true;
                    }
                    std::thread::sleep((due - now).min(Duration::from_millis(200)));
                }
            } else if n.is_multiple_of(4096) && stop.load(Ordering::Relaxed) {
                return Ok(n);
            }
            match vendor.as_mut() {
                Some(v) => {
                    lines.clear();
                    v.render(&e.line, &mut lines);
                    for line in &lines {
                        sink.send(&day.servers[e.server as usize], line)?;
                    }
                }
                None => sink.send(&day.servers[e.server as usize], &e.line)?,
            }
            n += 1;
        }
    }
    sink.flush()?;
    Ok(n)
}

/// One simulated event: its time, the index of its server in [`Day::servers`], its JSON.
pub struct SimEvent {
    /// Event time, epoch ms.
    pub ts: i64,
    /// Index into [`Day::servers`] (the Kafka key).
    pub server: u16,
    /// The event as one JSON object.
    pub line: String,
}

/// One simulated day: servers and events sorted by time.
pub struct Day {
    /// Server ids.
    pub servers: Vec<String>,
    /// Events in time order.
    pub events: Vec<SimEvent>,
}

/// One day of events, sorted by time, written as NDJSON. Returns the count.
pub fn generate_day(
    day: i64,
    seed: u64,
    users: Option<u32>,
    out: &mut dyn Write,
) -> anyhow::Result<u64> {
    let d = simulate_day(day, seed, users);
    for e in &d.events {
        out.write_all(e.line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    Ok(d.events.len() as u64)
}

/// The events of day `day` (days since 1970-01-01) for `seed`, scaled to `users` if given.
pub fn simulate_day(day: i64, seed: u64, users: Option<u32>) -> Day {
    let mut rng = Rng::new(seed.wrapping_mul(1_000_003).wrapping_add(day as u64));
    let scale = |mut p: DayPlan| {
        if let Some(u) = users {
            let f = u as f64 / p.users as f64;
            p.users = u as usize;
            p.servers
                .iter_mut()
                .for_each(|s| s.1 = ((s.1 as f64 * f).floor() as u32).max(1));
        }
        p
    };
    let p = scale(plan(day));
    let t0 = day * DAY;
    let mut evs: Vec<SimEvent> = Vec::with_capacity(p.users * 500);
    let mut id = 0u64;
    let mut next_id = || {
        id += 1;
        format!("{seed:x}-{day}-{id}")
    };
    let ts_str = |t: i64| format_rfc3339_ms(t);

    // Servers announce themselves at midnight; spares come up at 10:00 on their first day.
    let prev = scale(plan(day - 1));
    for (si, (name, cap)) in p.servers.iter().enumerate() {
        let new_today = !prev.servers.iter().any(|(n, _)| n == name) && day > day_of("2020-03-17");
        let t = if new_today { t0 + 10 * 60 * MIN } else { t0 };
        evs.push(SimEvent {
            ts: t,
            server: si as u16,
            line: format!(r#"{{"type":"server","ts":"{}","server":"{name}","capacity":{cap},"state":"up","id":"{}"}}"#, ts_str(t), next_id()),
        });
    }
    // Bad mornings: a server crashes mid-storm and comes back a few minutes later.
    let crash = [
        ("2020-03-18", "gw-04", 9 * 60 + 12, 9 * 60 + 25),
        ("2020-03-24", "gw-06", 8 * 60 + 47, 8 * 60 + 55),
    ]
    .into_iter()
    .find(|c| day_of(c.0) == day)
    .map(|(_, srv, down, up)| (srv, t0 + down * MIN, t0 + up * MIN));
    if let Some((srv, down, up)) = crash {
        let si = p.servers.iter().position(|s| s.0 == srv).unwrap_or(0) as u16;
        evs.push(SimEvent {
            ts: down,
            server: si,
            line: format!(
                r#"{{"type":"server","ts":"{}","server":"{srv}","state":"down","id":"{}"}}"#,
                ts_str(down),
                next_id()
            ),
        });
        evs.push(SimEvent {
            ts: up,
            server: si,
            line: format!(
                r#"{{"type":"server","ts":"{}","server":"{srv}","state":"up","id":"{}"}}"#,
                ts_str(up),
                next_id()
            ),
        });
    }

    // Connection attempts, processed in time order against server capacity.
    let weekday = (day + 4).rem_euclid(7) < 5; // 1970-01-01 was a Thursday
    let mut attempts: BinaryHeap<Reverse<(i64, usize, u32)>> = BinaryHeap::new();
    struct User {
        name: String,
        site: &'static str,
        os: &'static str,
        app: &'static str,
        work_ms: i64,
    }
    let mut users = Vec::with_capacity(p.users);
    for u in 0..p.users {
        if !weekday && rng.f64() > 0.05 {
            continue;
        }
        if rng.f64() < 0.04 {
            continue; // off sick or on leave
        }
        let site = SITES[(u * 7 + 3) % SITES.len()];
        let mut r = rng.f64();
        let os = OSES
            .iter()
            .find(|(_, w)| {
                r -= w;
                r < 0.0
            })
            .map_or("windows-10", |o| o.0);
        let app = if rng.f64() < p.softphone_share {
            "softphone"
        } else if rng.f64() < 0.2 {
            "vdi"
        } else {
            "vpn"
        };
        let arrive = if p.storm && rng.f64() < 0.8 {
            8.5 * 60.0 + rng.normal() * 22.0
        } else {
            7.0 * 60.0 + rng.f64() * 4.0 * 60.0
        };
        let arrive = t0
            + (arrive.clamp(5.0 * 60.0, 18.0 * 60.0) * MIN as f64) as i64
            + rng.below(60_000) as i64;
        let work_ms = ((7.5 + rng.normal() * 1.0).clamp(2.0, 11.0) * 60.0 * MIN as f64) as i64;
        attempts.push(Reverse((arrive, users.len(), 0)));
        users.push(User {
            name: format!("u{u:04}"),
            site,
            os,
            app,
            work_ms,
        });
    }
    let mut active: Vec<BinaryHeap<Reverse<i64>>> =
        p.servers.iter().map(|_| BinaryHeap::new()).collect();
    let mut rr = rng.below(p.servers.len() as u64) as usize;
    let mut session_no = 0u64;
    while let Some(Reverse((t, ui, tries))) = attempts.pop() {
        let user = &users[ui];
        // DNS round robin, skipping servers not yet up or crashed.
        let mut si = rr % p.servers.len();
        rr += 1;
        for _ in 0..p.servers.len() {
            let (name, _) = &p.servers[si];
            let up_from =
                if !prev.servers.iter().any(|(n, _)| n == name) && day > day_of("2020-03-17") {
                    t0 + 10 * 60 * MIN
                } else {
                    t0
                };
            let crashed = crash.is_some_and(|(s, d, u)| s == name && t >= d && t < u);
            if t >= up_from && !crashed {
                break;
            }
            si = (si + 1) % p.servers.len();
        }
        let (server, cap) = (&p.servers[si].0, p.servers[si].1);
        while active[si].peek().is_some_and(|Reverse(end)| *end <= t) {
            active[si].pop();
        }
        let load = active[si].len() as f64 / cap as f64;
        if rng.f64() < 0.03 {
            let reason = ["bad_otp", "bad_otp", "expired_token", "locked"][rng.below(4) as usize];
            evs.push(SimEvent { ts: t, server: si as u16, line: format!(r#"{{"type":"auth_fail","ts":"{}","server":"{server}","user":"{}","site":"{}","reason":"{reason}","id":"{}"}}"#, ts_str(t), user.name, user.site, next_id()) });
            if tries < 5 {
                attempts.push(Reverse((
                    t + 20_000 + rng.below(60_000) as i64,
                    ui,
                    tries + 1,
                )));
            }
            continue;
        }
        if active[si].len() as u32 >= cap {
            evs.push(SimEvent { ts: t, server: si as u16, line: format!(r#"{{"type":"reject","ts":"{}","server":"{server}","user":"{}","site":"{}","reason":"capacity","id":"{}"}}"#, ts_str(t), user.name, user.site, next_id()) });
            if tries < 30 {
                attempts.push(Reverse((
                    t + 30_000 + rng.below(90_000) as i64,
                    ui,
                    tries + 1,
                )));
            }
            continue;
        }
        session_no += 1;
        let sid = format!("{server}-{day}-{session_no}");
        let setup = 350.0 + rng.f64() * 250.0 + 4000.0 * load.powi(3) * (0.5 + rng.f64());
        let mut end = t + user.work_ms;
        let mut reason = if rng.f64() < 0.9 {
            "user"
        } else if rng.f64() < 0.5 {
            "idle"
        } else {
            "error"
        };
        let mut ended_by_crash = false;
        if let Some((s, d, _)) = crash {
            if s == server && t < d && end > d {
                end = d;
                ended_by_crash = true;
                // The user comes back once the server is gone from rotation.
                attempts.push(Reverse((
                    d + 30_000 + rng.below(120_000) as i64,
                    ui,
                    tries + 1,
                )));
            }
        }
        active[si].push(Reverse(end));
        evs.push(SimEvent { ts: t, server: si as u16, line: format!(r#"{{"type":"connect","ts":"{}","server":"{server}","session":"{sid}","user":"{}","site":"{}","os":"{}","app":"{}","setup_ms":{setup:.1},"id":"{}"}}"#, ts_str(t), user.name, user.site, user.os, user.app, next_id()) });
        // A latency sample about once a minute.
        let base_rtt = 18.0 + (ui % 4) as f64 * 6.0;
        let mut s = t + 20_000 + rng.below(40_000) as i64;
        while s < end {
            let busy = if p.storm && (s - t0) > 8 * 60 * MIN && (s - t0) < 10 * 60 * MIN {
                1.0
            } else {
                0.4
            };
            let rtt = base_rtt
                + rng.f64() * 8.0
                + 90.0 * (load * busy).powi(4) * rng.f64()
                + if rng.f64() < 0.01 { 150.0 } else { 0.0 };
            let extra = if user.app == "softphone" {
                format!(
                    r#","jitter_ms":{:.1},"loss_pct":{:.2}"#,
                    2.0 + rng.f64() * 6.0 + 25.0 * (load * busy).powi(4),
                    rng.f64() * 0.5 * busy
                )
            } else {
                String::new()
            };
            evs.push(SimEvent { ts: s, server: si as u16, line: format!(r#"{{"type":"latency","ts":"{}","server":"{server}","session":"{sid}","rtt_ms":{rtt:.1}{extra},"id":"{}"}}"#, ts_str(s), next_id()) });
            s += 50_000 + rng.below(20_000) as i64;
        }
        if !ended_by_crash {
            if rng.f64() < 0.02 {
                reason = "error";
            }
            let bytes_in = 5_000_000 + rng.below(400_000_000);
            evs.push(SimEvent { ts: end, server: si as u16, line: format!(r#"{{"type":"disconnect","ts":"{}","server":"{server}","session":"{sid}","reason":"{reason}","bytes_in":{bytes_in},"bytes_out":{},"id":"{}"}}"#, ts_str(end), bytes_in / 4, next_id()) });
        }
    }
    evs.sort_by_key(|e| e.ts);
    Day {
        servers: p.servers.into_iter().map(|s| s.0).collect(),
        events: evs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Vec<String>);

    impl SimSink for Collect {
        fn send(&mut self, _server: &str, line: &str) -> anyhow::Result<()> {
            self.0.push(line.to_string());
            Ok(())
        }
        fn flush(&mut self) -> anyhow::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn plays_the_night_at_once_then_paces_until_stopped() {
        let day = day_of("2020-03-10");
        let seven = day * DAY + 7 * 3_600_000;
        let before = simulate_day(day, 3, Some(50))
            .events
            .iter()
            .filter(|e| e.ts < seven)
            .count();
        let plan = Playback {
            start_day: day,
            days: 1,
            seed: 3,
            users: Some(50),
            speed: 1.0, // real time: the morning would take hours
            fast_until: Some(seven),
            output: Default::default(),
        };
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopper = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                stop.store(true, Ordering::Relaxed);
            })
        };
        let mut sink = Collect(Vec::new());
        let n = play(&plan, &mut sink, &stop).unwrap() as usize;
        stopper.join().unwrap();
        assert_eq!(n, sink.0.len());
        assert!(
            n >= before && n < before + 50,
            "{n} sent, {before} before 07:00"
        );
    }

    #[test]
    fn deterministic_and_decodable() {
        let day = day_of("2020-03-18");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let n = generate_day(day, 7, None, &mut a).unwrap();
        generate_day(day, 7, None, &mut b).unwrap();
        assert_eq!(a, b);
        assert!(n > 100_000, "a storm day has {n} events");
        for line in a.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            crate::event::decode(line).unwrap();
        }
    }
}
