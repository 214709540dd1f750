//! Read-only SQL over a snapshot: the DataFusion `SessionContext`, its tables and functions.
//!
//! Owns: which SQL is allowed (queries only: no DDL, DML, `COPY`, `SET`, no table names that are
//! file paths or URLs) and how errors read. Must not touch: engine state (it reads a
//! [`Snapshot`]), I/O other than returning record batches.

pub mod archive;
pub mod bounded;
pub mod bounds;
pub mod nesting;
pub mod postgres;
pub mod tables;
pub mod udf;

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::ParamValues;
use datafusion::error::DataFusionError;
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};

use crate::state::Snapshot;
use tables::{GatewatchTable, SnapshotTable, Table};

/// A query that could not be answered, in words for the person who wrote it.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The statement would change something or read outside gatewatch's tables.
    #[error("gatewatch SQL is read-only: {0} is not allowed; write a SELECT over the tables events, sessions, concurrency, latency, servers and alerts")]
    ReadOnly(String),
    /// Parse, plan or execution error from DataFusion, with where in the text it is when
    /// DataFusion says (line and column, from 1).
    #[error("SQL error: {0}")]
    Query(String, Option<Location>),
    /// The query ran longer than the service allows.
    #[error("the query was stopped after {0} s (http.query_timeout); narrow it with WHERE on ts/minute/second, or aggregate before joining")]
    Timeout(u64),
    /// The result has more rows than the service returns.
    #[error("the result has more than {0} rows (http.max_rows); add LIMIT, aggregate, or narrow it with WHERE")]
    TooManyRows(usize),
    /// A join, sort or aggregation needed more memory than allowed.
    #[error("the query needs more memory than http.query_memory allows ({0} MiB); narrow it with WHERE, aggregate before joining, or add LIMIT")]
    OutOfMemory(usize),
    /// The text nests deeper than gatewatch plans (see [`nesting`]).
    #[error("the query nests about {0} levels deep (chained operators, parentheses, subqueries, joins), more than the {max} gatewatch plans; use IN (...) instead of long OR chains, or split the query", max = nesting::MAX_DEPTH)]
    TooDeep(usize),
    /// The result holds more bytes than the service returns.
    #[error("the result holds more than {0} MiB (http.max_result); select fewer columns, add LIMIT, aggregate, or narrow it with WHERE")]
    TooLarge(usize),
    /// Every query slot is taken and the queue is full or waited too long.
    #[error("{0} queries are already running and more are waiting (http.max_queries); try again in a moment")]
    Busy(usize),
}

impl From<DataFusionError> for SqlError {
    fn from(e: DataFusionError) -> Self {
        let msg = e.strip_backtrace();
        let lower = msg.to_ascii_lowercase();
        for (needle, what) in [
            (
                "ddl not supported",
                "creating, dropping or altering tables and views",
            ),
            ("dml not supported", "INSERT, UPDATE, DELETE and COPY"),
            (
                "statement not supported",
                "SET, transactions and other statements",
            ),
        ] {
            if lower.contains(needle) {
                return SqlError::ReadOnly(what.into());
            }
        }
        let tidied = tidy(&msg);
        if let Some(name) = missing_table(&tidied).filter(|n| looks_like_a_path(n)) {
            return SqlError::ReadOnly(format!("reading a file or URL as a table ('{name}')"));
        }
        let at = e
            .diagnostic()
            .and_then(|d| d.span)
            .map(|s| Location {
                line: s.start.line,
                column: s.start.column,
            })
            .filter(|l| l.line > 0)
            .or_else(|| parser_location(&msg));
        SqlError::Query(tidied, at)
    }
}

impl SqlError {
    /// An Arrow error where a query was being answered.
    pub fn from_arrow(e: arrow::error::ArrowError) -> SqlError {
        SqlError::Query(e.to_string(), None)
    }
}

/// Where in a statement's text an error is: line and column, both from 1 (as sqlparser counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Line, from 1.
    pub line: u64,
    /// Column within the line, in characters, from 1.
    pub column: u64,
}

impl Location {
    /// The character offset (from 1) of this location in `text`, as PostgreSQL reports an
    /// error's position; None when the text has no such place.
    pub fn offset_in(&self, text: &str) -> Option<usize> {
        let mut offset = 0usize;
        for (n, line) in text.split('\n').enumerate() {
            if n as u64 + 1 == self.line {
                let column = usize::try_from(self.column).ok()?;
                return (column >= 1 && column <= line.chars().count() + 1)
                    .then_some(offset + column);
            }
            offset += line.chars().count() + 1;
        }
        None
    }
}

