//! Read-only SQL over a snapshot: the DataFusion `SessionContext`, its tables and functions.
//!
//! Owns: which SQL is allowed (queries only: no DDL, DML, `COPY`, `SET`, no table names that are
//! file paths or URLs) and how errors read. Must not touch: engine state (it reads a
//! [`Snapshot`]), I/O other than returning record batches.

pub mod tables;
pub mod udf;

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};

use crate::state::Snapshot;
use tables::{SnapshotTable, Table};

/// A query that could not be answered, in words for the person who wrote it.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The statement would change something or read outside gatewatch's tables.
    #[error("gatewatch SQL is read-only: {0} is not allowed; write a SELECT over the tables events, sessions, concurrency, latency, servers and alerts")]
    ReadOnly(String),
    /// Parse, plan or execution error from DataFusion.
    #[error("SQL error: {0}")]
    Query(String),
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
        SqlError::Query(tidy(&msg))
    }
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
    let config = SessionConfig::new()
        .with_information_schema(true)
        .with_target_partitions(std::thread::available_parallelism().map_or(2, |n| n.get()));
    let ctx = SessionContext::new_with_config(config);
    for t in Table::ALL {
        ctx.register_table(t.name(), Arc::new(SnapshotTable::new(t, snapshot.clone())))
            .expect("fresh context has no tables");
    }
    for f in udf::scalar_functions() {
        ctx.register_udf(f);
    }
    for f in udf::aggregate_functions() {
        ctx.register_udaf(f);
    }
    ctx
}

fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Plans a statement without running it: catches syntax errors, unknown columns and writes
/// before any input is read.
pub async fn check(snapshot: Arc<Snapshot>, sql: &str) -> Result<(), SqlError> {
    context(snapshot).sql_with_options(sql, read_only()).await?;
    Ok(())
}

/// Plans and runs one read-only statement.
pub async fn query(ctx: &SessionContext, sql: &str) -> Result<QueryResult, SqlError> {
    let df = ctx.sql_with_options(sql, read_only()).await?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    Ok(QueryResult { schema, batches })
}

/// Snapshot, context and query in one call.
pub async fn query_snapshot(snapshot: Arc<Snapshot>, sql: &str) -> Result<QueryResult, SqlError> {
    query(&context(snapshot), sql).await
}
