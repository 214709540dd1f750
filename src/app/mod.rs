//! Wiring: the one module that sees everything. Turns CLI arguments into a run of the engine:
//! `replay` and `check-config` here, `query` (the HTTP client side) here, `run` in [`service`].

pub mod service;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::alerts::{self, Evaluator};
use crate::cli::{CheckConfigArgs, QueryArgs, ReplayArgs};
use crate::config::Config;
use crate::config::{Direction, RuleSource};
use crate::http::ARROW_STREAM;
use crate::http_client as client;
use crate::ingest::dead_letter::DeadLetterWriter;
use crate::ingest::file::{read_ndjson, FileChunk, ReadError};
use crate::ingest::Columns;
use crate::output::write_result;
use crate::sql::{self, QueryResult};
use crate::state::{Counters, Engine, Snapshot};

/// Loads the config file, or the defaults.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    })
}

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
        |fc: &FileChunk| -> Result<(), ReplayError> {
            let t = std::time::Instant::now();
            let d = &fc.decoded;
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
                alerts::evaluate_owned(&mut engine, &mut evaluator, false);
                evaluating += t.elapsed();
            }
            Ok(())
        },
    )?;
    let t = std::time::Instant::now();
    engine.flush();
    // The input has ended: nothing can arrive to change what happened, so rules are evaluated
    // up to the newest event (as the live service does after alerts.idle_timeout of quiet).
    alerts::evaluate_owned(&mut engine, &mut evaluator, true);
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

/// Runs SQL against a snapshot on a small tokio runtime.
pub fn run_sql(snapshot: Arc<Snapshot>, sql_text: &str) -> anyhow::Result<QueryResult> {
    Ok(runtime()?.block_on(sql::query_snapshot(snapshot, sql_text))?)
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .thread_stack_size(sql::nesting::STACK_BYTES)
        .enable_all()
        .build()
        .context("cannot start the query runtime")
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

/// The SQL given inline or in a file (clap guarantees one of them).
fn sql_from(sql: Option<&str>, file: Option<&Path>) -> anyhow::Result<String> {
    match (sql, file) {
        (Some(s), _) => Ok(s.to_string()),
        (None, Some(f)) => std::fs::read_to_string(f).with_context(|| {
            format!(
                "cannot read the SQL file {}; check the path given to --sql-file",
                f.display()
            )
        }),
        (None, None) => anyhow::bail!("no SQL given; pass it as an argument or with --sql-file"),
    }
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
    let outcome = replay_files(
        &args.files,
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
    write_result(&result, args.format, &mut out)?;
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

/// `gatewatch check-config FILE`: validates, then says what the file configures.
pub fn check_config(args: CheckConfigArgs) -> anyhow::Result<()> {
    let mut cfg = Config::load(&args.file)?;
    // `run` takes the token from the environment as well: check what `run` would use.
    cfg.http.token_from_env().map_err(anyhow::Error::msg)?;
    if !cfg.alerts.rules.is_empty() {
        // Plans SQL rules and checks what they return now, so a typo is found here and not at
        // the first tick; and before "valid" is printed, so the answer is one thing.
        Evaluator::new(&cfg.alerts.rules, &cfg.engine)?;
    }
    let k = &cfg.kafka;
    println!("{}: valid", args.file.display());
    match &k.brokers {
        Some(b) => println!(
            "  kafka: brokers {b}, topics {}, group {}",
            k.topics.join(","),
            k.group
        ),
        None => println!(
            "  kafka: no brokers: `gatewatch run` starts the embedded cluster and simulator"
        ),
    }
    let dlq: Vec<String> = k
        .topics
        .iter()
        .map(|t| k.dead_letter_topic_for(t))
        .collect();
    println!("  dead letters: {}", dlq.join(","));
    if !k.properties.is_empty() {
        let keys: Vec<&str> = k.properties.keys().map(String::as_str).collect();
        println!("  librdkafka properties: {}", keys.join(", "));
    }
    let h = &cfg.http;
    println!(
        "  http: {}, {}, body limit {} bytes, queries: timeout {}, memory {} MiB, {} rows at most",
        h.bind,
        if h.token.is_some() {
            "bearer token required"
        } else {
            "no token (set http.token or GATEWATCH_HTTP_TOKEN to require one)"
        },
        h.max_body_bytes,
        human_ms(h.query_timeout_ms),
        h.query_memory_bytes >> 20,
        h.max_rows
    );
    match &cfg.checkpoint.dir {
        Some(d) => println!(
            "  checkpoints: {} every {}, keep {}",
            d.display(),
            human_ms(cfg.checkpoint.interval_ms),
            cfg.checkpoint.keep
        ),
        None => println!("  checkpoints: none (a restart rebuilds from Kafka)"),
    }
    if let Some(d) = &cfg.archive {
        println!("  archive: {}", d.display());
    }
    let e = &cfg.engine;
    println!(
        "  engine: allowed_lateness {}, session_timeout {}, retention {}",
        human_ms(e.allowed_lateness_ms),
        human_ms(e.session_timeout_ms),
        human_ms(e.retention_ms)
    );
    for (id, s) in &e.servers {
        println!(
            "  server {id}: capacity {}, site {}",
            s.capacity.map_or("unknown".to_string(), |c| c.to_string()),
            s.site.as_deref().unwrap_or("-")
        );
    }
    let a = &cfg.alerts;
    if !a.rules.is_empty() {
        println!(
            "  alerts: topic {}, idle_timeout {}, {} webhook(s)",
            a.topic,
            human_ms(a.idle_timeout_ms),
            a.webhooks.len()
        );
    }
    for r in &a.rules {
        let what = match &r.source {
            RuleSource::Measure { measure, window_ms } if *window_ms > 0 => {
                format!("{} over {}", measure.as_str(), human_ms(*window_ms))
            }
            RuleSource::Measure { measure, .. } => measure.as_str().to_string(),
            RuleSource::Sql(_) => "sql".to_string(),
        };
        let dir = match r.direction {
            Direction::Above => "above",
            Direction::Below => "below",
        };
        let threshold = match (r.threshold, r.clear) {
            (Some(t), Some(c)) if c != t => format!("{dir} {t}, clears at {c}"),
            (Some(t), _) => format!("{dir} {t}"),
            (None, _) => "every row returned".to_string(),
        };
        println!(
            "  rule {}: {what}, fires {threshold}, for {}, every {}, severity {}",
            r.name,
            human_ms(r.for_ms),
            human_ms(r.every_ms),
            r.severity
        );
    }
    Ok(())
}

fn human_ms(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    for (unit, n) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms >= n && ms % n == 0 {
            return format!("{}{unit}", ms / n);
        }
    }
    format!("{ms}ms")
}

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
    write_result(&result, args.format, &mut out)?;
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
