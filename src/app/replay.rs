//! `gatewatch replay`: files of events (gatewatch's NDJSON, or gateway syslog with
//! `--input-format`) through a fresh engine, then one SQL answer.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::alerts::{self, Evaluator};
use crate::cli::ReplayArgs;
use crate::config::Config;
use crate::config::RuleSource;
use crate::event::syslog::{self, Clock};
use crate::event::InputFormat;
use crate::ingest::dead_letter::DeadLetterWriter;
use crate::ingest::file::{read_ndjson, FileChunk, ReadError};
use crate::ingest::{Columns, LineFormat};
use crate::output::write_result;
use crate::sql::{self};
use crate::state::{Counters, Engine, Snapshot};

use super::{load_config, run_sql, runtime, sql_from};

/// Everything a replay produced.
pub struct ReplayOutcome {
    /// The state at the end.
    pub snapshot: Arc<Snapshot>,
    /// Counters (also in the snapshot).
    pub counters: Counters,
    /// Dead letters written.
    pub dead_letters: u64,
    /// The engine the snapshot was taken from: freeing it (a duplicate-id set per server and
    /// hour, every session, every minute) is left to whoever holds the outcome, so that the
    /// CLI, which exits next, need not free it at all.
    pub engine: Engine,
}

#[derive(Debug, thiserror::Error)]
enum ReplayError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("cannot write the dead-letter file: {0}")]
    DeadLetter(io::Error),
}

/// Replays NDJSON files through a fresh engine; rejected lines go to `dead_letter` if given.
pub fn replay_files(
    files: &[String],
    config: &Config,
    dead_letter: Option<&Path>,
    workers: usize,
    progress: bool,
) -> anyhow::Result<ReplayOutcome> {
    replay_files_as(
        files,
        InputFormat::Json,
        config,
        dead_letter,
        workers,
        progress,
    )
}

/// The clock that completes a replay's year-less stamps: its first line's stamp is read in
/// `input.year` (else the year before now, or a month ahead), and the year rolls over at New
/// Year from there (docs/gateways.md, "Time").
pub fn replay_clock(files: &[String], format: InputFormat, config: &Config) -> Clock {
    // How `run` would read the first line: in `input.year`, else near today.
    let first_guess = crate::ingest::kafka::live_clock(&config.input);
    if format == InputFormat::Json {
        return first_guess;
    }
    // The first line of the first file (stdin cannot be read twice).
    let first_stamp = files
        .first()
        .filter(|f| f.as_str() != "-")
        .and_then(|f| File::open(f).ok())
        .and_then(|f| {
            use std::io::Read;
            let mut head = Vec::with_capacity(64 << 10);
            f.take(64 << 10).read_to_end(&mut head).ok()?;
            let text = String::from_utf8_lossy(&head);
            let line = text.lines().find(|l| !l.trim().is_empty())?;
            syslog::parse(line, &first_guess).ts_ms
        });
    match first_stamp {
        Some(ts) => Clock {
            window_start_ms: Clock::from_first(ts, 0).window_start_ms,
            ..first_guess
        },
        None => first_guess,
    }
}

/// [`replay_files`] of files whose lines are written in `format`.
pub fn replay_files_as(
    files: &[String],
    format: InputFormat,
    config: &Config,
    dead_letter: Option<&Path>,
    workers: usize,
    progress: bool,
) -> anyhow::Result<ReplayOutcome> {
    let lines = LineFormat {
        format,
        clock: replay_clock(files, format, config),
    };
    let mut engine = Engine::new(config.engine.clone());
    let mut evaluator = Evaluator::new(&config.alerts.rules, &config.engine)?;
    let mut evaluating = std::time::Duration::ZERO;
    let mut dlq = match dead_letter {
        Some(p) => Some(DeadLetterWriter::new(BufWriter::new(File::create(p).with_context(|| {
            format!("cannot create the dead-letter file {}; check that its directory exists and is writable", p.display())
        })?))),
        None => None,
    };
    let started = std::time::Instant::now();
    let mut applying = std::time::Duration::ZERO;
    // Batches no one keeps as the `events` table need not carry its `type` and `id` strings.
    let columns = if config.engine.keep_events {
        Columns::All
    } else {
        Columns::ForEngine
    };
    read_ndjson(
        files,
        workers,
        progress,
        columns,
        lines,
        |fc: &FileChunk| -> Result<(), ReplayError> {
            let t = std::time::Instant::now();
            let d = &fc.decoded;
            for &(kind, n) in &d.ignored {
                engine.count_ignored(kind, n);
            }
            for &(rec, reason) in &d.rejects {
                engine.count_rejected(reason, 1);
                if let Some(w) = dlq.as_mut() {
                    w.write(reason, d.record(rec), &fc.file, fc.first_line + rec as u64)
                        .map_err(ReplayError::DeadLetter)?;
                }
            }
            let applied = engine.apply_view(d.view.clone());
            if let Some(w) = dlq.as_mut() {
                for &(row, reason) in &applied.rejected_rows {
                    let rec = d.row_record[row as usize];
                    w.write(reason, d.record(rec), &fc.file, fc.first_line + rec as u64)
                        .map_err(ReplayError::DeadLetter)?;
                }
            }
            applying += t.elapsed();
            if !evaluator.is_empty() {
                let t = std::time::Instant::now();
                alerts::evaluate_due_round(&mut engine, &mut evaluator, false);
                evaluating += t.elapsed();
            }
            Ok(())
        },
    )?;
    let t = std::time::Instant::now();
    engine.flush();
    // The input has ended: nothing can arrive to change what happened, so rules are evaluated
    // up to the newest event (as the live service does after alerts.idle_timeout of quiet).
    alerts::evaluate_due_round(&mut engine, &mut evaluator, true);
    for s in evaluator.stats() {
        tracing::debug!(rule = %s.rule, evaluations = s.evaluations, us_per_evaluation = s.seconds * 1e6 / s.evaluations.max(1) as f64, "Alert rule cost.");
    }
    tracing::debug!(
        alerts_ms = evaluating.as_millis() as u64,
        read_ms = started.elapsed().as_millis() as u64,
        apply_ms = applying.as_millis() as u64,
        flush_ms = t.elapsed().as_millis() as u64,
        "Replay ingested its input."
    );
    let dead_letters = match dlq {
        Some(w) => {
            let n = w.written();
            w.finish().context("cannot write the dead-letter file")?;
            n
        }
        None => 0,
    };
    let t = std::time::Instant::now();
    let snapshot = Arc::new(engine.snapshot());
    tracing::debug!(
        snapshot_ms = t.elapsed().as_millis() as u64,
        "Replay took its snapshot."
    );
    Ok(ReplayOutcome {
        counters: snapshot.counters.clone(),
        snapshot,
        dead_letters,
        engine,
    })
}

