//! Memory budgets, measured with a counting allocator (`cargo bench --bench memory`):
//! heap bytes per open session, and 24 h of per-minute latency histograms for 10 servers; then
//! the cost of checkpointing that day.
//! Prints the numbers; the budgets are ≤ 256 bytes per open session and ≤ 64 MiB of histograms.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use gatewatch::config::EngineConfig;
use gatewatch::ingest::{decode_chunk, Chunk};
use gatewatch::state::Engine;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Heap grown since `before`, less the Arrow batches of the events table.
fn state_bytes_since(e: &Engine, before: isize) -> isize {
    let event_bytes: usize = e
        .snapshot()
        .events
        .iter()
        .map(|b| b.get_array_memory_size())
        .sum();
    live() - before - event_bytes as isize
}

fn apply_lines(e: &mut Engine, lines: &str) {
    let d = decode_chunk(Chunk {
        raw: lines.as_bytes().to_vec(),
        truncated: false,
        shared: None,
    });
    e.apply(&d.batch);
}

fn main() {
    // 1. Open sessions: 100k connects on 10 servers, all final (flushed), no events kept.
    let n = 100_000;
    let mut e = Engine::new(EngineConfig::default());
    let mut buf = String::new();
    for i in 0..n {
        buf += &format!(
            r#"{{"type":"connect","ts":{},"server":"gw-{:02}","session":"gw-{:02}-18339-{i}","user":"u{:04}","site":"gland","os":"windows-10","app":"vpn","setup_ms":512.5}}"#,
            1_584_500_000_000i64 + i as i64,
            i % 10,
            i % 10,
            i % 800
        );
        buf.push('\n');
    }
    // The events table (Arrow batches) is the input kept, not session state: subtract it.
    let before = live();
    apply_lines(&mut e, &buf);
    e.flush();
    let per_session = state_bytes_since(&e, before) as f64 / n as f64;
    println!(
        "open sessions: {} held, {:.0} heap bytes per open session (budget 256)",
        e.open_sessions(),
        per_session
    );

    // 2. 24 h of per-minute histograms, 10 servers, rtt + jitter every minute + setup.
    let mut e = Engine::new(EngineConfig::default());
    let before = live();
    let day0 = 1_584_403_200_000i64;
    for hour in 0..24 {
        let mut lines = String::new();
        for minute in 0..60 {
            for s in 0..10 {
                for k in 0..40 {
                    let ts = day0 + (hour * 60 + minute) * 60_000 + k * 1_400 + s;
                    let rtt = 15.0 + ((k * 7919 + minute * 31 + s) % 400) as f64 * 0.37;
                    lines += &format!(
                        r#"{{"type":"latency","ts":{ts},"server":"gw-{s:02}","session":"x","rtt_ms":{rtt:.2},"jitter_ms":{:.1}}}"#,
                        rtt / 9.0
                    );
                    lines.push('\n');
                    if k % 10 == 0 {
                        lines += &format!(
                            r#"{{"type":"connect","ts":{ts},"server":"gw-{s:02}","session":"c{hour}-{minute}-{k}","setup_ms":{:.1}}}"#,
                            rtt * 20.0
                        );
                        lines.push('\n');
                    }
                }
            }
        }
        apply_lines(&mut e, &lines);
    }
    e.flush();
    let state = state_bytes_since(&e, before);
    println!(
        "24 h x 10 servers x 3 metrics of minute histograms: {:.1} MiB by the engine's own count, {:.1} MiB heap for all state less the events table (budget 64 MiB)",
        e.latency_heap_bytes() as f64 / (1 << 20) as f64,
        state as f64 / (1 << 20) as f64
    );

    // 3. A checkpoint of that day: what ingest waits for (capture, under the engine lock), what
    //    the writer thread spends (encode, write, fsync), the file, and loading it back.
    let dir = std::env::temp_dir().join(format!("gatewatch-bench-ckpt-{}", std::process::id()));
    let t = std::time::Instant::now();
    let cp = gatewatch::checkpoint::Checkpoint::capture(&e, Vec::new());
    let capture = t.elapsed();
    let t = std::time::Instant::now();
    let path = gatewatch::checkpoint::write(&dir, &cp, 1).unwrap();
    let write = t.elapsed();
    let bytes = std::fs::metadata(&path).unwrap().len();
    let t = std::time::Instant::now();
    let (loaded, _) = gatewatch::checkpoint::load_newest(&dir, &EngineConfig::default()).unwrap();
    let load = t.elapsed();
    assert_eq!(
        loaded.unwrap().engine.counters(),
        e.counters(),
        "the checkpoint reads back"
    );
    println!(
        "checkpoint of that day ({} events, {} sessions): capture {:.1} ms under the lock, encode + write + fsync {:.0} ms, {:.1} MiB on disk, load {:.0} ms",
        e.counters().accepted,
        e.open_sessions(),
        capture.as_secs_f64() * 1e3,
        write.as_secs_f64() * 1e3,
        bytes as f64 / (1 << 20) as f64,
        load.as_secs_f64() * 1e3
    );
    let _ = std::fs::remove_dir_all(&dir);
}
