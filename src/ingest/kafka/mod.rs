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

mod batch;
mod client;
mod dead_letter;
mod ffi;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::ThreadedProducer;

use crate::config::{InputConfig, KafkaConfig};
use crate::event::syslog::Clock;
use crate::event::ChunkView;
use crate::event::{EventColumns, Ignored, InputFormat, Reason};
use crate::ingest::{
    decode_record, decode_record_str, decode_syslog_record, LineFormat, MAX_RECORD_BYTES,
};

use batch::*;
use client::*;
pub use client::{check_topics, Resume};
use dead_letter::*;
use ffi::*;

/// Stack of the thread that runs `apply`: the service evaluates alert rules there, and SQL
/// rules are planned and run on it, so it is `sql::nesting::STACK_BYTES` (a test there checks
/// they are equal; `ingest` does not reach up to `sql`).
pub const APPLY_STACK_BYTES: usize = 64 << 20;

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
    /// Partitions of each subscribed topic, from librdkafka's statistics (every 5 s).
    pub partition_counts: Mutex<BTreeMap<String, i32>>,
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

/// Who keeps the state of partitions as they come and go (a member of a cluster): told, inside
/// the rebalance, of partitions revoked (after every polled batch is applied) and assigned
/// (before their first message is fetched).
pub trait PartitionOwner: Send + Sync {
    /// `partitions` (topic, partition) are being taken away: everything read of them is
    /// applied. Keep their final state where their next owner finds it, then forget them.
    fn revoked(&self, partitions: &[(String, i32)]);
    /// `partitions` were assigned: restore their state. Returns, for each, the offset to start
    /// reading at (None: the earliest retained, for a partition whose state is nowhere).
    fn assigned(&self, partitions: &[(String, i32)]) -> Vec<Option<i64>>;
}

/// Where assigned partitions start reading (neither: the group's committed offsets).
#[derive(Default)]
pub struct Start {
    /// The positions a restored checkpoint reflects, taken on each partition's first
    /// assignment.
    pub resume: Option<Resume>,
    /// A cluster member's partition state, restored on every assignment (wins over `resume`).
    pub owner: Option<Arc<dyn PartitionOwner>>,
}

/// One decoded batch, as [`consume`] hands it to `apply`.
pub struct Polled<'a> {
    /// The well-formed events.
    pub batch: &'a Arc<ChunkView>,
    /// Why each rejected message was rejected (to count; they are dead-lettered here).
    pub rejects: &'a [Reason],
    /// The next offset to read of each partition in the batch, once it is applied.
    pub positions: &'a [(&'a str, i32, i64)],
    /// Gateway lines that are not about sessions, by kind.
    pub ignored: &'a [(Ignored, u64)],
    /// The topics of the batch's messages (indexed by [`Polled::partition_of_row`]'s first).
    pub topics: &'a [String],
    /// For each row of `batch`, its message's index in the polled batch.
    pub row_message: &'a [u32],
    /// For each polled message: (topic index, partition, offset).
    pub origin: &'a [(u16, i32, i64)],
}

impl Polled<'_> {
    /// The (topic index into [`Polled::topics`], partition) a row of `batch` came from.
    pub fn partition_of_row(&self, row: usize) -> (u16, i32) {
        let (t, p, _) = self.origin[self.row_message[row] as usize];
        (t, p)
    }
}

