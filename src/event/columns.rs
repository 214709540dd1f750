//! Accepted events as Arrow: the `events` table's schema, the builder the decoders append rows
//! to, and [`ChunkView`], the typed columns of one decoded batch that the engine reads rows from.
//!
//! Owns: column order and types, null handling of optional fields, id hashing. Must not touch:
//! decoding (that is `json`) or what the engine does with a row.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{
    DataType, Field, Float64Type, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMillisecondType,
};

use super::{Event, EventType, ServerState};

/// The Arrow type of every timestamp gatewatch returns: UTC, millisecond precision.
pub fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// Columns of the `events` table, in order (docs/sql.md): the 16 input fields of
/// docs/events-and-semantics.md; `capacity` and `state`
/// carry the payload of `server` events, which the contract's list leaves out; `duration_ms`
/// (last, added with the gateway syslog formats) that of whole-session records.
pub fn events_schema() -> SchemaRef {
    let s = |n: &str| Field::new(n, DataType::Utf8, true);
    let f = |n: &str| Field::new(n, DataType::Float64, true);
    let i = |n: &str| Field::new(n, DataType::Int64, true);
    Arc::new(Schema::new(vec![
        Field::new("ts", ts_type(), false),
        Field::new("type", DataType::Utf8, false),
        Field::new("server", DataType::Utf8, false),
        s("session"),
        s("user"),
        s("site"),
        s("os"),
        s("app"),
        f("setup_ms"),
        f("rtt_ms"),
        f("jitter_ms"),
        f("loss_pct"),
        s("reason"),
        i("bytes_in"),
        i("bytes_out"),
        s("id"),
        i("capacity"),
        s("state"),
        i("duration_ms"),
    ]))
}

/// Column indexes of [`events_schema`], for readers of a batch.
#[allow(missing_docs)]
pub mod col {
    pub const TS: usize = 0;
    pub const TYPE: usize = 1;
    pub const SERVER: usize = 2;
    pub const SESSION: usize = 3;
    pub const USER: usize = 4;
    pub const SITE: usize = 5;
    pub const OS: usize = 6;
    pub const APP: usize = 7;
    pub const SETUP_MS: usize = 8;
    pub const RTT_MS: usize = 9;
    pub const JITTER_MS: usize = 10;
    pub const REASON: usize = 12;
    pub const ID: usize = 15;
    pub const CAPACITY: usize = 16;
    pub const STATE: usize = 17;
    pub const DURATION_MS: usize = 18;
}

/// A column builder that appends runs of nulls at once. Most optional fields are absent from
/// most events (a latency sample has no user, site, os, app, setup_ms, reason, bytes or
/// capacity), and one bulk append per run costs far less than one call per row.
struct Gaps<B> {
    builder: B,
    /// Nulls owed to the builder, appended before the next value or at the end.
    nulls: usize,
}

impl<B> Gaps<B> {
    fn new(builder: B) -> Self {
        Gaps { builder, nulls: 0 }
    }
}

/// What [`Gaps`] needs of an Arrow builder.
trait ColumnBuilder {
    /// What one row holds.
    type Value<'a>;
    fn append(&mut self, v: Self::Value<'_>);
    fn append_nulls(&mut self, n: usize);
    fn finish_array(&mut self) -> ArrayRef;
}

/// Validity of a column as its runs of nulls (`(first row, rows)`, in order), turned into a
/// bitmap once at the end: the decoder appends nulls in runs ([`Gaps`]), so a value costs no
/// bookkeeping at all.
#[derive(Default)]
struct NullRuns(Vec<(usize, usize)>);

impl NullRuns {
    fn add(&mut self, first: usize, n: usize) {
        self.0.push((first, n));
    }

