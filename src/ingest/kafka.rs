//! Kafka in: the consumer loop, at-least-once offsets and the dead-letter topic.
//!
//! Owns: the rdkafka consumer (one per process, in its own thread), how messages are batched
//! and decoded, when offsets are stored, what goes to the dead-letter topic and with which
//! headers, and the live ingest status the HTTP layer reports. Must not touch: engine state;
//! the caller's `apply` callback is the only way decoded events leave this module.
//!
//! The loop: poll a batch of messages (up to [`MAX_BATCH`], or whatever is ready), decode each
//! into one Arrow batch, hand it to `apply`, send the rejects (and those `apply` found late) to
//! the dead-letter topic and wait for their delivery, then store each partition's offset. The
//! next `poll` is the only place a rebalance can happen, so a revocation always finds every
//! polled message applied and its offset stored; the revoke handler commits synchronously.
//! A crash between `apply` and the commit redelivers events, and duplicate ids make that
//! harmless (events without an `id` would then count twice: give events ids).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, DefaultConsumerContext, Rebalance,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::Message;

use super::{decode_record, MAX_RECORD_BYTES};
use crate::config::KafkaConfig;
use crate::event::{EventColumns, Reason};

/// Most messages decoded and applied as one batch.
pub const MAX_BATCH: usize = 8192;

/// What the consumer is doing, shared with readers (`/readyz`, `/metrics`).
#[derive(Debug, Default)]
pub struct KafkaStatus {
    /// The consumer loop is running.
    pub running: AtomicBool,
    /// Partitions currently assigned to this consumer.
    pub assigned: AtomicUsize,
    /// False after librdkafka reported all brokers down, until a broker answers again.
    pub brokers_down: AtomicBool,
    /// Messages read (applied or dead-lettered).
    pub messages: AtomicU64,
    /// Batches applied.
    pub batches: AtomicU64,
    /// Messages sent to the dead-letter topic, delivery confirmed.
    pub dead_lettered: AtomicU64,
    /// Dead letters the broker did not accept (after librdkafka's retries).
    pub dead_letter_failures: AtomicU64,
    /// Consumer errors seen (broker, fetch, rebalance), for `/metrics`.
    pub errors: AtomicU64,
    /// Rebalances seen (assign or revoke).
    pub rebalances: AtomicU64,
    /// Dead letters by reason code.
    pub dead_lettered_by_reason: Mutex<BTreeMap<String, u64>>,
    /// Next offset to read per (topic, partition), as stored after applying.
    pub positions: Mutex<BTreeMap<(String, i32), i64>>,
}

impl KafkaStatus {
    /// Ready: consumer running, partitions assigned and a broker reachable.
    pub fn ready(&self) -> bool {
        self.running.load(Ordering::Relaxed)
            && self.assigned.load(Ordering::Relaxed) > 0
            && !self.brokers_down.load(Ordering::Relaxed)
    }
}

/// A problem that stops the consumer from starting.
#[derive(Debug, thiserror::Error)]
pub enum KafkaIngestError {
    /// librdkafka refused the configuration.
    #[error("cannot create the Kafka {what}: {source}; check [kafka] brokers and properties in the config")]
    Client {
        /// consumer, producer or admin client.
        what: &'static str,
        /// What librdkafka said.
        source: KafkaError,
    },
    /// The topic does not exist on a reachable cluster.
    #[error(
        "topic {topic:?} does not exist on {brokers}; create it or fix --topic / kafka.topics"
    )]
    UnknownTopic {
        /// The topic.
        topic: String,
        /// bootstrap.servers.
        brokers: String,
    },
    /// Subscribing failed.
    #[error("cannot subscribe to {topics:?}: {source}")]
    Subscribe {
        /// The topics.
        topics: Vec<String>,
        /// What librdkafka said.
        source: KafkaError,
    },
}

/// Context shared by the consumer: logs, errors and rebalances into [`KafkaStatus`].
struct IngestContext {
    status: Arc<KafkaStatus>,
    brokers: String,
}

impl ClientContext for IngestContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_librdkafka(level, fac, message, &self.brokers);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.status.errors.fetch_add(1, Ordering::Relaxed);
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.status.brokers_down.store(true, Ordering::Relaxed);
            tracing::warn!(brokers = %self.brokers, %reason, "All Kafka brokers are unreachable; ingest pauses and resumes by itself when one answers.");
        } else {
            tracing::warn!(brokers = %self.brokers, %error, %reason, "Kafka client error.");
        }
    }
}

