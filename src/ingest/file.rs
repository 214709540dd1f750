//! NDJSON files (and stdin) in, decoded in parallel, delivered in input order.
//!
//! Owns: cutting the input into ~1 MiB chunks at line ends, the line-too-long guard (a 10 MB
//! line costs 1 MiB of memory, not 10), line numbering per file, and the progress line on a
//! terminal. A big regular file is memory-mapped and cut in place (see [`super::mapped`]);
//! anything else (stdin, pipes, small files, the unfinished last line of a mapped file) is
//! read in blocks. One reader thread, `workers` decoding threads, and the caller's thread
//! applying chunks in order: decoding (the expensive part) scales with cores, application
//! stays sequential.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, IsTerminal, Read, Seek, SeekFrom, Write};
use std::sync::mpsc::{sync_channel, Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::mapped::Mapping;
use super::{
    decode_chunk_as, Chunk, Columns, DecodedChunk, LineFormat, Shared, MAX_RECORD_BYTES,
    TOO_LONG_PREFIX,
};

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
    /// `-` was given but standard input is closed (the runtime then gives it /dev/null) or is
    /// /dev/null: replaying it would answer as if the input had been empty.
    #[error("standard input is closed (or /dev/null), so there is nothing to replay; pipe events into it, or name a file")]
    StdinClosed,
    /// The file got shorter while it was read (truncated or rewritten in place).
    #[error("input file {path} shrank while it was being read (something truncated or rewrote it); replay a copy that nothing else writes to")]
    Shrank {
        /// As given.
        path: String,
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
    /// Bytes cut in place like a mapped file's (the reader's tests and the fuzzer).
    Bytes(Shared),
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
    /// Regular files of at least this many bytes are memory-mapped rather than read.
    pub map_from: u64,
}

impl Default for Cutting {
    fn default() -> Self {
        Cutting {
            block: BLOCK,
            max_record: MAX_RECORD_BYTES,
            too_long_prefix: TOO_LONG_PREFIX,
            map_from: MAP_FROM,
        }
    }
}

/// Below this a map saves too little to be worth the system calls.
const MAP_FROM: u64 = 4 << 20;

struct Opened {
    name: Arc<str>,
    input: Input,
}

/// Whether fd 0 is /dev/null: what Rust's runtime opens there when a process starts with
/// standard input closed (`replay - <&-`).
fn stdin_is_dev_null() -> bool {
    use std::os::unix::fs::MetadataExt;
    match (
        std::fs::metadata("/dev/stdin"),
        std::fs::metadata("/dev/null"),
    ) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino() && a.rdev() == b.rdev(),
        // No fd 0 at all: closed.
        (Err(_), Ok(_)) => true,
        _ => false,
    }
}

/// Reads every file in order and calls `apply` with each decoded chunk (its batch filling
/// `columns`, its lines written as `lines` says), in input order. `apply` returning an error
/// stops the reading and returns that error.
pub fn read_ndjson<E: From<ReadError>>(
    paths: &[String],
    workers: usize,
    show_progress: bool,
    columns: Columns,
    lines: LineFormat,
    mut apply: impl FnMut(&FileChunk) -> Result<(), E>,
) -> Result<(), E> {
    let mut opened = Vec::with_capacity(paths.len());
    for p in paths {
        let input = if p == "-" {
            if stdin_is_dev_null() {
                return Err(ReadError::StdinClosed.into());
            }
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
        (columns, lines),
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
    read_opened(
        opened,
        workers,
        false,
        cutting,
        (Columns::All, LineFormat::default()),
        &mut apply,
    )
}

fn read_opened<E: From<ReadError>>(
    opened: Vec<Opened>,
    workers: usize,
    show_progress: bool,
    cutting: Cutting,
    (columns, lines): (Columns, LineFormat),
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
                        decode_chunk_as(chunk, cutting.max_record, columns, &lines),
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
                if fc.decoded.chunk.raw.capacity() > 0 {
                    let _ = spare_tx.try_send(fc.decoded.chunk.raw);
                }
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
                            decode_chunk_as(chunk, cutting.max_record, columns, &lines),
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
        // Bytes a file lost while mapped read as zeros (its lines then were rejected): the
        // replay fails rather than answer from a file that changed under it.
        for (path, map) in read_result.map_err(E::from)? {
            if map.shrank() {
                return Err(ReadError::Shrank {
                    path: path.to_string(),
                }
                .into());
            }
        }
        Ok(())
    })
}

