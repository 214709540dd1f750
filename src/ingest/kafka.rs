//! Kafka in: the consumer loop, at-least-once offsets and the dead-letter topic.
//!
//! Owns: the rdkafka consumer (one per process, in its own thread), how messages are batched
//! and decoded, when offsets are stored, what goes to the dead-letter topic and with which
//! headers, and the live ingest status the HTTP layer reports. Must not touch: engine state;
//! the caller's `apply` callback is the only way decoded events leave this module.
//!
//! The pipeline: the polling thread takes a batch of messages (up to [`MAX_BATCH`], or what
//! arrives within 20 ms) in one call from a queue all assigned partitions are forwarded to
//! ([`FetchQueue`]) and copies it out of librdkafka; the apply thread decodes it into one
//! Arrow batch, hands it to `apply`, sends the rejects (and those `apply` found late) to the
//! dead-letter topic and waits for their delivery, then stores each partition's offset. A
//! rebalance can only happen inside `poll` of the consumer's own queue, which the polling
//! thread serves between batches; the revoke handler first waits until every polled batch is
//! applied and stored, then commits synchronously.
//! A crash between `apply` and the commit redelivers events, and duplicate ids make that
//! harmless (events without an `id` would then count twice: give events ids).

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::bindings as rdsys;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::RebalanceProtocol;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, DefaultConsumerContext, Rebalance,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::{decode_record, decode_record_str, MAX_RECORD_BYTES};
use crate::config::KafkaConfig;
use crate::event::ChunkView;
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
    /// Messages on the broker not yet applied, per assigned (topic, partition), from
    /// librdkafka's statistics (every 5 s): high watermark minus the stored offset.
    pub lag: Mutex<BTreeMap<(String, i32), i64>>,
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
    /// The apply thread stopped on a bug (its panic message is in the log).
    #[error("ingest stopped: applying a batch of events failed (see the log above); restart gatewatch, it re-reads from the last commit")]
    ApplyFailed,
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
    in_flight: Arc<InFlight>,
    /// Where to start reading each partition, from a checkpoint; taken on its first assignment.
    resume: Mutex<Option<Resume>>,
    /// The [`FetchQueue`] every assigned partition's messages are forwarded to: set once the
    /// consumer exists, before it subscribes; null again before the queue is destroyed.
    fetch_queue: AtomicPtr<rdsys::rd_kafka_queue_t>,
}

/// Where a restarted service resumes: the positions its restored state reflects. Partitions
/// assigned and not listed start from their beginning (the state has nothing of them), not
/// from the group's committed offset (which may be past what the checkpoint holds).
#[derive(Debug, Clone, Default)]
pub struct Resume {
    /// Next offset to read per (topic, partition).
    pub positions: BTreeMap<(String, i32), i64>,
}

impl IngestContext {
    /// Sets the start offset of newly assigned partitions from the checkpoint, once each.
    fn position_assignment(&self, tpl: &mut TopicPartitionList) {
        let mut resume = self.resume.lock().expect("not poisoned");
        let Some(r) = resume.as_mut() else { return };
        let assigned: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        for (topic, partition) in assigned {
            let offset = match r.positions.remove(&(topic.clone(), partition)) {
                Some(o) => Offset::Offset(o),
                None => Offset::Beginning,
            };
            tracing::info!(topic, partition, offset = ?offset, "Resuming the partition where the checkpoint left it.");
            if let Err(e) = tpl.set_partition_offset(&topic, partition, offset) {
                tracing::warn!(topic, partition, error = %e, "Could not set the resume offset; the group's committed offset is used.");
            }
        }
    }
}

impl ClientContext for IngestContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_librdkafka(level, fac, message, &self.brokers);
    }

    fn stats(&self, stats: Statistics) {
        let mut lag = BTreeMap::new();
        for (name, topic) in &stats.topics {
            for (&partition, p) in &topic.partitions {
                // Partition -1 is librdkafka's internal "unassigned" queue; -1 lag is unknown.
                if partition >= 0 && p.desired && p.consumer_lag_stored >= 0 {
                    lag.insert((name.clone(), partition), p.consumer_lag_stored);
                }
            }
        }
        *self.status.lag.lock().expect("not poisoned") = lag;
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.status.errors.fetch_add(1, Ordering::Relaxed);
        // librdkafka repeats these on every reconnect attempt; say each once per outage.
        let down = self.status.brokers_down.load(Ordering::Relaxed);
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::AllBrokersDown) => {
                if !self.status.brokers_down.swap(true, Ordering::Relaxed) {
                    tracing::warn!(brokers = %self.brokers, %reason, "All Kafka brokers are unreachable; ingest pauses and resumes by itself when one answers.");
                }
            }
            Some(RDKafkaErrorCode::BrokerTransportFailure) if down => {
                tracing::debug!(brokers = %self.brokers, %error, %reason, "Kafka client error.");
            }
            _ => tracing::warn!(brokers = %self.brokers, %error, %reason, "Kafka client error."),
        }
    }
}