    fn finish(&mut self, rows: usize) -> Option<arrow::buffer::NullBuffer> {
        if self.0.is_empty() {
            return None;
        }
        let mut bits = arrow::array::BooleanBufferBuilder::new(rows);
        for (first, n) in self.0.drain(..) {
            bits.append_n(first - bits.len(), true);
            bits.append_n(n, false);
        }
        bits.append_n(rows - bits.len(), true);
        Some(arrow::buffer::NullBuffer::new(bits.finish()))
    }
}

/// A string column as plain vectors: where each value ends, and their bytes. Arrow's
/// `StringBuilder` does the same with a capacity check, a validity bit and an offset conversion
/// per call; the decoder appends several strings per event.
struct StrColumn {
    /// Where each value ends in `bytes`; starts with 0.
    ends: Vec<i32>,
    bytes: Vec<u8>,
    nulls: NullRuns,
}

impl StrColumn {
    fn with_capacity(rows: usize, bytes: usize) -> Self {
        let mut ends = Vec::with_capacity(rows + 1);
        ends.push(0);
        StrColumn {
            ends,
            bytes: Vec::with_capacity(bytes),
            nulls: NullRuns::default(),
        }
    }
}

impl ColumnBuilder for StrColumn {
    type Value<'a> = &'a str;
    #[inline(always)]
    fn append(&mut self, v: &str) {
        self.bytes.extend_from_slice(v.as_bytes());
        let end = i32::try_from(self.bytes.len()).expect("a batch's strings fit in i32 offsets");
        self.ends.push(end);
    }
    fn append_nulls(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.nulls.add(self.ends.len() - 1, n);
        let end = *self.ends.last().expect("ends start with 0");
        self.ends.resize(self.ends.len() + n, end);
    }
    fn finish_array(&mut self) -> ArrayRef {
        let ends = std::mem::replace(&mut self.ends, vec![0]);
        let nulls = self.nulls.finish(ends.len() - 1);
        // SAFETY: `ends` starts at 0 and never decreases (each is the length of `bytes` after
        // an append), and `bytes` is whole `&str` values laid end to end, so it is UTF-8 and
        // every offset falls on a character boundary.
        let array = unsafe {
            arrow::array::StringArray::new_unchecked(
                arrow::buffer::OffsetBuffer::new_unchecked(ends.into()),
                arrow::buffer::Buffer::from_vec(std::mem::take(&mut self.bytes)),
                nulls,
            )
        };
        // Debug builds (tests, the fuzzer) check what the SAFETY comment claims.
        debug_assert!(
            arrow::array::Array::to_data(&array).validate_full().is_ok(),
            "string column: bad offsets or UTF-8"
        );
        Arc::new(array)
    }
}

/// A primitive column as a vector of values (a null holds the type's default).
struct NumColumn<T: arrow::datatypes::ArrowPrimitiveType> {
    values: Vec<T::Native>,
    nulls: NullRuns,
}

impl<T: arrow::datatypes::ArrowPrimitiveType> NumColumn<T> {
    fn with_capacity(rows: usize) -> Self {
        NumColumn {
            values: Vec::with_capacity(rows),
            nulls: NullRuns::default(),
        }
    }

    fn finish_typed(&mut self) -> arrow::array::PrimitiveArray<T> {
        let nulls = self.nulls.finish(self.values.len());
        arrow::array::PrimitiveArray::new(std::mem::take(&mut self.values).into(), nulls)
    }
}

impl<T: arrow::datatypes::ArrowPrimitiveType> ColumnBuilder for NumColumn<T> {
    type Value<'a> = T::Native;
    #[inline(always)]
    fn append(&mut self, v: T::Native) {
        self.values.push(v);
    }
    fn append_nulls(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.nulls.add(self.values.len(), n);
        self.values
            .resize(self.values.len() + n, T::Native::default());
    }
    fn finish_array(&mut self) -> ArrayRef {
        Arc::new(self.finish_typed())
    }
}

impl<B: ColumnBuilder> Gaps<B> {
    #[inline(always)]
    fn push(&mut self, v: Option<B::Value<'_>>) {
        match v {
            Some(v) => {
                if self.nulls > 0 {
                    self.builder.append_nulls(std::mem::take(&mut self.nulls));
                }
                self.builder.append(v);
            }
            None => self.nulls += 1,
        }
    }

    fn finish(&mut self) -> ArrayRef {
        self.builder.append_nulls(std::mem::take(&mut self.nulls));
        self.builder.finish_array()
    }
}

/// Appends decoded events to the columns of the `events` table.
pub struct EventColumns {
    ts: NumColumn<TimestampMillisecondType>,
    kind: StrColumn,
    server: StrColumn,
    session: Gaps<StrColumn>,
    user: Gaps<StrColumn>,
    site: Gaps<StrColumn>,
    os: Gaps<StrColumn>,
    app: Gaps<StrColumn>,
    setup_ms: Gaps<NumColumn<Float64Type>>,
    rtt_ms: Gaps<NumColumn<Float64Type>>,
    jitter_ms: Gaps<NumColumn<Float64Type>>,
    loss_pct: Gaps<NumColumn<Float64Type>>,
    reason: Gaps<StrColumn>,
    bytes_in: Gaps<NumColumn<Int64Type>>,
    bytes_out: Gaps<NumColumn<Int64Type>>,
    id: Gaps<StrColumn>,
    capacity: Gaps<NumColumn<Int64Type>>,
    state: Gaps<StrColumn>,
    duration_ms: Gaps<NumColumn<Int64Type>>,
    /// Each row's type and the xxh3-128 of its `id` (0 if none), kept beside the columns so the
    /// engine does not parse them back out of the batch.
    kinds: Vec<EventType>,
    id_hashes: Vec<u128>,
    len: usize,
    /// Only what the engine reads (see [`EventColumns::for_engine`]).
    for_engine: bool,
}

/// A finished [`EventColumns`]: the batch, plus per row what the engine needs first.
pub struct FinishedRows {
    /// The rows, with the `events` schema.
    pub batch: RecordBatch,
    /// Each row's event type.
    pub kinds: Vec<EventType>,
    /// xxh3-128 of each row's `id`, 0 where it has none.
    pub id_hashes: Vec<u128>,
    /// Made by [`EventColumns::for_engine`]: `type` and `id` hold empty strings.
    pub for_engine: bool,
}

/// The xxh3-128 of an event id, as the engine's duplicate check keys it.
pub fn id_hash(id: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(id.as_bytes())
}

impl EventColumns {
    /// Builders sized for `rows` events of about 150 bytes.
    pub fn with_capacity(rows: usize) -> Self {
        Self::sized(rows, false)
    }

