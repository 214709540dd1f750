//! Files that are either absent or complete, never half-written: the one way gatewatch writes a
//! file that must survive a crash (checkpoints, the archive's Parquet files and its horizon).
//!
//! Owns: temp file, fsync, rename, fsync of the directory. Must not touch: what is written.

use std::fs::{self, File};
use std::path::Path;

/// Writes `path` so that it is either absent, as before, or complete: `write` fills a temp file
/// beside it (`.<name>.tmp`), which is fsynced and renamed over `path`, then the directory is
/// fsynced (a rename is durable only once its directory is). On failure the temp file goes.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(File) -> std::io::Result<File>,
) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(Default::default, |n| n.to_string_lossy());
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        let f = write(File::create(&tmp)?)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
