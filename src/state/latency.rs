//! Per-server, per-metric, per-minute latency histograms.
//!
//! Owns: the samples of the open minutes (values in microseconds), and the sealed minutes as
//! HdrHistograms (3 significant digits) in their standard V2 encoding, with the summary numbers
//! computed once. A minute is sealed once its server's watermark has passed its end: no accepted
//! event can land in it any more.
//!
//! An open minute keeps its raw samples rather than an `hdrhistogram::Histogram`: a histogram
//! allocates and zeroes tens of KiB, and a replay opens one per server per metric per minute.
//! Sealing sorts the samples and computes exactly what the crate would (bucket by bucket: the
//! same percentiles, a byte-identical V2 encoding; tested against the crate), in O(samples).

use std::collections::BTreeMap;
use std::sync::Arc;

use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;

/// Significant digits of every histogram.
pub const SIGFIG: u8 = 3;
/// Range a fresh histogram covers before it auto-resizes: 10 s in µs.
const INITIAL_MAX_US: u64 = 10_000_000;

/// The three latency metrics of the `latency` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// `rtt_ms` of latency events.
    Rtt,
    /// `setup_ms` of connect events.
    Setup,
    /// `jitter_ms` of latency events.
    Jitter,
}

impl Metric {
    /// All metrics, in table order.
    pub const ALL: [Metric; 3] = [Metric::Rtt, Metric::Setup, Metric::Jitter];

    /// The `metric` column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Rtt => "rtt",
            Metric::Setup => "setup",
            Metric::Jitter => "jitter",
        }
    }
}

/// A new empty histogram with gatewatch's precision.
pub fn new_histogram() -> Histogram<u64> {
    let mut h = Histogram::new_with_max(INITIAL_MAX_US, SIGFIG).expect("valid histogram bounds");
    h.auto(true);
    h
}

/// Records `n` samples of `value` µs, growing the histogram as needed. (The crate's
/// `saturating_record` would clamp large values to the current range instead.) Only a value
/// too large to grow for is clamped.
pub fn record_n(h: &mut Histogram<u64>, value: u64, n: u64) {
    if h.record_n(value, n).is_err() {
        h.saturating_record_n(value, n);
    }
}

/// Milliseconds (as in events) to the integer microseconds histograms hold.
pub fn ms_to_us(ms: f64) -> u64 {
    // `(ms * 1000.0).round() as u64`, without `round`: it is a libm call on baseline x86-64
    // (no SSE4.1), made for every latency sample. For x in [0, 2^52) the difference from the
    // truncation is exact, so this rounds half away from zero like `round`; larger values are
    // already integers (or saturate), and NaN and negatives give 0 either way (tested).
    let x = ms * 1000.0;
    let t = x as u64;
    if x - t as f64 >= 0.5 {
        t.saturating_add(1)
    } else {
        t
    }
}

/// Microseconds back to milliseconds.
pub fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Encodes a histogram in the standard (uncompressed) V2 format.
pub fn encode(h: &Histogram<u64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    V2Serializer::new()
        .serialize(h, &mut out)
        .expect("serialising into a Vec cannot fail");
    out
}

/// Decodes a V2 (or V2 deflate) encoded histogram.
pub fn histogram_from_bytes(bytes: &[u8]) -> Result<Histogram<u64>, String> {
    let mut reader = bytes;
    Deserializer::new()
        .deserialize(&mut reader)
        .map_err(|e| format!("not an HdrHistogram V2 encoding: {e:?}"))
}

/// The V2 (uncompressed) cookie of the HdrHistogram encoding.
const V2_COOKIE: u32 = 0x1c84_9313;
/// Sub-bucket half count magnitude for 3 significant digits and lowest value 1.
const HALF_MAG: u32 = 10;
/// Largest counts index a sane encoding of ours can reach (values up to 2^63).
const MAX_INDEX: usize = 1 << 17;

/// Bucket counts of histograms with gatewatch's layout (lowest 1, 3 digits), merged by adding
/// encodings directly into one flat array: no histogram is allocated per row. Encodings with
/// another layout are merged through the crate's decoder instead.
#[derive(Debug, Default)]
pub struct MergedCounts {
    counts: Vec<u64>,
    foreign: Option<Histogram<u64>>,
}

/// The lowest value of counts index `idx` in gatewatch's layout.
fn value_for(idx: usize) -> u64 {
    let bucket = (idx >> HALF_MAG) as i64 - 1;
    let sub = (idx & ((1 << HALF_MAG) - 1)) as u64 + (1 << HALF_MAG);
    if bucket < 0 {
        sub - (1 << HALF_MAG)
    } else {
        sub << bucket
    }
}