    /// Builders for a batch only the engine reads, never kept as the `events` table (a
    /// `replay` whose query does not read it): the `type` column is empty strings and the
    /// `id` column an empty string where an id was given, since the engine takes each row's
    /// type and id hash from beside the batch. Copying those two strings is ~2 % of a replay's
    /// instructions.
    pub fn for_engine(rows: usize) -> Self {
        Self::sized(rows, true)
    }

    fn sized(rows: usize, for_engine: bool) -> Self {
        let s = |bytes: usize| StrColumn::with_capacity(rows, rows * bytes);
        let f = || Gaps::new(NumColumn::<Float64Type>::with_capacity(rows));
        let i = || Gaps::new(NumColumn::<Int64Type>::with_capacity(rows));
        EventColumns {
            ts: NumColumn::with_capacity(rows),
            // Generous per-row byte estimates: a string buffer that regrows copies itself.
            kind: if for_engine {
                StrColumn::with_capacity(0, 0)
            } else {
                s(10)
            },
            server: s(8),
            session: Gaps::new(s(24)),
            user: Gaps::new(s(8)),
            site: Gaps::new(s(8)),
            os: Gaps::new(s(12)),
            app: Gaps::new(s(8)),
            setup_ms: f(),
            rtt_ms: f(),
            jitter_ms: f(),
            loss_pct: f(),
            reason: Gaps::new(s(4)),
            bytes_in: i(),
            bytes_out: i(),
            id: Gaps::new(if for_engine { s(0) } else { s(24) }),
            capacity: i(),
            state: Gaps::new(s(1)),
            duration_ms: i(),
            kinds: Vec::with_capacity(rows),
            id_hashes: Vec::with_capacity(rows),
            len: 0,
            for_engine,
        }
    }

    /// Rows appended so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one event as a row.
    pub fn push(&mut self, e: &Event<'_>) {
        self.ts.append(e.ts);
        if !self.for_engine {
            self.kind.append(e.event_type().as_str());
        }
        self.server.append(&e.server);
        self.session.push(e.session.as_deref());
        self.user.push(e.user.as_deref());
        self.site.push(e.site.as_deref());
        self.os.push(e.os.as_deref());
        self.app.push(e.app.as_deref());
        self.setup_ms.push(e.setup_ms);
        self.rtt_ms.push(e.rtt_ms);
        self.jitter_ms.push(e.jitter_ms);
        self.loss_pct.push(e.loss_pct);
        self.reason.push(e.reason.as_deref());
        self.bytes_in.push(e.bytes_in);
        self.bytes_out.push(e.bytes_out);
        if self.for_engine {
            self.id.push(e.id.as_ref().map(|_| ""));
        } else {
            self.id.push(e.id.as_deref());
        }
        self.capacity.push(e.capacity);
        self.state.push(e.state.map(ServerState::as_str));
        self.duration_ms.push(e.duration_ms);
        self.kinds.push(e.event_type());
        self.id_hashes.push(e.id.as_deref().map_or(0, id_hash));
        self.len += 1;
    }

    /// Seals the rows into a record batch and resets the builders.
    pub fn finish(&mut self) -> RecordBatch {
        self.finish_rows().batch
    }

    /// [`EventColumns::finish`], with each row's type and id hash.
    pub fn finish_rows(&mut self) -> FinishedRows {
        let kind = if self.for_engine {
            Arc::new(arrow::array::StringArray::new(
                arrow::buffer::OffsetBuffer::new_zeroed(self.len),
                arrow::buffer::Buffer::from_vec(Vec::<u8>::new()),
                None,
            ))
        } else {
            self.kind.finish_array()
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.ts.finish_typed().with_timezone("UTC")),
            kind,
            self.server.finish_array(),
            self.session.finish(),
            self.user.finish(),
            self.site.finish(),
            self.os.finish(),
            self.app.finish(),
            self.setup_ms.finish(),
            self.rtt_ms.finish(),
            self.jitter_ms.finish(),
            self.loss_pct.finish(),
            self.reason.finish(),
            self.bytes_in.finish(),
            self.bytes_out.finish(),
            self.id.finish(),
            self.capacity.finish(),
            self.state.finish(),
            self.duration_ms.finish(),
        ];
        self.len = 0;
        FinishedRows {
            batch: RecordBatch::try_new(events_schema(), columns)
                .expect("builders match the events schema"),
            kinds: std::mem::take(&mut self.kinds),
            id_hashes: std::mem::take(&mut self.id_hashes),
            for_engine: self.for_engine,
        }
    }
}

