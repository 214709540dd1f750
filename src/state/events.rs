//! The accepted events, kept as Arrow record batches for the `events` table.
//!
//! Owns: sealing small appends into batches of a few thousand rows (so a scan touches few, large
//! batches) and dropping batches that fall out of retention. Readers get cheap clones
//! (`RecordBatch` columns are reference-counted).

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::kernels::cmp::gt_eq;
use arrow::datatypes::TimestampMillisecondType;

use crate::event::{col, events_schema};

/// Rows at which the open batches are sealed into one.
const SEAL_ROWS: usize = 8192;

struct Stored {
    batch: RecordBatch,
    min_ts: i64,
    max_ts: i64,
    bytes: usize,
}

impl Stored {
    fn new(batch: RecordBatch) -> Stored {
        let ts = batch
            .column(col::TS)
            .as_primitive::<TimestampMillisecondType>();
        let min_ts = arrow::compute::min(ts).unwrap_or(i64::MAX);
        let max_ts = arrow::compute::max(ts).unwrap_or(i64::MIN);
        let bytes = batch.get_array_memory_size();
        Stored {
            batch,
            min_ts,
            max_ts,
            bytes,
        }
    }
}

/// Sealed batches plus small ones waiting to be sealed together.
#[derive(Default)]
pub struct EventStore {
    sealed: Vec<Stored>,
    open: Vec<RecordBatch>,
    open_rows: usize,
    sealed_bytes: usize,
}

impl EventStore {
    /// Adds accepted events. Large batches are kept as they are; small ones are gathered.
    pub fn push(&mut self, batch: RecordBatch) {
        if batch.num_rows() == 0 {
            return;
        }
        if batch.num_rows() >= SEAL_ROWS / 2 && self.open.is_empty() {
            self.keep(Stored::new(batch));
            return;
        }
        self.open_rows += batch.num_rows();
        self.open.push(batch);
        if self.open_rows >= SEAL_ROWS {
            self.seal();
        }
    }

    /// Seals the gathered small batches into one.
    pub fn seal(&mut self) {
        if self.open.is_empty() {
            return;
        }
        let merged = arrow::compute::concat_batches(&events_schema(), &self.open)
            .expect("batches share the events schema");
        self.open.clear();
        self.open_rows = 0;
        self.keep(Stored::new(merged));
    }

    /// Sealed and open batches, for a checkpoint.
    pub(super) fn parts(&self) -> (Vec<RecordBatch>, &[RecordBatch]) {
        (
            self.sealed.iter().map(|s| s.batch.clone()).collect(),
            &self.open,
        )
    }

    /// Sealed and open batches with only the rows of the servers `keep` keeps (a partition's
    /// checkpoint).
    pub(super) fn parts_of_servers(
        &self,
        keep: &dyn Fn(&str) -> bool,
    ) -> (Vec<RecordBatch>, Vec<RecordBatch>) {
        let pick = |b: &RecordBatch| rows_of_servers(b, keep);
        (
            self.sealed
                .iter()
                .map(|s| pick(&s.batch))
                .filter(|b| b.num_rows() > 0)
                .collect(),
            self.open
                .iter()
                .map(pick)
                .filter(|b| b.num_rows() > 0)
                .collect(),
        )
    }

    /// Keeps only the rows of the servers `keep` keeps (a partition handed to another member).
    pub(super) fn retain_servers(&mut self, keep: &dyn Fn(&str) -> bool) {
        let (sealed, open) = self.parts_of_servers(keep);
        *self = EventStore::from_parts(sealed, open);
    }

    /// Adds another store's batches (a partition restored from its checkpoint).
    pub(super) fn absorb(&mut self, other: EventStore) {
        for s in other.sealed {
            self.keep(s);
        }
        for b in other.open {
            self.push(b);
        }
    }

    /// A store from a checkpoint's parts.
    pub(super) fn from_parts(sealed: Vec<RecordBatch>, open: Vec<RecordBatch>) -> EventStore {
        let mut store = EventStore {
            open_rows: open.iter().map(RecordBatch::num_rows).sum(),
            open,
            ..EventStore::default()
        };
        for b in sealed {
            store.keep(Stored::new(b));
        }
        store
    }

    fn keep(&mut self, s: Stored) {
        self.sealed_bytes += s.bytes;
        self.sealed.push(s);
    }

    /// Drops sealed batches entirely older than `horizon`.
    pub fn evict_before(&mut self, horizon: i64) {
        self.sealed.retain(|s| s.max_ts >= horizon);
        self.sealed_bytes = self.sealed.iter().map(|s| s.bytes).sum();
    }

    /// Memory held by sealed batches, bytes (the open ones are at most a few thousand rows).
    pub fn bytes(&self) -> usize {
        self.sealed_bytes
    }