impl ConsumerContext for IngestContext {
    /// rdkafka's own rebalance, with the checkpoint's positions put into an assignment before
    /// it is made (eager protocol: gatewatch does not enable cooperative assignors).
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: rdkafka::types::RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        use rdkafka::types::RDKafkaRespErr as E;
        let rebalance = match err {
            E::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.position_assignment(tpl);
                let fetch_queue = self.fetch_queue.load(Ordering::Acquire);
                if !fetch_queue.is_null() {
                    forward_partitions(consumer.client().native_ptr(), fetch_queue, tpl);
                }
                Rebalance::Assign(tpl)
            }
            E::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => Rebalance::Revoke(tpl),
            _ => Rebalance::Error(KafkaError::Rebalance(err.into())),
        };
        self.pre_rebalance(consumer, &rebalance);
        let done = match (&rebalance, consumer.rebalance_protocol()) {
            (Rebalance::Assign(t), RebalanceProtocol::Cooperative) => {
                consumer.incremental_assign(t)
            }
            (Rebalance::Assign(t), _) => consumer.assign(t),
            (Rebalance::Revoke(t), RebalanceProtocol::Cooperative) => {
                consumer.incremental_unassign(t)
            }
            (Rebalance::Revoke(_), _) => consumer.unassign(),
            (Rebalance::Error(_), _) => Ok(()),
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, "Applying a Kafka rebalance failed; the group retries by itself.");
        }
        self.post_rebalance(consumer, &rebalance);
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            // Wait until every polled batch is applied and its offsets stored, then commit
            // before the partitions move, so the next owner starts exactly after them.
            if !self.in_flight.drain(Duration::from_secs(60)) {
                tracing::warn!("Batches still being applied at a rebalance; the next owner may re-read them (duplicates are dropped by id).");
            }
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
    // Config warnings (a consumer property seen by the producer) are noise, not news; connection
    // failures (FAIL) are reported once more, with the broker, through the error callback.
    if fac == "CONFWARN" || fac == "FAIL" {
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
        .set("enable.partition.eof", "false")
        // librdkafka stops fetching a partition whose local queue is over its threshold and
        // looks again only after this long (default 1000 ms). A consumer that decodes and
        // applies drains the queue a little slower than it fills, so the default turned a
        // steady stream into bursts with ~0.9 s gaps (measured: 200k events/s instead of 1M).
        .set("fetch.queue.backoff.ms", "10")
        // Per-partition lag for /metrics.
        .set("statistics.interval.ms", "5000");
    for (k, v) in &cfg.properties {
        c.set(k, v);
    }
    // Not overridable: storing an offset before its event is applied would lose events.
    c.set("enable.auto.offset.store", "false");
    c
}

/// Checks that each topic exists; creates missing dead-letter topics and `also_create` (the
/// alerts topic). Unreachable brokers are
/// not an error here: the consumer waits for them. Call before [`consume`].
pub fn check_topics(
    cfg: &KafkaConfig,
    brokers: &str,
    also_create: &[String],
) -> Result<(), KafkaIngestError> {
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
        .chain(also_create.iter().cloned())
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
        let opts = AdminOptions::new()
            .operation_timeout(Some(Duration::from_secs(10)))
            .request_timeout(Some(Duration::from_secs(10)));
        // Some brokers (librdkafka's in-process cluster among them) never answer CreateTopics
        // for some requests: never let that hold up the start.
        let created = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(15), admin.create_topics(&new, &opts)).await
        });
        let Ok(created) = created else {
            tracing::debug!(replication, "Creating topics timed out.");
            continue;
        };
        match created {
            Ok(results) => {
                let failed: Vec<String> = results
                    .into_iter()
                    .filter_map(|r| match r {
                        Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => None,
                        Err((t, e)) => Some(format!("{t}: {e}")),
                    })
                    .collect();
                if failed.is_empty() {
                    tracing::info!(?topics, "Created dead-letter / alerts topics.");
                    return;
                }
                tracing::debug!(?failed, replication, "Creating dead-letter topics failed.");
            }
            Err(e) => tracing::debug!(error = %e, "Creating dead-letter topics failed."),
        }
    }
    tracing::warn!(?topics, "Could not create these topics; create them, or dead letters and alert records wait in the producer until they exist.");
}

