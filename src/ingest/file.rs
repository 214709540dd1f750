//! NDJSON files (and stdin) in, decoded in parallel, delivered in input order.
//!
//! Owns: reading in 1 MiB blocks cut at line ends, the line-too-long guard (a 10 MB line costs
//! 1 MiB of memory, not 10), line numbering per file, and the progress line on a terminal.
//! One reader thread, `workers` decoding threads, and the caller's thread applying chunks in
//! order: decoding (the expensive part) scales with cores, application stays sequential.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{decode_chunk_cut, Chunk, Columns, DecodedChunk, MAX_RECORD_BYTES, TOO_LONG_PREFIX};

const BLOCK: usize = 1 << 20;

/// A file or stdin could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Opening failed.
    #[error("cannot open input file {path}: {source}; check the path (use - for stdin)")]
    Open {
        /// As given.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// Reading failed part-way.
    #[error("cannot read input file {path}: {source}")]
    Read {
        /// As given.
        path: String,
        /// Why.
        source: io::Error,
    },
}

/// A decoded chunk with where it came from.
pub struct FileChunk {
    /// The decoded records.
    pub decoded: DecodedChunk,
    /// The file name as given (`-` for stdin).
    pub file: Arc<str>,
    /// Line number (1-based) of the chunk's first record.
    pub first_line: u64,
}

enum Input {
    Stdin,
    File(File, u64),
    Reader(Box<dyn Read + Send>),
}

/// How the reader cuts its input: the block it reads at a time and the longest record it keeps.
/// The defaults are what `replay` uses; tests and the fuzzer make both tiny so that records
/// cross block boundaries and hit the too-long guard with small inputs.
#[derive(Debug, Clone, Copy)]
pub struct Cutting {
    /// Bytes read per block.
    pub block: usize,
    /// Lines longer than this become one `line_too_long` record.
    pub max_record: usize,
    /// How much of a too-long line is kept.
    pub too_long_prefix: usize,
}

impl Default for Cutting {
    fn default() -> Self {
        Cutting {
            block: BLOCK,
            max_record: MAX_RECORD_BYTES,
            too_long_prefix: TOO_LONG_PREFIX,
        }
    }
}

struct Opened {
    name: Arc<str>,
    input: Input,
}

/// Reads every file in order and calls `apply` with each decoded chunk (its batch filling
/// `columns`), in input order. `apply` returning an error stops the reading and returns that
/// error.
pub fn read_ndjson<E: From<ReadError>>(
    paths: &[String],
    workers: usize,
    show_progress: bool,
    columns: Columns,
    mut apply: impl FnMut(&FileChunk) -> Result<(), E>,
) -> Result<(), E> {
    let mut opened = Vec::with_capacity(paths.len());
    for p in paths {
        let input = if p == "-" {
            Input::Stdin
        } else {
            let f = File::open(p).map_err(|source| ReadError::Open {
                path: p.clone(),
                source,
            })?;
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            if f.metadata().is_ok_and(|m| m.is_dir()) {
                return Err(ReadError::Open {
                    path: p.clone(),
                    source: io::Error::other("it is a directory"),
                }
                .into());
            }
            Input::File(f, len)
        };
        opened.push(Opened {
            name: p.as_str().into(),
            input,
        });
    }
    read_opened(
        opened,
        workers,
        show_progress,
        Cutting::default(),
        columns,
        &mut apply,
    )
}

/// Reads already-open inputs (named for messages and line numbers) like [`read_ndjson`], cut as
/// `cutting` says. Used by the fuzzer and the reader's own tests.
pub fn read_ndjson_from<E: From<ReadError>>(
    inputs: Vec<(String, Box<dyn Read + Send>)>,
    workers: usize,
    cutting: Cutting,
    mut apply: impl FnMut(&FileChunk) -> Result<(), E>,
) -> Result<(), E> {
    let opened = inputs
        .into_iter()
        .map(|(name, r)| Opened {
            name: name.into(),
            input: Input::Reader(r),
        })
        .collect();
    read_opened(opened, workers, false, cutting, Columns::All, &mut apply)
}

