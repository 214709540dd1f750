//! `gatewatch query`: SQL to a running service (Arrow over HTTP), or to an archive directory.

use std::io::{self, BufWriter, Write};

use anyhow::Context;

use crate::cli::QueryArgs;
use crate::http::ARROW_STREAM;
use crate::http_client as client;
use crate::output::write_result;
use crate::sql::QueryResult;

use super::{runtime, sql_from};

/// `gatewatch query`: asks a running service, prints the answer like `replay` does.
pub fn query(args: QueryArgs) -> anyhow::Result<()> {
    let sql_text = sql_from(args.sql.as_deref(), args.sql_file.as_deref())?;
    let token = args.token.clone().or_else(|| {
        std::env::var(crate::config::TOKEN_ENV)
            .ok()
            .filter(|t| !t.trim().is_empty())
    });
    let result = match &args.archive {
        Some(dir) => query_archive_dir(dir, &sql_text)?,
        None => query_service(&args.url, &sql_text, token.as_deref())?,
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    write_result(&result, args.format.into(), &mut out)?;
    out.flush().ok();
    Ok(())
}

/// Answers SQL from a Parquet archive directory, with no service running.
pub fn query_archive_dir(dir: &std::path::Path, sql_text: &str) -> anyhow::Result<QueryResult> {
    if !dir.join(crate::sql::archive::THROUGH_FILE).is_file() {
        anyhow::bail!(
            "{} is not a gatewatch archive (it has no {}); point --archive at the directory given to run --archive",
            dir.display(),
            crate::sql::archive::THROUGH_FILE
        );
    }
    let rt = runtime()?;
    Ok(rt.block_on(crate::sql::query_archive(dir, sql_text))?)
}

/// Sends SQL to a service at `url` and decodes its Arrow answer.
/// `token` is sent as `Authorization: Bearer`.
pub fn query_service(
    url: &str,
    sql_text: &str,
    token: Option<&str>,
) -> anyhow::Result<QueryResult> {
    let url = client::Url::parse(url)?;
    let resp = client::request(
        &url,
        "POST",
        "/api/sql",
        ARROW_STREAM,
        sql_text.as_bytes(),
        token.map(str::trim),
    )?;
    if resp.status != 200 {
        let msg = serde_json::from_slice::<serde_json::Value>(&resp.body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&resp.body).trim().to_string());
        anyhow::bail!("{msg}");
    }
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(resp.body), None)
        .context(
        "the service's answer is not an Arrow stream; is --url a gatewatch service?",
    )?;
    let schema = reader.schema();
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .context("the service's Arrow answer is cut short")?;
    Ok(QueryResult { schema, batches })
}