/// A message's own headers, copied: (key, value).
type CopiedHeaders = Vec<(String, Option<Vec<u8>>)>;

/// One polled batch, copied out of librdkafka so another thread can decode it: the payloads
/// back to back, and per message where it came from.
#[derive(Default)]
struct RawBatch {
    /// The payloads, back to back (checked as UTF-8 in one pass).
    bytes: Vec<u8>,
    /// The keys, back to back.
    keys: Vec<u8>,
    /// Per message: payload span in `bytes`, its key span in `keys` (`u32::MAX` start = no key).
    spans: Vec<(u32, u32, u32, u32)>,
    /// Per message: index into `topics`, partition, offset.
    origin: Vec<(u16, i32, i64)>,
    /// Original headers of messages that had any (rare), by message index.
    headers: Vec<(u32, CopiedHeaders)>,
    topics: Vec<String>,
    /// librdkafka's topic handles, parallel to `topics` (compared, never dereferenced).
    topic_handles: Vec<usize>,
}

impl RawBatch {
    /// Copies a message polled from the consumer's own queue (rare: see [`FetchQueue`]).
    fn push(&mut self, m: &BorrowedMessage<'_>) {
        let headers = m.headers().map(|h| {
            h.iter()
                .map(|x| (x.key.to_string(), x.value.map(<[u8]>::to_vec)))
                .collect()
        });
        self.push_parts(
            m.payload().unwrap_or(b""),
            m.key(),
            (m.topic_ptr() as usize, || m.topic().to_string()),
            (m.partition(), m.offset()),
            headers,
        );
    }

    /// Copies a message taken from the fetch queue.
    ///
    /// # Safety
    /// `m` is a valid message from librdkafka, not yet destroyed.
    unsafe fn push_native(&mut self, m: &rdsys::rd_kafka_message_t) {
        // SAFETY (all below): librdkafka's message fields are valid until it is destroyed.
        let bytes = |p: *mut std::ffi::c_void, len: usize| -> &[u8] {
            if p.is_null() {
                &[]
            } else {
                unsafe { std::slice::from_raw_parts(p as *const u8, len) }
            }
        };
        let payload = bytes(m.payload, m.len);
        let key = (!m.key.is_null()).then(|| bytes(m.key, m.key_len));
        let topic = || {
            let name = unsafe { CStr::from_ptr(rdsys::rd_kafka_topic_name(m.rkt)) };
            name.to_string_lossy().into_owned()
        };
        let headers = unsafe { native_headers(m) };
        self.push_parts(
            payload,
            key,
            (m.rkt as usize, topic),
            (m.partition, m.offset),
            headers,
        );
    }

    fn push_parts(
        &mut self,
        payload: &[u8],
        key: Option<&[u8]>,
        (handle, topic_name): (usize, impl FnOnce() -> String),
        (partition, offset): (i32, i64),
        headers: Option<CopiedHeaders>,
    ) {
        let start = self.bytes.len() as u32;
        // Oversized payloads are not copied: only their start, to dead-letter them cut short.
        let kept = if payload.len() > MAX_RECORD_BYTES {
            &payload[..MAX_RECORD_BYTES + 1]
        } else {
            payload
        };
        self.bytes.extend_from_slice(kept);
        let end = self.bytes.len() as u32;
        let (ks, ke) = match key {
            Some(k) => {
                let ks = self.keys.len() as u32;
                self.keys.extend_from_slice(k);
                (ks, self.keys.len() as u32)
            }
            None => (u32::MAX, 0),
        };
        self.spans.push((start, end, ks, ke));
        // Asking librdkafka for the topic name costs a C call and a UTF-8 check per message;
        // its topic handle identifies the topic just as well.
        let topic = match self.topic_handles.iter().position(|&h| h == handle) {
            Some(i) => i,
            None => {
                self.topic_handles.push(handle);
                self.topics.push(topic_name());
                self.topics.len() - 1
            }
        };
        self.origin.push((topic as u16, partition, offset));
        if let Some(copied) = headers {
            self.headers.push((self.spans.len() as u32 - 1, copied));
        }
    }

