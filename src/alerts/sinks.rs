//! Where alert transitions go in the live service: the log, the alerts Kafka topic, webhooks.
//!
//! Owns: the JSON form of a record and delivery. Must not block ingest: the Kafka producer
//! queues in librdkafka, and each webhook has its own thread behind a bounded queue; a slow or
//! dead webhook fills only its own queue (then records for it are dropped and counted).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use super::Emission;
use crate::config::{AlertsConfig, KafkaConfig, WebhookConfig};
use crate::event::format_rfc3339_ms;
use crate::http_client;
use crate::state::alert_log::AlertRecord;

/// Records a webhook may have queued before new ones are dropped.
pub const WEBHOOK_QUEUE: usize = 1024;

/// Delivery counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Records delivered to the alerts topic.
    pub kafka_delivered: AtomicU64,
    /// Records the alerts topic did not take (after librdkafka's retries, or a full queue).
    pub kafka_failed: AtomicU64,
    /// Webhook POSTs answered with 2xx.
    pub webhook_delivered: AtomicU64,
    /// Webhook records given up after every retry.
    pub webhook_failed: AtomicU64,
    /// Webhook records dropped because the webhook's queue was full.
    pub webhook_dropped: AtomicU64,
}

/// The JSON form of a record (the alerts topic, webhooks).
pub fn record_json(r: &AlertRecord) -> serde_json::Value {
    serde_json::to_value(r).expect("an alert record serialises")
}

struct AlertProducerContext {
    stats: Arc<SinkStats>,
}

impl ClientContext for AlertProducerContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        tracing::debug!(?level, fac, message, "librdkafka (alerts producer).");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, %reason, "Alerts producer error.");
    }
}

