//! The dead-letter topic: what a rejected Kafka message becomes (its payload and key as they
//! were, with `reason`, source topic, partition and offset headers), and the producer's delivery
//! counts. The dead-letter file of `replay` is `ingest::dead_letter`.
//!
//! Owns: the headers and delivery accounting. Must not touch: why a message was rejected.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::Message;

use crate::config::{InputConfig, KafkaConfig};
use crate::event::syslog::Clock;
use crate::event::{InputFormat, Reason};

use super::*;

/// Dead-letter producer context: counts deliveries and failures.
pub(super) struct DeadLetterContext {
    pub(super) status: Arc<KafkaStatus>,
    pub(super) brokers: String,
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

pub(super) fn process<F>(
    cfg: &KafkaConfig,
    input: &InputConfig,
    consumer: &BaseConsumer<IngestContext>,
    producer: &ThreadedProducer<DeadLetterContext>,
    status: &KafkaStatus,
    raw: &RawBatch,
    apply: &mut F,
) where
    F: FnMut(Polled<'_>) -> Vec<(u32, Reason)>,
{
    let formats: Vec<InputFormat> = raw.topics.iter().map(|t| cfg.format_of(t)).collect();
    let clock = if formats.iter().any(|f| f.is_syslog()) {
        live_clock(input)
    } else {
        Clock::default()
    };
    let DecodedBatch {
        view: batch,
        row_message,
        mut dead,
        ignored,
    } = decode_batch(raw, &formats, clock);
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
    let late = apply(Polled {
        batch: &batch,
        rejects: &reasons,
        positions: &positions,
        ignored: &ignored,
        topics: &raw.topics,
        row_message: &row_message,
        origin: &raw.origin,
    });
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

pub(super) fn send_dead_letter(
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
