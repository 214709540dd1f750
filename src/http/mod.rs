//! HTTP out: the axum router of the live service.
//!
//! Owns: routes, content negotiation (JSON, CSV, Arrow IPC stream), status codes and the
//! Prometheus text of `/metrics`. Must not touch: engine internals; it takes a snapshot under
//! the engine lock (a copy) and queries that, so a slow query never holds up ingest.
//!
//! Routes: `GET /` (the live dashboard, assets embedded), `POST /api/sql` (SQL in the body, or
//! `{"sql": "..."}` with a JSON content type), `GET /api/live` and `/api/stream` (server-sent
//! events) for the dashboard, `GET /api/queries`, `GET /assets/*`,
//! `GET /api/servers`, `GET /api/alerts`, `GET /healthz`, `GET /readyz`, `GET /metrics`.
//!
//! Guards: an optional bearer token on every route but `/healthz` (a browser trades `/?token=`
//! for an HttpOnly cookie), a request body limit, and `POST /api/sql` run by the
//! [`sql::QueryRunner`] under a row limit, a timeout and a memory pool.

mod process;
pub mod server;

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::alerts::sinks::record_json;
use crate::alerts::LiveAlerts;
use crate::event::EventType;
use crate::ingest::kafka::KafkaStatus;
use crate::output::{write_result, Format};
use crate::sql::{self, QueryResult, SqlError};
use crate::state::alert_log::firing_now;
use crate::state::{Engine, Snapshot};

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
    pub queries: sql::QueryRunner,
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
            Arc::new(e.snapshot_since(since, false, true))
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

/// The cookie a browser gets after opening `/?token=...`, so the dashboard's own requests
/// (including the `EventSource` stream, which cannot send headers) carry the token.
const TOKEN_COOKIE: &str = "gatewatch_token";

/// With a token configured, every route but `/healthz` needs `Authorization: Bearer <token>`
/// or the cookie set by opening `/?token=<token>`.
async fn require_token(
    State(state): State<Arc<ServiceState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(expected) = state.token.as_deref() else {
        return next.run(req).await;
    };
    if req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    let headers = req.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            // The scheme is case-insensitive (RFC 9110 §11.1).
            let (scheme, token) = v.trim_start().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token)
        })
        .map(str::trim);
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(TOKEN_COOKIE)?.strip_prefix('='))
        .next();
    if bearer.or(cookie).is_some_and(|t| same_secret(t, expected)) {
        return next.run(req).await;
    }
    if req.uri().path() == "/" {
        let query = req.uri().query().unwrap_or("");
        let from_query = query
            .split('&')
            .filter_map(|kv| kv.strip_prefix("token="))
            .next();
        if from_query.is_some_and(|t| same_secret(t, expected)) {
            // Move the token out of the address bar (and history) into an HttpOnly cookie;
            // keep the rest of the query (`/?token=...&sql=...` still opens with that query).
            let rest: Vec<&str> = query
                .split('&')
                .filter(|kv| !kv.starts_with("token=") && !kv.is_empty())
                .collect();
            let location = if rest.is_empty() {
                "/".to_string()
            } else {
                format!("/?{}", rest.join("&"))
            };
            let cookie = format!("{TOKEN_COOKIE}={expected}; Path=/; HttpOnly; SameSite=Strict");
            return (
                StatusCode::SEE_OTHER,
                [(header::LOCATION, location), (header::SET_COOKIE, cookie)],
            )
                .into_response();
        }
    }
    let body = serde_json::json!({
        "error": "this gatewatch requires a token: send Authorization: Bearer <token> (the service's http.token or GATEWATCH_HTTP_TOKEN), use gatewatch query --token, or open /?token=<token> in a browser"
    })
    .to_string()
        + "\n";
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::WWW_AUTHENTICATE, "Bearer realm=\"gatewatch\""),
            (header::CONTENT_TYPE, "application/json"),
        ],
        body,
    )
        .into_response()
}