/// The "at Line: L, Column: C" that sqlparser ends its messages with.
fn parser_location(msg: &str) -> Option<Location> {
    let rest = &msg[msg.rfind("at Line: ")? + "at Line: ".len()..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some(Location {
        line: line.trim().parse().ok()?,
        column: column.parse().ok()?,
    })
}

/// The name in DataFusion's "table 'NAME' not found".
fn missing_table(msg: &str) -> Option<&str> {
    let rest = msg.split_once("table '")?.1;
    let (name, after) = rest.rsplit_once('\'')?;
    after.starts_with(" not found").then_some(name)
}

/// A table name that names a file or a URL: DataFusion can be set up to read those (the
/// "dynamic file catalog"); gatewatch never is, and says so instead of "not found".
fn looks_like_a_path(name: &str) -> bool {
    const FILE_TYPES: [&str; 7] = [
        ".csv", ".json", ".ndjson", ".parquet", ".avro", ".arrow", ".gz",
    ];
    name.contains('/')
        || name.contains('\\')
        || name.contains("://")
        || FILE_TYPES
            .iter()
            .any(|ext| name.to_ascii_lowercase().ends_with(ext))
}

/// DataFusion prefixes errors with their kind and qualifies table names; users wrote neither.
fn tidy(msg: &str) -> String {
    let msg = msg
        .trim_start_matches("Error during planning: ")
        .trim_start_matches("SQL error: ")
        .trim_start_matches("Execution error: ")
        .trim_start_matches("This feature is not implemented: ")
        .trim_start_matches("Schema error: ");
    let one_line: Vec<&str> = msg
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    one_line.join(" ").replace("datafusion.public.", "")
}

/// Rows and their schema.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// Column layout (also for zero rows).
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
}

impl QueryResult {
    /// Total rows.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// A DataFusion context with gatewatch's tables over `snapshot` and the hdr functions.
pub fn context(snapshot: Arc<Snapshot>) -> SessionContext {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    context_with(
        snapshot,
        SessionContext::new_with_config(session_config(cores)),
        None,
    )
}

/// The archive in `dir` alone (`query --archive`, no service): `events`, `concurrency` and
/// `latency` from Parquet, and the hdr functions.
pub fn archive_context(dir: &std::path::Path) -> SessionContext {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let ctx = SessionContext::new_with_config(session_config(cores));
    for t in archive::ARCHIVED {
        ctx.register_table(
            t.name(),
            GatewatchTable::provider(archive::ArchiveTable::new(dir, t, None)),
        )
        .expect("fresh context has no tables");
    }
    register_functions(&ctx);
    ctx
}

/// Plans and runs one read-only statement over the archive in `dir`.
pub async fn query_archive(dir: &std::path::Path, sql: &str) -> Result<QueryResult, SqlError> {
    query(&archive_context(dir), sql).await
}

pub(crate) fn session_config(partitions: usize) -> SessionConfig {
    SessionConfig::new()
        .with_information_schema(true)
        .with_target_partitions(partitions.max(1))
}

/// Registers gatewatch's tables over `snapshot`; with an `archive`, `events`, `concurrency` and
/// `latency` also span the archived hours (before its horizon from Parquet, after from memory).
fn context_with(
    snapshot: Arc<Snapshot>,
    ctx: SessionContext,
    archive: Option<&std::path::Path>,
) -> SessionContext {
    register_tables(&ctx, snapshot, archive);
    register_functions(&ctx);
    ctx
}

/// Gatewatch's six tables over `snapshot` in `ctx`'s default schema (see [`context_with`]).
fn register_tables(
    ctx: &SessionContext,
    snapshot: Arc<Snapshot>,
    archive: Option<&std::path::Path>,
) {
    let horizon = archive.and_then(archive::archived_through);
    for t in Table::ALL {
        let memory = GatewatchTable::provider(SnapshotTable::new(t, snapshot.clone()));
        let provider = match (archive, horizon) {
            (Some(dir), Some(h)) if archive::ARCHIVED.contains(&t) => {
                archive::spanning(t, memory, dir, h).expect("a union of two scans plans")
            }
            _ => memory,
        };
        ctx.register_table(t.name(), provider)
            .expect("fresh context has no tables");
    }
}

/// Registers the hdr and bounded functions in `ctx`.
pub fn register_functions(ctx: &SessionContext) {
    for f in udf::scalar_functions()
        .into_iter()
        .chain(bounded::scalar_functions())
    {
        ctx.register_udf(f);
    }
    for f in udf::aggregate_functions() {
        ctx.register_udaf(f);
    }
}

/// Plans `sql` as a read-only statement. DataFusion's own options refuse DDL, DML and `SET`;
/// `COPY` and `CREATE EXTERNAL TABLE` are refused here first, so that they read as refusals
/// even when the file format they name does not exist in this build.
async fn plan(
    ctx: &SessionContext,
    sql: &str,
) -> Result<datafusion::dataframe::DataFrame, SqlError> {
    use datafusion::sql::parser::{DFParser, Statement};
    // Before anything builds a tree of it: a tree too deep overflows the stack of whatever
    // walks it, and that aborts the process.
    if let Some(depth) = nesting::estimated_depth(sql).filter(|d| *d > nesting::MAX_DEPTH) {
        return Err(SqlError::TooDeep(depth));
    }
    if let Ok(statements) = DFParser::parse_sql(sql) {
        for st in &statements {
            let refused = match st {
                Statement::CopyTo(_) => Some("INSERT, UPDATE, DELETE and COPY"),
                Statement::CreateExternalTable(_) => {
                    Some("creating, dropping or altering tables and views")
                }
                Statement::Reset(_) => Some("SET, transactions and other statements"),
                Statement::Explain(e) => match e.statement.as_ref() {
                    Statement::Statement(_) => None,
                    _ => Some("EXPLAIN of anything but a query"),
                },
                Statement::Statement(_) => None,
            };
            if let Some(what) = refused {
                return Err(SqlError::ReadOnly(what.into()));
            }
        }
    }
    Ok(ctx.sql_with_options(sql, read_only()).await?)
}

fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Plans a statement without running it: catches syntax errors, unknown columns and writes
/// before any input is read.
/// Returns the tables it reads (subqueries included), so `replay` keeps only what is asked.
pub async fn check(
    snapshot: Arc<Snapshot>,
    sql: &str,
) -> Result<std::collections::BTreeSet<String>, SqlError> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::logical_expr::LogicalPlan;
    let df = plan(&context(snapshot), sql).await?;
    let mut tables = std::collections::BTreeSet::new();
    df.logical_plan()
        .apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                tables.insert(scan.table_name.table().to_string());
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .expect("collecting table names cannot fail");
    Ok(tables)
}