    fn len(&self) -> usize {
        self.spans.len()
    }

    fn payload(&self, i: usize) -> &[u8] {
        let (s, e, _, _) = self.spans[i];
        &self.bytes[s as usize..e as usize]
    }

    fn key(&self, i: usize) -> Option<&[u8]> {
        let (_, _, ks, ke) = self.spans[i];
        (ks != u32::MAX).then(|| &self.keys[ks as usize..ke as usize])
    }
}

/// A message's headers, copied, or `None` when it has none.
///
/// # Safety
/// `m` is a valid message from librdkafka, not yet destroyed.
unsafe fn native_headers(m: &rdsys::rd_kafka_message_t) -> Option<CopiedHeaders> {
    let mut hdrs: *mut rdsys::rd_kafka_headers_t = std::ptr::null_mut();
    // SAFETY: `m` is valid; the headers belong to the message and are only read here.
    unsafe {
        if rdsys::rd_kafka_message_headers(m, &mut hdrs)
            != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR
            || hdrs.is_null()
        {
            return None;
        }
        let mut copied = Vec::new();
        let mut idx = 0;
        loop {
            let (mut name, mut value, mut size) = (std::ptr::null(), std::ptr::null(), 0usize);
            if rdsys::rd_kafka_header_get_all(hdrs, idx, &mut name, &mut value, &mut size)
                != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR
            {
                break;
            }
            let key = CStr::from_ptr(name).to_string_lossy().into_owned();
            let value = (!value.is_null())
                .then(|| std::slice::from_raw_parts(value as *const u8, size).to_vec());
            copied.push((key, value));
            idx += 1;
        }
        Some(copied)
    }
}

/// The librdkafka queue every assigned partition's messages are forwarded to, read thousands
/// at a time (`rd_kafka_consume_batch_queue`) instead of one `poll` each. A `poll` reads the
/// clock three times and allocates per message: on these machines that was a quarter of the
/// polling thread's CPU. Rebalances, errors, statistics and commit results stay on the
/// consumer's own queue, served by `poll` between batches.
///
/// Partitions are forwarded in the rebalance callback before they are assigned, so none of
/// their messages is fetched into the consumer's queue first. librdkafka keeps an application's
/// forwarding across reassignments, and drops messages of a revoked assignment (its version
/// barrier) in this queue as in its own.
struct FetchQueue(NonNull<rdsys::rd_kafka_queue_t>);

// SAFETY: librdkafka queues are locked internally and may be used from any thread.
unsafe impl Send for FetchQueue {}
unsafe impl Sync for FetchQueue {}

impl FetchQueue {
    fn new(client: *mut rdsys::rd_kafka_t) -> Self {
        // SAFETY: `client` is a live librdkafka handle; the queue is destroyed before it (see
        // `consume`).
        let q = unsafe { rdsys::rd_kafka_queue_new(client) };
        FetchQueue(NonNull::new(q).expect("librdkafka allocates a queue"))
    }

    /// Copies up to `max` messages into `raw`, waiting up to `timeout` for them (librdkafka
    /// returns early only with `max` in hand). Per-partition errors are counted and logged.
    fn read(
        &self,
        raw: &mut RawBatch,
        timeout: Duration,
        max: usize,
        slots: &mut Vec<*mut rdsys::rd_kafka_message_t>,
        status: &KafkaStatus,
        brokers: &str,
    ) {
        slots.clear();
        slots.reserve(max);
        // SAFETY: `slots` has room for `max` pointers; librdkafka fills the first `n`.
        let n = unsafe {
            rdsys::rd_kafka_consume_batch_queue(
                self.0.as_ptr(),
                timeout.as_millis().min(i32::MAX as u128) as i32,
                slots.as_mut_ptr(),
                max,
            )
        };
        let n = usize::try_from(n).unwrap_or(0).min(max);
        // SAFETY: librdkafka wrote `n` message pointers.
        unsafe { slots.set_len(n) };
        for &m in slots.iter() {
            // SAFETY: each message is valid until destroyed, once, right after it is copied.
            unsafe {
                let message = &*m;
                if message.err == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
                    raw.push_native(message);
                } else {
                    report_consumer_error(
                        status,
                        brokers,
                        &KafkaError::MessageConsumption(message.err.into()),
                    );
                }
                rdsys::rd_kafka_message_destroy(m);
            }
        }
        slots.clear();
    }
}

