//! Checkpoint files: the engine and alert state with the input positions they reflect, written
//! atomically and read back with every kind of damage detected.
//!
//! Owns: the file format (magic, length, body, xxh3-64 checksum), the atomic write (temp file,
//! fsync, rename, fsync of the directory), keeping the newest few, and loading the newest valid
//! one while saying why any newer file was skipped. Must not touch: what the state means (the
//! engine and the evaluator encode themselves).
//!
//! File: `checkpoint-<20-digit sequence>.gwc` = `GWCKPT01` | body length (u64 LE) | body |
//! xxh3-64 of the body (u64 LE). Body: engine parts, then the evaluator's state.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::atomic_file::write_atomically;
use crate::codec::{Dec, Enc};
use crate::config::EngineConfig;
use crate::state::encode::EngineParts;
use crate::state::Engine;

const MAGIC: &[u8; 8] = b"GWCKPT01";
const SUFFIX: &str = ".gwc";
const PREFIX: &str = "checkpoint-";

/// State captured for writing: the engine in parts (taken under its lock) and the alert
/// evaluator's state.
pub struct Checkpoint {
    engine: EngineParts,
    alerts: Vec<u8>,
}

impl Checkpoint {
    /// Captures `engine` (call under its lock; the events are shared, not copied) and the
    /// evaluator's encoded state.
    pub fn capture(engine: &Engine, alerts: Vec<u8>) -> Checkpoint {
        Checkpoint {
            engine: engine.checkpoint_parts(),
            alerts,
        }
    }
}

/// A checkpoint read back.
pub struct Restored {
    /// The engine as it was.
    pub engine: Engine,
    /// The evaluator's state as it was (empty if it had none).
    pub alerts: Vec<u8>,
    /// The file it came from.
    pub path: PathBuf,
}

/// A checkpoint could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write a checkpoint to {dir}: {source}; check that the directory exists, is writable and has space (ingest goes on; the previous checkpoint stays)")]
pub struct WriteError {
    dir: String,
    source: std::io::Error,
}

/// Writes `cp` as the newest checkpoint in `dir` and removes all but the newest `keep`.
/// Returns the new file.
pub fn write(dir: &Path, cp: &Checkpoint, keep: usize) -> Result<PathBuf, WriteError> {
    let err = |source| WriteError {
        dir: dir.display().to_string(),
        source,
    };
    fs::create_dir_all(dir).map_err(err)?;
    let bytes = frame(&cp.engine, &cp.alerts);

    let existing = list(dir).map_err(err)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let seq = existing.last().map_or(now, |(s, _)| now.max(s + 1));
    let path = dir.join(format!("{PREFIX}{seq:020}{SUFFIX}"));
    write_atomically(&path, |mut f| {
        f.write_all(&bytes)?;
        Ok(f)
    })
    .map_err(err)?;
    let all = list(dir).map_err(err)?;
    for (_, old) in all.iter().take(all.len().saturating_sub(keep.max(1))) {
        let _ = fs::remove_file(old);
    }
    Ok(path)
}

/// A checkpoint's bytes: `engine` and the evaluator's `alerts` state, framed and checksummed
/// (the file format above; the state store keeps partitions' checkpoints in it too).
pub fn frame(engine: &EngineParts, alerts: &[u8]) -> Vec<u8> {
    let mut body = Enc::default();
    engine.encode(&mut body);
    body.bytes(alerts);
    let sum = xxhash_rust::xxh3::xxh3_64(&body.buf);
    let mut out = Vec::with_capacity(body.buf.len() + 24);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(body.buf.len() as u64).to_le_bytes());
    out.extend_from_slice(&body.buf);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// Checkpoint files in `dir`, oldest first (temp files of interrupted writes are not listed).
