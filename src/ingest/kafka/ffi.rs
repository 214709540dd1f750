//! Every `unsafe` call into librdkafka's C API, in one place: reading messages in batches from
//! one queue every assigned partition is forwarded to ([`FetchQueue`], with
//! `rd_kafka_consume_batch_queue`), and copying a native message and its headers.
//!
//! Why not rdkafka's safe API: it polls one message per call, reading the clock three times and
//! allocating an event each time; that was 29 % of both cores under load (see
//! docs/performance.md). Owns: pointers' lifetimes and the SAFETY arguments. Must not touch:
//! decoding, offsets, the engine.

use std::ffi::{CStr, CString};
use std::ptr::NonNull;
use std::time::Duration;

use rdkafka::bindings as rdsys;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::TopicPartitionList;

use super::*;

impl RawBatch {
    /// Copies a message taken from the fetch queue.
    ///
    /// # Safety
    /// `m` is a valid message from librdkafka, not yet destroyed.
    pub(super) unsafe fn push_native(&mut self, m: &rdsys::rd_kafka_message_t) {
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
}

/// A message's headers, copied, or `None` when it has none.
///
/// # Safety
/// `m` is a valid message from librdkafka, not yet destroyed.
pub(super) unsafe fn native_headers(m: &rdsys::rd_kafka_message_t) -> Option<CopiedHeaders> {
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
pub(super) struct FetchQueue(pub(super) NonNull<rdsys::rd_kafka_queue_t>);

// SAFETY: librdkafka queues are locked internally and may be used from any thread.
unsafe impl Send for FetchQueue {}
unsafe impl Sync for FetchQueue {}

impl FetchQueue {
    pub(super) fn new(client: *mut rdsys::rd_kafka_t) -> Self {
        // SAFETY: `client` is a live librdkafka handle; the queue is destroyed before it (see
        // `consume`).
        let q = unsafe { rdsys::rd_kafka_queue_new(client) };
        FetchQueue(NonNull::new(q).expect("librdkafka allocates a queue"))
    }

    /// Copies up to `max` messages into `raw`, waiting up to `timeout` for them (librdkafka
    /// returns early only with `max` in hand). Per-partition errors are counted and logged.
    pub(super) fn read(
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
pub(super) fn forward_partitions(
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