/// Plans a statement without running it and returns the columns it would answer with.
pub async fn output_schema(snapshot: Arc<Snapshot>, sql: &str) -> Result<SchemaRef, SqlError> {
    let df = plan(&context(snapshot), sql).await?;
    Ok(Arc::new(df.schema().as_arrow().clone()))
}

/// Plans and runs one read-only statement.
pub async fn query(ctx: &SessionContext, sql: &str) -> Result<QueryResult, SqlError> {
    let df = plan(ctx, sql).await?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    Ok(QueryResult { schema, batches })
}

/// Limits on one query of the service (`[http]` max_rows, query_timeout, query_memory).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most rows returned.
    pub max_rows: usize,
    /// Longest run.
    pub timeout: std::time::Duration,
    /// Memory for joins, sorts and aggregations (DataFusion's memory pool), bytes.
    pub memory_bytes: usize,
    /// Most bytes one result may hold (Arrow, before encoding).
    pub max_result_bytes: usize,
    /// Most queries running at once; as many again times [`QUEUED_PER_SLOT`] may wait.
    pub max_concurrent: usize,
}

/// One statement for [`QueryRunner::run_request`].
pub struct Request<'a> {
    /// The statement's text.
    pub sql: &'a str,
    /// Values of its `$1`, `$2`, ... (the extended protocol's bound parameters).
    pub params: Option<ParamValues>,
    /// Planned in PostgreSQL's flavour, with its `pg_catalog` (the PostgreSQL front door).
    pub postgres: Option<Arc<postgres::PgFlavor>>,
}