/// HdrHistogram's LEB128 variant: at most 9 bytes, the 9th contributes all 8 bits.
fn varint(p: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for i in 0..9 {
        let b = *p.get(i)?;
        if i == 8 {
            return Some((v | (b as u64) << 56, 9));
        }
        v |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

impl MergedCounts {
    /// Adds one encoded histogram.
    pub fn add_encoded(&mut self, bytes: &[u8]) -> Result<(), String> {
        if !self.add_native(bytes)? {
            let h = histogram_from_bytes(bytes)?;
            match &mut self.foreign {
                None => self.foreign = Some(h),
                Some(f) => f
                    .add(&h)
                    .map_err(|e| format!("cannot merge histograms: {e:?}"))?,
            }
        }
        Ok(())
    }

    /// The fast path; Ok(false) when the encoding is not of gatewatch's layout.
    fn add_native(&mut self, b: &[u8]) -> Result<bool, String> {
        let bad = || "not an HdrHistogram V2 encoding: truncated or corrupt".to_string();
        if b.len() < 40 {
            return Err(bad());
        }
        let u32_at = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let native = u32_at(0) == V2_COOKIE
            && u32_at(8) == 0
            && u32_at(12) == SIGFIG as u32
            && u64_at(16) == 1
            && f64::from_bits(u64_at(32)) == 1.0;
        if !native {
            return Ok(false);
        }
        let len = u32_at(4) as usize;
        let payload = b.get(40..40 + len).ok_or_else(bad)?;
        let (mut pos, mut idx) = (0usize, 0usize);
        while pos < payload.len() {
            let (zz, n) = varint(&payload[pos..]).ok_or_else(bad)?;
            pos += n;
            let x = ((zz >> 1) as i64) ^ -((zz & 1) as i64);
            if x < 0 {
                idx = idx.saturating_add(x.unsigned_abs() as usize);
                continue;
            }
            if x > 0 {
                if idx >= MAX_INDEX {
                    return Err(bad());
                }
                if self.counts.len() <= idx {
                    self.counts.resize((idx | 1023) + 1, 0);
                }
                self.counts[idx] += x as u64;
            }
            idx += 1;
        }
        Ok(true)
    }

    /// The merged histogram.
    pub fn histogram(&self) -> Histogram<u64> {
        let mut h = new_histogram();
        for (idx, &c) in self.counts.iter().enumerate() {
            if c > 0 {
                record_n(&mut h, value_for(idx), c);
            }
        }
        if let Some(f) = &self.foreign {
            let _ = h.add(f);
        }
        h
    }

    /// Approximate heap bytes.
    pub fn heap_bytes(&self) -> usize {
        self.counts.len() * 8 + self.foreign.as_ref().map_or(0, |f| f.distinct_values() * 8)
    }
}

/// HdrHistogram layout for lowest value 1 and 3 digits: 2048 sub-buckets per bucket.
fn bucket_of(v: u64) -> u32 {
    53 - (v | 2047).leading_zeros()
}

fn index_of(v: u64) -> usize {
    let b = bucket_of(v);
    (((b + 1) as usize) << HALF_MAG) + (v >> b) as usize - (1 << HALF_MAG)
}

/// The largest value counted in the same bucket as `v`, as HdrHistogram reports percentiles.
pub fn highest_equivalent(v: u64) -> u64 {
    let b = bucket_of(v);
    ((v >> b) << b) + ((1u64 << b) - 1)
}

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    for _ in 0..8 {
        if v < 0x80 {
            out.push(v as u8);
            return;
        }
        out.push(0x80 | (v & 0x7f) as u8);
        v >>= 7;
    }
    out.push(v as u8);
}

fn write_zigzag(out: &mut Vec<u8>, v: i64) {
    write_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// The V2 encoding of the histogram of `sorted` (ascending, non-empty) samples, as the crate's
/// `V2Serializer` writes it.
fn encode_sorted(sorted: &[u64]) -> Vec<u8> {
    let max = *sorted.last().expect("non-empty");
    let mut out = Vec::with_capacity(40 + sorted.len().min(512) * 2);
    out.extend_from_slice(&V2_COOKIE.to_be_bytes());
    out.extend_from_slice(&[0; 4]); // payload length, filled below
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&(SIGFIG as u32).to_be_bytes());
    out.extend_from_slice(&1u64.to_be_bytes());
    out.extend_from_slice(&INITIAL_MAX_US.max(highest_equivalent(max)).to_be_bytes());
    out.extend_from_slice(&1.0f64.to_bits().to_be_bytes());
    let mut next = 0usize;
    let mut i = 0;
    while i < sorted.len() {
        let idx = index_of(sorted[i]);
        let mut count = 0i64;
        while i < sorted.len() && index_of(sorted[i]) == idx {
            count += 1;
            i += 1;
        }
        match idx - next {
            0 => {}
            1 => write_zigzag(&mut out, 0),
            zeros => write_zigzag(&mut out, -(zeros as i64)),
        }
        write_zigzag(&mut out, count);
        next = idx + 1;
    }
    let len = (out.len() - 40) as u32;
    out[4..8].copy_from_slice(&len.to_be_bytes());
    out
}

/// Upper bounds (seconds) of the cumulative latency histograms exported to Prometheus.
pub const PROM_BUCKETS_S: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A Prometheus histogram since start: counts per upper bound (and +Inf), sum and count.
/// Prometheus wants cumulative counters; the minute HdrHistograms are windowed and evicted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PromHistogram {
    /// Samples at or below each bound of [`PROM_BUCKETS_S`] (not cumulative), then above all.
    pub buckets: [u64; 12],
    /// Sum of the samples, seconds.
    pub sum_s: f64,
    /// Samples.
    pub count: u64,
}

