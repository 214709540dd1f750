//! Getting events in: raw records (NDJSON lines, later Kafka messages) decoded in chunks.
//!
//! Owns: [`Chunk`] (raw bytes plus where each record is) and [`decode_chunk`], which turns a
//! chunk into one Arrow batch of well-formed events plus the rejects. Decoding a chunk is pure
//! and independent of every other chunk, so chunks are decoded on all cores while the engine
//! applies them one at a time in input order. Must not touch: engine state.

pub mod dead_letter;
pub mod file;
pub mod kafka;
pub mod mapped;

use std::ops::Range;
use std::sync::Arc;

use arrow::array::RecordBatch;

use crate::event::syslog::Clock;
use crate::event::ChunkView;
use crate::event::{self, EventColumns, Ignored, InputFormat, Outcome, Reason};

/// Lines longer than this are rejected (`line_too_long`) and only their start is kept.
pub const MAX_RECORD_BYTES: usize = 1 << 20;
/// How much of a too-long record the dead-letter sink keeps.
pub const TOO_LONG_PREFIX: usize = 1024;

/// Raw input records: newline-separated bytes, in input order.
#[derive(Debug, Default)]
pub struct Chunk {
    /// The bytes; each record ends with `\n` (the last one may not). Empty when `shared` is set.
    pub raw: Vec<u8>,
    /// The single record here is the start of a longer line that was cut off.
    pub truncated: bool,
    /// The bytes are instead this range of bytes shared with other chunks (a mapped file).
    pub shared: Option<(Shared, Range<usize>)>,
}

impl Chunk {
    /// The chunk's bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.shared {
            Some((shared, range)) => &(*shared.0).as_ref()[range.clone()],
            None => &self.raw,
        }
    }
}

/// Bytes that chunks are cut from in place: a memory-mapped file ([`mapped::Mapping`]), or in
/// tests a buffer standing in for one.
#[derive(Clone)]
pub struct Shared(pub Arc<dyn InPlace>);

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Shared({} bytes)", self.0.as_ref().as_ref().len())
    }
}

/// Bytes chunks can be cut from in place.
pub trait InPlace: AsRef<[u8]> + Send + Sync {
    /// The reader is done with `range` (its chunks were long since decoded): memory may be
    /// given back. Reading it again must still give the same bytes.
    fn done_with(&self, _range: Range<usize>) {}
}

impl InPlace for Vec<u8> {}

/// A decoded chunk: well-formed events as a batch, and what was rejected.
#[derive(Debug)]
pub struct DecodedChunk {
    /// The input.
    pub chunk: Chunk,
    /// `(start, end)` of each record in `chunk.raw`, without the newline.
    pub spans: Vec<(u32, u32)>,
    /// Well-formed events, in input order (the `events` schema).
    pub batch: RecordBatch,
    /// The same rows wrapped for [`crate::state::Engine::apply_view`], made on the decoding
    /// thread.
    pub view: Arc<ChunkView>,
    /// For each row of `batch`, the index of its record in `spans`.
    pub row_record: Vec<u32>,
    /// Records that failed to decode, with why.
    pub rejects: Vec<(u32, Reason)>,
    /// Lines of a known vendor not about sessions, counted by kind (few kinds per chunk).
    pub ignored: Vec<(Ignored, u64)>,
}

/// How the lines of an input are written, and how their incomplete stamps are completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LineFormat {
    /// The format (`--input-format`, a topic's `format`).
    pub format: InputFormat,
    /// The year and zone of stamps that leave them out (gateway syslog only).
    pub clock: Clock,
}

/// Adds one ignored line of `kind` to `counts` (a handful of kinds per chunk: a scan is cheaper
/// than a map).
pub fn count_ignored(counts: &mut Vec<(Ignored, u64)>, kind: Ignored) {
    match counts.iter_mut().find(|(k, _)| *k == kind) {
        Some((_, n)) => *n += 1,
        None => counts.push((kind, 1)),
    }
}

/// Decodes one syslog (or, under `auto`, JSON) record into `cols`: `Ok(true)` when it became a
/// row, `Ok(false)` when it was ignored (and counted in `ignored`).
pub fn decode_syslog_record(
    text: &str,
    lines: &LineFormat,
    scratch: &mut String,
    cols: &mut EventColumns,
    ignored: &mut Vec<(Ignored, u64)>,
) -> Result<bool, Reason> {
    let mut ev = event::Event::default();
    match event::decode_line(text, lines.format, &lines.clock, scratch, &mut ev)? {
        Outcome::Event => {
            cols.push(&ev);
            Ok(true)
        }
        Outcome::Ignored(kind) => {
            count_ignored(ignored, kind);
            Ok(false)
        }
    }
}

impl DecodedChunk {
    /// The raw bytes of record `i`.
    pub fn record(&self, i: u32) -> &[u8] {
        let (s, e) = self.spans[i as usize];
        &self.chunk.bytes()[s as usize..e as usize]
    }

    /// Records (lines) in the chunk, blank ones included.
    pub fn records(&self) -> usize {
        self.spans.len()
    }
}

/// Decodes one record that is a whole message (a Kafka value): surrounding whitespace, such as
/// a trailing newline, is allowed; an empty message is `invalid_json`.
pub fn decode_record(raw: &[u8], cols: &mut EventColumns) -> Result<(), Reason> {
    let (start, end) = trimmed(raw);
    let ev = event::decode(&raw[start..end])?;
    cols.push(&ev);
    Ok(())
}

