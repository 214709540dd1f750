//! The routes' handlers: SQL (content negotiation between JSON, CSV and Arrow IPC), the live
//! views of the dashboard (`/api/live`, `/api/stream`), servers, alerts, the example queries,
//! assets, health and readiness.
//!
//! Owns: status codes, request bodies, error bodies. Must not touch: engine internals (it takes
//! snapshots through [`ServiceState`]); Prometheus text (that is `metrics`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::alerts::sinks::record_json;
use crate::output::{write_result, Format};
use crate::sql::{self, QueryResult, SqlError};
use crate::state::alert_log::firing_now;

use super::{ServiceState, ARROW_STREAM};

/// An error as the client sees it: a status and one sentence, as JSON `{"error": ...}`.
#[derive(Debug)]
pub(super) enum ApiError {
    BadRequest(String),
    TooLarge(String),
    /// Try again in a moment (503 with `Retry-After`).
    Busy(String),
    /// The client was too slow (408).
    Timeout(String),
    Internal(String),
}

impl From<SqlError> for ApiError {
    fn from(e: SqlError) -> Self {
        match e {
            SqlError::Busy(_) => ApiError::Busy(e.to_string()),
            e => ApiError::BadRequest(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, msg) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, m),
            ApiError::Timeout(m) => (StatusCode::REQUEST_TIMEOUT, m),
            ApiError::Busy(m) => {
                let body = serde_json::json!({ "error": m }).to_string() + "\n";
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [
                        (header::CONTENT_TYPE, "application/json"),
                        (header::RETRY_AFTER, "1"),
                    ],
                    body,
                )
                    .into_response();
            }
            ApiError::Internal(m) => {
                tracing::error!(error = %m, "HTTP request failed.");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; see the service log".to_string(),
                )
            }
        };
        let body = serde_json::json!({ "error": msg }).to_string() + "\n";
        (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

/// The response format the `Accept` header asks for (JSON unless CSV or Arrow is named).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wants {
    Json,
    Csv,
    Arrow,
}

fn wants(headers: &HeaderMap) -> Wants {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // Content negotiation by quality (RFC 9110 §12.5.1): the highest `q` among the types
    // served wins; ties go to the one listed first; `q=0` refuses a type. Anything else
    // (no header, `*/*`, unknown types only) gets JSON.
    let mut best: Option<(f32, Wants)> = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .filter_map(|q| q.trim().parse::<f32>().ok())
            .next()
            .unwrap_or(1.0);
        let kind = match media.as_str() {
            ARROW_STREAM => Wants::Arrow,
            "text/csv" => Wants::Csv,
            "application/json" | "application/*" | "*/*" => Wants::Json,
            _ => continue,
        };
        if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, kind));
        }
    }
    best.map_or(Wants::Json, |(_, w)| w)
}

fn encode(result: &QueryResult, wants: Wants) -> Result<Response, ApiError> {
    let internal = |e: &dyn std::fmt::Display| ApiError::Internal(e.to_string());
    let mut body = Vec::new();
    let content_type = match wants {
        Wants::Arrow => {
            let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut body, &result.schema)
                .map_err(|e| internal(&e))?;
            for b in &result.batches {
                w.write(b).map_err(|e| internal(&e))?;
            }
            w.finish().map_err(|e| internal(&e))?;
            ARROW_STREAM
        }
        Wants::Csv => {
            write_result(result, Format::Csv, &mut body).map_err(|e| internal(&e))?;
            "text/csv; charset=utf-8"
        }
        Wants::Json => {
            write_result(result, Format::Json, &mut body).map_err(|e| internal(&e))?;
            "application/json"
        }
    };
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response())
}

/// Reads a request body of at most `http.max_body` bytes within `http.body_timeout`: a client
/// that sends slowly, or not at all, gives its connection back.
pub(super) async fn read_body(
    state: &ServiceState,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<Bytes, ApiError> {
    use futures::StreamExt;
    let too_large = || {
        ApiError::TooLarge(format!(
            "the request body is larger than http.max_body ({} bytes); send only the SQL text",
            state.max_body_bytes
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_body_bytes as u64) {
        return Err(too_large());
    }
    let read = async {
        let mut stream = body.into_data_stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk
                .map_err(|e| ApiError::BadRequest(format!("cannot read the request body: {e}")))?;
            if bytes.len() + chunk.len() > state.max_body_bytes {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(bytes))
    };
    tokio::time::timeout(state.body_timeout, read)
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::Timeout(format!(
                "the request body did not arrive within http.body_timeout ({} s); send it at once",
                state.body_timeout.as_secs_f64()
            )))
        })
}

fn sql_text(headers: &HeaderMap, body: &Bytes) -> Result<String, ApiError> {
    let text = std::str::from_utf8(body).map_err(|_| {
        ApiError::BadRequest("the request body is not UTF-8 text; send the SQL as text".into())
    })?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let sql = if is_json {
        #[derive(serde::Deserialize)]
        struct Req {
            sql: String,
        }
        serde_json::from_str::<Req>(text)
            .map_err(|e| {
                ApiError::BadRequest(format!(
                    "a JSON body must be {{\"sql\": \"SELECT ...\"}}: {e}"
                ))
            })?
            .sql
    } else {
        text.to_string()
    };
    if sql.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "the request body is empty; POST a SELECT statement as the body".into(),
        ));
    }
    Ok(sql)
}

