//! `gatewatch serve-archive`: an archive directory to PostgreSQL clients, with no Kafka and no
//! engine: the tables `events`, `concurrency` and `latency` answer from its Parquet files, the
//! other three are empty.

use std::sync::Arc;

use anyhow::Context;

use crate::cli::ServeArchiveArgs;
use crate::config;

use super::{load_config, pg_tls, query_limits, runtime};

/// Serves until Ctrl-C or SIGTERM.
pub fn serve_archive(args: ServeArchiveArgs) -> anyhow::Result<()> {
    let mut cfg = load_config(args.config.as_deref())?;
    if let Some(p) = &args.pg {
        cfg.pg.bind = config::parse_pg_bind(p).map_err(|m| anyhow::anyhow!("--pg: {m}"))?;
    }
    cfg.http.token_from_env().map_err(anyhow::Error::msg)?;
    let Some(bind) = cfg.pg.bind else {
        anyhow::bail!("serve-archive only serves PostgreSQL: give --pg an address (e.g. 127.0.0.1:5433), not off");
    };
    let dir = &args.archive;
    if !dir.join(crate::sql::archive::THROUGH_FILE).is_file() {
        anyhow::bail!(
            "{} is not a gatewatch archive (it has no {}); point --archive at the directory given to run --archive",
            dir.display(),
            crate::sql::archive::THROUGH_FILE
        );
    }
    let tls = pg_tls(&cfg.pg)?;
    let rt = runtime()?;
    let shutdown = rt.block_on(async { super::service::shutdown_signal() })?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| {
            format!("cannot listen on {bind} for PostgreSQL; pick a free address with --pg")
        })?;
        let addr = listener.local_addr().context("no local address")?;
        let flavor = Arc::new(
            crate::sql::postgres::PgFlavor::new()
                .await
                .map_err(|e| anyhow::anyhow!("cannot set up the PostgreSQL catalogue: {e}"))?,
        );
        let queries = Arc::new(
            crate::sql::QueryRunner::new(query_limits(&cfg.http), Some(dir.clone()))
                .context("cannot start the query threads")?,
        );
        let service = Arc::new(crate::pg::PgService::new(
            flavor.clone(),
            queries,
            crate::pg::Source::Fixed(flavor.empty_snapshot()),
            cfg.http.token.clone(),
            tls,
            cfg.pg.max_connections,
        ));
        // A reader of stdout that has gone does not stop the server (println! would panic).
        use std::io::Write;
        let _ = writeln!(
            std::io::stdout(),
            "gatewatch: serving the archive {} at {addr}  (psql -h {} -p {} -U gatewatch)",
            dir.display(),
            addr.ip(),
            addr.port()
        );
        crate::pg::serve(listener, service, shutdown).await;
        anyhow::Ok(())
    })
}
