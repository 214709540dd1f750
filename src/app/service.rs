//! `gatewatch run`: the live service. Kafka in (or the embedded cluster plus simulator), one
//! engine, HTTP out, and a shutdown the caller controls.
//!
//! Threads: the Kafka consumer loop runs on its own OS thread (librdkafka's poll is blocking)
//! and applies batches to the engine under its mutex; the embedded cluster and its simulator
//! run on another; axum serves on the tokio runtime and reads snapshots. Shutdown: stop HTTP,
//! stop the consumer (it commits what it applied), then stop the simulator and the cluster.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use rdkafka::mocking::MockCluster;

use crate::alerts::sinks::Sinks;
use crate::alerts::{Evaluator, LiveAlerts};
use crate::checkpoint::{self, Checkpoint, CheckpointStats, Checkpointer};
use crate::cli::RunArgs;
use crate::config::{self, Config};
use crate::event::parse_rfc3339_ms;
use crate::http::{router, ServiceState};
use crate::ingest::kafka::Resume;
use crate::ingest::kafka::{self, KafkaStatus};
use crate::sim::{self, KafkaSink, Playback};
use crate::sql::archive::{ArchiveStats, Archiver};
use crate::state::Engine;
use std::collections::BTreeMap;

/// Partitions of the embedded cluster's topic.
pub const EMBEDDED_PARTITIONS: i32 = 4;
/// The embedded simulator's first day: the first bad morning of the story.
pub const EMBEDDED_START: &str = "2020-03-17";
/// Days the embedded simulator plays.
pub const EMBEDDED_DAYS: u32 = 28;
/// The embedded simulator plays the night at full speed and paces from this time of day (ms),
/// so the login storm starts within a minute of `gatewatch run`.
pub const EMBEDDED_PACE_FROM_MS: i64 = (7 * 60 + 50) * 60_000;

/// How the service gets its events when no brokers are configured.
#[derive(Debug, Clone)]
pub struct Embedded {
    /// Simulator plan (its `speed` is event seconds per wall second).
    pub playback: Playback,
}

impl Embedded {
    /// The default: the story from 17 March, at `speed`.
    pub fn story(speed: f64) -> Embedded {
        let start = parse_rfc3339_ms(&format!("{EMBEDDED_START}T00:00:00Z")).expect("valid date");
        Embedded {
            playback: Playback {
                start_day: start / 86_400_000,
                days: EMBEDDED_DAYS,
                seed: 1,
                users: None,
                speed,
                fast_until: Some(start + EMBEDDED_PACE_FROM_MS),
            },
        }
    }
}

/// What the service listens on, once it does.
#[derive(Debug, Clone)]
pub struct Started {
    /// The HTTP address (the real port when 0 was asked for).
    pub http: SocketAddr,
    /// The brokers consumed from (the embedded cluster's address in embedded mode).
    pub brokers: String,
    /// True when running the embedded cluster and simulator.
    pub embedded: bool,
    /// The checkpoint the state was restored from, and the events it held.
    pub resumed_from: Option<(std::path::PathBuf, u64)>,
}

/// Applies `gatewatch run` flags over the config file: flags win.
pub fn resolve(args: &RunArgs) -> anyhow::Result<Config> {
    let mut cfg = super::load_config(args.config.as_deref())?;
    if let Some(b) = &args.brokers {
        if b.trim().is_empty() {
            anyhow::bail!("--brokers is empty; give host:port[,host:port], or leave it out to run the embedded cluster");
        }
        config::validate_brokers(b).map_err(|m| anyhow::anyhow!("--brokers: {m}"))?;
        cfg.kafka.brokers = Some(b.clone());
    }
    if !args.topic.is_empty() {
        cfg.kafka.topics = config::validate_topics(args.topic.clone())
            .map_err(|m| anyhow::anyhow!("--topic: {m}"))?;
    }
    if let Some(g) = &args.group {
        if g.trim().is_empty() {
            anyhow::bail!("--group is empty; name the consumer group, e.g. gatewatch");
        }
        cfg.kafka.group = g.clone();
    }
    if let Some(h) = &args.http {
        cfg.http.bind = config::parse_bind(h).map_err(|m| anyhow::anyhow!("--http: {m}"))?;
    }
    cfg.http.token_from_env().map_err(anyhow::Error::msg)?;
    if let Some(d) = &args.checkpoint_dir {
        cfg.checkpoint.dir = Some(d.clone());
    }
    if let Some(d) = &args.archive {
        cfg.archive = Some(d.clone());
    }
    if !(args.speed > 0.0 && args.speed.is_finite()) {
        anyhow::bail!(
            "--speed must be a positive factor, such as 60 (an hour of event time per minute)"
        );
    }
    Ok(cfg)
}

