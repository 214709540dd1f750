//! The consumer's client side: its configuration, the context librdkafka calls back into (logs,
//! errors, statistics, rebalances: where a revocation waits for what was polled and commits),
//! and the topics' existence check and creation.
//!
//! Owns: librdkafka properties gatewatch sets, rebalance handling, topic administration. Must
//! not touch: messages (that is `batch` and the consume loop).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::bindings as rdsys;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, DefaultConsumerContext, Rebalance,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;

use super::*;

/// Context shared by the consumer: logs, errors and rebalances into [`KafkaStatus`].
pub(super) struct IngestContext {
    pub(super) status: Arc<KafkaStatus>,
    pub(super) brokers: String,
    pub(super) in_flight: Arc<InFlight>,
    /// Where to start reading each partition, from a checkpoint; taken on its first assignment.
    pub(super) resume: Mutex<Option<Resume>>,
    /// Keeps partitions' state as they move (a cluster member); its offsets win over `resume`.
    pub(super) owner: Option<Arc<dyn PartitionOwner>>,
    /// The [`FetchQueue`] every assigned partition's messages are forwarded to: set once the
    /// consumer exists, before it subscribes; null again before the queue is destroyed.
    pub(super) fetch_queue: AtomicPtr<rdsys::rd_kafka_queue_t>,
    /// The group uses the cooperative protocol (`partition.assignment.strategy` names only
    /// `cooperative-sticky`); else eager, librdkafka's default.
    pub(super) cooperative: bool,
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
    /// Restores newly assigned partitions' state through the owner and starts each where its
    /// state leaves off (the earliest retained offset when it has none).
    fn restore_assignment(&self, owner: &dyn PartitionOwner, tpl: &mut TopicPartitionList) {
        let assigned: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        let offsets = owner.assigned(&assigned);
        for ((topic, partition), next) in assigned.into_iter().zip(offsets) {
            let offset = next.map_or(Offset::Beginning, Offset::Offset);
            if let Err(e) = tpl.set_partition_offset(&topic, partition, offset) {
                tracing::warn!(topic, partition, error = %e, "Could not set the partition's start offset.");
            }
        }
    }

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
        let mut counts = BTreeMap::new();
        for (name, topic) in &stats.topics {
            let n = topic.partitions.keys().filter(|p| **p >= 0).count();
            if n > 0 {
                counts.insert(name.clone(), n as i32);
            }
            for (&partition, p) in &topic.partitions {
                // Partition -1 is librdkafka's internal "unassigned" queue; -1 lag is unknown.
                if partition >= 0 && p.desired && p.consumer_lag_stored >= 0 {
                    lag.insert((name.clone(), partition), p.consumer_lag_stored);
                }
            }
        }
        *self.status.lag.lock().expect("not poisoned") = lag;
        *self.status.partition_counts.lock().expect("not poisoned") = counts;
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
                match &self.owner {
                    Some(owner) => self.restore_assignment(owner.as_ref(), tpl),
                    None => self.position_assignment(tpl),
                }
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
        if let (Rebalance::Revoke(t), Some(owner)) = (&rebalance, &self.owner) {
            // Everything polled is applied: the partitions' final state goes to the store
            // before they are given up, so their next owner, which may only read them once
            // this member has rejoined, finds it.
            let revoked: Vec<(String, i32)> = t
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            owner.revoked(&revoked);
        }
        // The protocol comes from the configured assignor, not from librdkafka: asking it
        // (`rd_kafka_rebalance_protocol`) can wait forever once the consumer is closing
        // (librdkafka#4041, rust-rdkafka#509), and a rebalance does arrive during close.
        let done = match (&rebalance, self.cooperative) {
            (Rebalance::Assign(t), true) => consumer.incremental_assign(t),
            (Rebalance::Assign(t), false) => consumer.assign(t),
            (Rebalance::Revoke(t), true) => consumer.incremental_unassign(t),
            (Rebalance::Revoke(_), false) => consumer.unassign(),
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

pub(super) fn log_librdkafka(level: RDKafkaLogLevel, fac: &str, message: &str, brokers: &str) {
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

pub(super) fn client_config(cfg: &KafkaConfig, brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    for (k, v) in &cfg.properties {
        c.set(k, v);
    }
    c
}

/// Builds the consumer config: offsets stored by us after apply, committed by librdkafka.
pub(super) fn consumer_config(cfg: &KafkaConfig, brokers: &str) -> ClientConfig {
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
pub(super) fn create_topics(cfg: &KafkaConfig, brokers: &str, topics: &[String]) {
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