fn read_opened<E: From<ReadError>>(
    opened: Vec<Opened>,
    workers: usize,
    show_progress: bool,
    cutting: Cutting,
    columns: Columns,
    apply: &mut impl FnMut(&FileChunk) -> Result<(), E>,
) -> Result<(), E> {
    let total: u64 = opened
        .iter()
        .map(|o| {
            if let Input::File(_, n) = o.input {
                n
            } else {
                0
            }
        })
        .sum();
    let progress = show_progress && io::stderr().is_terminal() && total > 64 << 20;
    let workers = workers.max(1);

    std::thread::scope(|scope| {
        let (chunk_tx, chunk_rx) = sync_channel::<(u64, usize, Chunk)>(workers * 2);
        let (done_tx, done_rx) = sync_channel::<(u64, usize, DecodedChunk)>(workers * 2);
        let names: Vec<Arc<str>> = opened.iter().map(|o| o.name.clone()).collect();
        let (spare_tx, spare_rx) = sync_channel::<Vec<u8>>(workers * 4);
        let reader = scope.spawn(move || {
            read_blocks(opened, total, progress, cutting, spare_rx, |seq, fi, c| {
                chunk_tx.send((seq, fi, c)).is_ok()
            })
        });
        let chunk_rx = Arc::new(Mutex::new(chunk_rx));
        for _ in 0..workers {
            let rx: Arc<Mutex<Receiver<(u64, usize, Chunk)>>> = chunk_rx.clone();
            let tx = done_tx.clone();
            scope.spawn(move || loop {
                let next = rx.lock().map(|r| r.recv());
                let Ok(Ok((seq, fi, chunk))) = next else {
                    return;
                };
                if tx
                    .send((
                        seq,
                        fi,
                        decode_chunk_cut(chunk, cutting.max_record, columns),
                    ))
                    .is_err()
                {
                    return;
                }
            });
        }
        drop(done_tx);

        let mut waiting: BTreeMap<u64, (usize, DecodedChunk)> = BTreeMap::new();
        let mut next_seq = 0u64;
        let mut line = 1u64;
        let mut current_file = usize::MAX;
        let mut result: Result<(), E> = Ok(());
        'outer: loop {
            while let Some((fi, d)) = waiting.remove(&next_seq) {
                next_seq += 1;
                if fi != current_file {
                    current_file = fi;
                    line = 1;
                }
                let n = d.records() as u64;
                let fc = FileChunk {
                    decoded: d,
                    file: names[fi].clone(),
                    first_line: line,
                };
                line += n;
                if let Err(e) = apply(&fc) {
                    result = Err(e);
                    break 'outer;
                }
                // Hand the buffer back to the reader; if it has enough, let it go.
                let _ = spare_tx.try_send(fc.decoded.chunk.raw);
            }
            // The next chunk in order is not decoded yet: rather than wait for it, this thread
            // decodes one itself if there is one to take. The decoding threads and this one
            // then share the decoding, and no core idles while there is work: on two cores, one
            // decoding thread plus this one beat two decoding threads that preempt this one.
            let (seq, fi, d) = match done_rx.try_recv() {
                Ok(decoded) => decoded,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    // `try_lock`: a decoding thread holds the lock while it waits for input,
                    // and then there is none to take anyway.
                    let raw = chunk_rx.try_lock().ok().and_then(|rx| rx.try_recv().ok());
                    match raw {
                        Some((seq, fi, chunk)) => (
                            seq,
                            fi,
                            decode_chunk_cut(chunk, cutting.max_record, columns),
                        ),
                        None => match done_rx.recv() {
                            Ok(decoded) => decoded,
                            Err(_) => break,
                        },
                    }
                }
            };
            waiting.insert(seq, (fi, d));
        }
        drop(chunk_rx);
        drop(done_rx);
        let read_result = reader.join().expect("reader thread does not panic");
        result?;
        read_result.map_err(E::from)
    })
}