pub(super) async fn sql_handler(
    State(state): State<Arc<ServiceState>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let body = read_body(&state, &headers, body).await?;
    let sql = sql_text(&headers, &body)?;
    let started = Instant::now();
    let snapshot = if state.queries.reads_remote_tables() {
        Arc::new(crate::state::Snapshot::empty())
    } else {
        state.snapshot().await?
    };
    let result = state.queries.run(snapshot, &sql).await?;
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        rows = result.num_rows(),
        "Answered an SQL request."
    );
    encode(&result, wants(&headers))
}

pub(super) async fn servers_handler(
    State(state): State<Arc<ServiceState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let snapshot = state.live_snapshot().await?;
    let result = servers_table(&state, snapshot).await?;
    encode(&result, wants(&headers))
}

/// The embedded `queries/*.sql`, for the dashboard's SQL box.
const QUERIES: [(&str, &str); 9] = [
    (
        "peak_vs_capacity",
        include_str!("../../queries/peak_vs_capacity.sql"),
    ),
    (
        "minutes_above_90pct",
        include_str!("../../queries/minutes_above_90pct.sql"),
    ),
    ("login_storm", include_str!("../../queries/login_storm.sql")),
    (
        "setup_p50_p99_5min",
        include_str!("../../queries/setup_p50_p99_5min.sql"),
    ),
    (
        "load_imbalance",
        include_str!("../../queries/load_imbalance.sql"),
    ),
    ("who_was_on", include_str!("../../queries/who_was_on.sql")),
    (
        "server_down_sessions",
        include_str!("../../queries/server_down_sessions.sql"),
    ),
    (
        "softphone_quality",
        include_str!("../../queries/softphone_quality.sql"),
    ),
    (
        "auth_failures_by_reason",
        include_str!("../../queries/auth_failures_by_reason.sql"),
    ),
];

pub(super) async fn queries_handler() -> Response {
    let list: Vec<serde_json::Value> = QUERIES
        .iter()
        .map(|(name, sql)| serde_json::json!({ "name": name, "sql": sql }))
        .collect();
    json_response(&serde_json::Value::Array(list))
}

fn json_response(v: &serde_json::Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string() + "\n",
    )
        .into_response()
}

/// Everything the dashboard shows live, in one object: the `servers` rows, ingest health and
/// the alerts firing now.
pub(super) async fn live_view(state: &Arc<ServiceState>) -> Result<serde_json::Value, ApiError> {
    let snap = state.live_snapshot().await?;
    let result = servers_table(state, snap.clone()).await?;
    let servers = json_rows(&result)?;
    let firing: Vec<serde_json::Value> = if state.cluster.is_some() {
        // Every member's alerts: the newest transition of each instance, where it fires.
        let firing = state.queries.run(snap.clone(), CLUSTER_FIRING).await?;
        match json_rows(&firing)? {
            serde_json::Value::Array(rows) => rows,
            _ => Vec::new(),
        }
    } else {
        firing_now(&snap.alerts)
            .into_iter()
            .map(record_json)
            .collect()
    };
    let k = &state.kafka;
    let lag: i64 = k.lag.lock().expect("not poisoned").values().sum();
    Ok(serde_json::json!({
        "now": snap.now_ms.map(crate::event::format_rfc3339_ms),
        "now_ms": snap.now_ms,
        "servers": servers,
        "ingest": {
            "accepted": snap.counters.accepted,
            "rejected": snap.counters.rejected_total(),
            "messages": k.messages.load(Ordering::Relaxed),
            "dead_lettered": k.dead_lettered.load(Ordering::Relaxed),
            "lag": lag,
            "ready": k.ready(),
        },
        "alerts": firing,
    }))
}

/// The alert instances firing now in a cluster: each instance's newest transition, where it
/// is `firing`.
const CLUSTER_FIRING: &str = "SELECT ts, rule, key, server, state, severity, value, threshold, since, labels, id FROM (SELECT *, row_number() OVER (PARTITION BY rule, key ORDER BY ts DESC) AS newest FROM alerts) WHERE newest = 1 AND state = 'firing' ORDER BY rule, key";

/// The `servers` table: this process's, or on a cluster member every member's.
async fn servers_table(
    state: &Arc<ServiceState>,
    snapshot: Arc<crate::state::Snapshot>,
) -> Result<QueryResult, ApiError> {
    const SERVERS: &str = "SELECT * FROM servers ORDER BY server";
    Ok(if state.cluster.is_some() {
        state.queries.run(snapshot, SERVERS).await?
    } else {
        sql::query_snapshot(snapshot, SERVERS).await?
    })
}

fn json_rows(result: &QueryResult) -> Result<serde_json::Value, ApiError> {
    let mut rows = Vec::new();
    write_result(result, Format::Json, &mut rows).map_err(|e| ApiError::Internal(e.to_string()))?;
    serde_json::from_slice(&rows).map_err(|e| ApiError::Internal(e.to_string()))
}