impl PromHistogram {
    /// Records a sample in milliseconds.
    pub fn observe_ms(&mut self, ms: f64) {
        let s = ms / 1000.0;
        // The bounds are sorted, so the bounds below `s` are exactly those before its bucket.
        // Counting all eleven has no branch to mispredict (a binary search over random
        // latencies did, on every sample).
        let i = PROM_BUCKETS_S
            .iter()
            .map(|b| (*b < s) as usize)
            .sum::<usize>();
        self.buckets[i] += 1;
        self.sum_s += s;
        self.count += 1;
    }
}

/// A closed minute: its encoding and the numbers every query wants.
#[derive(Debug, Clone)]
pub struct MinuteSummary {
    /// Start of the minute, epoch ms.
    pub minute_ms: i64,
    /// Samples in the minute.
    pub count: u64,
    /// Percentiles and max, in ms.
    pub p50: f64,
    /// 90th percentile, ms.
    pub p90: f64,
    /// 99th percentile, ms.
    pub p99: f64,
    /// Largest sample (to histogram precision), ms.
    pub max: f64,
    /// V2 encoding.
    pub hist: Arc<[u8]>,
}

impl MinuteSummary {
    /// Summarises a minute's samples (µs, non-empty); sorts them.
    fn of(minute_ms: i64, samples: &mut [u64]) -> Self {
        samples.sort_unstable();
        let n = samples.len() as u64;
        // HdrHistogram's rule: the value at rank ceil(q * n) (at least 1), reported as the
        // highest value of its bucket.
        let q = |quantile: f64| {
            let rank = ((quantile * n as f64).ceil() as u64).clamp(1, n);
            us_to_ms(highest_equivalent(samples[rank as usize - 1]))
        };
        MinuteSummary {
            minute_ms,
            count: n,
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            max: us_to_ms(highest_equivalent(samples[n as usize - 1])),
            hist: encode_sorted(samples).into(),
        }
    }
}

/// One metric of one server: open minutes (a handful: the lateness window) as raw samples,
/// sealed minutes by start time.
#[derive(Default)]
pub struct MinuteSeries {
    open: OpenMinutes,
    sealed: BTreeMap<i64, MinuteSummary>,
}

/// Open minutes: start and raw samples (µs).
pub(super) type OpenMinutes = Vec<(i64, Vec<u64>)>;

impl MinuteSeries {
    /// Open minutes and sealed ones, for a checkpoint.
    pub(super) fn parts(&self) -> (&OpenMinutes, &BTreeMap<i64, MinuteSummary>) {
        (&self.open, &self.sealed)
    }

    /// A series from a checkpoint's parts.
    pub(super) fn from_parts(
        open: OpenMinutes,
        sealed: BTreeMap<i64, MinuteSummary>,
    ) -> MinuteSeries {
        MinuteSeries { open, sealed }
    }