/// The reader: blocks cut at the last newline; lines longer than [`MAX_RECORD_BYTES`] become a
/// single truncated record and the rest of them is skipped. Reads go straight into the buffer
/// that becomes the chunk (only the partial last line is copied), and buffers the caller is done
/// with come back through `spare`, so steady state allocates nothing.
fn read_blocks(
    inputs: Vec<Opened>,
    total: u64,
    progress: bool,
    cutting: Cutting,
    spare: Receiver<Vec<u8>>,
    mut send: impl FnMut(u64, usize, Chunk) -> bool,
) -> Result<(), ReadError> {
    let mut seq = 0u64;
    let mut done_bytes = 0u64;
    let mut last_report = Instant::now();
    let stdin = io::stdin();
    let fresh = |spare: &Receiver<Vec<u8>>| -> Vec<u8> {
        let mut b = spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(cutting.block + cutting.block / 4));
        b.clear();
        b
    };
    for (fi, opened) in inputs.into_iter().enumerate() {
        let mut reader: Box<dyn Read> = match opened.input {
            Input::Stdin => Box::new(stdin.lock()),
            Input::File(f, _) => Box::new(f),
            Input::Reader(r) => r,
        };
        let mut buf = fresh(&spare);
        let mut skipping = false;
        loop {
            let before = buf.len();
            let n = match (&mut reader)
                .take(cutting.block as u64)
                .read_to_end(&mut buf)
            {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(ReadError::Read {
                        path: opened.name.to_string(),
                        source,
                    });
                }
            };
            done_bytes += n as u64;
            if progress && last_report.elapsed() > Duration::from_millis(250) {
                last_report = Instant::now();
                let pct = (done_bytes * 100).checked_div(total).unwrap_or(0);
                let _ = write!(
                    io::stderr(),
                    "\rreplay: read {} of {} MiB ({pct}%)",
                    done_bytes >> 20,
                    total >> 20
                );
            }
            if n == 0 {
                if !buf.is_empty() && !skipping {
                    let raw = std::mem::take(&mut buf);
                    if !send(
                        seq,
                        fi,
                        Chunk {
                            raw,
                            truncated: false,
                        },
                    ) {
                        return Ok(());
                    }
                    seq += 1;
                }
                break;
            }
            if skipping {
                // The rest of a too-long line: drop up to its end.
                match memchr::memchr(b'\n', &buf[before..]) {
                    None => {
                        buf.truncate(before);
                        continue;
                    }
                    Some(i) => {
                        buf.drain(before..before + i + 1);
                        skipping = false;
                    }
                }
            }
            if let Some(last_nl) = memchr::memrchr(b'\n', &buf[before..]).map(|i| before + i) {
                let mut next = fresh(&spare);
                next.extend_from_slice(&buf[last_nl + 1..]);
                buf.truncate(last_nl + 1);
                let raw = std::mem::replace(&mut buf, next);
                if !send(
                    seq,
                    fi,
                    Chunk {
                        raw,
                        truncated: false,
                    },
                ) {
                    return Ok(());
                }
                seq += 1;
            }
            if buf.len() > cutting.max_record {
                buf.truncate(cutting.too_long_prefix);
                let raw = std::mem::replace(&mut buf, fresh(&spare));
                if !send(
                    seq,
                    fi,
                    Chunk {
                        raw,
                        truncated: true,
                    },
                ) {
                    return Ok(());
                }
                seq += 1;
                skipping = true;
            }
        }
    }
    if progress {
        let _ = write!(io::stderr(), "\r\x1b[K");
    }
    Ok(())
}

