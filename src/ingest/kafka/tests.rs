//! The Kafka module's unit tests.

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
        let DecodedBatch {
            view: batch,
            row_message: rows,
            dead,
            ..
        } = decode_batch(&raw, &[], Clock::default());
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
