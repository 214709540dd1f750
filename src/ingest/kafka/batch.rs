//! One polled batch, copied out of librdkafka so that another thread can decode it.
//!
//! Owns: the copied layout (payloads and keys back to back, origins, rare headers). Must not
//! touch: librdkafka's memory (copying a native message is `ffi`'s).

use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::Message;

use crate::ingest::MAX_RECORD_BYTES;

/// A message's own headers, copied: (key, value).
pub(super) type CopiedHeaders = Vec<(String, Option<Vec<u8>>)>;

/// One polled batch, copied out of librdkafka so another thread can decode it: the payloads
/// back to back, and per message where it came from.
#[derive(Default)]
pub(super) struct RawBatch {
    /// The payloads, back to back (checked as UTF-8 in one pass).
    pub(super) bytes: Vec<u8>,
    /// The keys, back to back.
    pub(super) keys: Vec<u8>,
    /// Per message: payload span in `bytes`, its key span in `keys` (`u32::MAX` start = no key).
    pub(super) spans: Vec<(u32, u32, u32, u32)>,
    /// Per message: index into `topics`, partition, offset.
    pub(super) origin: Vec<(u16, i32, i64)>,
    /// Original headers of messages that had any (rare), by message index.
    pub(super) headers: Vec<(u32, CopiedHeaders)>,
    pub(super) topics: Vec<String>,
    /// librdkafka's topic handles, parallel to `topics` (compared, never dereferenced).
    pub(super) topic_handles: Vec<usize>,
}

impl RawBatch {
    /// Copies a message polled from the consumer's own queue (rare: see [`FetchQueue`]).
    pub(super) fn push(&mut self, m: &BorrowedMessage<'_>) {
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

    pub(super) fn push_parts(
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

    pub(super) fn len(&self) -> usize {
        self.spans.len()
    }

    pub(super) fn payload(&self, i: usize) -> &[u8] {
        let (s, e, _, _) = self.spans[i];
        &self.bytes[s as usize..e as usize]
    }

    pub(super) fn key(&self, i: usize) -> Option<&[u8]> {
        let (_, _, ks, ke) = self.spans[i];
        (ks != u32::MAX).then(|| &self.keys[ks as usize..ke as usize])
    }
}
