//! Wiring: the one module that sees everything, and with `cli` the only one that knows clap.
//! Turns each subcommand's arguments into a run of the library, one file per subcommand:
//! [`replay`], [`query`], [`check_config`], [`simulate`], and `run` in [`service`].
//!
//! Owns: argument checks that name flags, exit paths, the small tokio runtimes of one-shot
//! commands. Must not touch: what the library computes (it only calls it).

mod check_config;
mod embedded;
mod query;
mod replay;
mod serve_archive;
pub mod service;
mod simulate;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::config::Config;
use crate::sql::{self, QueryResult};
use crate::state::Snapshot;

pub use check_config::check_config;
pub use query::{query, query_archive_dir, query_service};
pub use replay::{replay, replay_clock, replay_files, replay_files_as, ReplayOutcome};
pub use serve_archive::serve_archive;
pub use simulate::simulate;

/// Loads the config file, or the defaults.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    })
}

/// The limits of the service's queries (`[http]`: shared by HTTP and PostgreSQL).
pub(crate) fn query_limits(cfg: &crate::config::HttpConfig) -> sql::Limits {
    sql::Limits {
        max_rows: cfg.max_rows,
        timeout: std::time::Duration::from_millis(cfg.query_timeout_ms as u64),
        memory_bytes: cfg.query_memory_bytes,
        max_result_bytes: cfg.max_result_bytes,
        max_concurrent: cfg.max_queries,
    }
}

/// TLS for the PostgreSQL front door, when `[pg]` names a certificate.
pub(crate) fn pg_tls(
    cfg: &crate::config::PgConfig,
) -> anyhow::Result<Option<crate::pg::TlsAcceptor>> {
    match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => Ok(Some(
            crate::pg::load_tls(cert, key).map_err(anyhow::Error::msg)?,
        )),
        _ => Ok(None),
    }
}

/// Runs SQL against a snapshot on a small tokio runtime.
pub fn run_sql(snapshot: Arc<Snapshot>, sql_text: &str) -> anyhow::Result<QueryResult> {
    Ok(runtime()?.block_on(sql::query_snapshot(snapshot, sql_text))?)
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .thread_stack_size(sql::nesting::STACK_BYTES)
        .enable_all()
        .build()
        .context("cannot start the query runtime")
}

/// The SQL given inline or in a file (clap guarantees one of them).
pub(crate) fn sql_from(sql: Option<&str>, file: Option<&Path>) -> anyhow::Result<String> {
    match (sql, file) {
        (Some(s), _) => Ok(s.to_string()),
        (None, Some(f)) => std::fs::read_to_string(f).with_context(|| {
            format!(
                "cannot read the SQL file {}; check the path given to --sql-file",
                f.display()
            )
        }),
        (None, None) => anyhow::bail!("no SQL given; pass it as an argument or with --sql-file"),
    }
}