/// Typed columns of one decoded batch, shared by the reorder buffer entries that point into it.
pub struct ChunkView {
    /// The batch itself (a checkpoint copies buffered rows out of it).
    pub(crate) batch: RecordBatch,
    pub(crate) kinds: Vec<EventType>,
    /// xxh3-128 of each row's `id` (0 where it has none): computed where the view is made, which
    /// for `replay` is a decoding thread, off the thread that applies in order.
    pub(crate) id_hashes: Vec<u128>,
    pub(crate) ts: arrow::buffer::ScalarBuffer<i64>,
    pub(crate) server: StringArray,
    pub(crate) session: StringArray,
    pub(crate) user: StringArray,
    pub(crate) site: StringArray,
    pub(crate) os: StringArray,
    pub(crate) app: StringArray,
    pub(crate) setup_ms: Float64Array,
    pub(crate) rtt_ms: Float64Array,
    pub(crate) jitter_ms: Float64Array,
    pub(crate) reason: StringArray,
    pub(crate) id: StringArray,
    pub(crate) capacity: Int64Array,
    pub(crate) state: StringArray,
    pub(crate) duration_ms: Int64Array,
    /// The batch's `type` and `id` columns are empty (see [`EventColumns::for_engine`]): it
    /// must not be kept as the `events` table.
    ///
    /// [`EventColumns::for_engine`]: crate::event::EventColumns::for_engine
    pub(crate) for_engine: bool,
}

impl std::fmt::Debug for ChunkView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkView")
            .field("rows", &self.kinds.len())
            .finish_non_exhaustive()
    }
}

pub(crate) fn opt_str(a: &StringArray, row: usize) -> Option<&str> {
    a.is_valid(row).then(|| a.value(row))
}

pub(crate) fn opt_f64(a: &Float64Array, row: usize) -> Option<f64> {
    a.is_valid(row).then(|| a.value(row))
}

impl ChunkView {
    /// Wraps a batch with the `events` schema (types and id hashes are read back out of it).
    pub fn new(batch: &RecordBatch) -> ChunkView {
        let id = batch.column(col::ID).as_string::<i32>();
        let id_hashes = id.iter().map(|v| v.map_or(0, id_hash)).collect();
        let kinds = batch
            .column(col::TYPE)
            .as_string::<i32>()
            .iter()
            .map(|t| t.and_then(EventType::parse).unwrap_or(EventType::Server))
            .collect();
        Self::from_parts(batch, kinds, id_hashes, false)
    }

    /// Wraps rows just decoded, whose types and id hashes the decoder already has.
    pub fn from_rows(rows: FinishedRows) -> ChunkView {
        Self::from_parts(&rows.batch, rows.kinds, rows.id_hashes, rows.for_engine)
    }

    /// Rows wrapped.
    pub fn num_rows(&self) -> usize {
        self.kinds.len()
    }

    fn from_parts(
        batch: &RecordBatch,
        kinds: Vec<EventType>,
        id_hashes: Vec<u128>,
        for_engine: bool,
    ) -> ChunkView {
        debug_assert_eq!(kinds.len(), batch.num_rows());
        debug_assert_eq!(id_hashes.len(), batch.num_rows());
        let s = |i: usize| batch.column(i).as_string::<i32>().clone();
        ChunkView {
            batch: batch.clone(),
            kinds,
            ts: batch
                .column(col::TS)
                .as_primitive::<TimestampMillisecondType>()
                .values()
                .clone(),
            server: s(col::SERVER),
            session: s(col::SESSION),
            user: s(col::USER),
            site: s(col::SITE),
            os: s(col::OS),
            app: s(col::APP),
            setup_ms: batch.column(col::SETUP_MS).as_primitive().clone(),
            rtt_ms: batch.column(col::RTT_MS).as_primitive().clone(),
            jitter_ms: batch.column(col::JITTER_MS).as_primitive().clone(),
            reason: s(col::REASON),
            id: s(col::ID),
            id_hashes,
            capacity: batch.column(col::CAPACITY).as_primitive().clone(),
            state: s(col::STATE),
            duration_ms: batch.column(col::DURATION_MS).as_primitive().clone(),
            for_engine,
        }
    }
}
