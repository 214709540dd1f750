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

use crate::alerts::sinks::Sinks;
use crate::alerts::{Evaluator, LiveAlerts};
use crate::checkpoint::{self, Checkpoint, CheckpointStats, Checkpointer};
use crate::cli::RunArgs;
use crate::config::{self, Config};
use crate::http::{router, ServiceState};
use crate::ingest::kafka::Resume;
use crate::ingest::kafka::{self, KafkaStatus};
use crate::sql::archive::{ArchiveStats, Archiver};
use crate::state::Engine;
use std::collections::BTreeMap;

use super::embedded::embedded_cluster;
pub use super::embedded::{
    Embedded, EMBEDDED_DAYS, EMBEDDED_PACE_FROM_MS, EMBEDDED_PARTITIONS, EMBEDDED_START,
};

/// What the service listens on, once it does.
#[derive(Debug, Clone)]
pub struct Started {
    /// The HTTP address (the real port when 0 was asked for).
    pub http: SocketAddr,
    /// The PostgreSQL address (None: off, or the default port was taken).
    pub pg: Option<SocketAddr>,
    /// The brokers consumed from (the embedded cluster's address in embedded mode).
    pub brokers: String,
    /// True when running the embedded cluster and simulator.
    pub embedded: bool,
    /// The checkpoint the state was restored from, and the events it held.
    pub resumed_from: Option<(std::path::PathBuf, u64)>,
    /// In a cluster: this member's id and the state store.
    pub cluster: Option<(String, String)>,
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
    // `--input-format` is the format of the topics named with --topic; without --topic, of
    // the configured topics that do not name one.
    if let Some(f) = args.input_format {
        let format: crate::event::InputFormat = f.into();
        for t in &cfg.kafka.topics {
            if !args.topic.is_empty() || !cfg.kafka.formats.contains_key(t) {
                cfg.kafka.formats.insert(t.clone(), format);
            }
        }
        cfg.kafka.formats.retain(|_, f| f.is_syslog());
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
    if let Some(p) = &args.pg {
        cfg.pg.bind = config::parse_pg_bind(p).map_err(|m| anyhow::anyhow!("--pg: {m}"))?;
        cfg.pg.bind_configured = true;
    }
    cfg.http.token_from_env().map_err(anyhow::Error::msg)?;
    if let Some(u) = &args.state_store {
        cfg.cluster.state_store = Some(
            config::StateStoreUrl::parse(u).map_err(|m| anyhow::anyhow!("--state-store: {m}"))?,
        );
    }
    if let Some(h) = &args.advertise {
        config::check_advertise(h).map_err(|m| anyhow::anyhow!("--advertise: {m}"))?;
        cfg.cluster.advertise = Some(h.clone());
    }
    if cfg.cluster.state_store.is_some() {
        if cfg.kafka.brokers.is_none() {
            anyhow::bail!("a cluster needs a Kafka cluster its members share; give --brokers (the embedded one lives inside a single process)");
        }
        // Partitions move one at a time: members keep what they have through a rebalance.
        cfg.kafka
            .properties
            .entry("partition.assignment.strategy".into())
            .or_insert_with(|| "cooperative-sticky".into());
    }
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
///
/// Start-up is a sequence of named steps, each a method of [`Service`]; whatever has started
/// when a step fails is stopped again (see [`StopOnDrop`]).
pub async fn serve(
    cfg: Config,
    embedded: Option<Embedded>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_start: impl FnOnce(&Started),
) -> anyhow::Result<()> {
    exit_when_a_worker_panics();
    let restored = restore_from_checkpoint(&cfg).await?;
    let evaluator = load_alert_rules(&cfg).await?;
    let mut service = Service::new(cfg, restored.engine);
    let alert_topics = service.alert_topics(&evaluator);
    service.start_embedded_cluster(embedded.as_ref(), &alert_topics)?;
    service.check_topics(&alert_topics).await?;
    let listener = service.bind_http().await?;
    service
        .join_cluster(listener.local_addr().context("no local address")?)
        .await?;
    let pg = service.bind_pg().await?;
    service.start_alerts(evaluator, &restored.alerts)?;
    service.start_archiver()?;
    service.start_ingest(restored.resume)?;
    on_start(&Started {
        http: listener.local_addr().context("no local address")?,
        pg: pg.as_ref().map(|(l, _)| l.local_addr()).transpose()?,
        brokers: service.brokers.clone(),
        embedded: service.cfg.kafka.brokers.is_none(),
        resumed_from: restored.from,
        cluster: service
            .cluster_status
            .as_ref()
            .map(|c| (c.member.clone(), c.store_url.clone())),
    });
    let served = service.serve_http(listener, pg, shutdown).await;
    service.stop().await?;
    served
}

/// What a checkpoint gave back (or a fresh engine without one).
struct Restored {
    engine: Engine,
    /// Where to resume each partition (`None`: the group's committed offsets, no checkpoints).
    resume: Option<Resume>,
    /// The alert evaluator's saved timers.
    alerts: Vec<u8>,
    /// The checkpoint file and the events it held.
    from: Option<(std::path::PathBuf, u64)>,
}

/// Step 1: with checkpoints, the newest valid one, and where to resume reading.
async fn restore_from_checkpoint(cfg: &Config) -> anyhow::Result<Restored> {
    let fresh = |resume| Restored {
        engine: Engine::new(cfg.engine.clone()),
        resume,
        alerts: Vec::new(),
        from: None,
    };
    if cfg.cluster.state_store.is_some() {
        if cfg.checkpoint.dir.is_some() {
            tracing::warn!("checkpoint.dir is not used in a cluster: each partition's state is kept in cluster.state_store.");
        }
        // Partitions' state is restored as Kafka assigns them (see `cluster`).
        return Ok(fresh(None));
    }
    let Some(dir) = &cfg.checkpoint.dir else {
        return Ok(fresh(None));
    };
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
    let Some(r) = loaded else {
        if skipped.is_empty() {
            tracing::info!(dir = %shown, "No checkpoint yet: reading every partition from its beginning.");
        } else {
            tracing::warn!(dir = %shown, "No usable checkpoint: rebuilding the state from the earliest offsets Kafka still holds.");
        }
        return Ok(fresh(Some(Resume::default())));
    };
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
    let from = Some((r.path.clone(), r.engine.counters().accepted));
    Ok(Restored {
        engine: r.engine,
        resume: Some(Resume { positions }),
        alerts: r.alerts,
        from,
    })
}

/// Step 2: the alert rules, checked (SQL rules are planned, which may take a while).
async fn load_alert_rules(cfg: &Config) -> anyhow::Result<Evaluator> {
    let (rules, engine_cfg) = (cfg.alerts.rules.clone(), cfg.engine.clone());
    Ok(
        tokio::task::spawn_blocking(move || Evaluator::new(&rules, &engine_cfg))
            .await
            .context("the alert rules check did not finish")??,
    )
}

/// The running service: the engine, the threads around it, and how to stop them.
struct Service {
    cfg: Config,
    engine: Arc<Mutex<Engine>>,
    status: Arc<KafkaStatus>,
    /// The consumer and the other workers stop on this.
    stop: Arc<AtomicBool>,
    /// The embedded cluster stops on this, only after the consumer has closed (a consumer
    /// closing against a vanished cluster waits for it forever).
    stop_cluster: Arc<AtomicBool>,
    /// The cluster's query endpoint stops on this, once this member's partitions are handed
    /// over (other members' queries read them here until then).
    stop_flight: Arc<AtomicBool>,
    /// However the service ends (an early error included), the threads it started stop.
    _stop_guard: StopOnDrop,
    /// The brokers consumed from (the embedded cluster's address in embedded mode).
    brokers: String,
    embedded_cluster: Option<std::thread::JoinHandle<()>>,
    live_alerts: Option<Arc<Mutex<LiveAlerts>>>,
    alert_clock: Option<std::thread::JoinHandle<()>>,
    archive_stats: Option<Arc<ArchiveStats>>,
    archiver: Option<std::thread::JoinHandle<()>>,
    checkpoint_stats: Option<Arc<CheckpointStats>>,
    /// This member's hold on its partitions (with `[cluster] state_store`).
    member: Option<Arc<crate::cluster::Member>>,
    cluster_status: Option<Arc<crate::cluster::ClusterStatus>>,
    heartbeat: Option<std::thread::JoinHandle<()>>,
    consumer: Option<std::thread::JoinHandle<()>>,
    /// The consumer's result, once it returns.
    consumer_done: Option<tokio::sync::oneshot::Receiver<Result<(), kafka::KafkaIngestError>>>,
    consumer_failed: Arc<Mutex<Option<kafka::KafkaIngestError>>>,
}

impl Service {
    fn new(cfg: Config, engine: Engine) -> Service {
        let stop = Arc::new(AtomicBool::new(false));
        let stop_cluster = Arc::new(AtomicBool::new(false));
        let stop_flight = Arc::new(AtomicBool::new(false));
        Service {
            brokers: cfg.kafka.brokers.clone().unwrap_or_default(),
            cfg,
            engine: Arc::new(Mutex::new(engine)),
            status: Arc::new(KafkaStatus::default()),
            _stop_guard: StopOnDrop(vec![
                stop.clone(),
                stop_cluster.clone(),
                stop_flight.clone(),
            ]),
            stop,
            stop_cluster,
            stop_flight,
            embedded_cluster: None,
            live_alerts: None,
            alert_clock: None,
            archive_stats: None,
            archiver: None,
            checkpoint_stats: None,
            member: None,
            cluster_status: None,
            heartbeat: None,
            consumer: None,
            consumer_done: None,
            consumer_failed: Arc::new(Mutex::new(None)),
        }
    }

    /// The topics alerts are produced to (none without rules).
    fn alert_topics(&self, evaluator: &Evaluator) -> Vec<String> {
        if evaluator.is_empty() {
            Vec::new()
        } else {
            vec![self.cfg.alerts.topic.clone()]
        }
    }

    /// Step 3: without brokers, a cluster in this process, fed by the simulator on its own
    /// thread.
    fn start_embedded_cluster(
        &mut self,
        embedded: Option<&Embedded>,
        alert_topics: &[String],
    ) -> anyhow::Result<()> {
        match (&self.cfg.kafka.brokers, embedded) {
            (Some(_), _) => Ok(()),
            (None, None) => anyhow::bail!(
                "no Kafka brokers configured; pass --brokers or set kafka.brokers in the config"
            ),
            (None, Some(emb)) => {
                let (tx, rx) = std::sync::mpsc::channel();
                let topics = self.cfg.kafka.topics.clone();
                let dlq: Vec<String> = topics
                    .iter()
                    .map(|t| self.cfg.kafka.dead_letter_topic_for(t))
                    .chain(alert_topics.iter().cloned())
                    .collect();
                let stop = self.stop_cluster.clone();
                let playback = emb.playback.clone();
                self.embedded_cluster = Some(
                    std::thread::Builder::new()
                        .name("embedded-kafka".into())
                        .spawn(move || embedded_cluster(&topics, &dlq, &playback, &stop, tx))
                        .context("cannot start the embedded Kafka thread")?,
                );
                self.brokers = rx
                    .recv()
                    .context("the embedded Kafka cluster did not start")?
                    .context("cannot start the embedded Kafka cluster")?;
                Ok(())
            }
        }
    }

    /// Step 4: the input topics exist (and the alert topic, created if missing).
    async fn check_topics(&self, alert_topics: &[String]) -> anyhow::Result<()> {
        let (kcfg, brokers, extra) = (
            self.cfg.kafka.clone(),
            self.brokers.clone(),
            alert_topics.to_vec(),
        );
        tokio::task::spawn_blocking(move || kafka::check_topics(&kcfg, &brokers, &extra))
            .await
            .context("the topic check did not finish")??;
        Ok(())
    }

    /// Step 5: the HTTP address is ours.
    async fn bind_http(&self) -> anyhow::Result<tokio::net::TcpListener> {
        let bind = self.cfg.http.bind;
        let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| {
            format!(
                "cannot listen on {bind} for HTTP; pick a free address with --http or http.bind"
            )
        })?;
        let http = listener.local_addr().context("no local address")?;
        if !http.ip().is_loopback() && self.cfg.http.token.is_none() {
            tracing::warn!(
                bind = %http,
                "HTTP listens beyond this machine without a token: anyone who can reach it can read the data; set http.token or GATEWATCH_HTTP_TOKEN."
            );
        }
        Ok(listener)
    }

    /// Step 6: with rules, the evaluator and its sinks (timers restored from the checkpoint),
    /// and the alert clock, which evaluates when the input is quiet (no batch arrives to drive
    /// it).
    fn start_alerts(&mut self, evaluator: Evaluator, restored: &[u8]) -> anyhow::Result<()> {
        if evaluator.is_empty() {
            return Ok(());
        }
        let sinks = Sinks::new(&self.cfg.alerts, Some((&self.cfg.kafka, &self.brokers)))?;
        let mut live = LiveAlerts::new(evaluator, sinks, self.cfg.alerts.idle_timeout_ms);
        if let Some(m) = &self.member {
            // One member evaluates SQL rules: the owner of the home partition.
            live.gate_sql_rules(m.home_owned());
        }
        match live.restore_state(restored) {
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
        let live = Arc::new(Mutex::new(live));
        self.live_alerts = Some(live.clone());
        let (engine, stop) = (self.engine.clone(), self.stop.clone());
        self.alert_clock = Some(
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
        );
        Ok(())
    }

    /// Step 7: with an archive, sealed hours to Parquet, on a thread of its own.
    fn start_archiver(&mut self) -> anyhow::Result<()> {
        let Some(dir) = &self.cfg.archive else {
            return Ok(());
        };
        let stats = Arc::new(ArchiveStats::default());
        self.archive_stats = Some(stats.clone());
        let mut a = Archiver::new(dir.clone(), self.cfg.engine.allowed_lateness_ms, stats);
        let (engine, stop) = (self.engine.clone(), self.stop.clone());
        self.archiver = Some(
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
        );
        Ok(())
    }

    /// Step 8: the Kafka consumer on its own thread, applying batches to the engine,
    /// evaluating alerts after each and taking checkpoints between them.
    fn start_ingest(&mut self, resume: Option<Resume>) -> anyhow::Result<()> {
        let mut checkpointer = match &self.cfg.checkpoint.dir {
            Some(dir) if self.member.is_none() => {
                let stats = Arc::new(CheckpointStats::default());
                self.checkpoint_stats = Some(stats.clone());
                Some(
                    Checkpointer::start(
                        dir.clone(),
                        self.cfg.checkpoint.interval_ms,
                        self.cfg.checkpoint.keep,
                        stats,
                    )
                    .context("cannot start the checkpoint writer")?,
                )
            }
            _ => None,
        };
        let mut partition_checkpoints = self
            .member
            .clone()
            .map(|m| PartitionCheckpoints::start(m, self.cfg.checkpoint.interval_ms))
            .transpose()?;
        let owner = self
            .member
            .clone()
            .map(|m| m as Arc<dyn kafka::PartitionOwner>);
        let progress = self.member.clone();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        self.consumer_done = Some(done_rx);
        let panic_in_apply = fault_injected("panic-in-apply");
        let live = self.live_alerts.clone();
        let kcfg = self.cfg.kafka.clone();
        let input = self.cfg.input;
        let brokers = self.brokers.clone();
        let engine = self.engine.clone();
        let status = self.status.clone();
        let stop = self.stop.clone();
        self.consumer = Some(
            std::thread::Builder::new()
                .name("kafka-ingest".into())
                // Alert rules and archive queries plan SQL here (see sql::nesting).
                .stack_size(crate::sql::nesting::STACK_BYTES)
                .spawn(move || {
                    let capture =
                        |engine: &Mutex<Engine>, live: &Option<Arc<Mutex<LiveAlerts>>>| {
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
                        kafka::Start { resume, owner },
                        input,
                        |polled: kafka::Polled<'_>| {
                            // Between batches: everything before this one is applied,
                            // dead-lettered and its offsets stored, so the checkpoint and its
                            // positions agree.
                            if let Some(c) = checkpointer.as_mut().filter(|c| c.due()) {
                                c.take(|| capture(&engine, &live));
                            }
                            if let Some(c) = partition_checkpoints.as_mut() {
                                c.take_if_due();
                            }
                            if panic_in_apply {
                                panic!("GATEWATCH_FAULT=panic-in-apply");
                            }
                            let late = {
                                let mut e = engine.lock().expect("engine lock");
                                for &r in polled.rejects {
                                    e.count_rejected(r, 1);
                                }
                                for &(kind, n) in polled.ignored {
                                    e.count_ignored(kind, n);
                                }
                                e.set_wall_clock(wall_clock_ms());
                                let late = e.apply_view(polled.batch.clone()).rejected_rows;
                                e.record_positions(polled.positions.iter().copied());
                                if let Some(m) = &progress {
                                    note_partitions(&mut e, &polled);
                                    m.progress(&e);
                                }
                                late
                            };
                            // Alerts are evaluated on the ingest path, after the batch (rounds
                            // are rate-limited; if the clock thread is evaluating, it covers
                            // this batch).
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
                    // A cluster member's partitions were handed over when the consumer left
                    // its group (their final state is in the store).
                    drop(partition_checkpoints);
                    let _ = done_tx.send(r);
                })
                .context("cannot start the Kafka consumer thread")?,
        );
        Ok(())
    }

    /// Step 4b: the PostgreSQL listener and its catalogue, when `pg.bind` is not off. The
    /// default address may be taken (a second instance on one machine): that is a warning,
    /// and the service runs without it; a configured address must be free.
    /// Step 4b (with `[cluster] state_store`): opens the state store and checks it can be
    /// written (a store that cannot is reported, and ingest goes on: partitions are then
    /// rebuilt from Kafka when they move); publishes this member's entry every few seconds.
    async fn join_cluster(&mut self, http: SocketAddr) -> anyhow::Result<()> {
        let Some(url) = self.cfg.cluster.state_store.clone() else {
            return Ok(());
        };
        let host = match &self.cfg.cluster.advertise {
            Some(h) => h.clone(),
            None if http.ip().is_unspecified() => anyhow::bail!(
                "HTTP listens on {http}, which other members cannot reach; set cluster.advertise to this host's name or IP"
            ),
            None => http.ip().to_string(),
        };
        let member_id = format!("{host}:{}", http.port());
        let store =
            tokio::task::spawn_blocking(move || crate::cluster::store::StateStore::open(&url))
                .await
                .context("opening the state store did not finish")?
                .map_err(anyhow::Error::msg)?;
        let store = Arc::new(store);
        let status = Arc::new(crate::cluster::ClusterStatus {
            member: member_id.clone(),
            store_url: store.url().to_string(),
            ..Default::default()
        });
        let probe = {
            let (store, id) = (store.clone(), member_id.clone());
            tokio::task::spawn_blocking(move || store.probe(&id))
                .await
                .context("probing the state store did not finish")?
        };
        if let Err(e) = &probe {
            tracing::error!(error = %e, "The state store cannot be written: ingest goes on, but partitions that move are rebuilt from Kafka instead of restored.");
            *status.store_error.lock().expect("not poisoned") = Some(e.to_string());
        }
        let home = self.cfg.kafka.topics.first().cloned().unwrap_or_default();
        let member = Arc::new(crate::cluster::Member::new(
            self.engine.clone(),
            store,
            status.clone(),
            self.cfg.engine.clone(),
            &home,
            self.cfg.checkpoint.keep,
        ));
        // The Flight endpoint where the scans of this member's servers run.
        let flight = tokio::net::TcpListener::bind(SocketAddr::new(http.ip(), 0))
            .await
            .with_context(|| format!("cannot listen for the cluster's queries on {}", http.ip()))?;
        let flight_url = format!(
            "http://{host}:{}",
            flight.local_addr().context("no local address")?.port()
        );
        *status.flight.lock().expect("not poisoned") = flight_url.clone();
        let worker = datafusion_distributed::Worker::from_session_builder(
            crate::cluster::query::MemberWorkerSession(Arc::new(member.local())),
        );
        let stopping = self.stop_flight.clone();
        tokio::spawn(async move {
            // Without TCP_NODELAY, a small answer waits for the asker's delayed ACK (~40 ms).
            let incoming =
                tonic::transport::server::TcpIncoming::from(flight).with_nodelay(Some(true));
            let served = tonic::transport::Server::builder()
                .add_service(worker.into_worker_server())
                .serve_with_incoming_shutdown(incoming, async move {
                    while !stopping.load(Ordering::Relaxed) {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "The cluster's query endpoint stopped.");
            }
        });
        tracing::info!(member = %member_id, store = %status.store_url, flight = %flight_url, "Joining the cluster.");
        let (m, stop) = (member.clone(), self.stop.clone());
        self.heartbeat = Some(
            std::thread::Builder::new()
                .name("cluster-heartbeat".into())
                .spawn(move || {
                    let mut last = Instant::now() - MEMBER_HEARTBEAT;
                    while !stop.load(Ordering::Relaxed) {
                        if last.elapsed() >= MEMBER_HEARTBEAT {
                            m.publish();
                            last = Instant::now();
                        }
                        std::thread::sleep(std::time::Duration::from_millis(100));
                    }
                })
                .context("cannot start the cluster heartbeat thread")?,
        );
        self.member = Some(member);
        self.cluster_status = Some(status);
        Ok(())
    }

    async fn bind_pg(
        &self,
    ) -> anyhow::Result<Option<(tokio::net::TcpListener, Arc<crate::sql::postgres::PgFlavor>)>>
    {
        let Some(bind) = self.cfg.pg.bind else {
            return Ok(None);
        };
        // Certificate problems are start-up errors, before anything is consumed.
        super::pg_tls(&self.cfg.pg)?;
        let listener = match tokio::net::TcpListener::bind(bind).await {
            Ok(l) => l,
            Err(e) if !self.cfg.pg.bind_configured => {
                tracing::warn!(%bind, error = %e, "PostgreSQL's default address is taken; running without it (set pg.bind or --pg to another address, or --pg off)");
                return Ok(None);
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot listen on {bind} for PostgreSQL; pick a free address with --pg or pg.bind, or --pg off")
                })
            }
        };
        let pg = listener.local_addr().context("no local address")?;
        if !pg.ip().is_loopback() && self.cfg.http.token.is_none() {
            tracing::warn!(
                bind = %pg,
                "PostgreSQL listens beyond this machine without a token: anyone who can reach it can read the data; set http.token or GATEWATCH_HTTP_TOKEN."
            );
        }
        let flavor = crate::sql::postgres::PgFlavor::new()
            .await
            .map_err(|e| anyhow::anyhow!("cannot set up the PostgreSQL catalogue: {e}"))?;
        Ok(Some((listener, Arc::new(flavor))))
    }

    /// Step 9: HTTP (and PostgreSQL) until `shutdown` resolves or the consumer stops with an
    /// error.
    async fn serve_http(
        &mut self,
        listener: tokio::net::TcpListener,
        pg: Option<(tokio::net::TcpListener, Arc<crate::sql::postgres::PgFlavor>)>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let http = listener.local_addr().context("no local address")?;
        let cfg = &self.cfg.http;
        let mut runner =
            crate::sql::QueryRunner::new(super::query_limits(cfg), self.cfg.archive.clone())
                .context("cannot start the query threads")?;
        if let Some(m) = &self.member {
            // Any member answers for the whole cluster.
            runner = runner.with_remote_tables(Arc::new(crate::cluster::ClusterTables::new(
                m.store().clone(),
                self.status.clone(),
                std::time::Duration::from_millis(self.cfg.cluster.query_wait_ms as u64),
            )));
        }
        let queries = Arc::new(runner);
        // The PostgreSQL side stops when HTTP does: `pg_stop` is dropped then.
        let (pg_stop, pg_stopped) = tokio::sync::oneshot::channel::<()>();
        if let Some((pg_listener, flavor)) = pg {
            let service = Arc::new(crate::pg::PgService::new(
                flavor,
                queries.clone(),
                crate::pg::Source::Live(self.engine.clone()),
                cfg.token.clone(),
                super::pg_tls(&self.cfg.pg)?,
                self.cfg.pg.max_connections,
            ));
            tokio::spawn(crate::pg::serve(pg_listener, service, async move {
                let _ = pg_stopped.await;
            }));
        }
        let state = Arc::new(ServiceState {
            engine: self.engine.clone(),
            kafka: self.status.clone(),
            started: Instant::now(),
            alerts: self.live_alerts.clone(),
            queries,
            archive: self.archive_stats.clone(),
            token: cfg.token.clone(),
            bind: http,
            max_body_bytes: cfg.max_body_bytes,
            body_timeout: std::time::Duration::from_millis(cfg.body_timeout_ms as u64),
            checkpoints: self.checkpoint_stats.clone(),
            cluster: self.cluster_status.clone(),
        });
        let limits = crate::http::server::ConnectionLimits {
            max_connections: cfg.max_connections,
            header_timeout: std::time::Duration::from_millis(cfg.header_timeout_ms as u64),
        };
        let failed = self.consumer_failed.clone();
        let done_rx = self.consumer_done.take().expect("start_ingest ran");
        crate::http::server::serve(listener, router(state), limits, async move {
            tokio::select! {
                _ = shutdown => {}
                r = done_rx => {
                    if let Ok(Err(e)) = r {
                        *failed.lock().expect("not poisoned") = Some(e);
                    }
                }
            }
            drop(pg_stop);
        })
        .await
        .context("the HTTP server failed")
    }

    /// Step 10: the consumer commits what it applied and leaves its group; the other threads
    /// stop; firing alerts are flushed to their sinks; the embedded cluster goes last.
    async fn stop(mut self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        // Closing waits for the group coordinator; do not let a dead broker keep the process
        // from exiting.
        if let Some(consumer) = self.consumer.take() {
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
        }
        if let Some(m) = self.member.clone() {
            let _ = tokio::task::spawn_blocking(move || m.withdraw()).await;
        }
        self.stop_flight.store(true, Ordering::Relaxed);
        for t in [
            self.archiver.take(),
            self.alert_clock.take(),
            self.heartbeat.take(),
        ]
        .into_iter()
        .flatten()
        {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        if let Some(live) = self.live_alerts.clone() {
            let _ = tokio::task::spawn_blocking(move || {
                live.lock()
                    .expect("not poisoned")
                    .flush(std::time::Duration::from_secs(5))
            })
            .await;
        }
        self.stop_cluster.store(true, Ordering::Relaxed);
        if let Some(t) = self.embedded_cluster.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        if let Some(e) = self.consumer_failed.lock().expect("not poisoned").take() {
            return Err(e.into());
        }
        Ok(())
    }
}

/// How often a cluster member rewrites its entry in the state store.
const MEMBER_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(2);

/// Tags the servers of a batch with the partitions their events came from.
fn note_partitions(e: &mut Engine, polled: &kafka::Polled<'_>) {
    let topics: Vec<&str> = polled.topics.iter().map(String::as_str).collect();
    let elsewhere = e.note_partitions(polled.batch, &topics, |row| polled.partition_of_row(row));
    if elsewhere > 0 {
        tracing::debug!(
            rows = elsewhere,
            "Events of a server came from another partition than its first (the producer does not key by server)."
        );
    }
}

/// A cluster member's periodic checkpoints of its partitions: captured on the ingest thread
/// between batches, written on a thread of their own.
struct PartitionCheckpoints {
    member: Arc<crate::cluster::Member>,
    interval: std::time::Duration,
    last: Instant,
    to_writer: Option<std::sync::mpsc::SyncSender<Vec<CapturedPartition>>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

type CapturedPartition = (
    crate::state::partition::PartitionKey,
    i64,
    crate::state::encode::EngineParts,
);

impl PartitionCheckpoints {
    fn start(member: Arc<crate::cluster::Member>, interval_ms: i64) -> anyhow::Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<CapturedPartition>>(1);
        let m = member.clone();
        let writer = std::thread::Builder::new()
            .name("partition-checkpoints".into())
            .spawn(move || {
                for captured in rx {
                    m.write(captured);
                }
            })
            .context("cannot start the partition checkpoint writer")?;
        Ok(PartitionCheckpoints {
            member,
            interval: std::time::Duration::from_millis(interval_ms.max(1) as u64),
            last: Instant::now(),
            to_writer: Some(tx),
            writer: Some(writer),
        })
    }

    fn take_if_due(&mut self) {
        if self.last.elapsed() < self.interval {
            return;
        }
        self.last = Instant::now();
        let captured = self.member.capture();
        if let Some(tx) = &self.to_writer {
            if let Err(std::sync::mpsc::TrySendError::Full(_)) = tx.try_send(captured) {
                tracing::debug!(
                    "The previous partition checkpoints are still being written; skipped a round."
                );
            }
        }
    }
}

impl Drop for PartitionCheckpoints {
    fn drop(&mut self) {
        self.to_writer.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
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
        // What the service says as it starts goes to stdout, which may be a pipe whose reader
        // has gone (`gatewatch run | head -1`, a supervisor that stopped reading): a line that
        // cannot be written is dropped, it never stops the service (println! would panic).
        let say = |line: String| {
            use std::io::Write;
            let _ = writeln!(std::io::stdout(), "{line}");
        };
        if s.embedded {
            say(format!(
                "gatewatch: embedded Kafka at {} with the simulator playing {EMBEDDED_START} at {}x from 07:50",
                s.brokers, args.speed
            ));
        } else {
            say(format!("gatewatch: consuming from Kafka at {}", s.brokers));
        }
        if let Some((path, events)) = &s.resumed_from {
            say(format!(
                "gatewatch: resumed from checkpoint {} ({events} events accepted before it)",
                path.display()
            ));
        }
        if let Some((member, store)) = &s.cluster {
            say(format!(
                "gatewatch: cluster member {member}, partitions' state in {store} (SQL here answers for every member)"
            ));
        }
        if let Some(pg) = s.pg {
            say(format!(
                "gatewatch: PostgreSQL at {pg}  (psql -h {} -p {} -U gatewatch -c 'SELECT * FROM servers')",
                pg.ip(),
                pg.port()
            ));
        }
        // Last: scripts wait for this line.
        say(format!("gatewatch: open http://{}/  (SQL: POST /api/sql, or gatewatch query --url http://{} \"SELECT * FROM servers\")", s.http, s.http));
    }))
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed before this returns, so a signal
/// that arrives while the service is still starting is not lost to the default action.
pub(super) fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
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