/// Runs the service until `shutdown` resolves (or the consumer fails to start).
/// `on_start` is told the bound address before the first request is served.
pub async fn serve(
    cfg: Config,
    embedded: Option<Embedded>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_start: impl FnOnce(&Started),
) -> anyhow::Result<()> {
    exit_when_a_worker_panics();
    // With checkpoints: the newest valid one, and where to resume reading.
    let mut resumed_from = None;
    let (engine, resume, restored_alerts) = match &cfg.checkpoint.dir {
        None => (Engine::new(cfg.engine.clone()), None, Vec::new()),
        Some(dir) => {
            let (dir, ecfg) = (dir.clone(), cfg.engine.clone());
            let shown = dir.display().to_string();
            let (loaded, skipped) =
                tokio::task::spawn_blocking(move || checkpoint::load_newest(&dir, &ecfg))
                    .await
                    .context("loading the checkpoint did not finish")?
                    .with_context(|| {
                        format!("cannot read the checkpoint directory {shown}; check its permissions or pick another with --checkpoint-dir")
                    })?;
            for why in &skipped {
                tracing::error!(checkpoint = %why, "Skipping a damaged checkpoint.");
            }
            match loaded {
                Some(r) => {
                    let positions: BTreeMap<(String, i32), i64> = r
                        .engine
                        .positions()
                        .into_iter()
                        .map(|(t, p, o)| ((t, p), o))
                        .collect();
                    tracing::info!(
                        path = %r.path.display(),
                        partitions = positions.len(),
                        accepted = r.engine.counters().accepted,
                        "Resuming from a checkpoint."
                    );
                    resumed_from = Some((r.path.clone(), r.engine.counters().accepted));
                    (r.engine, Some(Resume { positions }), r.alerts)
                }
                None => {
                    if skipped.is_empty() {
                        tracing::info!(dir = %shown, "No checkpoint yet: reading every partition from its beginning.");
                    } else {
                        tracing::warn!(dir = %shown, "No usable checkpoint: rebuilding the state from the earliest offsets Kafka still holds.");
                    }
                    (
                        Engine::new(cfg.engine.clone()),
                        Some(Resume::default()),
                        Vec::new(),
                    )
                }
            }
        }
    };
    let engine = Arc::new(Mutex::new(engine));
    let evaluator = {
        let (rules, engine_cfg) = (cfg.alerts.rules.clone(), cfg.engine.clone());
        tokio::task::spawn_blocking(move || Evaluator::new(&rules, &engine_cfg))
            .await
            .context("the alert rules check did not finish")??
    };
    let alert_topics: Vec<String> = if evaluator.is_empty() {
        Vec::new()
    } else {
        vec![cfg.alerts.topic.clone()]
    };
    let status = Arc::new(KafkaStatus::default());
    // Two flags: the consumer stops first; the embedded cluster only after the consumer has
    // closed (a consumer closing against a vanished cluster waits for it forever).
    let stop = Arc::new(AtomicBool::new(false));
    let stop_cluster = Arc::new(AtomicBool::new(false));
    // However serve ends (an early error included), the threads it started stop.
    let _stop_guard = StopOnDrop(vec![stop.clone(), stop_cluster.clone()]);

    // Embedded mode: a cluster in this process, fed by the simulator on its own thread.
    let mut sim_thread = None;
    let brokers = match (&cfg.kafka.brokers, embedded.as_ref()) {
        (Some(b), _) => b.clone(),
        (None, None) => anyhow::bail!(
            "no Kafka brokers configured; pass --brokers or set kafka.brokers in the config"
        ),
        (None, Some(emb)) => {
            let (tx, rx) = std::sync::mpsc::channel();
            let topics = cfg.kafka.topics.clone();
            let dlq: Vec<String> = topics
                .iter()
                .map(|t| cfg.kafka.dead_letter_topic_for(t))
                .chain(alert_topics.iter().cloned())
                .collect();
            let stop = stop_cluster.clone();
            let playback = emb.playback.clone();
            sim_thread = Some(
                std::thread::Builder::new()
                    .name("embedded-kafka".into())
                    .spawn(move || embedded_cluster(&topics, &dlq, &playback, &stop, tx))
                    .context("cannot start the embedded Kafka thread")?,
            );
            rx.recv()
                .context("the embedded Kafka cluster did not start")?
                .context("cannot start the embedded Kafka cluster")?
        }
    };

    {
        let (kcfg, brokers, extra) = (cfg.kafka.clone(), brokers.clone(), alert_topics.clone());
        let checked =
            tokio::task::spawn_blocking(move || kafka::check_topics(&kcfg, &brokers, &extra))
                .await
                .context("the topic check did not finish")?;
        if let Err(e) = checked {
            stop.store(true, Ordering::Relaxed);
            return Err(e.into());
        }
    }
    let listener = tokio::net::TcpListener::bind(cfg.http.bind)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} for HTTP; pick a free address with --http or http.bind",
                cfg.http.bind
            )
        })?;
    let http = listener.local_addr().context("no local address")?;
    if !http.ip().is_loopback() && cfg.http.token.is_none() {
        tracing::warn!(
            bind = %http,
            "HTTP listens beyond this machine without a token: anyone who can reach it can read the data; set http.token or GATEWATCH_HTTP_TOKEN."
        );
    }

    let live_alerts = if evaluator.is_empty() {
        None
    } else {
        let sinks = Sinks::new(&cfg.alerts, Some((&cfg.kafka, &brokers)))?;
        let mut live = LiveAlerts::new(evaluator, sinks, cfg.alerts.idle_timeout_ms);
        match live.restore_state(&restored_alerts) {
            Ok(fresh) => {
                for rule in fresh {
                    tracing::info!(
                        rule,
                        "Alert rule changed or new since the checkpoint: its timers start afresh."
                    );
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "The checkpoint's alert timers are unreadable; the rules start afresh.")
            }
        }
        Some(Arc::new(Mutex::new(live)))
    };
    // The alert clock: evaluates when the input is quiet (no batch arrives to drive it).
    let alert_clock = match &live_alerts {
        None => None,
        Some(live) => {
            let (live, engine, stop) = (live.clone(), engine.clone(), stop.clone());
            Some(
                std::thread::Builder::new()
                    .name("alert-clock".into())
                    // Alert rules and archive queries plan SQL here (see sql::nesting).
                    .stack_size(crate::sql::nesting::STACK_BYTES)
                    .spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            std::thread::sleep(ALERT_CLOCK);
                            if let Ok(mut l) = live.try_lock() {
                                l.poll(&engine);
                            }
                        }
                    })
                    .context("cannot start the alert clock thread")?,
            )
        }
    };

    // The archive: sealed hours to Parquet, on a thread of its own.
    let archive_stats = cfg
        .archive
        .as_ref()
        .map(|_| Arc::new(ArchiveStats::default()));
    let archiver = match (&cfg.archive, &archive_stats) {
        (Some(dir), Some(stats)) => {
            let mut a = Archiver::new(dir.clone(), cfg.engine.allowed_lateness_ms, stats.clone());
            let (engine, stop) = (engine.clone(), stop.clone());
            Some(
                std::thread::Builder::new()
                    .name("archiver".into())
                    // Alert rules and archive queries plan SQL here (see sql::nesting).
                    .stack_size(crate::sql::nesting::STACK_BYTES)
                    .spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            a.step(&engine);
                            for _ in 0..20 {
                                if stop.load(Ordering::Relaxed) {
                                    break;
                                }
                                std::thread::sleep(std::time::Duration::from_millis(100));
                            }
                        }
                    })
                    .context("cannot start the archiver thread")?,
            )
        }
        _ => None,
    };
    let checkpoint_stats = cfg
        .checkpoint
        .dir
        .as_ref()
        .map(|_| Arc::new(CheckpointStats::default()));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let consumer = {
        let panic_in_apply = fault_injected("panic-in-apply");
        let live = live_alerts.clone();
        let kcfg = cfg.kafka.clone();
        let brokers = brokers.clone();
        let engine = engine.clone();
        let status = status.clone();
        let stop = stop.clone();
        let mut checkpointer = match (&cfg.checkpoint.dir, &checkpoint_stats) {
            (Some(dir), Some(stats)) => Some(
                Checkpointer::start(
                    dir.clone(),
                    cfg.checkpoint.interval_ms,
                    cfg.checkpoint.keep,
                    stats.clone(),
                )
                .context("cannot start the checkpoint writer")?,
            ),
            _ => None,
        };
        std::thread::Builder::new()
            .name("kafka-ingest".into())
            // Alert rules and archive queries plan SQL here (see sql::nesting).
            .stack_size(crate::sql::nesting::STACK_BYTES)
            .spawn(move || {
                let capture = |engine: &Mutex<Engine>, live: &Option<Arc<Mutex<LiveAlerts>>>| {
                    // Alerts, then engine: the order the evaluator takes them in.
                    let l = live.as_ref().map(|l| l.lock().expect("alerts lock"));
                    let e = engine.lock().expect("engine lock");
                    Checkpoint::capture(&e, l.map(|l| l.save_state()).unwrap_or_default())
                };
                let r = kafka::consume(
                    &kcfg,
                    &brokers,
                    status,
                    &stop,
                    resume,
                    |batch, rejects, positions| {
                        // Between batches: everything before this one is applied, dead-lettered
                        // and its offsets stored, so the checkpoint and its positions agree.
                        if let Some(c) = checkpointer.as_mut().filter(|c| c.due()) {
                            c.take(|| capture(&engine, &live));
                        }
                        if panic_in_apply {
                            panic!("GATEWATCH_FAULT=panic-in-apply");
                        }
                        let late = {
                            let mut e = engine.lock().expect("engine lock");
                            for &r in rejects {
                                e.count_rejected(r, 1);
                            }
                            e.set_wall_clock(wall_clock_ms());
                            let late = e.apply_view(batch.clone()).rejected_rows;
                            e.record_positions(positions.iter().copied());
                            late
                        };
                        // Alerts are evaluated on the ingest path, after the batch (rounds are
                        // rate-limited; if the clock thread is evaluating, it covers this batch).
                        if let Some(l) = &live {
                            if let Ok(mut l) = l.try_lock() {
                                l.poll(&engine);
                            }
                        }
                        late
                    },
                );
                // The consumer has stopped: everything read is applied. One last checkpoint.
                if let Some(c) = checkpointer {
                    c.finish(Some(capture(&engine, &live)));
                }
                let _ = done_tx.send(r);
            })
            .context("cannot start the Kafka consumer thread")?
    };

    on_start(&Started {
        http,
        brokers: brokers.clone(),
        embedded: cfg.kafka.brokers.is_none(),
        resumed_from,
    });
    let state = Arc::new(ServiceState {
        engine,
        kafka: status,
        started: Instant::now(),
        alerts: live_alerts.clone(),
        queries: crate::sql::QueryRunner::new(
            crate::sql::Limits {
                max_rows: cfg.http.max_rows,
                timeout: std::time::Duration::from_millis(cfg.http.query_timeout_ms as u64),
                memory_bytes: cfg.http.query_memory_bytes,
                max_result_bytes: cfg.http.max_result_bytes,
                max_concurrent: cfg.http.max_queries,
            },
            cfg.archive.clone(),
        )
        .context("cannot start the query threads")?,
        archive: archive_stats,
        token: cfg.http.token.clone(),
        bind: http,
        max_body_bytes: cfg.http.max_body_bytes,
        body_timeout: std::time::Duration::from_millis(cfg.http.body_timeout_ms as u64),
        checkpoints: checkpoint_stats,
    });
    let consumer_failed = Arc::new(Mutex::new(None));
    let failed = consumer_failed.clone();
    let limits = crate::http::server::ConnectionLimits {
        max_connections: cfg.http.max_connections,
        header_timeout: std::time::Duration::from_millis(cfg.http.header_timeout_ms as u64),
    };
    let served = crate::http::server::serve(listener, router(state), limits, async move {
        tokio::select! {
            _ = shutdown => {}
            r = done_rx => {
                if let Ok(Err(e)) = r {
                    *failed.lock().expect("not poisoned") = Some(e);
                }
            }
        }
    });
    let served = served.await.context("the HTTP server failed");
    stop.store(true, Ordering::Relaxed);
    // The consumer commits what it applied, then closes (leaves the group). Closing waits for
    // the group coordinator; do not let a dead broker keep the process from exiting.
    let deadline = Instant::now() + CONSUMER_CLOSE_TIMEOUT;
    while !consumer.is_finished() && Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    if consumer.is_finished() {
        let _ = consumer.join();
    } else {
        tracing::warn!(
            "The Kafka consumer did not close within {}s; exiting anyway (applied offsets were already committed).",
            CONSUMER_CLOSE_TIMEOUT.as_secs()
        );
    }
    if let Some(t) = archiver {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    if let Some(t) = alert_clock {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    if let Some(live) = &live_alerts {
        let live = live.clone();
        let _ = tokio::task::spawn_blocking(move || {
            live.lock()
                .expect("not poisoned")
                .flush(std::time::Duration::from_secs(5))
        })
        .await;
    }
    stop_cluster.store(true, Ordering::Relaxed);
    if let Some(t) = sim_thread {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    if let Some(e) = consumer_failed.lock().expect("not poisoned").take() {
        return Err(e.into());
    }
    served
}

/// How often the alert clock looks for due evaluations when no batch arrives.
const ALERT_CLOCK: std::time::Duration = std::time::Duration::from_millis(200);

/// How long shutdown waits for the consumer to leave its group.
const CONSUMER_CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

struct StopOnDrop(Vec<Arc<AtomicBool>>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        for s in &self.0 {
            s.store(true, Ordering::Relaxed);
        }
    }
}

/// Owns the in-process cluster for as long as the service runs: creates the topics, reports the
/// bootstrap address, plays the simulator, then waits for `stop`.
fn embedded_cluster(
    topics: &[String],
    dlq: &[String],
    playback: &Playback,
    stop: &AtomicBool,
    ready: std::sync::mpsc::Sender<anyhow::Result<String>>,
) {
    let setup = || -> anyhow::Result<(MockCluster<'static, _>, String)> {
        let cluster = MockCluster::new(1)?;
        for t in topics {
            cluster.create_topic(t, EMBEDDED_PARTITIONS, 1)?;
        }
        for t in dlq {
            cluster.create_topic(t, 1, 1)?;
        }
        let b = cluster.bootstrap_servers();
        Ok((cluster, b))
    };
    let (cluster, brokers) = match setup() {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(brokers.clone()));
    let topic = &topics[0];
    // The in-process cluster finds a fetch offset by walking every message set it holds, so
    // fewer, larger produce batches keep its cost down over a long run.
    let sim_properties =
        std::collections::BTreeMap::from([("linger.ms".to_string(), "100".to_string())]);
    match KafkaSink::new(&brokers, topic, &sim_properties) {
        Ok(mut sink) => match sim::play(playback, &mut sink, stop) {
            Ok(n) => {
                if let Err(e) = sink.finish() {
                    tracing::error!(error = %e, "The embedded simulator stopped.");
                } else if stop.load(Ordering::Relaxed) {
                    tracing::info!(events = n, "The embedded simulator stopped.");
                } else {
                    tracing::info!(events = n, "The embedded simulator finished its story.");
                }
            }
            Err(e) => tracing::error!(error = %e, "The embedded simulator stopped."),
        },
        Err(e) => tracing::error!(error = %e, "The embedded simulator could not start."),
    }
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(cluster);
}

/// `gatewatch run` from the command line: Ctrl-C or SIGTERM stops it.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut cfg = resolve(&args)?;
    if cfg.kafka.brokers.is_none() && cfg.alerts.rules.is_empty() {
        // The demo should show alerts too: the shipped example rules, unless the config has
        // rules of its own.
        let demo = Config::parse(config::DEMO_RULES, "docker/alert-rules.toml")
            .expect("the shipped rules are valid");
        cfg.alerts.rules = demo.alerts.rules;
        tracing::info!("Embedded mode: using the example alert rules of docker/alert-rules.toml.");
    }
    let embedded = cfg
        .kafka
        .brokers
        .is_none()
        .then(|| Embedded::story(args.speed));
    let rt = super::runtime()?;
    let shutdown = rt.block_on(async { shutdown_signal() })?;
    rt.block_on(serve(cfg, embedded, shutdown, |s| {
        if s.embedded {
            println!(
                "gatewatch: embedded Kafka at {} with the simulator playing {EMBEDDED_START} at {}x from 07:50",
                s.brokers, args.speed
            );
        } else {
            println!("gatewatch: consuming from Kafka at {}", s.brokers);
        }
        if let Some((path, events)) = &s.resumed_from {
            println!(
                "gatewatch: resumed from checkpoint {} ({events} events accepted before it)",
                path.display()
            );
        }
        println!("gatewatch: open http://{}/  (SQL: POST /api/sql, or gatewatch query --url http://{} \"SELECT * FROM servers\")", s.http, s.http);
    }))
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed before this returns, so a signal
/// that arrives while the service is still starting is not lost to the default action.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            tracing::info!("Shutting down.");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("Shutting down.");
        })
    }
}

