//! Reading the Parquet archive as tables, and tables that span memory and archive.
//!
//! Owns: reading with partition pruning (a query's filters on the time column choose which hour
//! directories are listed at all), refusing damaged files by name, and the spanning view: rows
//! before the archive's horizon from Parquet, the rest from memory. Must not touch: writing (that
//! is `writer`), engine state.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::provider_as_source;
use datafusion::error::Result;
use datafusion::logical_expr::{col, lit, Expr, LogicalPlanBuilder, TableProviderFilterPushDown};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::ExecutionPlan;

use super::layout::{hours, time_column, HOUR_MS};
use crate::sql::bounds::time_bounds;
use crate::sql::tables::{GatewatchTable, RowSource, Table};

/// A damaged file fails the query with its name, before the Parquet reader sees it (its
/// footer is trusted by the reader, and a bad one can make it panic): magic at both ends and a
/// footer length that fits in the file.
fn check_parquet_frame(path: &Path) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let damaged = |why: &str| {
        datafusion::error::DataFusionError::Execution(format!(
            "the archive file {} is damaged ({why}); restore it from a backup or delete its hour directory",
            path.display()
        ))
    };
    let mut f = std::fs::File::open(path).map_err(|e| damaged(&e.to_string()))?;
    let len = f.metadata().map_err(|e| damaged(&e.to_string()))?.len();
    if len < 12 {
        return Err(damaged("too short to be Parquet"));
    }
    let mut head = [0u8; 4];
    let mut tail = [0u8; 8];
    f.read_exact(&mut head)
        .and_then(|_| f.seek(SeekFrom::End(-8)))
        .and_then(|_| f.read_exact(&mut tail))
        .map_err(|e| damaged(&e.to_string()))?;
    let footer = u32::from_le_bytes(tail[..4].try_into().expect("4 bytes")) as u64;
    if &head != b"PAR1" || &tail[4..] != b"PAR1" {
        return Err(damaged("no Parquet magic"));
    }
    if footer + 12 > len {
        return Err(damaged("its footer is longer than the file"));
    }
    Ok(())
}

/// One archived table: lists only the hours the query's time filters reach (and, when it is
/// the archive half of a spanning table, only those before `before`).
#[derive(Debug)]
pub struct ArchiveTable {
    dir: PathBuf,
    table: Table,
    before: Option<i64>,
}

impl ArchiveTable {
    /// Table `table` of the archive in `dir`, hours before `before` only (None: all).
    pub fn new(dir: &Path, table: Table, before: Option<i64>) -> ArchiveTable {
        ArchiveTable {
            dir: dir.to_path_buf(),
            table,
            before,
        }
    }
}

#[async_trait]
impl RowSource for ArchiveTable {
    fn table(&self) -> Table {
        self.table
    }

    fn pushdown(&self) -> TableProviderFilterPushDown {
        // Used for pruning hours and Parquet row groups; DataFusion still applies them.
        TableProviderFilterPushDown::Inexact
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (lo, mut hi) = time_bounds(filters, time_column(self.table));
        if let Some(b) = self.before {
            hi = hi.min(b);
        }
        let mut urls = Vec::new();
        for (hour, path) in hours(&self.dir, self.table) {
            if hour.saturating_add(HOUR_MS) <= lo || hour >= hi {
                continue; // pruned: this hour's directory is never opened
            }
            let Ok(files) = std::fs::read_dir(&path) else {
                continue;
            };
            for f in files.flatten() {
                let p = f.path();
                if p.extension().is_some_and(|x| x == "parquet") {
                    check_parquet_frame(&p)?;
                    urls.push(ListingTableUrl::parse(p.to_string_lossy())?);
                }
            }
        }
        let schema = self.table.schema();
        if urls.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(schema.project(p)?),
                None => schema,
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        urls.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(schema);
        ListingTable::try_new(config)?
            .scan(state, projection, filters, limit)
            .await
    }
}

/// `memory` (rows at or after `horizon`) and the archive's hours before `horizon`, as one
/// table: a view whose two halves get the query's filters pushed into them.
pub fn spanning(
    table: Table,
    memory: Arc<dyn TableProvider>,
    dir: &Path,
    horizon: i64,
) -> Result<Arc<dyn TableProvider>> {
    let time = col(time_column(table));
    let at = lit(ScalarValue::TimestampMillisecond(
        Some(horizon),
        Some("UTC".into()),
    ));
    let recent = LogicalPlanBuilder::scan(table.name(), provider_as_source(memory), None)?
        .filter(time.gt_eq(at))?
        .build()?;
    let archived = LogicalPlanBuilder::scan(
        table.name(),
        provider_as_source(GatewatchTable::provider(ArchiveTable::new(
            dir,
            table,
            Some(horizon),
        ))),
        None,
    )?
    .build()?;
    let plan = LogicalPlanBuilder::from(archived).union(recent)?.build()?;
    Ok(Arc::new(datafusion::catalog::view::ViewTable::new(
        plan, None,
    )))
}