impl Drop for FetchQueue {
    fn drop(&mut self) {
        // SAFETY: created by `rd_kafka_queue_new`, destroyed once, before the client.
        unsafe { rdsys::rd_kafka_queue_destroy(self.0.as_ptr()) }
    }
}

/// Routes the messages of these partitions to `queue` (a [`FetchQueue`]).
fn forward_partitions(
    client: *mut rdsys::rd_kafka_t,
    queue: *mut rdsys::rd_kafka_queue_t,
    tpl: &TopicPartitionList,
) {
    for e in tpl.elements() {
        let Ok(topic) = CString::new(e.topic()) else {
            continue;
        };
        // SAFETY: live client and queue (the queue outlives every rebalance: see `consume`);
        // the partition queue handle is released right after forwarding (the forwarding
        // holds its own reference).
        unsafe {
            let pq = rdsys::rd_kafka_queue_get_partition(client, topic.as_ptr(), e.partition());
            if pq.is_null() {
                // Its messages then arrive on the consumer's queue and are read by `poll`.
                tracing::debug!(
                    topic = e.topic(),
                    partition = e.partition(),
                    "No partition queue to forward."
                );
                continue;
            }
            rdsys::rd_kafka_queue_forward(pq, queue);
            rdsys::rd_kafka_queue_destroy(pq);
        }
    }
}

/// Counts and logs a consumer error; librdkafka retries by itself.
fn report_consumer_error(status: &KafkaStatus, brokers: &str, e: &KafkaError) {
    status.errors.fetch_add(1, Ordering::Relaxed);
    let transport = matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown)
    );
    if transport {
        // Already logged by the error callback, with the broker address.
        tracing::debug!(%brokers, error = %e, "Kafka consumer error.");
    } else {
        tracing::warn!(%brokers, error = %e, "Kafka consumer error; it retries by itself.");
    }
}

/// Batches polled but not yet applied and stored; a revocation waits for zero.
#[derive(Default)]
struct InFlight {
    count: Mutex<usize>,
    done: Condvar,
}

impl InFlight {
    fn add(&self) {
        *self.count.lock().expect("not poisoned") += 1;
    }

    fn finish(&self) {
        *self.count.lock().expect("not poisoned") -= 1;
        self.done.notify_all();
    }

    /// Waits until every polled batch is applied and its offsets stored (or `timeout`).
    fn drain(&self, timeout: Duration) -> bool {
        let guard = self.count.lock().expect("not poisoned");
        let (guard, _) = self
            .done
            .wait_timeout_while(guard, timeout, |n| *n > 0)
            .expect("not poisoned");
        *guard == 0
    }
}