/// Without a token, refuses what a hostile web page in an operator's browser could send:
/// requests addressed to a host name that is not this service's (DNS rebinding: `Host:
/// evil.example` resolving to 127.0.0.1), and cross-origin requests that read state or run
/// queries (`Origin` of another site, or `Sec-Fetch-Site: cross-site`). Opening the dashboard
/// from a link (a navigation to `/` or its assets) and `/healthz` stay allowed. With a token,
/// the token is the guard (its cookie is `SameSite=Strict`, so no other site's request carries
/// it).
async fn same_origin_only(
    State(state): State<Arc<ServiceState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if state.token.is_some() || req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    let headers = req.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if let Some(host) = host {
        if !allowed_host(host, state.bind) {
            return forbidden(format!(
                "this gatewatch answers only requests addressed to it by a loopback name or its own address, not {host:?} (a guard against DNS rebinding); use http://127.0.0.1:{}/, or set http.token to serve other names",
                state.bind.port()
            ));
        }
    }
    let navigation = req.method() == axum::http::Method::GET
        && (req.uri().path() == "/" || req.uri().path().starts_with("/assets/"));
    if !navigation {
        let cross_site = headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"));
        let foreign_origin = headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|origin| {
                let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
                host.is_none_or(|h| !origin_host.eq_ignore_ascii_case(h))
            });
        if cross_site || foreign_origin {
            return forbidden(
                "cross-origin requests are refused (another site's page may not read gatewatch or run its queries); open the dashboard from this service, or set http.token".into(),
            );
        }
    }
    next.run(req).await
}

/// Whether a `Host` header names this service: a loopback name or address, the bound address,
/// or (bound to every interface) any address literal, which no DNS rebinding can produce.
fn allowed_host(host: &str, bind: std::net::SocketAddr) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(rest, |(h, _)| h),
        None => host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        }),
    };
    let name = name.trim_end_matches('.');
    if name.eq_ignore_ascii_case("localhost") || name.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    match name.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback() || ip == bind.ip() || bind.ip().is_unspecified(),
        Err(_) => false,
    }
}