    /// Records a sample (ms) at event time `ts`.
    pub fn record(&mut self, ts: i64, value_ms: f64) {
        let minute = ts - ts.rem_euclid(60_000);
        let v = ms_to_us(value_ms);
        // Most samples go to the newest open minute: look from the back.
        if let Some((_, samples)) = self.open.iter_mut().rev().find(|(m, _)| *m == minute) {
            samples.push(v);
            return;
        }
        // A minute usually holds about as many samples as the one before: start at that size
        // rather than growing from empty (each regrowth a `realloc` on the ingest thread).
        let like = self.open.last().map_or_else(
            || {
                self.sealed
                    .last_key_value()
                    .map_or(0, |(_, s)| s.count as usize)
            },
            |(_, s)| s.len(),
        );
        let mut samples = Vec::with_capacity(like);
        if let Some(s) = self.sealed.remove(&minute) {
            // Only after `Engine::flush` (end of input) can a sample reach a sealed minute:
            // reopen it with bucket-equivalent samples.
            let h = histogram_from_bytes(&s.hist).expect("sealed minutes hold our own encoding");
            for r in h.iter_recorded() {
                let value = r.value_iterated_to();
                samples.extend(std::iter::repeat_n(value, r.count_at_value() as usize));
            }
        }
        samples.push(v);
        self.open.push((minute, samples));
    }

    /// Seals every open minute that ends at or before `watermark`.
    pub fn seal_through(&mut self, watermark: i64) {
        let last = watermark.saturating_sub(60_000);
        let mut k = 0;
        while k < self.open.len() {
            if self.open[k].0 <= last {
                let (start, mut samples) = self.open.swap_remove(k);
                self.sealed
                    .insert(start, MinuteSummary::of(start, &mut samples));
            } else {
                k += 1;
            }
        }
    }

    /// Drops minutes that end before `horizon`.
    pub fn evict_before(&mut self, horizon: i64) {
        self.sealed = self.sealed.split_off(&(horizon - 59_999));
        self.open.retain(|(m, _)| *m >= horizon - 59_999);
    }

    /// Summaries of all minutes in time order, open ones summarised on the fly.
    pub fn summaries(&self) -> Vec<MinuteSummary> {
        self.summaries_from(i64::MIN)
    }

    /// Summaries of the minutes that end after `from`.
    pub fn summaries_from(&self, from: i64) -> Vec<MinuteSummary> {
        let first = from.saturating_sub(59_999);
        // Sized once: collecting from a map range grows the vector by doubling, copying every
        // summary again at each step (most of a replay's snapshot time, measured).
        let sealed = if first == i64::MIN {
            self.sealed.len()
        } else {
            self.sealed.range(first..).count()
        };
        let mut out: Vec<MinuteSummary> = Vec::with_capacity(sealed + self.open.len());
        out.extend(self.sealed.range(first..).map(|(_, v)| v.clone()));
        let mut ordered = true;
        for (start, samples) in self.open.iter().filter(|(m, _)| *m >= first) {
            ordered &= out.last().is_none_or(|last| last.minute_ms < *start);
            out.push(MinuteSummary::of(*start, &mut samples.clone()));
        }
        if !ordered {
            out.sort_by_key(|s| s.minute_ms);
        }
        out
    }

    /// Minutes held, sealed and open.
    pub fn minutes(&self) -> usize {
        self.sealed.len() + self.open.len()
    }