impl ConsumerContext for IngestContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            // Every polled message is applied and stored by now (see the module doc); commit
            // before the partitions move so the next owner starts exactly after them.
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "Committing offsets before a rebalance failed; the next owner re-reads from the last commit (duplicates are dropped by id).")
                }
            }
            tracing::info!(partitions = tpl.count(), "Kafka partitions revoked.");
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.status.rebalances.fetch_add(1, Ordering::Relaxed);
        let assigned = consumer.assignment().map_or(0, |a| a.count());
        self.status.assigned.store(assigned, Ordering::Relaxed);
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(partitions = tpl.count(), "Kafka partitions assigned.")
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => {
                self.status.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "Kafka rebalance failed; the group retries by itself.");
            }
        }
    }
}

/// Dead-letter producer context: counts deliveries and failures.
struct DeadLetterContext {
    status: Arc<KafkaStatus>,
    brokers: String,
}

impl ClientContext for DeadLetterContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_librdkafka(level, fac, message, &self.brokers);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(brokers = %self.brokers, %error, %reason, "Dead-letter producer error.");
    }
}

impl ProducerContext for DeadLetterContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.status.dead_lettered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, m)) => {
                self.status
                    .dead_letter_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, topic = m.topic(), "A dead letter was not delivered; it is counted in gatewatch_dead_letter_failures_total.");
            }
        }
    }
}

fn log_librdkafka(level: RDKafkaLogLevel, fac: &str, message: &str, brokers: &str) {
    // Config warnings (a consumer property seen by the producer) are noise, not news.
    if fac == "CONFWARN" {
        tracing::debug!(%fac, "librdkafka: {message}");
        return;
    }
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error
        | RDKafkaLogLevel::Warning => tracing::warn!(%brokers, %fac, "librdkafka: {message}"),
        _ => tracing::debug!(%fac, "librdkafka: {message}"),
    }
}

fn client_config(cfg: &KafkaConfig, brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    for (k, v) in &cfg.properties {
        c.set(k, v);
    }
    c
}

/// Builds the consumer config: offsets stored by us after apply, committed by librdkafka.
fn consumer_config(cfg: &KafkaConfig, brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("group.id", &cfg.group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    for (k, v) in &cfg.properties {
        c.set(k, v);
    }
    // Not overridable: storing an offset before its event is applied would lose events.
    c.set("enable.auto.offset.store", "false");
    c
}

/// Checks that each topic exists; creates missing dead-letter topics. Unreachable brokers are
/// not an error here: the consumer waits for them. Call before [`consume`].
pub fn check_topics(cfg: &KafkaConfig, brokers: &str) -> Result<(), KafkaIngestError> {
    let probe: BaseConsumer<DefaultConsumerContext> = consumer_config(cfg, brokers)
        .set("group.id", format!("{}-probe", cfg.group))
        .set("log_level", "0")
        .create()
        .map_err(|source| KafkaIngestError::Client {
            what: "consumer",
            source,
        })?;
    let md = match probe.fetch_metadata(None, Duration::from_secs(5)) {
        Ok(md) => md,
        Err(e) => {
            tracing::warn!(%brokers, error = %e, "Kafka brokers did not answer at start; gatewatch keeps trying and /readyz stays false until they do.");
            return Ok(());
        }
    };
    let exists = |t: &str| {
        md.topics()
            .iter()
            .any(|mt| mt.name() == t && mt.error().is_none() && !mt.partitions().is_empty())
    };
    for t in &cfg.topics {
        if !exists(t) {
            return Err(KafkaIngestError::UnknownTopic {
                topic: t.clone(),
                brokers: brokers.to_string(),
            });
        }
    }
    let missing: Vec<String> = cfg
        .topics
        .iter()
        .map(|t| cfg.dead_letter_topic_for(t))
        .filter(|d| !exists(d))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !missing.is_empty() {
        create_topics(cfg, brokers, &missing);
    }
    Ok(())
}

/// Creates dead-letter topics (one partition, the cluster's default replication, falling back
/// to 1 for brokers that do not know that default). Failure is logged: the producer's own
/// retries, or the broker's auto-creation, may still succeed.
fn create_topics(cfg: &KafkaConfig, brokers: &str, topics: &[String]) {
    let admin: AdminClient<_> = match client_config(cfg, brokers).create() {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "Cannot create a Kafka admin client to create dead-letter topics.");
            return;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(_) => return,
    };
    for replication in [-1, 1] {
        let new: Vec<NewTopic> = topics
            .iter()
            .map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(replication)))
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        match rt.block_on(admin.create_topics(&new, &opts)) {
            Ok(results) => {
                let failed: Vec<String> = results
                    .into_iter()
                    .filter_map(|r| match r {
                        Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => None,
                        Err((t, e)) => Some(format!("{t}: {e}")),
                    })
                    .collect();
                if failed.is_empty() {
                    tracing::info!(?topics, "Created dead-letter topics.");
                    return;
                }
                tracing::debug!(?failed, replication, "Creating dead-letter topics failed.");
            }
            Err(e) => tracing::debug!(error = %e, "Creating dead-letter topics failed."),
        }
    }
    tracing::warn!(?topics, "Could not create the dead-letter topics; create them, or rejected messages wait in the producer until they exist.");
}