/// `GET /api/live`: the dashboard's live object, once.
pub(super) async fn live_handler(
    State(state): State<Arc<ServiceState>>,
) -> Result<Response, ApiError> {
    Ok(json_response(&live_view(&state).await?))
}

/// `GET /api/stream`: the live object as server-sent events, once a second.
pub(super) async fn stream_handler(
    State(state): State<Arc<ServiceState>>,
) -> axum::response::sse::Sse<
    impl futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let ticks = tokio::time::interval(std::time::Duration::from_secs(1));
    let stream =
        futures::stream::unfold((state, ticks, 0u64), |(state, mut ticks, seq)| async move {
            ticks.tick().await;
            let event = match live_view(&state).await {
                Ok(mut v) => {
                    v["seq"] = seq.into();
                    Event::default().event("live").data(v.to_string())
                }
                Err(_) => Event::default().event("error").data("snapshot failed"),
            };
            Some((Ok(event), (state, ticks, seq + 1)))
        });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

pub(super) async fn asset(path: axum::extract::Path<String>) -> Response {
    let (ctype, body): (&str, &'static [u8]) = match path.0.as_str() {
        "uplot.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("assets/uPlot.iife.min.js"),
        ),
        "uplot.css" => (
            "text/css; charset=utf-8",
            include_bytes!("assets/uPlot.min.css"),
        ),
        "uplot-license.txt" => (
            "text/plain; charset=utf-8",
            include_bytes!("assets/uPlot.LICENSE"),
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, ctype),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// The live dashboard (`index.html`; charts by the vendored uPlot).
pub(super) async fn index() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("index.html"),
    )
        .into_response()
}

pub(super) async fn readyz(State(state): State<Arc<ServiceState>>) -> (StatusCode, String) {
    let k = &state.kafka;
    if let Some(c) = &state.cluster {
        return cluster_readyz(k, c);
    }
    if k.ready() {
        return (StatusCode::OK, "ready\n".into());
    }
    let why = if !k.running.load(Ordering::Relaxed) {
        "the Kafka consumer is not running"
    } else if k.brokers_down.load(Ordering::Relaxed) {
        "the Kafka brokers are unreachable"
    } else {
        "no partitions are assigned yet"
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("not ready: {why}\n"),
    )
}

/// A cluster member is ready when its consumer is, and every partition it owns has its state
/// restored; the body lists them (`partition <topic>/<n> restored|restoring`).
fn cluster_readyz(
    k: &crate::ingest::kafka::KafkaStatus,
    c: &crate::cluster::ClusterStatus,
) -> (StatusCode, String) {
    let owned = c.owned();
    let restoring = owned.iter().filter(|o| !o.restored).count();
    let mut body = if !k.ready() {
        "not ready: the Kafka consumer has no partitions or no broker\n".to_string()
    } else if restoring > 0 {
        format!("not ready: {restoring} partition(s) still being restored\n")
    } else {
        "ready\n".to_string()
    };
    body += &format!("member {}\nstate store {}\n", c.member, c.store_url);
    if let Some(e) = c.store_error.lock().expect("not poisoned").as_ref() {
        body += &format!("state store error: {e}\n");
    }
    for o in &owned {
        let state = match (o.restored, o.catching_up_to) {
            (true, _) => "restored".to_string(),
            (false, Some(n)) => format!("catching up with its previous owner, to offset {n}"),
            (false, None) => "restoring".to_string(),
        };
        body += &format!("partition {}/{} {state}\n", o.topic, o.partition);
    }
    let code = if k.ready() && restoring == 0 {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, body)
}

/// Transitions listed by `/api/alerts` under `recent`.
pub const RECENT_ALERTS: usize = 100;

/// `GET /api/alerts`: `{"firing": [...], "recent": [...]}`: the instances firing now (their
/// firing record) and the newest transitions first.
pub(super) async fn alerts_handler(
    State(state): State<Arc<ServiceState>>,
) -> Result<Response, ApiError> {
    // The alert log alone: no snapshot of the rest.
    let engine = state.engine.clone();
    let alerts =
        tokio::task::spawn_blocking(move || engine.lock().expect("engine lock").alert_records())
            .await
            .map_err(|e| ApiError::Internal(format!("reading alerts failed: {e}")))?;
    let firing: Vec<serde_json::Value> = firing_now(&alerts).into_iter().map(record_json).collect();
    let recent: Vec<serde_json::Value> = alerts
        .iter()
        .rev()
        .take(RECENT_ALERTS)
        .map(record_json)
        .collect();
    let body = serde_json::json!({ "firing": firing, "recent": recent }).to_string() + "\n";
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// 200 while the process can do its job; 503 once the engine's lock is poisoned (a thread
/// panicked while changing the state: what it holds can no longer be trusted).
pub(super) async fn healthz(State(st): State<Arc<ServiceState>>) -> Response {
    if st.engine.is_poisoned() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "unhealthy: a thread panicked while changing the engine's state; restart gatewatch (it resumes from its last checkpoint)\n",
        )
            .into_response();
    }
    "ok\n".into_response()
}