    /// Bytes held (approximate), for the memory budget.
    pub fn heap_bytes(&self) -> usize {
        let sealed: usize = self
            .sealed
            .values()
            .map(|s| s.hist.len() + std::mem::size_of::<MinuteSummary>() + 48)
            .sum();
        sealed
            + self
                .open
                .iter()
                .map(|(_, v)| v.capacity() * 8 + 48)
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealing_matches_the_crate_exactly() {
        let mut rng = crate::sim::Rng::new(5);
        for round in 0..200 {
            let n = 1 + rng.below(300) as usize;
            let scale = 10f64.powi(round % 7);
            let mut samples: Vec<u64> =
                (0..n).map(|_| (rng.f64().powi(2) * scale) as u64).collect();
            let mut h = new_histogram();
            for &v in &samples {
                h.record(v).unwrap();
            }
            let s = MinuteSummary::of(0, &mut samples);
            assert_eq!(s.count, h.len());
            for (got, q) in [(s.p50, 0.5), (s.p90, 0.9), (s.p99, 0.99)] {
                assert_eq!(got, us_to_ms(h.value_at_quantile(q)), "round {round} q{q}");
            }
            assert_eq!(s.max, us_to_ms(h.max()));
            assert_eq!(
                &s.hist[..],
                &encode(&h)[..],
                "round {round}: byte-identical V2"
            );
        }
        // Beyond the initial range: not byte-identical (the crate's resize history sets the
        // header's highest value) but it decodes to the same histogram.
        let mut samples = vec![5, 70_000_000_000, 123_456_789];
        let mut h = new_histogram();
        samples.iter().for_each(|&v| h.record(v).unwrap());
        let s = MinuteSummary::of(0, &mut samples);
        let back = histogram_from_bytes(&s.hist).unwrap();
        assert_eq!(
            (back.len(), back.max(), back.value_at_quantile(0.5)),
            (h.len(), h.max(), h.value_at_quantile(0.5))
        );
    }

    #[test]
    fn merged_counts_equal_the_crate_merge() {
        let mut rng = crate::sim::Rng::new(9);
        let mut expected = new_histogram();
        let mut merged = MergedCounts::default();
        for k in 0..50 {
            let mut h = new_histogram();
            for _ in 0..200 {
                let v = (rng.f64().powi(3) * 10f64.powi(k % 9)) as u64;
                h.record(v).unwrap();
            }
            expected.add(&h).unwrap();
            merged.add_encoded(&encode(&h)).unwrap();
        }
        // An encoding of another layout goes through the crate's decoder.
        let mut other = Histogram::<u64>::new_with_bounds(1, 1 << 40, 2).unwrap();
        other.record(123_456).unwrap();
        expected.add(&other).unwrap();
        merged.add_encoded(&encode(&other)).unwrap();
        let got = merged.histogram();
        assert_eq!(got.len(), expected.len());
        for q in [0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(
                got.value_at_quantile(q),
                expected.value_at_quantile(q),
                "q{q}"
            );
        }
        assert_eq!(got.max(), expected.max());
        assert!(merged.add_encoded(b"garbage").is_err());
        assert!(merged.add_encoded(&encode(&expected)[..45]).is_err());
    }

    #[test]
    fn prometheus_buckets_hold_each_sample_at_or_below_its_bound() {
        let mut h = PromHistogram::default();
        let mut want = [0u64; 12];
        let mut rng = crate::sim::Rng::new(5);
        let bounds_ms = PROM_BUCKETS_S.map(|b| b * 1000.0);
        let samples = (0..20_000)
            .map(|i| match i % 3 {
                0 => bounds_ms[rng.below(11) as usize],
                1 => rng.below(20_000) as f64 / 1.7,
                _ => rng.below(1_000) as f64 / 100.0,
            })
            .chain([0.0, 1e9]);
        for ms in samples {
            h.observe_ms(ms);
            let s = ms / 1000.0;
            want[PROM_BUCKETS_S.iter().position(|b| s <= *b).unwrap_or(11)] += 1;
        }
        assert_eq!(h.buckets, want);
        assert_eq!(h.count, 20_002);
    }

    #[test]
    fn microseconds_round_like_round() {
        let mut rng = crate::sim::Rng::new(9);
        let specials = [
            0.0,
            -0.0,
            0.0005,
            0.0004999,
            0.0015,
            2.5e-4,
            -1.0,
            -0.0004,
            1e12,
            9.2e15,
            1.8e16,
            1e300,
            f64::MAX,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            4_503_599_627_370.5,
        ];
        let random = (0..200_000).map(|i| match i % 4 {
            0 => rng.below(10_000_000) as f64 / 1000.0 + 0.0005,
            1 => rng.below(1 << 40) as f64 / 997.0,
            2 => f64::from_bits(rng.below(u64::MAX)),
            _ => rng.below(100_000) as f64 / 10.0,
        });
        for ms in specials.into_iter().chain(random) {
            assert_eq!(ms_to_us(ms), (ms * 1000.0).round() as u64, "{ms:e}");
        }
    }

    #[test]
    fn seals_and_round_trips() {
        let mut s = MinuteSeries::default();
        for i in 0..1000 {
            s.record(60_000 + i, (i % 100) as f64 + 0.5);
        }
        s.record(120_500, 7.0);
        s.record(120_600, 65_000.0); // a 65 s setup: beyond the initial range, not clamped
        s.seal_through(120_000);
        let sums = s.summaries();
        assert_eq!(sums.len(), 2);
        assert_eq!(sums[0].count, 1000);
        assert!((sums[0].p99 - 98.5).abs() <= 98.5 * 1e-3, "{}", sums[0].p99);
        let h = histogram_from_bytes(&sums[0].hist).unwrap();
        assert_eq!(h.len(), 1000);
        assert!((sums[1].max - 65_000.0).abs() <= 65.0, "{}", sums[1].max);
        s.evict_before(120_000);
        assert_eq!(s.summaries().len(), 1);
    }
}