/// The reader: blocks cut at the last newline; lines longer than [`MAX_RECORD_BYTES`] become a
/// single truncated record and the rest of them is skipped. Reads go straight into the buffer
/// that becomes the chunk (only the partial last line is copied), and buffers the caller is done
/// with come back through `spare`, so steady state allocates nothing. A mapped file is cut the
/// same way in place ([`cut_in_place`]). Returns the files it mapped, to be checked once every
/// chunk is decoded.
fn read_blocks(
    inputs: Vec<Opened>,
    total: u64,
    progress: bool,
    cutting: Cutting,
    spare: Receiver<Vec<u8>>,
    mut send: impl FnMut(u64, usize, Chunk) -> bool,
) -> Result<Vec<MappedFile>, ReadError> {
    let mut maps = Vec::new();
    let mut seq = 0u64;
    let mut progress = Progress {
        on: progress,
        done: 0,
        total,
        last_report: Instant::now(),
    };
    let stdin = io::stdin();
    let fresh = |spare: &Receiver<Vec<u8>>| -> Vec<u8> {
        let mut b = spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(cutting.block + cutting.block / 4));
        b.clear();
        b
    };
    for (fi, opened) in inputs.into_iter().enumerate() {
        // Sends a chunk with the next number; false when nobody receives any more.
        let mut emit = |c: Chunk| {
            let ok = send(seq, fi, c);
            seq += 1;
            ok
        };
        let read_error = |source| ReadError::Read {
            path: opened.name.to_string(),
            source,
        };
        let mut reader: Box<dyn Read> = match opened.input {
            Input::Stdin => Box::new(stdin.lock()),
            Input::File(mut f, len) if len >= cutting.map_from => {
                match Mapping::new(&f, len).map(Arc::new) {
                    Some(map) => {
                        maps.push((opened.name.clone(), map.clone()));
                        let shared = Shared(map);
                        let Some(done) = cut_in_place(&shared, cutting, &mut emit, &mut progress)
                        else {
                            return Ok(maps);
                        };
                        // The rest (an unfinished last line, or what was appended since) is
                        // read like any input.
                        f.seek(SeekFrom::Start(done as u64)).map_err(read_error)?;
                        Box::new(f)
                    }
                    None => Box::new(f),
                }
            }
            Input::File(f, _) => Box::new(f),
            Input::Reader(r) => r,
            Input::Bytes(bytes) => {
                let Some(done) = cut_in_place(&bytes, cutting, &mut emit, &mut progress) else {
                    return Ok(maps);
                };
                Box::new(io::Cursor::new((*bytes.0).as_ref()[done..].to_vec()))
            }
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
                Err(source) => return Err(read_error(source)),
            };
            progress.advance(n);
            if n == 0 {
                if !buf.is_empty() && !skipping {
                    let raw = std::mem::take(&mut buf);
                    if !emit(Chunk {
                        raw,
                        truncated: false,
                        shared: None,
                    }) {
                        return Ok(maps);
                    }
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
                if !emit(Chunk {
                    raw,
                    truncated: false,
                    shared: None,
                }) {
                    return Ok(maps);
                }
            }
            if buf.len() > cutting.max_record {
                buf.truncate(cutting.too_long_prefix);
                let raw = std::mem::replace(&mut buf, fresh(&spare));
                if !emit(Chunk {
                    raw,
                    truncated: true,
                    shared: None,
                }) {
                    return Ok(maps);
                }
                skipping = true;
            }
        }
    }
    progress.finish();
    Ok(maps)
}

/// A file read through a map, by the name it was given.
type MappedFile = (Arc<str>, Arc<Mapping>);

/// Cuts the whole lines of `shared` into chunks of about a block that point into it, as
/// [`read_blocks`] cuts what it reads: a line longer than `cutting.max_record` becomes one
/// truncated chunk of its start. Returns where the whole lines end (the rest, an unfinished
/// last line, is left to the caller), or `None` when `emit` says nobody receives any more.
fn cut_in_place(
    shared: &Shared,
    cutting: Cutting,
    emit: &mut impl FnMut(Chunk) -> bool,
    progress: &mut Progress,
) -> Option<usize> {
    let bytes = (*shared.0).as_ref();
    let mut at = 0;
    // Chunks emitted and not yet given back, oldest first (see `RELEASE_BEHIND`).
    let mut behind = std::collections::VecDeque::new();
    while at < bytes.len() {
        let window = (at + cutting.block.max(1)).min(bytes.len());
        let end = match memchr::memrchr(b'\n', &bytes[at..window]) {
            Some(i) => at + i + 1,
            // A line at least a block long.
            None => match memchr::memchr(b'\n', &bytes[window..]) {
                None => break,
                Some(i) if window + i - at > cutting.max_record => {
                    let keep = cutting.too_long_prefix.min(cutting.max_record);
                    let chunk = Chunk {
                        raw: bytes[at..at + keep].to_vec(),
                        truncated: true,
                        shared: None,
                    };
                    if !emit(chunk) {
                        return None;
                    }
                    progress.advance(window + i + 1 - at);
                    at = window + i + 1;
                    continue;
                }
                Some(i) => window + i + 1,
            },
        };
        let chunk = Chunk {
            raw: Vec::new(),
            truncated: false,
            shared: Some((shared.clone(), at..end)),
        };
        if !emit(chunk) {
            return None;
        }
        progress.advance(end - at);
        behind.push_back(at..end);
        if behind.len() > RELEASE_BEHIND {
            shared.0.done_with(behind.pop_front().expect("not empty"));
        }
        at = end;
    }
    Some(at)
}

