//! The PostgreSQL front door against DuckDB on the same Parquet files, in one run
//! (`bash benches/pg_vs_duckdb.sh [DAYS]`; docs/performance.md).
//!
//! Builds (once) a Parquet archive of DAYS simulated days from bench-data/, serves it over
//! PostgreSQL as `serve-archive` does, and serves the same days from memory as the live service
//! does (a replay's snapshot), then hands both ports to benches/pg_vs_duckdb.py, which asks the
//! incident-window questions through psql and DuckDB, alternating sides, and the connection
//! cost through libpq. Not a criterion bench: one timed comparison against a named peer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gatewatch::config::Config;
use gatewatch::pg::{PgService, Source};
use gatewatch::sql::postgres::PgFlavor;
use gatewatch::sql::{Limits, QueryRunner};

fn main() {
    // `cargo bench` passes --bench; the only argument of ours is the data file.
    let data = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_else(|| "bench-data/march-2020-7d.ndjson".into());
    let data = PathBuf::from(data);
    let archive = data.with_extension("archive");
    let mut cfg = Config::default();
    cfg.engine.retention_ms = 60 * 86_400_000;
    eprintln!("replaying {} ...", data.display());
    let outcome =
        gatewatch::app::replay_files(&[data.display().to_string()], &cfg, None, 2, false).unwrap();
    let snapshot = outcome.snapshot.clone();
    if gatewatch::sql::archive::archived_through(&archive).is_none() {
        eprintln!("writing the archive {} ...", archive.display());
        std::fs::create_dir_all(&archive).unwrap();
        let now = snapshot.now_ms.expect("events were replayed");
        let hour = gatewatch::sql::archive::HOUR_MS;
        // From well before the first event: hours without rows are skipped.
        let first = (now - 31 * 86_400_000).div_euclid(hour) * hour;
        let stats = gatewatch::sql::archive::ArchiveStats::default();
        gatewatch::sql::archive::write_hours(
            &archive,
            snapshot.clone(),
            first,
            (now / hour + 1) * hour,
            &stats,
        )
        .unwrap();
    }
    let limits = Limits {
        max_rows: 1_000_000,
        timeout: std::time::Duration::from_secs(300),
        memory_bytes: 4 << 30,
        max_result_bytes: 1 << 30,
        max_concurrent: 4,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (from_archive, from_memory) = rt.block_on(async {
        let serve = |source: Source, dir: Option<&Path>| {
            let dir = dir.map(Path::to_path_buf);
            async move {
                let flavor = Arc::new(PgFlavor::new().await.unwrap());
                let queries = Arc::new(QueryRunner::new(limits, dir).unwrap());
                let service = Arc::new(PgService::new(flavor, queries, source, None, None, 64));
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                tokio::spawn(gatewatch::pg::serve(
                    listener,
                    service,
                    std::future::pending(),
                ));
                addr
            }
        };
        let empty = Arc::new(gatewatch::state::Engine::new(Default::default()).snapshot());
        (
            serve(Source::Fixed(empty), Some(&archive)).await,
            serve(Source::Fixed(snapshot.clone()), None).await,
        )
    });
    let status = std::process::Command::new(
        std::env::var("GATEWATCH_BENCH_PYTHON").unwrap_or_else(|_| "python3".into()),
    )
    .arg("benches/pg_vs_duckdb.py")
    .arg(&archive)
    .arg(from_archive.port().to_string())
    .arg(from_memory.port().to_string())
    .status()
    .unwrap();
    drop(rt);
    std::process::exit(status.code().unwrap_or(1));
}
