//! Per-server, per-metric, per-minute latency histograms.
//!
//! Owns: HdrHistograms (3 significant digits, values in microseconds) for the open minutes, and
//! the sealed minutes in their standard V2 encoding with the summary numbers computed once.
//! A live histogram costs tens of KiB; a sealed minute a few hundred bytes, which is what keeps
//! 24 h x 10 servers x 3 metrics within the memory budget. A minute is sealed once its server's
//! watermark has passed its end: no accepted event can land in it any more.

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

/// Milliseconds (as in events) to the integer microseconds histograms hold.
pub fn ms_to_us(ms: f64) -> u64 {
    (ms * 1000.0).round() as u64
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
pub fn decode(bytes: &[u8]) -> Result<Histogram<u64>, String> {
    let mut reader = bytes;
    Deserializer::new()
        .deserialize(&mut reader)
        .map_err(|e| format!("not an HdrHistogram V2 encoding: {e:?}"))
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
    fn of(minute_ms: i64, h: &Histogram<u64>) -> Self {
        MinuteSummary {
            minute_ms,
            count: h.len(),
            p50: us_to_ms(h.value_at_quantile(0.50)),
            p90: us_to_ms(h.value_at_quantile(0.90)),
            p99: us_to_ms(h.value_at_quantile(0.99)),
            max: us_to_ms(h.max()),
            hist: encode(h).into(),
        }
    }
}

enum Minute {
    Open(Box<Histogram<u64>>),
    Sealed(MinuteSummary),
}

/// One metric of one server: minutes by start time.
pub struct MinuteSeries {
    minutes: BTreeMap<i64, Minute>,
    /// Every minute starting before this is sealed; sealing resumes here.
    open_from: i64,
}

impl Default for MinuteSeries {
    fn default() -> Self {
        MinuteSeries {
            minutes: BTreeMap::new(),
            open_from: i64::MIN,
        }
    }
}

impl MinuteSeries {
    /// Records a sample (ms) at event time `ts`. The minute must not be sealed: the caller has
    /// rejected anything older than the watermark.
    pub fn record(&mut self, ts: i64, value_ms: f64) {
        let minute = ts - ts.rem_euclid(60_000);
        let m = self
            .minutes
            .entry(minute)
            .or_insert_with(|| Minute::Open(Box::new(new_histogram())));
        if let Minute::Sealed(s) = m {
            // Only after `Engine::flush` (end of input) can a sample reach a sealed minute.
            let h = decode(&s.hist).expect("sealed minutes hold our own encoding");
            *m = Minute::Open(Box::new(h));
            self.open_from = self.open_from.min(minute);
        }
        if let Minute::Open(h) = m {
            h.saturating_record(ms_to_us(value_ms));
        }
    }

    /// Seals every open minute that ends at or before `watermark`.
    pub fn seal_through(&mut self, watermark: i64) {
        let last = watermark.saturating_sub(60_000);
        if last < self.open_from {
            return;
        }
        for (&start, m) in self.minutes.range_mut(self.open_from..=last) {
            if let Minute::Open(h) = m {
                *m = Minute::Sealed(MinuteSummary::of(start, h));
            }
        }
        self.open_from = last.saturating_add(1);
    }

    /// Drops minutes that end before `horizon`.
    pub fn evict_before(&mut self, horizon: i64) {
        self.minutes = self.minutes.split_off(&(horizon - 59_999));
    }

    /// Summaries of all minutes, open ones encoded on the fly.
    pub fn summaries(&self) -> Vec<MinuteSummary> {
        self.minutes
            .iter()
            .map(|(&start, m)| match m {
                Minute::Sealed(s) => s.clone(),
                Minute::Open(h) => MinuteSummary::of(start, h),
            })
            .collect()
    }

    /// Bytes held (approximate), for the memory budget.
    pub fn heap_bytes(&self) -> usize {
        self.minutes
            .values()
            .map(|m| match m {
                Minute::Sealed(s) => s.hist.len() + std::mem::size_of::<MinuteSummary>() + 48,
                Minute::Open(h) => h.distinct_values() * 8 + 256,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_round_trips() {
        let mut s = MinuteSeries::default();
        for i in 0..1000 {
            s.record(60_000 + i, (i % 100) as f64 + 0.5);
        }
        s.record(120_500, 7.0);
        s.seal_through(120_000);
        let sums = s.summaries();
        assert_eq!(sums.len(), 2);
        assert_eq!(sums[0].count, 1000);
        assert!((sums[0].p99 - 98.5).abs() <= 98.5 * 1e-3, "{}", sums[0].p99);
        let h = decode(&sums[0].hist).unwrap();
        assert_eq!(h.len(), 1000);
        s.evict_before(120_000);
        assert_eq!(s.summaries().len(), 1);
    }
}