fn list(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(seq) = name
            .strip_prefix(PREFIX)
            .and_then(|r| r.strip_suffix(SUFFIX))
            .and_then(|n| n.parse::<u64>().ok())
        {
            out.push((seq, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Loads the newest checkpoint in `dir` that is whole and decodes, under `cfg`. Also returns one
/// sentence per newer file that was skipped, saying why. `Ok((None, _))`: nothing usable (or
/// no directory yet): start empty.
pub fn load_newest(
    dir: &Path,
    cfg: &EngineConfig,
) -> std::io::Result<(Option<Restored>, Vec<String>)> {
    let files = match list(dir) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((None, Vec::new())),
        Err(e) => return Err(e),
    };
    let mut skipped = Vec::new();
    for (_, path) in files.into_iter().rev() {
        match read_one(&path, cfg) {
            Ok((engine, alerts)) => {
                return Ok((
                    Some(Restored {
                        engine,
                        alerts,
                        path,
                    }),
                    skipped,
                ))
            }
            Err(why) => skipped.push(format!("{}: {why}", path.display())),
        }
    }
    Ok((None, skipped))
}

fn read_one(path: &Path, cfg: &EngineConfig) -> Result<(Engine, Vec<u8>), String> {
    let bytes = fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    unframe(&bytes, cfg)
}

/// The engine and the evaluator's state of a checkpoint's bytes (see [`frame`]), or why they
/// cannot be read.
pub fn unframe(bytes: &[u8], cfg: &EngineConfig) -> Result<(Engine, Vec<u8>), String> {
    if bytes.len() < 8 || &bytes[..8] != MAGIC {
        return Err("not a gatewatch checkpoint (or one of another format version)".into());
    }
    if bytes.len() < 24 {
        return Err("cut short: the file ends before its length field".into());
    }
    let len = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize;
    if bytes.len() != 16usize.saturating_add(len).saturating_add(8) {
        return Err(format!(
            "cut short or padded: {} bytes where the header says {}",
            bytes.len(),
            len.saturating_add(24)
        ));
    }
    let body = &bytes[16..16 + len];
    let want = u64::from_le_bytes(bytes[16 + len..].try_into().expect("8 bytes"));
    if xxhash_rust::xxh3::xxh3_64(body) != want {
        return Err("checksum mismatch: the file was damaged after it was written".into());
    }
    let mut d = Dec::new(body);
    let engine = Engine::decode_checkpoint(cfg.clone(), &mut d).map_err(|e| e.to_string())?;
    let alerts = d.bytes().map_err(|e| e.to_string())?.to_vec();
    if !d.is_empty() {
        return Err("bytes after the end of the checkpoint".into());
    }
    Ok((engine, alerts))
}

/// Counts for `/metrics`.
#[derive(Debug, Default)]
pub struct CheckpointStats {
    /// Checkpoints written.
    pub written: std::sync::atomic::AtomicU64,
    /// Checkpoints that could not be written.
    pub failures: std::sync::atomic::AtomicU64,
    /// When the newest was written, Unix ms (0: none yet).
    pub last_success_ms: std::sync::atomic::AtomicU64,
    /// Its size, bytes.
    pub last_bytes: std::sync::atomic::AtomicU64,
    /// How long capturing it held the engine lock, µs.
    pub last_capture_us: std::sync::atomic::AtomicU64,
    /// How long writing it took, µs.
    pub last_write_us: std::sync::atomic::AtomicU64,
}

/// Takes checkpoints on the ingest thread between batches (so what a checkpoint holds and the
/// positions it records always agree, dead letters of earlier batches included) and writes them
/// on a thread of its own, so ingest waits only for the capture.
pub struct Checkpointer {
    interval: std::time::Duration,
    last: std::time::Instant,
    to_writer: Option<std::sync::mpsc::SyncSender<Checkpoint>>,
    writer: Option<std::thread::JoinHandle<()>>,
    stats: std::sync::Arc<CheckpointStats>,
}

impl Checkpointer {
    /// Starts the writer thread for `dir`.
    pub fn start(
        dir: PathBuf,
        interval_ms: i64,
        keep: usize,
        stats: std::sync::Arc<CheckpointStats>,
    ) -> std::io::Result<Checkpointer> {
        use std::sync::atomic::Ordering::Relaxed;
        // One checkpoint waits at most: a slow disk delays checkpoints, never ingest.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Checkpoint>(1);
        let st = stats.clone();
        let writer = std::thread::Builder::new()
            .name("checkpoint-writer".into())
            .spawn(move || {
                let mut failing = false;
                for cp in rx {
                    let t = std::time::Instant::now();
                    match write(&dir, &cp, keep) {
                        Ok(path) => {
                            st.written.fetch_add(1, Relaxed);
                            st.last_write_us.store(t.elapsed().as_micros() as u64, Relaxed);
                            st.last_bytes.store(
                                fs::metadata(&path).map_or(0, |m| m.len()),
                                Relaxed,
                            );
                            let now = std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map_or(0, |d| d.as_millis() as u64);
                            st.last_success_ms.store(now, Relaxed);
                            if failing {
                                tracing::info!(path = %path.display(), "Checkpoints are written again.");
                                failing = false;
                            }
                            tracing::debug!(path = %path.display(), "Wrote a checkpoint.");
                        }
                        Err(e) => {
                            st.failures.fetch_add(1, Relaxed);
                            if !failing {
                                tracing::error!(error = %e, "Checkpoint failed.");
                                failing = true;
                            }
                        }
                    }
                }
            })?;
        Ok(Checkpointer {
            interval: std::time::Duration::from_millis(interval_ms.max(1) as u64),
            last: std::time::Instant::now(),
            to_writer: Some(tx),
            writer: Some(writer),
            stats,
        })
    }

    /// True when a checkpoint is due.
    pub fn due(&self) -> bool {
        self.last.elapsed() >= self.interval
    }

    /// Hands a checkpoint captured by `capture` (which runs under the locks) to the writer.
    /// If the writer is still busy with the previous one, this one is skipped.
    pub fn take(&mut self, capture: impl FnOnce() -> Checkpoint) {
        use std::sync::atomic::Ordering::Relaxed;
        self.last = std::time::Instant::now();
        let t = std::time::Instant::now();
        let cp = capture();
        self.stats
            .last_capture_us
            .store(t.elapsed().as_micros() as u64, Relaxed);
        if let Some(tx) = &self.to_writer {
            if let Err(std::sync::mpsc::TrySendError::Full(_)) = tx.try_send(cp) {
                tracing::debug!("The previous checkpoint is still being written; skipped one.");
            }
        }
    }

    /// Writes `last` (blocking until it is on disk) and stops the writer.
    pub fn finish(mut self, last: Option<Checkpoint>) {
        if let Some(tx) = self.to_writer.take() {
            if let Some(cp) = last {
                let _ = tx.send(cp);
            }
        }
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}