fn forbidden(msg: String) -> Response {
    let body = serde_json::json!({ "error": msg }).to_string() + "\n";
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// Compares without stopping at the first differing byte (no timing hint of the prefix).
fn same_secret(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An error as the client sees it: a status and one sentence, as JSON `{"error": ...}`.
#[derive(Debug)]
enum ApiError {
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
async fn read_body(
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

async fn sql_handler(
    State(state): State<Arc<ServiceState>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let body = read_body(&state, &headers, body).await?;
    let sql = sql_text(&headers, &body)?;
    let started = Instant::now();
    let snapshot = state.snapshot().await?;
    let result = state.queries.run(snapshot, &sql).await?;
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        rows = result.num_rows(),
        "Answered an SQL request."
    );
    encode(&result, wants(&headers))
}

async fn servers_handler(
    State(state): State<Arc<ServiceState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let snapshot = state.live_snapshot().await?;
    let result = sql::query_snapshot(snapshot, "SELECT * FROM servers ORDER BY server").await?;
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

async fn queries_handler() -> Response {
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
async fn live_view(state: &Arc<ServiceState>) -> Result<serde_json::Value, ApiError> {
    let snap = state.live_snapshot().await?;
    let result = sql::query_snapshot(snap.clone(), "SELECT * FROM servers ORDER BY server").await?;
    let mut rows = Vec::new();
    write_result(&result, Format::Json, &mut rows)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let servers: serde_json::Value =
        serde_json::from_slice(&rows).map_err(|e| ApiError::Internal(e.to_string()))?;
    let firing: Vec<serde_json::Value> = firing_now(&snap.alerts)
        .into_iter()
        .map(record_json)
        .collect();
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

/// `GET /api/live`: the dashboard's live object, once.
async fn live_handler(State(state): State<Arc<ServiceState>>) -> Result<Response, ApiError> {
    Ok(json_response(&live_view(&state).await?))
}

/// `GET /api/stream`: the live object as server-sent events, once a second.
async fn stream_handler(
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

async fn asset(path: axum::extract::Path<String>) -> Response {
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
async fn index() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("index.html"),
    )
        .into_response()
}

async fn readyz(State(state): State<Arc<ServiceState>>) -> (StatusCode, String) {
    let k = &state.kafka;
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

/// Transitions listed by `/api/alerts` under `recent`.
pub const RECENT_ALERTS: usize = 100;

/// `GET /api/alerts`: `{"firing": [...], "recent": [...]}`: the instances firing now (their
/// firing record) and the newest transitions first.
async fn alerts_handler(State(state): State<Arc<ServiceState>>) -> Result<Response, ApiError> {
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

async fn metrics(State(state): State<Arc<ServiceState>>) -> Response {
    let counters = state.engine.lock().expect("engine lock").counters().clone();
    let k = &state.kafka;
    let mut out = String::with_capacity(4096);
    family(
        &mut out,
        "gatewatch_events_total",
        "counter",
        "Events accepted, by type.",
    );
    for (i, t) in EventType::ALL.iter().enumerate() {
        let _ = writeln!(
            out,
            "gatewatch_events_total{{type=\"{}\"}} {}",
            t.as_str(),
            counters.by_type[i]
        );
    }
    family(
        &mut out,
        "gatewatch_rejected_total",
        "counter",
        "Inputs rejected, by reason (decode failures and late events).",
    );
    for (r, v) in &counters.rejected {
        let _ = writeln!(out, "gatewatch_rejected_total{{reason=\"{r}\"}} {v}");
    }
    family(
        &mut out,
        "gatewatch_dead_lettered_by_reason_total",
        "counter",
        "Kafka messages sent to the dead-letter topic, by reason.",
    );
    for (r, v) in k
        .dead_lettered_by_reason
        .lock()
        .expect("not poisoned")
        .iter()
    {
        let _ = writeln!(
            out,
            "gatewatch_dead_lettered_by_reason_total{{reason=\"{r}\"}} {v}"
        );
    }
    family(
        &mut out,
        "gatewatch_kafka_consumer_lag",
        "gauge",
        "Messages on the broker not yet applied, per assigned partition (from librdkafka statistics every 5 s).",
    );
    for ((topic, partition), lag) in k.lag.lock().expect("not poisoned").iter() {
        let _ = writeln!(
            out,
            "gatewatch_kafka_consumer_lag{{topic=\"{topic}\",partition=\"{partition}\"}} {lag}"
        );
    }
    let simple = [
        (
            "gatewatch_duplicates_total",
            "counter",
            "Events dropped because their id was seen before.",
            counters.duplicates as f64,
        ),
        (
            "gatewatch_orphans_total",
            "counter",
            "Disconnect or latency events for a session that is not active.",
            counters.orphans as f64,
        ),
        (
            "gatewatch_events_dropped_early_total",
            "counter",
            "Rows the events table dropped before retention to stay within engine.events_memory.",
            counters.events_dropped_early as f64,
        ),
        (
            "gatewatch_duplicate_connects_total",
            "counter",
            "Connects for a session that is already active.",
            counters.duplicate_connects as f64,
        ),
        (
            "gatewatch_kafka_messages_total",
            "counter",
            "Kafka messages read, then applied or dead-lettered.",
            k.messages.load(Ordering::Relaxed) as f64,
        ),
        (
            "gatewatch_dead_lettered_total",
            "counter",
            "Messages delivered to the dead-letter topic.",
            k.dead_lettered.load(Ordering::Relaxed) as f64,
        ),
        (
            "gatewatch_dead_letter_failures_total",
            "counter",
            "Dead letters the broker did not accept.",
            k.dead_letter_failures.load(Ordering::Relaxed) as f64,
        ),
        (
            "gatewatch_kafka_errors_total",
            "counter",
            "Kafka client errors (broker, fetch, rebalance).",
            k.errors.load(Ordering::Relaxed) as f64,
        ),
        (
            "gatewatch_kafka_rebalances_total",
            "counter",
            "Consumer group rebalances.",
            k.rebalances.load(Ordering::Relaxed) as f64,
        ),
        (
            "gatewatch_kafka_assigned_partitions",
            "gauge",
            "Partitions assigned to this consumer.",
            k.assigned.load(Ordering::Relaxed) as f64,
        ),
        (
            "gatewatch_ready",
            "gauge",
            "1 when the consumer runs, has partitions and reaches a broker.",
            u8::from(k.ready()) as f64,
        ),
        (
            "gatewatch_uptime_seconds",
            "gauge",
            "Seconds since the service started.",
            state.started.elapsed().as_secs_f64(),
        ),
    ];
    unlabelled(&mut out, &simple);
    if let Some(live) = &state.alerts {
        alert_metrics(&mut out, &state.engine, live);
    }
    let late = counters
        .rejected
        .get(&crate::event::Reason::Late)
        .copied()
        .unwrap_or(0);
    family(
        &mut out,
        "gatewatch_late_events_total",
        "counter",
        "Events rejected because they arrived later than allowed_lateness behind their server's newest event.",
    );
    let _ = writeln!(out, "gatewatch_late_events_total {late}");
    let engine = state.engine.clone();
    if let Ok((snap, hists)) = tokio::task::spawn_blocking(move || {
        let e = engine.lock().expect("engine lock");
        // Open sessions and current capacities only: no events, no latency minutes.
        let snap = e.snapshot_since(e.now_ms(), false, false);
        (snap, e.latency_histograms())
    })
    .await
    {
        server_metrics(&mut out, &snap, &hists);
    }
    if let Some(c) = &state.checkpoints {
        checkpoint_metrics(&mut out, c);
    }
    if let Some(a) = &state.archive {
        archive_metrics(&mut out, a);
    }
    process::write(&mut out);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

fn archive_metrics(out: &mut String, a: &crate::sql::archive::ArchiveStats) {
    let ld = |x: &std::sync::atomic::AtomicU64| x.load(Ordering::Relaxed) as f64;
    let samples = [
        (
            "gatewatch_archive_hours_total",
            "counter",
            "Hours archived as Parquet.",
            ld(&a.hours),
        ),
        (
            "gatewatch_archive_files_total",
            "counter",
            "Parquet files written to the archive.",
            ld(&a.files),
        ),
        (
            "gatewatch_archive_failures_total",
            "counter",
            "Failed attempts to archive an hour (retried; ingest goes on).",
            ld(&a.failures),
        ),
        (
            "gatewatch_archive_through_timestamp_seconds",
            "gauge",
            "Event time before which every hour is archived (0: none yet).",
            a.through_ms.load(Ordering::Relaxed) as f64 / 1000.0,
        ),
    ];
    unlabelled(out, &samples);
}

fn checkpoint_metrics(out: &mut String, c: &crate::checkpoint::CheckpointStats) {
    let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let samples = [
        (
            "gatewatch_checkpoints_written_total",
            "counter",
            "Checkpoints written.",
            ld(&c.written) as f64,
        ),
        (
            "gatewatch_checkpoint_failures_total",
            "counter",
            "Checkpoints that could not be written (ingest goes on).",
            ld(&c.failures) as f64,
        ),
        (
            "gatewatch_checkpoint_last_success_timestamp_seconds",
            "gauge",
            "When the newest checkpoint was written (0: none yet).",
            ld(&c.last_success_ms) as f64 / 1000.0,
        ),
        (
            "gatewatch_checkpoint_last_bytes",
            "gauge",
            "Size of the newest checkpoint.",
            ld(&c.last_bytes) as f64,
        ),
        (
            "gatewatch_checkpoint_capture_seconds",
            "gauge",
            "How long the newest checkpoint held the engine lock (ingest waits this long).",
            ld(&c.last_capture_us) as f64 / 1e6,
        ),
        (
            "gatewatch_checkpoint_write_seconds",
            "gauge",
            "How long writing the newest checkpoint took (off the ingest path).",
            ld(&c.last_write_us) as f64 / 1e6,
        ),
    ];
    unlabelled(out, &samples);
}

fn server_metrics(
    out: &mut String,
    snap: &Snapshot,
    hists: &[(Arc<str>, [crate::state::latency::PromHistogram; 2])],
) {
    family(
        out,
        "gatewatch_server_active_sessions",
        "gauge",
        "Sessions open now on each server (as `active` in the servers table).",
    );
    let active: Vec<(String, usize)> = snap
        .servers
        .iter()
        .map(|s| {
            (
                label(&s.name),
                s.sessions.iter().filter(|r| r.ended.is_none()).count(),
            )
        })
        .collect();
    for (server, n) in &active {
        let _ = writeln!(
            out,
            "gatewatch_server_active_sessions{{server=\"{server}\"}} {n}"
        );
    }
    family(
        out,
        "gatewatch_server_capacity_sessions",
        "gauge",
        "Capacity in force on each server (servers with a known capacity).",
    );
    for s in &snap.servers {
        if let Some(c) = s.capacity() {
            let _ = writeln!(
                out,
                "gatewatch_server_capacity_sessions{{server=\"{}\"}} {c}",
                label(&s.name)
            );
        }
    }
    family(
        out,
        "gatewatch_server_utilisation_ratio",
        "gauge",
        "Open sessions / capacity on each server (servers with a known capacity).",
    );
    for (s, (server, n)) in snap.servers.iter().zip(&active) {
        if let Some(c) = s.capacity().filter(|c| *c > 0) {
            let _ = writeln!(
                out,
                "gatewatch_server_utilisation_ratio{{server=\"{server}\"}} {}",
                *n as f64 / c as f64
            );
        }
    }
    family(
        out,
        "gatewatch_server_state",
        "gauge",
        "1 for each server's current state (up, draining, down), 0 for the others.",
    );
    for s in &snap.servers {
        let current = s.state.map(|st| st.as_str()).or(s.first_ts.map(|_| "up"));
        for st in ["up", "draining", "down"] {
            let _ = writeln!(
                out,
                "gatewatch_server_state{{server=\"{}\",state=\"{st}\"}} {}",
                label(&s.name),
                u8::from(current == Some(st))
            );
        }
    }
    for (i, (name, help)) in [
        (
            "gatewatch_rtt_seconds",
            "Round-trip time samples (latency events), since start.",
        ),
        (
            "gatewatch_setup_seconds",
            "Tunnel setup time of connects, since start.",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        family(out, name, "histogram", help);
        for (server, h) in hists {
            let h = &h[i];
            let server = label(server);
            let mut cumulative = 0;
            for (b, n) in crate::state::latency::PROM_BUCKETS_S.iter().zip(h.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "{name}_bucket{{server=\"{server}\",le=\"{b}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "{name}_bucket{{server=\"{server}\",le=\"+Inf\"}} {}\n{name}_sum{{server=\"{server}\"}} {}\n{name}_count{{server=\"{server}\"}} {}",
                h.count, h.sum_s, h.count
            );
        }
    }
}

/// 200 while the process can do its job; 503 once the engine's lock is poisoned (a thread
/// panicked while changing the state: what it holds can no longer be trusted).
async fn healthz(State(st): State<Arc<ServiceState>>) -> Response {
    if st.engine.is_poisoned() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "unhealthy: a thread panicked while changing the engine's state; restart gatewatch (it resumes from its last checkpoint)\n",
        )
            .into_response();
    }
    "ok\n".into_response()
}

/// Escapes a Prometheus label value: `\`, `"` and newlines as the text format says; other
/// control characters (which no server id has, but an SQL rule's key may) as the text
/// `\uXXXX` (an escaped backslash, then `uXXXX`).
fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn alert_metrics(out: &mut String, engine: &Mutex<Engine>, live: &Mutex<LiveAlerts>) {
    let (stats, sinks) = {
        let l = live.lock().expect("not poisoned");
        (l.rule_stats(), l.sink_stats())
    };
    let alerts = engine.lock().expect("engine lock").alert_records();
    let firing = firing_now(&alerts);
    let mut transitions = std::collections::BTreeMap::new();
    for r in alerts.iter() {
        *transitions
            .entry((r.rule.as_str(), r.state))
            .or_insert(0u64) += 1;
    }
    family(
        out,
        "gatewatch_alerts_firing",
        "gauge",
        "Alert instances firing now, by rule.",
    );
    for s in &stats {
        let n = firing.iter().filter(|r| r.rule == s.rule).count();
        let _ = writeln!(
            out,
            "gatewatch_alerts_firing{{rule=\"{}\"}} {n}",
            label(&s.rule)
        );
    }
    family(
        out,
        "gatewatch_alert_firing",
        "gauge",
        "1 for each alert instance firing now (rule, key, severity).",
    );
    for r in &firing {
        let _ = writeln!(
            out,
            "gatewatch_alert_firing{{rule=\"{}\",key=\"{}\",severity=\"{}\"}} 1",
            label(&r.rule),
            label(&r.key),
            label(&r.severity)
        );
    }
    family(
        out,
        "gatewatch_alert_transitions_total",
        "counter",
        "Alert transitions in retention, by rule and state.",
    );
    for ((rule, st), n) in &transitions {
        let _ = writeln!(
            out,
            "gatewatch_alert_transitions_total{{rule=\"{}\",state=\"{st}\"}} {n}",
            label(rule)
        );
    }
    type PerRule = fn(&crate::alerts::RuleStats) -> f64;
    let per_rule: [(&str, &str, PerRule); 3] = [
        (
            "gatewatch_alert_rule_evaluations_total",
            "Evaluations (ticks) of each rule.",
            |s| s.evaluations as f64,
        ),
        (
            "gatewatch_alert_rule_evaluation_seconds_total",
            "Wall time spent evaluating each rule.",
            |s| s.seconds,
        ),
        (
            "gatewatch_alert_rule_errors_total",
            "Failed evaluations of SQL rules.",
            |s| s.errors as f64,
        ),
    ];
    for (name, help, value) in per_rule {
        family(out, name, "counter", help);
        for s in &stats {
            let _ = writeln!(out, "{name}{{rule=\"{}\"}} {}", label(&s.rule), value(s));
        }
    }
    let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    family(
        out,
        "gatewatch_alert_deliveries_total",
        "counter",
        "Alert records delivered, by sink and outcome (dropped: the webhook's queue was full).",
    );
    for (sink, outcome, v) in [
        ("kafka", "delivered", ld(&sinks.kafka_delivered)),
        ("kafka", "failed", ld(&sinks.kafka_failed)),
        ("webhook", "delivered", ld(&sinks.webhook_delivered)),
        ("webhook", "failed", ld(&sinks.webhook_failed)),
        ("webhook", "dropped", ld(&sinks.webhook_dropped)),
    ] {
        let _ = writeln!(
            out,
            "gatewatch_alert_deliveries_total{{sink=\"{sink}\",outcome=\"{outcome}\"}} {v}"
        );
    }
}

/// Metrics without labels: `(name, type, help, value)` each.
fn unlabelled(out: &mut String, samples: &[(&str, &str, &str, f64)]) {
    for (name, kind, help, v) in samples {
        family(out, name, kind, help);
        let _ = writeln!(out, "{name} {v}");
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}