impl<'a> Request<'a> {
    /// Plain gatewatch SQL, no parameters.
    pub fn new(sql: &'a str) -> Request<'a> {
        Request {
            sql,
            params: None,
            postgres: None,
        }
    }
}

/// Where a query's tables come from when they are not this process's snapshot: the members of
/// a cluster (see `cluster::query`), whose scans run where the rows are.
#[async_trait::async_trait]
pub trait RemoteTables: Send + Sync {
    /// A context of `base`'s session (its configuration, functions and catalogue) whose
    /// gatewatch tables are the remote ones, for one query.
    async fn context(
        &self,
        base: datafusion::execution::SessionStateBuilder,
    ) -> Result<SessionContext, SqlError>;
    /// True for an error after which the query is placed and run again (its rows moved while
    /// it was planned), as long as `patience` allows.
    fn retry(&self, e: &SqlError) -> bool;
    /// How long a query may keep trying.
    fn patience(&self) -> std::time::Duration;
}

/// How many requests may wait for each query slot before more are refused at once.
pub const QUEUED_PER_SLOT: usize = 4;

/// Runs the service's queries under [`Limits`], on threads of their own that the OS schedules
/// behind ingest (nice 10): a runaway query slows other queries, not the consumer.
pub struct QueryRunner {
    runtime: Option<tokio::runtime::Runtime>,
    limits: Limits,
    /// Queries running or waiting; bounded so that a burst is refused rather than queued
    /// without end.
    admitted: Arc<tokio::sync::Semaphore>,
    /// Queries running: what they hold together is bounded by this times the per-query limits.
    running: Arc<tokio::sync::Semaphore>,
    partitions: usize,
    archive: Option<std::path::PathBuf>,
    remote: Option<Arc<dyn RemoteTables>>,
}

impl QueryRunner {
    /// Queries (but those of PostgreSQL's catalogue) read `remote`'s tables instead of the
    /// snapshot they are given: a cluster member answers for the whole cluster.
    pub fn with_remote_tables(mut self, remote: Arc<dyn RemoteTables>) -> QueryRunner {
        self.remote = Some(remote);
        self
    }

    /// Starts the query threads: one per core but one, at least one. With `archive`, the
    /// tables span it.
    pub fn new(
        limits: Limits,
        archive: Option<std::path::PathBuf>,
    ) -> std::io::Result<QueryRunner> {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get().saturating_sub(1))
            .max(1);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("gatewatch-sql")
            .thread_stack_size(nesting::STACK_BYTES)
            // I/O too: a cluster member's queries talk to the other members.
            .enable_all()
            .on_thread_start(lower_priority)
            .build()?;
        let slots = limits.max_concurrent.max(1);
        Ok(QueryRunner {
            runtime: Some(runtime),
            admitted: Arc::new(tokio::sync::Semaphore::new(slots * (1 + QUEUED_PER_SLOT))),
            running: Arc::new(tokio::sync::Semaphore::new(slots)),
            limits,
            partitions: threads,
            archive,
            remote: None,
        })
    }

    /// True when queries read remote tables (a cluster member): the snapshot handed to
    /// [`QueryRunner::run`] is not read then, and callers need not take one.
    pub fn reads_remote_tables(&self) -> bool {
        self.remote.is_some()
    }

    /// The limits this runner enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Runs `work` on the query threads, whose stacks are sized for planning (see
    /// [`nesting`]), not on the caller's: the PostgreSQL front door parses, rewrites and
    /// describes statements there. Dropping the returned future stops `work`.
    pub async fn on_query_threads<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T, SqlError> {
        let task = self
            .runtime
            .as_ref()
            .expect("runtime lives until drop")
            .spawn(work);
        let mut guard = AbortOnDrop(task);
        (&mut guard.0)
            .await
            .map_err(|e| SqlError::Query(format!("the query task failed: {e}"), None))
    }

    /// Queries running now (holding a slot; not those waiting for one).
    pub fn running(&self) -> usize {
        self.limits
            .max_concurrent
            .max(1)
            .saturating_sub(self.running.available_permits())
    }

    /// Plans and runs `sql` over `snapshot` on the query threads. Dropping the returned future
    /// (a client that hung up) stops the query.
    /// At most `max_concurrent` run at once; the next ones wait up to the query timeout for a
    /// slot, and beyond the queue they are refused with [`SqlError::Busy`].
    pub async fn run(&self, snapshot: Arc<Snapshot>, sql: &str) -> Result<QueryResult, SqlError> {
        self.run_request(snapshot, Request::new(sql)).await
    }