    /// Drops the oldest sealed batches (by their newest event) until at most `limit` bytes are
    /// held; returns the rows dropped. A burst cannot make the `events` table outgrow memory:
    /// it loses its oldest rows early instead (sessions, concurrency and latency are kept apart
    /// and lose nothing).
    pub fn shrink_to(&mut self, limit: usize) -> u64 {
        if self.sealed_bytes <= limit {
            return 0;
        }
        let mut order: Vec<usize> = (0..self.sealed.len()).collect();
        order.sort_by_key(|&i| self.sealed[i].max_ts);
        let mut drop = vec![false; self.sealed.len()];
        let mut bytes = self.sealed_bytes;
        let mut rows = 0u64;
        for i in order {
            if bytes <= limit {
                break;
            }
            drop[i] = true;
            bytes -= self.sealed[i].bytes;
            rows += self.sealed[i].batch.num_rows() as u64;
        }
        let mut i = 0;
        self.sealed.retain(|_| {
            i += 1;
            !drop[i - 1]
        });
        self.sealed_bytes = bytes;
        rows
    }

    /// All events with `ts >= horizon` (all if None).
    pub fn batches(&self, horizon: Option<i64>) -> Vec<RecordBatch> {
        let h = horizon.unwrap_or(i64::MIN);
        let mut out = Vec::with_capacity(self.sealed.len() + self.open.len());
        for s in &self.sealed {
            if s.max_ts < h {
                continue;
            }
            if s.min_ts >= h {
                out.push(s.batch.clone());
            } else {
                out.push(trim(&s.batch, h));
            }
        }
        out.extend(self.open.iter().map(|b| trim(b, h)));
        out
    }
}

/// The rows of `batch` whose server `keep` keeps.
pub fn rows_of_servers(batch: &RecordBatch, keep: &dyn Fn(&str) -> bool) -> RecordBatch {
    let servers = batch.column(col::SERVER).as_string::<i32>();
    let mask: arrow::array::BooleanArray = servers
        .iter()
        .map(|s| Some(keep(s.unwrap_or(""))))
        .collect();
    if mask.true_count() == batch.num_rows() {
        return batch.clone();
    }
    arrow::compute::filter_record_batch(batch, &mask).expect("a mask of the batch's length")
}

/// The rows of `batch` with `ts < t` (events arrive in any order, so every batch is filtered).
pub fn before(batch: &RecordBatch, t: i64) -> RecordBatch {
    let ts = batch
        .column(col::TS)
        .as_primitive::<TimestampMillisecondType>();
    let scalar = arrow::array::TimestampMillisecondArray::new_scalar(t);
    let ts_utc = ts.clone().with_timezone_opt(None::<String>);
    let mask = arrow::compute::kernels::cmp::lt(&ts_utc, &scalar).expect("same types");
    arrow::compute::filter_record_batch(batch, &mask).expect("mask matches batch")
}

fn trim(batch: &RecordBatch, horizon: i64) -> RecordBatch {
    let ts = batch
        .column(col::TS)
        .as_primitive::<TimestampMillisecondType>();
    let scalar = arrow::array::TimestampMillisecondArray::new_scalar(horizon);
    let ts_utc = ts.clone().with_timezone_opt(None::<String>);
    let mask = gt_eq(&ts_utc, &scalar).expect("same types");
    arrow::compute::filter_record_batch(batch, &mask).expect("mask matches batch")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{decode, EventColumns};

    fn batch(first_ts: i64, rows: usize) -> RecordBatch {
        let mut cols = EventColumns::with_capacity(rows);
        for i in 0..rows {
            let line = format!(
                r#"{{"type":"reject","ts":{},"server":"gw-01","id":"e{first_ts}-{i}"}}"#,
                first_ts + i as i64
            );
            cols.push(&decode(line.as_bytes()).unwrap());
        }
        cols.finish()
    }

    #[test]
    fn a_burst_keeps_the_newest_rows_within_the_memory_limit() {
        let mut store = EventStore::default();
        let one = Stored::new(batch(0, SEAL_ROWS)).bytes;
        let limit = one * 3 + one / 2;
        let mut dropped = 0;
        // Out of order on purpose: the oldest by event time go first, not the first pushed.
        for start in [5, 1, 4, 2, 3, 0, 6, 7] {
            store.push(batch(start * 1_000_000, SEAL_ROWS));
            dropped += store.shrink_to(limit);
            assert!(store.bytes() <= limit);
        }
        assert_eq!(dropped, 5 * SEAL_ROWS as u64);
        let mut kept: Vec<i64> = store.sealed.iter().map(|s| s.min_ts).collect();
        kept.sort();
        assert_eq!(kept, vec![5_000_000, 6_000_000, 7_000_000]);
        assert_eq!(store.shrink_to(usize::MAX), 0);
        store.evict_before(6_000_000);
        assert_eq!(store.bytes(), 2 * one);
    }
}
