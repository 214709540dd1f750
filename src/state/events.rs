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
}

impl Stored {
    fn new(batch: RecordBatch) -> Stored {
        let ts = batch
            .column(col::TS)
            .as_primitive::<TimestampMillisecondType>();
        let min_ts = arrow::compute::min(ts).unwrap_or(i64::MAX);
        let max_ts = arrow::compute::max(ts).unwrap_or(i64::MIN);
        Stored {
            batch,
            min_ts,
            max_ts,
        }
    }
}

/// Sealed batches plus small ones waiting to be sealed together.
#[derive(Default)]
pub struct EventStore {
    sealed: Vec<Stored>,
    open: Vec<RecordBatch>,
    open_rows: usize,
}

impl EventStore {
    /// Adds accepted events. Large batches are kept as they are; small ones are gathered.
    pub fn push(&mut self, batch: RecordBatch) {
        if batch.num_rows() == 0 {
            return;
        }
        if batch.num_rows() >= SEAL_ROWS / 2 && self.open.is_empty() {
            self.sealed.push(Stored::new(batch));
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
        self.sealed.push(Stored::new(merged));
    }

    /// Drops sealed batches entirely older than `horizon`.
    pub fn evict_before(&mut self, horizon: i64) {
        self.sealed.retain(|s| s.max_ts >= horizon);
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