/// Parses `--capacity SERVER=N` (or `*=N`).
fn parse_capacity(s: &str) -> anyhow::Result<(String, u32)> {
    let bad = || {
        anyhow::anyhow!(
            "--capacity {s:?} is not SERVER=N; write e.g. --capacity gw-03=80, or --capacity '*=80' for every server"
        )
    };
    let (server, n) = s.split_once('=').ok_or_else(bad)?;
    let n: u32 = n.trim().parse().map_err(|_| bad())?;
    if server.trim().is_empty() || n == 0 {
        return Err(bad());
    }
    Ok((server.trim().to_string(), n))
}

/// `gatewatch replay`.
pub fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let mut config = load_config(args.config.as_deref())?;
    for c in &args.capacity {
        let (server, n) = parse_capacity(c)?;
        config.engine.capacity_overrides.insert(server, n);
    }
    let sql_text = sql_from(args.sql.as_deref(), args.sql_file.as_deref())?;
    if sql_text.trim().is_empty() {
        anyhow::bail!("the SQL query is empty; pass a SELECT with --sql or a file with --sql-file");
    }
    if let Some(dl) = &args.dead_letter {
        refuse_output_over_input(dl, &args.files)?;
    }
    // The thread that applies decoded chunks in order keeps one core busy; decoding gets the
    // others. On two cores, two decoders fighting it for the CPU were 5-10 % slower than one.
    let workers = args.workers.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
    });
    // Check the SQL before reading gigabytes: plan it against an empty snapshot.
    let empty = Arc::new(Engine::new(config.engine.clone()).snapshot());
    let tables = runtime()?.block_on(sql::check(empty, &sql_text))?;
    // Keeping every accepted event as Arrow is most of a replay's memory; a query that does not
    // read `events` (nor any SQL alert rule, which may) does not pay for it.
    let sql_rules = config
        .alerts
        .rules
        .iter()
        .any(|r| matches!(r.source, RuleSource::Sql(_)));
    config.engine.keep_events = tables.contains(sql::tables::Table::Events.name()) || sql_rules;
    // A sample costs a division and eleven comparisons on the thread that applies in order,
    // for histograms only `/metrics` reads.
    config.engine.keep_prometheus = false;
    let outcome = replay_files_as(
        &args.files,
        args.input_format.into(),
        &config,
        args.dead_letter.as_deref(),
        workers,
        true,
    )?;
    let t = std::time::Instant::now();
    let result = run_sql(outcome.snapshot.clone(), &sql_text)?;
    tracing::debug!(
        query_ms = t.elapsed().as_millis() as u64,
        rows = result.num_rows(),
        "Replay answered its query."
    );
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    write_result(&result, args.format.into(), &mut out)?;
    out.flush().ok();
    eprintln!("replay: {}", outcome.counters.summary_line());
    // The process ends next: freeing the engine's and the snapshot's millions of small
    // allocations one by one would only delay the exit (and, done while the query runs, slow
    // it: the query has both cores to use).
    std::mem::forget(outcome);
    Ok(())
}

/// Refuses a dead-letter path that is one of the inputs (the same file, by device and inode,
/// whatever its name): creating it would truncate the input before it is read.
fn refuse_output_over_input(out: &Path, inputs: &[String]) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(o) = std::fs::metadata(out) else {
        return Ok(()); // a new file cannot be an input
    };
    let same = |m: &std::fs::Metadata| m.dev() == o.dev() && m.ino() == o.ino();
    for input in inputs {
        // stdin may be the same file redirected: `replay - --dead-letter f < f`.
        let path = Path::new(if input == "-" { "/dev/stdin" } else { input });
        let m = std::fs::metadata(path).ok();
        if m.as_ref().is_some_and(same) {
            anyhow::bail!(
                "--dead-letter {} is the input {}; writing dead letters there would erase it, so name another file",
                out.display(),
                input
            );
        }
    }
    Ok(())
}