/// How many chunks behind the newest one cut in place the reader gives memory back: well past
/// the chunks in flight (two per decoding thread queued each way), so those are long decoded
/// and applied. Were one not, it would only read its bytes again from the page cache.
const RELEASE_BEHIND: usize = 32;

/// The progress line on a terminal.
struct Progress {
    on: bool,
    done: u64,
    total: u64,
    last_report: Instant,
}

impl Progress {
    fn advance(&mut self, bytes: usize) {
        self.done += bytes as u64;
        if self.on && self.last_report.elapsed() > Duration::from_millis(250) {
            self.last_report = Instant::now();
            let pct = (self.done * 100).checked_div(self.total).unwrap_or(0);
            let _ = write!(
                io::stderr(),
                "\rreplay: read {} of {} MiB ({pct}%)",
                self.done >> 20,
                self.total >> 20
            );
        }
    }

    fn finish(&self) {
        if self.on {
            let _ = write!(io::stderr(), "\r\x1b[K");
        }
    }
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
    let read = read_through(
        Input::Reader(Box::new(reader)),
        cutting,
        &expected,
        "reading",
    );
    // The same bytes cut in place, as a mapped file is.
    let in_place = Input::Bytes(Shared(Arc::new(input.to_vec())));
    read.and_then(|()| read_through(in_place, cutting, &expected, "cutting in place"))
}

/// What became of one line.
#[derive(Debug, PartialEq)]
enum Outcome {
    Accepted(Vec<u8>),
    Rejected(crate::event::Reason),
}

/// [`check_against_lines`] of one way in (`how`, for the message).
fn read_through(
    input: Input,
    cutting: Cutting,
    expected: &[(u64, Outcome)],
    how: &str,
) -> Result<(), String> {
    let mut actual: Vec<(u64, Outcome)> = Vec::new();
    let mut problem = None;
    let opened = vec![Opened {
        name: "fuzz".into(),
        input,
    }];
    read_opened::<ReadError>(
        opened,
        2,
        false,
        cutting,
        (Columns::All, LineFormat::default()),
        &mut |fc| {
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
        },
    )
    .map_err(|e| e.to_string())?;
    if let Some(p) = problem {
        return Err(p);
    }
    if actual != expected {
        let at = actual
            .iter()
            .zip(expected)
            .position(|(a, e)| a != e)
            .unwrap_or(actual.len().min(expected.len()));
        return Err(format!(
            "{how} and line-by-line decoding differ at outcome {at}: {how} {:?}, lines {:?} ({} vs {} outcomes)",
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
            map_from: 0,
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

    /// A mapped file reads like lines read one by one (its unfinished last line read after the
    /// map); a file cut short while it is read fails the read with one sentence, instead of
    /// the process dying of SIGBUS.
    #[test]
    fn mapped_files_read_whole_and_shrinking_ones_fail() {
        use std::io::Write as _;
        let ok = br#"{"type":"reject","ts":1,"server":"a"}"#;
        let mut input = Vec::new();
        for _ in 0..3000 {
            input.extend_from_slice(ok);
            input.push(b'\n');
        }
        input.extend_from_slice(ok);
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&input).unwrap();
        f.flush().unwrap();
        let read = |len: u64| -> Result<(usize, usize), ReadError> {
            let opened = vec![Opened {
                name: "f".into(),
                input: Input::File(File::open(f.path()).unwrap(), len),
            }];
            // Small blocks: many more chunks than are kept mapped behind the newest.
            let cutting = Cutting {
                block: 512,
                map_from: 0,
                ..Cutting::default()
            };
            let mut counts = (0, 0);
            read_opened(
                opened,
                2,
                false,
                cutting,
                (Columns::All, LineFormat::default()),
                &mut |fc| {
                    counts.0 += fc.decoded.records();
                    counts.1 += fc.decoded.batch.num_rows();
                    Ok(())
                },
            )?;
            Ok(counts)
        };
        let full = input.len() as u64;
        assert_eq!(read(full).unwrap(), (3001, 3001));
        // Cut to half after its size was taken, as if truncated while being read.
        f.as_file().set_len(full / 2).unwrap();
        let err = read(full).unwrap_err();
        assert!(matches!(err, ReadError::Shrank { .. }), "{err}");
        assert!(err.to_string().contains("shrank while it was being read"));
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
