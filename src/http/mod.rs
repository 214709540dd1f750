//! HTTP out: the axum router of the live service.
//!
//! Owns: the route table and what every handler shares ([`ServiceState`], snapshots taken off
//! the async workers). The handlers are in `api`, the token and Host/Origin guards in `auth`,
//! the Prometheus text in `metrics` (process figures in `process`), the accept loop with its
//! connection limit and read timeouts in [`server`]. Must not touch: engine internals; it takes
//! a snapshot under the engine lock (a copy) and queries that, so a slow query never holds up
//! ingest.
//!
//! Routes: `GET /` (the live dashboard, assets embedded), `POST /api/sql` (SQL in the body, or
//! `{"sql": "..."}` with a JSON content type), `GET /api/live` and `/api/stream` (server-sent
//! events) for the dashboard, `GET /api/queries`, `GET /assets/*`,
//! `GET /api/servers`, `GET /api/alerts`, `GET /healthz`, `GET /readyz`, `GET /metrics`.
//!
//! Guards: an optional bearer token on every route but `/healthz` (a browser trades `/?token=`
//! for an HttpOnly cookie), a request body limit, and `POST /api/sql` run by the
//! [`sql::QueryRunner`] under a row limit, a timeout and a memory pool.

mod api;
mod auth;
mod metrics;
mod process;
pub mod server;

pub use api::RECENT_ALERTS;
use api::{
    alerts_handler, asset, healthz, index, live_handler, queries_handler, readyz, servers_handler,
    sql_handler, stream_handler, ApiError,
};
use auth::{require_token, same_origin_only};
use metrics::metrics;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::routing::{get, post};
use axum::Router;

use crate::alerts::LiveAlerts;
use crate::ingest::kafka::KafkaStatus;
use crate::sql::{self};
use crate::state::{Engine, Snapshot, SnapshotScope};

/// The media type of an Arrow IPC stream.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// What the handlers read: the engine (for snapshots) and the ingest status.
pub struct ServiceState {
    /// The one engine, shared with the Kafka consumer thread.
    pub engine: Arc<Mutex<Engine>>,
    /// Live consumer status.
    pub kafka: Arc<KafkaStatus>,
    /// When the service started.
    pub started: Instant,
    /// The alert evaluator and sinks (None without rules).
    pub alerts: Option<Arc<Mutex<LiveAlerts>>>,
    /// Runs `POST /api/sql` under the configured limits.
    pub queries: Arc<sql::QueryRunner>,
    /// The bearer token every route but `/healthz` requires (None: open).
    pub token: Option<String>,
    /// The address the service listens on: without a token, the only host name besides the
    /// loopback ones that requests may be addressed to.
    pub bind: std::net::SocketAddr,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Longest a client may take to send a request body.
    pub body_timeout: std::time::Duration,
    /// Checkpoint counts (None without checkpoints).
    pub checkpoints: Option<Arc<crate::checkpoint::CheckpointStats>>,
    /// This member's partitions and their state (None: not in a cluster).
    pub cluster: Option<Arc<crate::cluster::ClusterStatus>>,
    /// Archive counts (None without an archive).
    pub archive: Option<Arc<crate::sql::archive::ArchiveStats>>,
}

impl ServiceState {
    /// What the live views need (servers since the start of the day, latency minutes; no
    /// events), taken under the lock off the async workers: the `servers` table from it equals
    /// the one from a full snapshot.
    async fn live_snapshot(self: &Arc<Self>) -> Result<Arc<Snapshot>, ApiError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let e = me.engine.lock().expect("engine lock");
            let since = e
                .now_ms()
                .map(|n| (n - n.rem_euclid(86_400_000)).min(n - n.rem_euclid(60_000) - 5 * 60_000));
            Arc::new(e.snapshot_of(SnapshotScope::since(since).without_events()))
        })
        .await
        .map_err(|e| ApiError::Internal(format!("snapshot failed: {e}")))
    }

    /// An immutable copy of the state, taken under the lock (off the async workers).
    async fn snapshot(self: &Arc<Self>) -> Result<Arc<Snapshot>, ApiError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            Arc::new(me.engine.lock().expect("engine lock").snapshot())
        })
        .await
        .map_err(|e| ApiError::Internal(format!("snapshot failed: {e}")))
    }
}

/// The service's routes.
pub fn router(state: Arc<ServiceState>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/api/sql", post(sql_handler))
        .route("/api/servers", get(servers_handler))
        .route("/api/alerts", get(alerts_handler))
        .route("/api/live", get(live_handler))
        .route("/api/stream", get(stream_handler))
        .route("/api/queries", get(queries_handler))
        .route("/assets/{file}", get(asset))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(axum::extract::DefaultBodyLimit::max(state.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            same_origin_only,
        ))
        .with_state(state)
}