/// One polled batch on its way through: messages, their decoded rows, their rejects.
struct Pending<'c> {
    messages: Vec<BorrowedMessage<'c>>,
    columns: EventColumns,
    row_message: Vec<u32>,
    rejects: Vec<(u32, Reason)>,
    reasons: Vec<Reason>,
}

impl<'c> Pending<'c> {
    /// Decodes `m` into the batch (or the rejects) and keeps it; returns the batch size.
    fn push(&mut self, m: BorrowedMessage<'c>) -> usize {
        let i = self.messages.len() as u32;
        let payload = m.payload().unwrap_or(b"");
        if payload.len() > MAX_RECORD_BYTES {
            self.rejects.push((i, Reason::LineTooLong));
        } else {
            match decode_record(payload, &mut self.columns) {
                Ok(()) => self.row_message.push(i),
                Err(r) => self.rejects.push((i, r)),
            }
        }
        self.messages.push(m);
        self.messages.len()
    }
}

/// Consumes until `stop` is set. `apply(batch, rejected_reasons)` applies well-formed events
/// and counts decode rejects; it returns the rows of `batch` that were late, which are
/// dead-lettered with reason `late`.
pub fn consume<F>(
    cfg: &KafkaConfig,
    brokers: &str,
    status: Arc<KafkaStatus>,
    stop: &AtomicBool,
    mut apply: F,
) -> Result<(), KafkaIngestError>
where
    F: FnMut(&RecordBatch, &[Reason]) -> Vec<u32>,
{
    let consumer: BaseConsumer<IngestContext> = consumer_config(cfg, brokers)
        .create_with_context(IngestContext {
            status: status.clone(),
            brokers: brokers.to_string(),
        })
        .map_err(|source| KafkaIngestError::Client {
            what: "consumer",
            source,
        })?;
    let producer: ThreadedProducer<DeadLetterContext> = client_config(cfg, brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create_with_context(DeadLetterContext {
            status: status.clone(),
            brokers: brokers.to_string(),
        })
        .map_err(|source| KafkaIngestError::Client {
            what: "dead-letter producer",
            source,
        })?;
    let topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|source| KafkaIngestError::Subscribe {
            topics: cfg.topics.clone(),
            source,
        })?;
    status.running.store(true, Ordering::Relaxed);
    tracing::info!(%brokers, topics = ?cfg.topics, group = %cfg.group, "Consuming from Kafka.");
    let mut last_probe = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let mut pending = Pending {
            messages: Vec::new(),
            columns: EventColumns::with_capacity(256),
            row_message: Vec::new(),
            rejects: Vec::new(),
            reasons: Vec::new(),
        };
        let mut wait = Duration::from_millis(100);
        loop {
            match consumer.poll(wait) {
                None => break,
                Some(Ok(m)) => {
                    if pending.push(m) >= MAX_BATCH {
                        break;
                    }
                    wait = Duration::ZERO;
                }
                Some(Err(e)) => {
                    status.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%brokers, error = %e, "Kafka consumer error; it retries by itself.");
                    break;
                }
            }
        }
        if pending.messages.is_empty() {
            if status.brokers_down.load(Ordering::Relaxed)
                && last_probe.elapsed() > Duration::from_secs(1)
            {
                last_probe = Instant::now();
                if consumer
                    .fetch_metadata(None, Duration::from_millis(500))
                    .is_ok()
                {
                    status.brokers_down.store(false, Ordering::Relaxed);
                    tracing::info!(%brokers, "Kafka brokers answer again.");
                }
            }
            continue;
        }
        status.brokers_down.store(false, Ordering::Relaxed);
        process(cfg, &consumer, &producer, &status, &mut pending, &mut apply);
    }
    // Apply-then-store is already done for everything polled; make the commit final.
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => {
            tracing::warn!(error = %e, "Final offset commit failed; the next start re-reads from the last commit (duplicates are dropped by id).")
        }
    }
    status.running.store(false, Ordering::Relaxed);
    status.assigned.store(0, Ordering::Relaxed);
    drop(consumer);
    Ok(())
}