/// Consumes until `stop` is set. `apply(polled)` applies well-formed events and counts decode
/// rejects and ignored lines; it returns the rows of the batch that were late, which are
/// dead-lettered with reason `late`. Each topic's messages are decoded in its format
/// (`cfg.formats`), year-less and zone-less syslog stamps completed as `input` says.
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
    start: Start,
    input: InputConfig,
    apply: F,
) -> Result<(), KafkaIngestError>
where
    F: FnMut(Polled<'_>) -> Vec<(u32, Reason)> + Send,
{
    let in_flight = Arc::new(InFlight::default());
    let consumer: BaseConsumer<IngestContext> = consumer_config(cfg, brokers)
        .create_with_context(IngestContext {
            status: status.clone(),
            brokers: brokers.to_string(),
            in_flight: in_flight.clone(),
            resume: Mutex::new(start.resume),
            owner: start.owner,
            fetch_queue: AtomicPtr::new(std::ptr::null_mut()),
            cooperative: cfg
                .properties
                .get("partition.assignment.strategy")
                .is_some_and(|s| s.contains("cooperative")),
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
                .stack_size(APPLY_STACK_BYTES)
                .spawn_scoped(scope, move || {
                    for mut raw in from_poller {
                        process(cfg, &input, consumer, producer, status, &raw, &mut apply);
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

/// The clock that completes year-less and zone-less syslog stamps read now: pinned to
/// `input.year` when given, else the year before the wall clock (docs/gateways.md, "Time").
pub fn live_clock(input: &InputConfig) -> Clock {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    match input.year {
        Some(y) => Clock::in_year(y, 0),
        None => Clock::live(now, 0),
    }
    .at(input.timezone)
}

/// A polled batch decoded: the events as one Arrow batch, wrapped for the engine here, outside
/// its lock; for each row the index of its message; the messages rejected, with why; and the
/// ignored gateway lines by kind.
pub(super) struct DecodedBatch {
    pub(super) view: Arc<ChunkView>,
    pub(super) row_message: Vec<u32>,
    pub(super) dead: Vec<(u32, Reason)>,
    pub(super) ignored: Vec<(Ignored, u64)>,
}

/// Decodes a polled batch, each message in its topic's format (`formats[topic index]`; JSON for
/// a topic not in it).
fn decode_batch(raw: &RawBatch, formats: &[InputFormat], clock: Clock) -> DecodedBatch {
    let mut columns = EventColumns::with_capacity(raw.len());
    let mut row_message: Vec<u32> = Vec::with_capacity(raw.len());
    let mut dead: Vec<(u32, Reason)> = Vec::new();
    let mut ignored = Vec::new();
    let mut scratch = String::new();
    // One UTF-8 check for the whole batch is several times cheaper than one per message. A
    // valid whole does not make every message valid (a character could straddle two), so each
    // message must also start and end on a character boundary (`str::get`); any other message
    // is checked on its own.
    let text = simdutf8::basic::from_utf8(&raw.bytes).ok();
    let mut ev = crate::event::Event::default();
    for i in 0..raw.len() {
        let (s, e, _, _) = raw.spans[i];
        let payload = raw.payload(i);
        let format = formats
            .get(raw.origin[i].0 as usize)
            .copied()
            .unwrap_or_default();
        let decoded = if payload.len() > MAX_RECORD_BYTES {
            Err(Reason::LineTooLong)
        } else if format.is_syslog() {
            let lines = LineFormat { format, clock };
            let text = match text.and_then(|t| t.get(s as usize..e as usize)) {
                Some(message) => Ok(message),
                None => std::str::from_utf8(payload).map_err(|_| Reason::InvalidUtf8),
            };
            // A relay may end a message with its newline.
            text.map(|t| t.trim_end_matches(['\n', '\r']))
                .and_then(|t| {
                    decode_syslog_record(t, &lines, &mut scratch, &mut columns, &mut ignored)
                })
                .map(|row| {
                    if row {
                        row_message.push(i as u32);
                    }
                })
        } else {
            match text.and_then(|t| t.get(s as usize..e as usize)) {
                Some(message) => decode_record_str(message, &mut ev, &mut columns),
                None => decode_record(payload, &mut columns),
            }
            .map(|()| row_message.push(i as u32))
        };
        if let Err(r) = decoded {
            dead.push((i as u32, r));
        }
    }
    DecodedBatch {
        view: Arc::new(ChunkView::from_rows(columns.finish_rows())),
        row_message,
        dead,
        ignored,
    }
}
