//! The Parquet archive of sealed hours (`run --archive DIR`): its layout on disk, the writer that
//! fills it as event time passes each hour, and the reader that makes it tables again.
//!
//! An hour is sealed when the newest event time minus `allowed_lateness` has passed its end; from
//! then on the engine refuses events before it as `late`, so the archive and memory never
//! disagree.

mod layout;
mod reader;
mod writer;

pub use layout::{archived_through, hour_dir, time_column, ARCHIVED, HOUR_MS, THROUGH_FILE};
pub use reader::{spanning, ArchiveTable};
pub use writer::{write_hours, ArchiveError, ArchiveStats, Archiver};
