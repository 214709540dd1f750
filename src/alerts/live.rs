//! The live service's alerts: the evaluator and its sinks behind one lock, rounds driven by
//! ingest and by the alert clock, idle partitions, state for checkpoints.
//!
//! Owns: when a live round runs and what it sends. Must not touch: rule semantics (they are
//! `replay`'s too).

use super::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// Shortest wall-clock gap between two evaluation rounds of the live service while events
/// flow: rounds copy state, so they are batched; an alert is still out well within a second.
pub const LIVE_ROUND_GAP: std::time::Duration = std::time::Duration::from_millis(100);

/// The live service's evaluator and sinks, driven after each applied batch and by a clock
/// (which also notices when the input has gone quiet).
pub struct LiveAlerts {
    pub(super) evaluator: Evaluator,
    pub(super) sinks: sinks::Sinks,
    pub(super) idle_timeout: std::time::Duration,
    pub(super) last_round: Option<Instant>,
    /// Per server: its newest event time and when that last changed (wall clock).
    pub(super) seen: HashMap<Arc<str>, (i64, Instant)>,
    /// When any server's newest event time last changed.
    pub(super) last_change: Instant,
    /// On a cluster member: whether this member evaluates SQL rules now (it owns the home
    /// partition); None: a single instance, which always does.
    pub(super) sql_gate: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl LiveAlerts {
    /// Wraps an evaluator and its sinks.
    pub fn new(evaluator: Evaluator, sinks: sinks::Sinks, idle_timeout_ms: i64) -> LiveAlerts {
        LiveAlerts {
            evaluator,
            sinks,
            idle_timeout: std::time::Duration::from_millis(idle_timeout_ms.max(0) as u64),
            last_round: None,
            seen: HashMap::new(),
            last_change: Instant::now(),
            sql_gate: None,
        }
    }

    /// SQL rules are evaluated only while `gate` is set (a cluster member that owns the home
    /// partition; docs/cluster.md).
    pub fn gate_sql_rules(&mut self, gate: Arc<std::sync::atomic::AtomicBool>) {
        self.sql_gate = Some(gate);
    }

    /// Evaluates what is due, if a round is due: copies state under the engine lock, evaluates
    /// outside it, records transitions in the engine and hands everything to the sinks.
    pub fn poll(&mut self, engine: &std::sync::Mutex<Engine>) {
        if self.evaluator.is_empty() {
            return;
        }
        if let Some(g) = &self.sql_gate {
            self.evaluator
                .set_sql_rules(g.load(std::sync::atomic::Ordering::Relaxed));
        }
        let servers = server_clocks(&engine.lock().expect("engine lock"));
        let now = Instant::now();
        let mut changed = false;
        for s in &servers {
            let seen = self.seen.entry(s.name.clone()).or_insert((s.newest, now));
            if seen.0 != s.newest {
                *seen = (s.newest, now);
                changed = true;
            }
        }
        if changed {
            self.last_change = now;
        }
        let all_quiet = self.last_change.elapsed() >= self.idle_timeout;
        if !all_quiet
            && self
                .last_round
                .is_some_and(|t| t.elapsed() < LIVE_ROUND_GAP)
        {
            return;
        }
        let idle = self.idle_timeout;
        let seen = &self.seen;
        let clocks = self.evaluator.clocks(
            &servers,
            |name| seen.get(name).is_some_and(|(_, at)| at.elapsed() >= idle),
            all_quiet,
        );
        let Some(need) = self.evaluator.due(&clocks) else {
            return;
        };
        self.last_round = Some(Instant::now());
        let snap = engine.lock().expect("engine lock").snapshot_of(need);
        let out = self.evaluator.advance(&snap, &clocks);
        tracing::debug!(?need, transitions = out.len(), "Alert round.");
        if !out.is_empty() {
            engine
                .lock()
                .expect("engine lock")
                .record_alerts(&table_records(&out));
            self.sinks.send(&out);
        }
    }

    /// See [`Evaluator::save_state`].
    pub fn save_state(&self) -> Vec<u8> {
        self.evaluator.save_state()
    }

    /// See [`Evaluator::restore_state`].
    pub fn restore_state(&mut self, bytes: &[u8]) -> Result<Vec<String>, DecodeError> {
        self.evaluator.restore_state(bytes)
    }

    /// Per-rule evaluation counts and cost.
    pub fn rule_stats(&self) -> Vec<RuleStats> {
        self.evaluator.stats()
    }

    /// Sink delivery counters.
    pub fn sink_stats(&self) -> Arc<sinks::SinkStats> {
        self.sinks.stats()
    }

    /// Waits (bounded) for queued records to reach the alerts topic.
    pub fn flush(&self, timeout: std::time::Duration) {
        self.sinks.flush(timeout);
    }
}