fn process<F>(
    cfg: &KafkaConfig,
    consumer: &BaseConsumer<IngestContext>,
    producer: &ThreadedProducer<DeadLetterContext>,
    status: &KafkaStatus,
    pending: &mut Pending<'_>,
    apply: &mut F,
) where
    F: FnMut(&RecordBatch, &[Reason]) -> Vec<u32>,
{
    let batch = pending.columns.finish();
    pending.reasons.extend(pending.rejects.iter().map(|r| r.1));
    let late = apply(&batch, &pending.reasons);
    let mut dead: Vec<(u32, Reason)> = std::mem::take(&mut pending.rejects);
    dead.extend(
        late.iter()
            .map(|&row| (pending.row_message[row as usize], Reason::Late)),
    );
    if !dead.is_empty() {
        let mut by_reason = status.dead_lettered_by_reason.lock().expect("not poisoned");
        for &(i, reason) in &dead {
            let m = &pending.messages[i as usize];
            *by_reason.entry(reason.to_string()).or_insert(0) += 1;
            send_dead_letter(cfg, producer, m, reason);
        }
        drop(by_reason);
        // Offsets move past a rejected message only once its dead letter is on the broker.
        while producer.in_flight_count() > 0 {
            if let Err(e) = producer.flush(Duration::from_secs(10)) {
                tracing::warn!(error = %e, "Waiting for the dead-letter topic to accept rejected messages.");
            }
        }
    }
    let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for m in &pending.messages {
        let e = next.entry((m.topic(), m.partition())).or_insert(m.offset());
        *e = (*e).max(m.offset());
    }
    {
        let mut positions = status.positions.lock().expect("not poisoned");
        for (&(topic, partition), &offset) in &next {
            // `store_offset` stores offset + 1: the next message to read.
            if let Err(e) = consumer.store_offset(topic, partition, offset) {
                // The partition was revoked meanwhile; its next owner re-reads these events.
                tracing::debug!(topic, partition, error = %e, "Offset not stored.");
            }
            positions.insert((topic.to_string(), partition), offset + 1);
        }
    }
    status
        .messages
        .fetch_add(pending.messages.len() as u64, Ordering::Relaxed);
    status.batches.fetch_add(1, Ordering::Relaxed);
}

fn send_dead_letter(
    cfg: &KafkaConfig,
    producer: &ThreadedProducer<DeadLetterContext>,
    m: &BorrowedMessage<'_>,
    reason: Reason,
) {
    let topic = cfg.dead_letter_topic_for(m.topic());
    let reason_text = reason.to_string();
    let partition = m.partition().to_string();
    let offset = m.offset().to_string();
    let mut headers = OwnedHeaders::new_with_capacity(4);
    if let Some(original) = m.headers() {
        for h in original.iter() {
            headers = headers.insert(Header {
                key: h.key,
                value: h.value,
            });
        }
    }
    let headers = headers
        .insert(Header {
            key: "reason",
            value: Some(reason_text.as_str()),
        })
        .insert(Header {
            key: "source_topic",
            value: Some(m.topic()),
        })
        .insert(Header {
            key: "source_partition",
            value: Some(partition.as_str()),
        })
        .insert(Header {
            key: "source_offset",
            value: Some(offset.as_str()),
        });
    let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&topic)
        .payload(m.payload().unwrap_or(b""))
        .headers(headers);
    if let Some(k) = m.key() {
        record = record.key(k);
    }
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err((e, _)) => {
                tracing::error!(%topic, error = %e, "Cannot queue a dead letter; it is counted in gatewatch_dead_letter_failures_total.");
                return;
            }
        }
    }
}
