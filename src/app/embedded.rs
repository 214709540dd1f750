//! The embedded default of `gatewatch run`: librdkafka's in-process cluster, fed by the
//! simulator playing the March 2020 story, so that the service shows live data with no Kafka
//! installed.
//!
//! Owns: the cluster's lifetime, its topics, the story's pacing. Must not touch: the service
//! (it only learns the bootstrap address).

use std::sync::atomic::{AtomicBool, Ordering};

use rdkafka::mocking::MockCluster;

use crate::event::parse_rfc3339_ms;
use crate::sim::{self, KafkaSink, Playback};

/// Partitions of the embedded cluster's topic.
pub const EMBEDDED_PARTITIONS: i32 = 4;
/// The embedded simulator's first day: the first bad morning of the story.
pub const EMBEDDED_START: &str = "2020-03-17";
/// Days the embedded simulator plays.
pub const EMBEDDED_DAYS: u32 = 28;
/// The embedded simulator plays the night at full speed and paces from this time of day (ms),
/// so the login storm starts within a minute of `gatewatch run`.
pub const EMBEDDED_PACE_FROM_MS: i64 = (7 * 60 + 50) * 60_000;

/// How the service gets its events when no brokers are configured.
#[derive(Debug, Clone)]
pub struct Embedded {
    /// Simulator plan (its `speed` is event seconds per wall second).
    pub playback: Playback,
}

impl Embedded {
    /// The default: the story from 17 March, at `speed`.
    pub fn story(speed: f64) -> Embedded {
        let start = parse_rfc3339_ms(&format!("{EMBEDDED_START}T00:00:00Z")).expect("valid date");
        Embedded {
            playback: Playback {
                start_day: start / 86_400_000,
                days: EMBEDDED_DAYS,
                seed: 1,
                users: None,
                speed,
                fast_until: Some(start + EMBEDDED_PACE_FROM_MS),
                output: Default::default(),
            },
        }
    }
}

/// Owns the in-process cluster for as long as the service runs: creates the topics, reports the
/// bootstrap address, plays the simulator, then waits for `stop`.
pub(super) fn embedded_cluster(
    topics: &[String],
    dlq: &[String],
    playback: &Playback,
    stop: &AtomicBool,
    ready: std::sync::mpsc::Sender<anyhow::Result<String>>,
) {
    let setup = || -> anyhow::Result<(MockCluster<'static, _>, String)> {
        let cluster = MockCluster::new(1)?;
        for t in topics {
            cluster.create_topic(t, EMBEDDED_PARTITIONS, 1)?;
        }
        for t in dlq {
            cluster.create_topic(t, 1, 1)?;
        }
        let b = cluster.bootstrap_servers();
        Ok((cluster, b))
    };
    let (cluster, brokers) = match setup() {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(brokers.clone()));
    let topic = &topics[0];
    // The in-process cluster finds a fetch offset by walking every message set it holds, so
    // fewer, larger produce batches keep its cost down over a long run.
    let sim_properties =
        std::collections::BTreeMap::from([("linger.ms".to_string(), "100".to_string())]);
    match KafkaSink::new(&brokers, topic, &sim_properties) {
        Ok(mut sink) => match sim::play(playback, &mut sink, stop) {
            Ok(n) => {
                if let Err(e) = sink.finish() {
                    tracing::error!(error = %e, "The embedded simulator stopped.");
                } else if stop.load(Ordering::Relaxed) {
                    tracing::info!(events = n, "The embedded simulator stopped.");
                } else {
                    tracing::info!(events = n, "The embedded simulator finished its story.");
                }
            }
            Err(e) => tracing::error!(error = %e, "The embedded simulator stopped."),
        },
        Err(e) => tracing::error!(error = %e, "The embedded simulator could not start."),
    }
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(cluster);
}