/// Checks the reader against the plain definition of NDJSON on one input: every `\n`-separated
/// line (a last line without `\n` included) is, in order and with its line number, either skipped
/// (blank), rejected as `line_too_long` (longer than `cutting.max_record` bytes, `\r` counted),
/// or decoded exactly as [`crate::event::decode`] decodes it alone. The input is fed to the
/// reader in reads of at most `piece` bytes. Shared by the unit tests and the fuzz target
/// (`tests/fuzz`); returns what differed.
#[doc(hidden)]
pub fn check_against_lines(input: &[u8], cutting: Cutting, piece: usize) -> Result<(), String> {
    use crate::event::{decode, Reason};

    #[derive(Debug, PartialEq)]
    enum Outcome {
        Accepted(Vec<u8>),
        Rejected(Reason),
    }
    let mut expected = Vec::new();
    let mut lines: Vec<&[u8]> = input.split(|&c| c == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    for (i, line) in lines.iter().enumerate() {
        let n = i as u64 + 1;
        let stripped = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > cutting.max_record {
            expected.push((n, Outcome::Rejected(Reason::LineTooLong)));
        } else if stripped.iter().all(|c| c.is_ascii_whitespace()) {
            continue;
        } else {
            match decode(stripped) {
                Ok(_) => expected.push((n, Outcome::Accepted(line.to_vec()))),
                Err(r) => expected.push((n, Outcome::Rejected(r))),
            }
        }
    }

    /// Hands out the input at most `piece` bytes per read.
    struct Pieces {
        data: Vec<u8>,
        at: usize,
        piece: usize,
    }
    impl Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = (self.data.len() - self.at).min(buf.len()).min(self.piece);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }
    let reader = Pieces {
        data: input.to_vec(),
        at: 0,
        piece: piece.max(1),
    };
    let mut actual = Vec::new();
    let mut problem = None;
    read_ndjson_from::<ReadError>(vec![("fuzz".into(), Box::new(reader))], 2, cutting, |fc| {
        let d = &fc.decoded;
        let mut rows = d.row_record.iter().peekable();
        let mut rejects = d.rejects.iter().peekable();
        for r in 0..d.records() as u32 {
            let n = fc.first_line + r as u64;
            if rows.peek() == Some(&&r) {
                rows.next();
                actual.push((n, Outcome::Accepted(d.record(r).to_vec())));
            } else if let Some(&(_, reason)) = rejects.next_if(|(i, _)| *i == r) {
                actual.push((n, Outcome::Rejected(reason)));
            }
        }
        if d.batch.num_rows() != d.row_record.len() {
            problem = Some(format!(
                "{} rows for {} accepted records",
                d.batch.num_rows(),
                d.row_record.len()
            ));
        }
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    if let Some(p) = problem {
        return Err(p);
    }
    if actual != expected {
        let at = actual
            .iter()
            .zip(&expected)
            .position(|(a, e)| a != e)
            .unwrap_or(actual.len().min(expected.len()));
        return Err(format!(
            "reader and line-by-line decoding differ at outcome {at}: reader {:?}, lines {:?} ({} vs {} outcomes)",
            actual.get(at), expected.get(at), actual.len(), expected.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Cutting {
        Cutting {
            block: 7,
            max_record: 40,
            too_long_prefix: 10,
        }
    }

    #[test]
    fn records_across_block_boundaries_and_too_long_lines() {
        let ok = br#"{"type":"reject","ts":1,"server":"a"}"#;
        let mut input = Vec::new();
        for i in 0..30 {
            match i % 6 {
                0 => input.extend_from_slice(ok),
                1 => input.extend_from_slice(b"garbage"),
                2 => input.extend_from_slice(&[b'x'; 41]),
                3 => input.extend_from_slice(b"   \r"),
                4 => input.extend_from_slice(&[b' '; 40]),
                _ => {
                    input.extend_from_slice(ok);
                    input.push(b'\r');
                }
            }
            input.push(b'\n');
        }
        input.extend_from_slice(ok);
        for piece in [1, 3, 7, 64, 1 << 20] {
            check_against_lines(&input, tiny(), piece).unwrap();
            check_against_lines(&input, Cutting::default(), piece).unwrap();
        }
    }

    #[test]
    fn a_line_of_exactly_the_limit_with_carriage_return() {
        let mut line = br#"{"type":"reject","ts":1,"server":"abc"}"#.to_vec();
        line.resize(40, b' ');
        let mut input = line.clone();
        input.extend_from_slice(b"\r\n");
        input.extend_from_slice(&line);
        input.extend_from_slice(b"\n");
        for piece in [1, 5, 100] {
            check_against_lines(&input, tiny(), piece).unwrap();
        }
    }
}
