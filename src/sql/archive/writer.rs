//! Writing the Parquet archive (`run --archive DIR`): every sealed hour of `events`,
//! `concurrency` and `latency` (histograms included), partitioned by date and hour.
//!
//! Owns: when an hour is sealed (the newest event time minus `allowed_lateness` has passed its
//! end; from then on the engine refuses events before it as `late`, so the archive and memory
//! never disagree), writing each file atomically (temp file, fsync, rename) and moving the
//! horizon (`archived-through`) only after an hour's files are all in place. A failure (disk
//! full, directory gone or unwritable) is reported and retried; ingest goes on and files
//! already written are never touched. Must not touch: reading (that is `reader`), the layout (that is `layout`).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{col, lit};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;

use super::layout::{
    archived_through, hour_dir, set_archived_through, time_column, ARCHIVED, HOUR_MS, THROUGH_FILE,
};
use crate::atomic_file::write_atomically;
use crate::state::{Engine, Snapshot, SnapshotScope};

/// An hour could not be archived.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the archive in {dir}: {message}; check that it exists, is writable and has space (ingest goes on, and the hour is retried)")]
pub struct ArchiveError {
    dir: String,
    message: String,
}

/// Counts for `/metrics`.
#[derive(Debug, Default)]
pub struct ArchiveStats {
    /// Hours archived.
    pub hours: AtomicU64,
    /// Files written.
    pub files: AtomicU64,
    /// Failed attempts.
    pub failures: AtomicU64,
    /// The horizon: every hour before it is archived, Unix ms (0: none).
    pub through_ms: AtomicI64,
}

fn ts(ms: i64) -> datafusion::logical_expr::Expr {
    lit(ScalarValue::TimestampMillisecond(
        Some(ms),
        Some("UTC".into()),
    ))
}

/// Writes the hours `[from, to)` of `snap` into `dir`, then moves the horizon to `to`.
pub fn write_hours(
    dir: &Path,
    snap: Arc<Snapshot>,
    from: i64,
    to: i64,
    stats: &ArchiveStats,
) -> Result<(), ArchiveError> {
    let err = |message: String| ArchiveError {
        dir: dir.display().to_string(),
        message,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| err(e.to_string()))?;
    let ctx = crate::sql::context(snap);
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut hour = from;
    while hour < to {
        for t in ARCHIVED {
            let time = col(time_column(t));
            let batches = rt
                .block_on(async {
                    ctx.table(t.name())
                        .await?
                        .filter(
                            time.clone()
                                .gt_eq(ts(hour))
                                .and(time.lt(ts(hour + HOUR_MS))),
                        )?
                        .collect()
                        .await
                })
                .map_err(|e| err(format!("reading {} for the archive: {e}", t.name())))?;
            if batches.iter().all(|b| b.num_rows() == 0) {
                continue;
            }
            let hdir = hour_dir(dir, t, hour);
            let path = hdir.join("part-0.parquet");
            let written = fs::create_dir_all(&hdir).and_then(|()| {
                write_atomically(&path, |file| {
                    let mut w = ArrowWriter::try_new(file, t.schema(), Some(props.clone()))?;
                    for b in &batches {
                        w.write(b)?;
                    }
                    Ok(w.into_inner()?)
                })
            });
            written.map_err(|e| err(format!("{}: {e}", path.display())))?;
            stats.files.fetch_add(1, Ordering::Relaxed);
        }
        hour += HOUR_MS;
        set_archived_through(dir, hour).map_err(|e| err(format!("{THROUGH_FILE}: {e}")))?;
        stats.hours.fetch_add(1, Ordering::Relaxed);
        stats.through_ms.store(hour, Ordering::Relaxed);
    }
    Ok(())
}

/// The archive of a running service: seals and writes hours as event time passes them.
pub struct Archiver {
    dir: PathBuf,
    lateness_ms: i64,
    through: Option<i64>,
    stats: Arc<ArchiveStats>,
    failing: bool,
}

impl Archiver {
    /// An archiver for `dir` (created if missing), resuming after its horizon.
    pub fn new(dir: PathBuf, lateness_ms: i64, stats: Arc<ArchiveStats>) -> Archiver {
        let through = archived_through(&dir);
        if let Some(t) = through {
            stats.through_ms.store(t, Ordering::Relaxed);
        }
        Archiver {
            dir,
            lateness_ms,
            through,
            stats,
            failing: false,
        }
    }

    /// Archives every hour sealed by now. The engine lock is held only to seal and to copy.
    pub fn step(&mut self, engine: &Mutex<Engine>) {
        let job = {
            let mut e = engine.lock().expect("engine lock");
            let Some(newest) = e.now_ms() else { return };
            let sealed = newest - self.lateness_ms;
            let to = sealed - sealed.rem_euclid(HOUR_MS);
            let first = e.server_clocks().iter().map(|c| c.1).min();
            let from = match (self.through, first) {
                (Some(t), _) => t,
                (None, Some(f)) => f - f.rem_euclid(HOUR_MS),
                (None, None) => return,
            };
            if to <= from {
                return;
            }
            e.seal_before(to);
            (
                Arc::new(e.snapshot_of(SnapshotScope::since(Some(from)))),
                from,
                to,
            )
        };
        let (snap, from, to) = job;
        match write_hours(&self.dir, snap, from, to, &self.stats) {
            Ok(()) => {
                self.through = Some(to);
                if self.failing {
                    tracing::info!(dir = %self.dir.display(), "The archive is written again.");
                    self.failing = false;
                }
            }
            Err(e) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                // The hours that did make it moved the horizon; resume after them.
                self.through = archived_through(&self.dir).or(self.through);
                if !self.failing {
                    tracing::error!(error = %e, "Archiving failed.");
                    self.failing = true;
                }
            }
        }
    }
}
