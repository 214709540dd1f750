//! The archive's layout on disk: `DIR/<table>/date=YYYY-MM-DD/hour=HH/part-0.parquet` for
//! `events`, `concurrency` and `latency`, and `DIR/archived-through`, the event time before which
//! every hour is archived. The writer and the reader both take every path from here.
//!
//! Owns: paths, partition names, the horizon file. Must not touch: Parquet.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::atomic_file::write_atomically;
use crate::sql::tables::Table;

/// One hour, in ms.
pub const HOUR_MS: i64 = 3_600_000;
/// The file holding the archive's horizon (RFC 3339).
pub const THROUGH_FILE: &str = "archived-through";

/// The tables the archive holds.
pub const ARCHIVED: [Table; 3] = [Table::Events, Table::Concurrency, Table::Latency];

/// The time column of an archived table.
pub fn time_column(t: Table) -> &'static str {
    match t {
        Table::Latency => "minute",
        _ => "ts",
    }
}

/// Where one hour of one table goes.
pub fn hour_dir(dir: &Path, t: Table, hour_ms: i64) -> PathBuf {
    let text = crate::event::format_rfc3339_ms(hour_ms);
    // "2020-03-17T08:00:00.000Z" -> date=2020-03-17/hour=08
    dir.join(t.name())
        .join(format!("date={}", &text[..10]))
        .join(format!("hour={}", &text[11..13]))
}

/// The archive's horizon: every hour before it is archived (None: nothing yet).
pub fn archived_through(dir: &Path) -> Option<i64> {
    let text = std::fs::read_to_string(dir.join(THROUGH_FILE)).ok()?;
    crate::event::parse_rfc3339_ms(text.trim())
}

/// Hour directories of table `t`, as (hour start ms, path), in time order.
pub(super) fn hours(dir: &Path, t: Table) -> Vec<(i64, PathBuf)> {
    let mut out = Vec::new();
    let Ok(dates) = std::fs::read_dir(dir.join(t.name())) else {
        return out;
    };
    for d in dates.flatten() {
        let name = d.file_name();
        let Some(date) = name.to_str().and_then(|n| n.strip_prefix("date=")) else {
            continue;
        };
        let Ok(hs) = std::fs::read_dir(d.path()) else {
            continue;
        };
        for h in hs.flatten() {
            let name = h.file_name();
            let Some(hour) = name.to_str().and_then(|n| n.strip_prefix("hour=")) else {
                continue;
            };
            if let Some(ms) = crate::event::parse_rfc3339_ms(&format!("{date}T{hour}:00:00Z")) {
                out.push((ms, h.path()));
            }
        }
    }
    out.sort();
    out
}

/// Moves the archive's horizon to `t` (atomically: a crash leaves the old one or the new one).
pub fn set_archived_through(dir: &Path, t: i64) -> std::io::Result<()> {
    write_atomically(&dir.join(THROUGH_FILE), |mut f| {
        writeln!(f, "{}", crate::event::format_rfc3339_ms(t))?;
        Ok(f)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_directories() {
        let d = hour_dir(Path::new("/a"), Table::Events, 1_584_432_000_000);
        assert_eq!(d, Path::new("/a/events/date=2020-03-17/hour=08"));
    }
}