/// The wall clock, epoch ms (events further ahead of it than `input.max_clock_skew` are
/// `future`).
fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Threads whose panic leaves the service unable to do its job (ingest, apply, alerts,
/// checkpoints, the archive, the embedded cluster): a panic there ends the process.
const CRITICAL_THREADS: [&str; 6] = [
    "kafka-ingest",
    "kafka-apply",
    "alert-clock",
    "archiver",
    "checkpoint-writer",
    "embedded-kafka",
];

/// Exit code of a service that stopped on a bug in one of its threads (EX_SOFTWARE).
pub const EXIT_WORKER_PANICKED: i32 = 70;

/// Installs (once) a panic hook that turns a panic on a critical thread into one log line and
/// an exit with [`EXIT_WORKER_PANICKED`]: a service whose ingest died but whose HTTP side
/// still answers `/healthz` 200 is a zombie no supervisor restarts. Exiting at once (no
/// unwinding, no final checkpoint of state a bug may have half-changed) leaves the newest
/// checkpoint and the committed offsets as they were, so a restart resumes from them.
/// Panics elsewhere (a query thread: DataFusion's, contained by its task) keep the default.
fn exit_when_a_worker_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("");
            if !CRITICAL_THREADS.contains(&name) {
                return previous(info);
            }
            let what = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let line = format!(
                "The {name} thread panicked{at} ({what}); gatewatch exits with status {EXIT_WORKER_PANICKED} so that a supervisor restarts it from its last checkpoint and committed offsets."
            );
            tracing::error!("{line}");
            eprintln!("gatewatch: {line}");
            std::process::exit(EXIT_WORKER_PANICKED);
        }));
    });
}

/// Test hook: `GATEWATCH_FAULT=panic-in-apply` makes the apply step panic on its first batch,
/// so the integration tests can show the service exits instead of lingering as a zombie.
/// Read once at start; nothing else reads it.
fn fault_injected(name: &str) -> bool {
    std::env::var("GATEWATCH_FAULT").is_ok_and(|v| v == name)
}
