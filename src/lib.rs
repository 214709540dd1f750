//! gatewatch: a connection-telemetry stream processor for remote-access gateways.
//!
//! Data flows one way; a module uses only those to its left:
//!
//! ```text
//! event (schema, decode) -> ingest (file, kafka, dead letters) -> state (sessions, concurrency,
//!     latency, events) -> sql (tables, hdr_* functions) -> alerts -> checkpoint, archive -> http
//!     -> output / app (wiring) / cli
//! ```
//!
//! - [`event`]: bytes to a typed event or a stable rejection reason; the `events` Arrow schema.
//! - [`ingest`]: NDJSON read in blocks and decoded on every core, delivered in order; Kafka.
//! - [`state`]: the engine: exact sessions and concurrency in event time, minute HdrHistograms,
//!   accepted events as Arrow batches; immutable snapshots for readers; its own encoding.
//! - [`sql`]: DataFusion over a snapshot, read-only, with limits for the service.
//! - [`alerts`]: rules evaluated in event time, and their sinks.
//! - [`checkpoint`]: checkpoint files of the live service's state; [`archive`]: the Parquet
//!   archive of sealed hours.
//! - [`http`]: the service's routes, dashboard and metrics.
//! - [`app`]: wiring for the subcommands; [`sim`]: the synthetic traffic generator.
#![warn(missing_docs)]

pub mod alerts;
pub mod app;
pub mod atomic_file;
pub mod checkpoint;
pub mod cli;
pub mod codec;
pub mod config;
pub mod event;
pub mod http;
pub mod http_client;
pub mod ingest;
pub mod output;
pub mod sim;
pub mod sql;
pub mod state;