/// [`decode_record`] of a message already known to be UTF-8 (checked with its batch), decoded
/// through `ev` (reused from message to message: see [`event::decode_str_into`]).
pub fn decode_record_str<'a>(
    text: &'a str,
    ev: &mut event::Event<'a>,
    cols: &mut EventColumns,
) -> Result<(), Reason> {
    let (start, end) = trimmed(text.as_bytes());
    // Whitespace is ASCII, so both ends are character boundaries.
    event::decode_str_into(&text[start..end], ev)?;
    cols.push(ev);
    Ok(())
}

/// The span of `raw` without surrounding ASCII whitespace.
fn trimmed(raw: &[u8]) -> (usize, usize) {
    let start = raw
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(raw.len());
    let end = raw
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    (start, end)
}

/// Which columns a decoded batch fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Columns {
    /// All of the `events` schema.
    #[default]
    All,
    /// Only what the engine reads, for a run that does not keep the `events` table (see
    /// [`EventColumns::for_engine`]).
    ForEngine,
}

/// Splits a chunk into records and decodes each. Blank lines are skipped (not rejected).
pub fn decode_chunk(chunk: Chunk) -> DecodedChunk {
    decode_chunk_with(chunk, MAX_RECORD_BYTES, Columns::All)
}

/// [`decode_chunk`] with lines longer than `max_record` rejected as `line_too_long`, filling
/// `columns`.
pub fn decode_chunk_with(chunk: Chunk, max_record: usize, columns: Columns) -> DecodedChunk {
    decode_chunk_as(chunk, max_record, columns, &LineFormat::default())
}

/// [`decode_chunk_with`] of lines written as `lines` says.
pub fn decode_chunk_as(
    chunk: Chunk,
    max_record: usize,
    columns: Columns,
    lines: &LineFormat,
) -> DecodedChunk {
    let raw = chunk.bytes();
    let mut spans = Vec::with_capacity(raw.len() / 120 + 1);
    let mut start = 0usize;
    for nl in memchr::memchr_iter(b'\n', raw) {
        spans.push((start as u32, nl as u32));
        start = nl + 1;
    }
    if start < raw.len() {
        spans.push((start as u32, raw.len() as u32));
    }
    let mut cols = match columns {
        Columns::All => EventColumns::with_capacity(spans.len()),
        Columns::ForEngine => EventColumns::for_engine(spans.len()),
    };
    let mut row_record = Vec::with_capacity(spans.len());
    let mut rejects = Vec::new();
    // Checking the whole block as UTF-8 at once is several times cheaper than line by line;
    // lines end at `\n` (ASCII), so every line of valid text is valid text. A block with a bad
    // byte somewhere is checked line by line, so only the bad line is rejected.
    let text = simdutf8::basic::from_utf8(raw).ok();
    // One event decoded into again and again (see `decode_str_into`), and the shape of the
    // record before (see `event::Shape`).
    let mut ev = event::Event::default();
    let mut shape = event::Shape::default();
    let syslog = lines.format.is_syslog();
    let mut scratch = String::new();
    let mut ignored = Vec::new();
    for (i, &(s, e)) in spans.iter().enumerate() {
        let mut line = &raw[s as usize..e as usize];
        // The length guard counts what the reader counts: the line without its `\n`.
        if chunk.truncated || line.len() > max_record {
            rejects.push((i as u32, Reason::LineTooLong));
            continue;
        }
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        if line.iter().all(|c| c.is_ascii_whitespace()) {
            continue;
        }
        if syslog {
            let text = match text {
                Some(text) => Ok(&text[s as usize..s as usize + line.len()]),
                None => std::str::from_utf8(line).map_err(|_| Reason::InvalidUtf8),
            };
            match text
                .and_then(|t| decode_syslog_record(t, lines, &mut scratch, &mut cols, &mut ignored))
            {
                Ok(true) => row_record.push(i as u32),
                Ok(false) => {}
                Err(reason) => rejects.push((i as u32, reason)),
            }
            continue;
        }
        let decoded = match text {
            Some(text) => {
                let text = &text[s as usize..s as usize + line.len()];
                event::decode_str_shaped(text, &mut ev, &mut shape)
            }
            None => event::decode(line).map(|e| ev = e),
        };
        match decoded {
            Ok(()) => {
                cols.push(&ev);
                row_record.push(i as u32);
            }
            Err(reason) => rejects.push((i as u32, reason)),
        }
    }
    let rows = cols.finish_rows();
    DecodedChunk {
        batch: rows.batch.clone(),
        view: Arc::new(ChunkView::from_rows(rows)),
        chunk,
        spans,
        row_record,
        rejects,
        ignored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_decodes_and_rejects() {
        let raw = b"{\"type\":\"reject\",\"ts\":1,\"server\":\"a\"}\r\n\n  \ngarbage\n{\"type\":\"reject\",\"ts\":2,\"server\":\"b\"}".to_vec();
        let d = decode_chunk(Chunk {
            raw,
            truncated: false,
            shared: None,
        });
        assert_eq!(d.records(), 5);
        assert_eq!(d.batch.num_rows(), 2);
        assert_eq!(d.row_record, vec![0, 4]);
        assert_eq!(d.rejects, vec![(3, Reason::InvalidJson)]);
        assert_eq!(d.record(3), b"garbage");
    }
}