    /// [`QueryRunner::run`] of a [`Request`]: with values for its `$n` parameters, or in
    /// PostgreSQL's flavour (the `pg_catalog` that clients browse).
    pub async fn run_request(
        &self,
        snapshot: Arc<Snapshot>,
        request: Request<'_>,
    ) -> Result<QueryResult, SqlError> {
        let limits = self.limits;
        let busy = || SqlError::Busy(limits.max_concurrent);
        let _admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| busy())?;
        let _running = tokio::time::timeout(limits.timeout, self.running.clone().acquire_owned())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        let partitions = self.partitions;
        let archive = self.archive.clone();
        let remote = self.remote.clone();
        let sql = request.sql.to_string();
        let (params, flavor) = (request.params, request.postgres);
        let task = self
            .runtime
            .as_ref()
            .expect("runtime lives until drop")
            .spawn(async move {
                let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
                    .with_memory_limit(limits.memory_bytes, 1.0)
                    // No spilling to disk: a query that does not fit fails instead of filling it.
                    .with_disk_manager_builder(
                        datafusion::execution::disk_manager::DiskManagerBuilder::default()
                            .with_mode(
                                datafusion::execution::disk_manager::DiskManagerMode::Disabled,
                            ),
                    )
                    .build_arc()?;
                let start = std::time::Instant::now();
                let run = async {
                    loop {
                        let ctx = match (&remote, &flavor) {
                            (Some(r), Some(pg)) => {
                                r.context(pg.state(runtime.clone(), partitions)).await?
                            }
                            (None, Some(pg)) => {
                                pg.context(snapshot.clone(), runtime.clone(), partitions, archive.as_deref())
                            }
                            (Some(r), None) => {
                                r.context(
                                    datafusion::execution::SessionStateBuilder::new()
                                        .with_config(session_config(partitions))
                                        .with_runtime_env(runtime.clone())
                                        .with_default_features(),
                                )
                                .await?
                            }
                            (None, None) => context_with(
                                snapshot.clone(),
                                SessionContext::new_with_config_rt(
                                    session_config(partitions),
                                    runtime.clone(),
                                ),
                                archive.as_deref(),
                            ),
                        };
                        match collect_limited(&ctx, &sql, params.clone(), limits).await {
                            Err(e)
                                if remote.as_ref().is_some_and(|r| {
                                    r.retry(&e) && start.elapsed() < r.patience()
                                }) =>
                            {
                                tracing::debug!(error = %e, "Rows moved while the query ran; placing it again.");
                                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                            }
                            r => return r,
                        }
                    }
                };
                match tokio::time::timeout(limits.timeout, run).await {
                    Ok(r) => r,
                    Err(_) => Err(SqlError::Timeout(limits.timeout.as_secs().max(1))),
                }
                .map_err(|e| match e {
                    SqlError::Query(m, _) if m.contains("Resources exhausted") => {
                        SqlError::OutOfMemory(limits.memory_bytes >> 20)
                    }
                    e => e,
                })
            });
        let mut guard = AbortOnDrop(task);
        match (&mut guard.0).await {
            Ok(r) => r,
            Err(e) => Err(SqlError::Query(format!("the query task failed: {e}"), None)),
        }
    }
}

impl Drop for QueryRunner {
    fn drop(&mut self) {
        // Dropping a runtime inside another one's worker panics; let its threads go quietly.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Nice 10 for the calling thread (Linux applies `setpriority` per thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its arguments; `0` names the calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

/// Runs `sql`, failing as soon as the result passes `max_rows` or `max_result_bytes`.
async fn collect_limited(
    ctx: &SessionContext,
    sql: &str,
    params: Option<ParamValues>,
    limits: Limits,
) -> Result<QueryResult, SqlError> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::physical_plan::coop::CooperativeExec;
    use futures::StreamExt;
    let mut df = plan(ctx, sql).await?;
    if let Some(params) = params {
        df = df.with_param_values(params)?;
    }
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let task = df.task_ctx();
    // Every operator yields to the scheduler now and then, not only the scans: a join that turns
    // a few input batches into billions of rows would otherwise never return from one poll, and
    // neither the timeout nor a client hanging up could stop it.
    let plan = df
        .create_physical_plan()
        .await?
        .transform_up(|node| {
            if node.name() == "CooperativeExec" {
                Ok(Transformed::no(node))
            } else {
                Ok(Transformed::yes(Arc::new(CooperativeExec::new(node))
                    as Arc<dyn datafusion::physical_plan::ExecutionPlan>))
            }
        })?
        .data;
    let mut stream = datafusion::physical_plan::execute_stream(plan, Arc::new(task))?;
    let mut batches = Vec::new();
    let mut rows = 0usize;
    let mut bytes = 0usize;
    while let Some(b) = stream.next().await {
        let b = b?;
        rows += b.num_rows();
        if rows > limits.max_rows {
            return Err(SqlError::TooManyRows(limits.max_rows));
        }
        // Slices of one buffer count that buffer each time: an overestimate, never an under.
        bytes = bytes.saturating_add(b.get_array_memory_size());
        if bytes > limits.max_result_bytes {
            return Err(SqlError::TooLarge(limits.max_result_bytes >> 20));
        }
        batches.push(b);
    }
    Ok(QueryResult { schema, batches })
}

/// Snapshot, context and query in one call.
pub async fn query_snapshot(snapshot: Arc<Snapshot>, sql: &str) -> Result<QueryResult, SqlError> {
    query(&context(snapshot), sql).await
}