/// Consumes until `stop` is set. `apply(batch, rejected_reasons)` applies well-formed events
/// and counts decode rejects; it returns the rows of `batch` that were late, which are
/// dead-lettered with reason `late`.
///
/// Two threads: this one polls and copies each batch out of librdkafka; a worker decodes,
/// applies, dead-letters and stores the offsets, batch after batch in poll order. At most
/// [`PIPELINE_DEPTH`] batches are in flight; a revocation (inside `poll`) first waits for all
/// of them, so the commit it makes covers every message polled from the revoked partitions.
pub fn consume<F>(
    cfg: &KafkaConfig,
    brokers: &str,
    status: Arc<KafkaStatus>,
    stop: &AtomicBool,
    resume: Option<Resume>,
    apply: F,
) -> Result<(), KafkaIngestError>
where
    F: FnMut(&Arc<ChunkView>, &[Reason], &[(&str, i32, i64)]) -> Vec<(u32, Reason)> + Send,
{
    let in_flight = Arc::new(InFlight::default());
    let consumer: BaseConsumer<IngestContext> = consumer_config(cfg, brokers)
        .create_with_context(IngestContext {
            status: status.clone(),
            brokers: brokers.to_string(),
            in_flight: in_flight.clone(),
            resume: Mutex::new(resume),
            fetch_queue: AtomicPtr::new(std::ptr::null_mut()),
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
    // Declared after the consumer, so it is destroyed before it on every path.
    let fetch = FetchQueue::new(consumer.client().native_ptr());
    consumer
        .context()
        .fetch_queue
        .store(fetch.0.as_ptr(), Ordering::Release);
    let topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|source| KafkaIngestError::Subscribe {
            topics: cfg.topics.clone(),
            source,
        })?;
    status.running.store(true, Ordering::Relaxed);
    tracing::info!(%brokers, topics = ?cfg.topics, group = %cfg.group, "Consuming from Kafka.");
    let (to_worker, from_poller) = std::sync::mpsc::sync_channel::<RawBatch>(PIPELINE_DEPTH);
    let (recycle_tx, recycle_rx) = std::sync::mpsc::channel::<RawBatch>();
    let apply_panicked = std::thread::scope(|scope| {
        let worker = {
            let (consumer, producer, status, in_flight) =
                (&consumer, &producer, &status, &in_flight);
            let mut apply = apply;
            std::thread::Builder::new()
                .name("kafka-apply".into())
                // SQL alert rules are planned and run here (see sql::nesting).
                .stack_size(crate::sql::nesting::STACK_BYTES)
                .spawn_scoped(scope, move || {
                    for mut raw in from_poller {
                        process(cfg, consumer, producer, status, &raw, &mut apply);
                        in_flight.finish();
                        raw.bytes.clear();
                        raw.keys.clear();
                        raw.spans.clear();
                        raw.origin.clear();
                        raw.headers.clear();
                        raw.topics.clear();
                        raw.topic_handles.clear();
                        let _ = recycle_tx.send(raw);
                    }
                })
                .expect("spawn the Kafka apply thread")
        };
        poll_loop(
            &consumer,
            &fetch,
            &status,
            stop,
            &in_flight,
            &to_worker,
            &recycle_rx,
        );
        drop(to_worker);
        worker.join().is_err()
    });
    // Everything polled is applied and stored now; make the commit final.
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => {
            tracing::warn!(error = %e, "Final offset commit failed; the next start re-reads from the last commit (duplicates are dropped by id).")
        }
    }
    status.running.store(false, Ordering::Relaxed);
    status.assigned.store(0, Ordering::Relaxed);
    // Closing may still rebalance (a revocation); nothing is forwarded any more.
    consumer
        .context()
        .fetch_queue
        .store(std::ptr::null_mut(), Ordering::Release);
    drop(fetch);
    drop(consumer);
    if apply_panicked {
        // Offsets of the failed batch were not stored: a restart re-reads it.
        return Err(KafkaIngestError::ApplyFailed);
    }
    Ok(())
}

/// Batches handed to the apply thread and not yet done, at most.
pub const PIPELINE_DEPTH: usize = 2;

/// A batch closes when it is full or this long after it was started.
const BATCH_WINDOW: Duration = Duration::from_millis(20);

