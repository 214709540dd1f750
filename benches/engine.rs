//! Criterion benches of the hot path, on realistic events (the simulator's storm day, 100–200
//! byte lines): decoding alone, decoding into Arrow columns, applying decoded batches to the
//! engine, and both on one core. `cargo bench --bench engine`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use gatewatch::config::EngineConfig;
use gatewatch::ingest::{decode_chunk, Chunk};
use gatewatch::state::Engine;

/// The 18 March storm day, split into ~1 MiB chunks at line ends.
fn storm_day() -> (Vec<u8>, Vec<Vec<u8>>, usize) {
    let day = gatewatch::event::parse_rfc3339_ms("2020-03-18T00:00:00Z").unwrap() / 86_400_000;
    let mut all = Vec::new();
    gatewatch::sim::generate_day(day, 1, None, &mut all).unwrap();
    let lines = all.iter().filter(|&&c| c == b'\n').count();
    let mut chunks = Vec::new();
    let mut rest = &all[..];
    while !rest.is_empty() {
        let cut = if rest.len() <= 1 << 20 {
            rest.len()
        } else {
            rest[..1 << 20].iter().rposition(|&c| c == b'\n').unwrap() + 1
        };
        chunks.push(rest[..cut].to_vec());
        rest = &rest[cut..];
    }
    (all, chunks, lines)
}

fn benches(c: &mut Criterion) {
    let (all, chunks, lines) = storm_day();
    eprintln!(
        "input: {lines} events, {} bytes, {:.0} bytes/event",
        all.len(),
        all.len() as f64 / lines as f64
    );
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(lines as u64));
    g.sample_size(10);

    // As the reader and the Kafka path decode: every line into one reused event.
    g.bench_function("decode", |b| {
        b.iter(|| {
            let mut ok = 0usize;
            let mut ev = gatewatch::event::Event::default();
            for line in all.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
                let text = std::str::from_utf8(black_box(line)).unwrap();
                ok += gatewatch::event::decode_str_into(text, &mut ev).is_ok() as usize;
            }
            assert_eq!(ok, lines);
        })
    });

    g.bench_function("decode_to_arrow", |b| {
        b.iter(|| {
            for c in &chunks {
                black_box(decode_chunk(Chunk {
                    raw: c.clone(),
                    truncated: false,
                    shared: None,
                }));
            }
        })
    });

    let decoded: Vec<_> = chunks
        .iter()
        .map(|c| {
            decode_chunk(Chunk {
                raw: c.clone(),
                truncated: false,
                shared: None,
            })
            .batch
        })
        .collect();
    g.bench_function("apply", |b| {
        b.iter_batched(
            || Engine::new(EngineConfig::default()),
            |mut e| {
                for batch in &decoded {
                    e.apply(batch);
                }
                e.flush();
                assert_eq!(e.counters().accepted as usize, lines);
                e
            },
            BatchSize::PerIteration,
        )
    });

    g.bench_function("decode_and_apply_one_core", |b| {
        b.iter_batched(
            || Engine::new(EngineConfig::default()),
            |mut e| {
                for c in &chunks {
                    let d = decode_chunk(Chunk {
                        raw: c.clone(),
                        truncated: false,
                        shared: None,
                    });
                    e.apply(&d.batch);
                }
                e.flush();
                e
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(engine, benches);
criterion_main!(engine);
