//! All mutable telemetry state: sessions, concurrency, latency histograms, accepted events.
//!
//! Owns: the semantics of `docs/events-and-semantics.md` (duplicates, lateness, session
//! lifecycle, timeouts, server state and capacity) and the immutable [`Snapshot`]s that every
//! reader gets. Knows nothing of Kafka, files, SQL or HTTP: it takes decoded batches (an
//! [`crate::event::ChunkView`]) and gives snapshots.
//!
//! Rooms: [`Engine`] (`engine`: arrival, retention, counters), `clock` (believable event
//! times), `dedupe` (repeated ids), `reorder` (the per-server reorder buffer), `sessions` (the
//! order-dependent rules), `snapshot` (copies for readers), [`latency`] (minute histograms),
//! [`events`] (the `events` batches), [`timeline`] (concurrency swept from sessions),
//! [`alert_log`] (alert transitions), [`encode`] (all of it as bytes, for checkpoints).
//!
//! How exactness is kept with out-of-order input:
//! - On arrival each event is checked for a repeated `id` and for lateness against the newest
//!   event of its server. What passes is accepted: its row is kept for the `events` table, its
//!   latency samples go into the minute histograms and rejects into per-second counts at once
//!   (these do not depend on order).
//! - Events that change sessions or the server (connect, disconnect, latency, server) also go
//!   into the server's reorder buffer, and are applied in event-time order once the server's
//!   watermark (newest event minus `allowed_lateness`) has passed them. Nothing accepted later can
//!   sort before them, so the order they are applied in is the event-time order, exactly.
//! - A snapshot applies the still-buffered events to a copy of the open sessions, so live gauges
//!   never wait for the lateness window.
//! - Concurrency is not counted incrementally: it is swept from the sessions' intervals when a
//!   snapshot is read (see [`timeline`]), so it cannot drift.

pub mod alert_log;
mod clock;
mod dedupe;
pub mod encode;
mod engine;
pub mod events;
pub mod latency;
pub mod partition;
mod reorder;
mod sessions;
mod snapshot;
#[cfg(test)]
mod tests;
pub mod timeline;

pub use engine::{metric_index, Applied, Counters, Engine, MAX_IGNORED_KINDS};
pub use sessions::{EndReason, SessionRow};
pub use snapshot::{ServerSnapshot, Snapshot, SnapshotScope};