fn poll_loop(
    consumer: &BaseConsumer<IngestContext>,
    fetch: &FetchQueue,
    status: &KafkaStatus,
    stop: &AtomicBool,
    in_flight: &InFlight,
    to_worker: &std::sync::mpsc::SyncSender<RawBatch>,
    recycled: &std::sync::mpsc::Receiver<RawBatch>,
) {
    let brokers = &consumer.context().brokers;
    let mut last_probe = Instant::now();
    let mut slots = Vec::with_capacity(MAX_BATCH);
    while !stop.load(Ordering::Relaxed) {
        let mut raw = recycled.try_recv().unwrap_or_default();
        // Rebalances, errors, statistics and commit results wait on the consumer's own queue.
        // They are served here, between batches, when no polled message is held by this
        // thread: a revocation then only waits for the batches handed to the apply thread.
        // (`poll` returns `None` also after serving an event: the rest wait for the next
        // round, at most a batch window later.)
        for _ in 0..8 {
            match consumer.poll(Duration::ZERO) {
                None => break,
                Some(Ok(m)) => {
                    // A message fetched before its partition was forwarded (see FetchQueue).
                    raw.push(&m);
                    break;
                }
                Some(Err(e)) => report_consumer_error(status, brokers, &e),
            }
        }
        let room = MAX_BATCH - raw.len();
        fetch.read(&mut raw, BATCH_WINDOW, room, &mut slots, status, brokers);
        if raw.len() == 0 {
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
        if status.brokers_down.swap(false, Ordering::Relaxed) {
            tracing::info!(%brokers, "Kafka brokers answer again.");
        }
        in_flight.add();
        if to_worker.send(raw).is_err() {
            in_flight.finish();
            return; // the apply thread is gone (it panicked); stop polling
        }
    }
}

/// Decodes a polled batch: the events as one Arrow batch, wrapped for the engine here, outside
/// its lock; for each row the index of its message; and the messages rejected, with why.
fn decode_batch(raw: &RawBatch) -> (Arc<ChunkView>, Vec<u32>, Vec<(u32, Reason)>) {
    let mut columns = EventColumns::with_capacity(raw.len());
    let mut row_message: Vec<u32> = Vec::with_capacity(raw.len());
    let mut dead: Vec<(u32, Reason)> = Vec::new();
    // One UTF-8 check for the whole batch is several times cheaper than one per message. A
    // valid whole does not make every message valid (a character could straddle two), so each
    // message must also start and end on a character boundary (`str::get`); any other message
    // is checked on its own.
    let text = simdutf8::basic::from_utf8(&raw.bytes).ok();
    let mut ev = crate::event::Event::default();
    for i in 0..raw.len() {
        let (s, e, _, _) = raw.spans[i];
        let payload = raw.payload(i);
        let decoded = if payload.len() > MAX_RECORD_BYTES {
            Err(Reason::LineTooLong)
        } else {
            match text.and_then(|t| t.get(s as usize..e as usize)) {
                Some(message) => decode_record_str(message, &mut ev, &mut columns),
                None => decode_record(payload, &mut columns),
            }
        };
        match decoded {
            Ok(()) => row_message.push(i as u32),
            Err(r) => dead.push((i as u32, r)),
        }
    }
    (
        Arc::new(ChunkView::from_rows(columns.finish_rows())),
        row_message,
        dead,
    )
}

fn process<F>(
    cfg: &KafkaConfig,
    consumer: &BaseConsumer<IngestContext>,
    producer: &ThreadedProducer<DeadLetterContext>,
    status: &KafkaStatus,
    raw: &RawBatch,
    apply: &mut F,
) where
    F: FnMut(&Arc<ChunkView>, &[Reason], &[(&str, i32, i64)]) -> Vec<(u32, Reason)>,
{
    let (batch, row_message, mut dead) = decode_batch(raw);
    let reasons: Vec<Reason> = dead.iter().map(|d| d.1).collect();
    let mut next: BTreeMap<(u16, i32), i64> = BTreeMap::new();
    let mut note = |key: (u16, i32), offset: i64| {
        let e = next.entry(key).or_insert(offset);
        *e = (*e).max(offset);
    };
    // A partition's messages come in runs: one map update per run, not one per message.
    let mut run: Option<((u16, i32), i64)> = None;
    for &(t, p, o) in &raw.origin {
        match &mut run {
            Some((key, newest)) if *key == (t, p) => *newest = (*newest).max(o),
            _ => {
                if let Some((key, newest)) = run.replace(((t, p), o)) {
                    note(key, newest);
                }
            }
        }
    }
    if let Some((key, newest)) = run {
        note(key, newest);
    }
    // The next offset to read of each partition, once this batch is applied.
    let positions: Vec<(&str, i32, i64)> = next
        .iter()
        .map(|(&(t, p), &o)| (raw.topics[t as usize].as_str(), p, o + 1))
        .collect();
    let late = apply(&batch, &reasons, &positions);
    dead.extend(
        late.iter()
            .map(|&(row, reason)| (row_message[row as usize], reason)),
    );
    if !dead.is_empty() {
        let mut by_reason = status.dead_lettered_by_reason.lock().expect("not poisoned");
        for &(i, reason) in &dead {
            *by_reason.entry(reason.to_string()).or_insert(0) += 1;
            send_dead_letter(cfg, producer, raw, i as usize, reason);
        }
        drop(by_reason);
        // Offsets move past a rejected message only once its dead letter is on the broker.
        while producer.in_flight_count() > 0 {
            if let Err(e) = producer.flush(Duration::from_secs(10)) {
                tracing::warn!(error = %e, "Waiting for the dead-letter topic to accept rejected messages.");
            }
        }
    }
    for (&(t, partition), &offset) in &next {
        let topic = raw.topics[t as usize].as_str();
        // `store_offset` stores offset + 1: the next message to read.
        if let Err(e) = consumer.store_offset(topic, partition, offset) {
            // The partition was revoked meanwhile; its next owner re-reads these events.
            tracing::debug!(topic, partition, error = %e, "Offset not stored.");
        }
    }
    status
        .messages
        .fetch_add(raw.len() as u64, Ordering::Relaxed);
}

fn send_dead_letter(
    cfg: &KafkaConfig,
    producer: &ThreadedProducer<DeadLetterContext>,
    raw: &RawBatch,
    i: usize,
    reason: Reason,
) {
    let (t, partition, offset) = raw.origin[i];
    let source = raw.topics[t as usize].as_str();
    let topic = cfg.dead_letter_topic_for(source);
    let reason_text = reason.to_string();
    let partition = partition.to_string();
    let offset = offset.to_string();
    let mut headers = OwnedHeaders::new_with_capacity(4);
    if let Some((_, original)) = raw.headers.iter().find(|(m, _)| *m as usize == i) {
        for (key, value) in original {
            headers = headers.insert(Header {
                key,
                value: value.as_deref(),
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
            value: Some(source),
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
        .payload(raw.payload(i))
        .headers(headers);
    if let Some(k) = raw.key(i) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_batch(messages: &[&[u8]]) -> RawBatch {
        let mut raw = RawBatch::default();
        for m in messages {
            let start = raw.bytes.len() as u32;
            raw.bytes.extend_from_slice(m);
            raw.spans.push((start, raw.bytes.len() as u32, u32::MAX, 0));
            raw.origin.push((0, 0, raw.origin.len() as i64));
        }
        raw
    }

    /// The batch-wide UTF-8 check gives every message the verdict it gets alone, including two
    /// invalid messages that together hold one valid character.
    #[test]
    fn a_batch_decodes_each_message_as_alone() {
        let good: &[u8] = br#"{"type":"reject","ts":1,"server":"gw-01"}"#;
        let utf8: &[u8] = "{\"type\":\"reject\",\"ts\":2,\"server\":\"gw-é\"}\n".as_bytes();
        let cut = utf8.iter().position(|&b| b == 0xc3).unwrap() + 1;
        let (left, right) = utf8.split_at(cut);
        for messages in [
            vec![good, utf8, good],
            vec![good, left, right, good],
            vec![left, right],
            vec![b"\xff".as_slice(), good],
            vec![b" ".as_slice(), b"[1]", good],
        ] {
            let raw = raw_batch(&messages);
            let (batch, rows, dead) = decode_batch(&raw);
            let mut alone_rows = Vec::new();
            let mut alone_dead = Vec::new();
            for (i, m) in messages.iter().enumerate() {
                let mut cols = EventColumns::with_capacity(1);
                match decode_record(m, &mut cols) {
                    Ok(()) => alone_rows.push(i as u32),
                    Err(r) => alone_dead.push((i as u32, r)),
                }
            }
            assert_eq!(
                (rows, dead),
                (alone_rows.clone(), alone_dead),
                "{messages:?}"
            );
            assert_eq!(batch.num_rows(), alone_rows.len());
        }
    }

    /// TLS and SASL are compiled in: librdkafka refuses these properties at creation otherwise
    /// ("OpenSSL not available at build time").
    #[test]
    fn tls_and_sasl_settings_are_accepted() {
        let mut cfg = KafkaConfig::default();
        for (k, v) in [
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanisms", "SCRAM-SHA-512"),
            ("sasl.username", "gatewatch"),
            ("sasl.password", "secret"),
            ("ssl.endpoint.identification.algorithm", "https"),
        ] {
            cfg.properties.insert(k.into(), v.into());
        }
        let consumer: Result<BaseConsumer, _> = consumer_config(&cfg, "127.0.0.1:1").create();
        assert!(consumer.is_ok(), "{:?}", consumer.err());
        let producer: Result<ThreadedProducer<_>, _> = client_config(&cfg, "127.0.0.1:1")
            .create_with_context(DeadLetterContext {
                status: Arc::default(),
                brokers: String::new(),
            });
        assert!(producer.is_ok(), "{:?}", producer.err());
    }
}