impl ProducerContext for AlertProducerContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.stats.kafka_delivered.fetch_add(1, Ordering::Relaxed),
            Err((e, _)) => {
                tracing::error!(error = %e, "An alert record could not be written to the alerts topic.");
                self.stats.kafka_failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

struct Webhook {
    url: String,
    queue: SyncSender<Arc<String>>,
}

/// The live service's sinks.
pub struct Sinks {
    kafka: Option<(ThreadedProducer<AlertProducerContext>, String)>,
    webhooks: Vec<Webhook>,
    stats: Arc<SinkStats>,
}

impl Sinks {
    /// Sinks for `cfg`; `kafka` is the cluster to produce the alerts topic to, if any.
    pub fn new(cfg: &AlertsConfig, kafka: Option<(&KafkaConfig, &str)>) -> anyhow::Result<Sinks> {
        let stats = Arc::new(SinkStats::default());
        let kafka = match kafka {
            None => None,
            Some((kcfg, brokers)) => {
                let mut c = rdkafka::ClientConfig::new();
                c.set("bootstrap.servers", brokers);
                for (k, v) in &kcfg.properties {
                    // Consumer-only properties would make the producer refuse to start.
                    if rdkafka_producer_property(k) {
                        c.set(k, v);
                    }
                }
                c.set("enable.idempotence", "true").set("linger.ms", "0");
                let p: ThreadedProducer<AlertProducerContext> = c
                    .create_with_context(AlertProducerContext {
                        stats: stats.clone(),
                    })
                    .map_err(|e| anyhow::anyhow!("cannot create the alerts producer: {e}"))?;
                Some((p, cfg.topic.clone()))
            }
        };
        let mut webhooks = Vec::new();
        for w in &cfg.webhooks {
            let url = http_client::Url::parse(&w.url)
                .map_err(|_| anyhow::anyhow!("alerts webhook {:?} is not an http:// URL", w.url))?;
            let (tx, rx) = std::sync::mpsc::sync_channel(WEBHOOK_QUEUE);
            let (wc, st) = (w.clone(), stats.clone());
            std::thread::Builder::new()
                .name("alert-webhook".into())
                .spawn(move || deliver_webhook(url, wc, rx, st))?;
            webhooks.push(Webhook {
                url: w.url.clone(),
                queue: tx,
            });
        }
        Ok(Sinks {
            kafka,
            webhooks,
            stats,
        })
    }

    /// Delivery counters.
    pub fn stats(&self) -> Arc<SinkStats> {
        self.stats.clone()
    }

    /// Logs and hands each record to every sink; never waits for a sink.
    pub fn send(&self, emissions: &[Emission]) {
        for e in emissions {
            let r = &e.record;
            log_record(r, e.repeat);
            let body = Arc::new(record_json(r).to_string());
            if let Some((p, topic)) = &self.kafka {
                let key = format!("{}/{}", r.rule, r.key);
                if let Err((err, _)) = p.send(BaseRecord::to(topic).key(&key).payload(&*body)) {
                    tracing::error!(error = %err, "An alert record could not be queued for the alerts topic.");
                    self.stats.kafka_failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            for w in &self.webhooks {
                match w.queue.try_send(body.clone()) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                        self.stats.webhook_dropped.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(url = %w.url, "Webhook queue is full (the webhook is slow or down); an alert record for it was dropped.");
                    }
                }
            }
        }
    }

    /// Waits (a bounded time) for the alerts topic to take what was queued.
    pub fn flush(&self, timeout: Duration) {
        if let Some((p, _)) = &self.kafka {
            let _ = p.flush(timeout);
        }
    }
}

fn log_record(r: &AlertRecord, repeat: bool) {
    let value = r.value.map_or("no data".to_string(), |v| format!("{v:.3}"));
    let server = r.server.as_deref().unwrap_or("-");
    if r.state == "firing" {
        tracing::warn!(rule = %r.rule, key = %r.key, server, severity = %r.severity, value, at = %format_rfc3339_ms(r.ts), id = %r.id, repeat, "Alert firing.");
    } else {
        tracing::info!(rule = %r.rule, key = %r.key, server, value, at = %format_rfc3339_ms(r.ts), id = %r.id, "Alert resolved.");
    }
}

/// Producer-side properties among the passed-through ones: security and connection settings.
fn rdkafka_producer_property(k: &str) -> bool {
    k.starts_with("security.")
        || k.starts_with("sasl.")
        || k.starts_with("ssl.")
        || k.starts_with("ssl_")
        || k.starts_with("socket.")
        || k.starts_with("broker.")
        || k == "client.id"
        || k == "debug"
}

/// One webhook's delivery loop: POST each record, retrying with doubling backoff.
fn deliver_webhook(
    url: http_client::Url,
    cfg: WebhookConfig,
    queue: Receiver<Arc<String>>,
    stats: Arc<SinkStats>,
) {
    let timeout = Duration::from_millis(cfg.timeout_ms as u64);
    while let Ok(body) = queue.recv() {
        let mut delay = Duration::from_millis(cfg.backoff_ms as u64);
        let mut attempt = 0;
        loop {
            let outcome = http_client::request_with(
                &url,
                "POST",
                "",
                "*/*",
                "application/json",
                body.as_bytes(),
                timeout,
                None,
            );
            let failure = match outcome {
                Ok(r) if (200..300).contains(&r.status) => None,
                Ok(r) => Some(format!("HTTP {}", r.status)),
                Err(e) => Some(match e {
                    http_client::ClientError::Io { cause, .. } => cause.to_string(),
                    other => other.to_string(),
                }),
            };
            match failure {
                None => {
                    stats.webhook_delivered.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Some(why) if attempt < cfg.retries => {
                    tracing::debug!(url = %cfg.url, attempt, %why, "Webhook attempt failed; retrying.");
                    std::thread::sleep(delay);
                    delay = delay.saturating_mul(2);
                    attempt += 1;
                }
                Some(why) => {
                    stats.webhook_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(url = %cfg.url, attempts = attempt + 1, %why, "Webhook did not take an alert record; giving up on it.");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON every sink sends, field by field as the docs list it.
    #[test]
    fn a_record_serialises_to_the_documented_json() {
        let r = AlertRecord {
            ts: 1_584_434_700_000,
            rule: "gateway-near-full".into(),
            key: "gw-03".into(),
            server: Some("gw-03".into()),
            state: "firing",
            severity: "page".into(),
            value: Some(0.93),
            threshold: None,
            since: 1_584_434_640_000,
            labels: [("team".to_string(), "remote-access".to_string())].into(),
            id: "00ff".into(),
        };
        let want = serde_json::json!({
            "id": "00ff",
            "ts": "2020-03-17T08:45:00.000Z",
            "rule": "gateway-near-full",
            "key": "gw-03",
            "server": "gw-03",
            "state": "firing",
            "severity": "page",
            "value": 0.93,
            "threshold": null,
            "since": "2020-03-17T08:44:00.000Z",
            "labels": {"team": "remote-access"},
        });
        assert_eq!(record_json(&r), want);
        assert_eq!(record_json(&r).to_string(), want.to_string());
    }
}
