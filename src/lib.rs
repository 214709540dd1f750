//! gatewatch: a connection-telemetry stream processor for remote-access gateways.
//!
//! Data flows one way. Each row below uses only the rows above it (two modules of one row never
//! use each other); `layering.rs` checks it on every `cargo test`:
//!
//! ```text
//! app          wiring of the subcommands: replay, query, check-config, simulate, run (the service)
//! cli          clap's arguments (clap stays in cli and app)
//! http · pg    routes, auth, dashboard, Prometheus metrics · PostgreSQL's wire protocol
//! alerts · checkpoint · output     rules and sinks · checkpoint files · text tables/CSV/JSON
//! sql          DataFusion over a snapshot; the Parquet archive (layout, reader, writer)
//! state        the engine: exact sessions and concurrency, minute histograms, snapshots
//! ingest · sim                     NDJSON files and Kafka in · the synthetic story
//! event        bytes -> typed event or reason; Arrow columns of events (ChunkView)
//! codec · atomic_file · config · http_client     leaves
//! ```
//!
//! An event's path: `ingest` cuts bytes into records and `event` decodes them into Arrow
//! batches (on every core for files; on the apply thread for Kafka); `state` applies each
//! batch in input order and hands out immutable snapshots; `sql` answers over a snapshot;
//! `alerts` evaluates rules in event time against snapshots; `http` serves all of it. See
//! `docs/architecture.md` for the threads and what each room owns.
//!
//! - [`event`]: bytes to a typed event or a stable rejection reason; the `events` Arrow schema.
//! - [`ingest`]: NDJSON read in blocks and decoded on every core, delivered in order; Kafka.
//! - [`state`]: the engine: exact sessions and concurrency in event time, minute HdrHistograms,
//!   accepted events as Arrow batches; immutable snapshots for readers; its encoding.
//! - [`sql`]: DataFusion over a snapshot, read-only, with limits for the service; the archive.
//! - [`alerts`]: rules evaluated in event time, and their sinks.
//! - [`checkpoint`]: checkpoint files of the live service's state ([`codec`] is their
//!   encoding, [`atomic_file`] how every durable file is written).
//! - [`http`]: the service's routes, dashboard and metrics.
//! - [`pg`]: the PostgreSQL front door (psql, Grafana, DBeaver, JDBC, psycopg) over the same
//!   SQL, limits and token.
//! - [`app`]: wiring for the subcommands; [`cli`]: their arguments; [`sim`]: the synthetic
//!   traffic generator.

#![warn(missing_docs)]

pub mod alerts;
pub mod app;
pub mod atomic_file;
pub mod checkpoint;
pub mod cli;
pub mod cluster;
pub mod codec;
pub mod config;
pub mod event;
pub mod http;
pub mod http_client;
pub mod ingest;
#[cfg(test)]
mod layering;
pub mod output;
pub mod pg;
pub mod sim;
pub mod sql;
pub mod state;
