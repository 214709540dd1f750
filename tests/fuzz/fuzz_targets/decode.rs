//! Fuzz target: the event decoder (`gatewatch::event::decode`) on arbitrary bytes.
//!
//! Beyond "never panics": a record decoded as a whole Kafka message (`decode_record`, which
//! trims surrounding whitespace) must agree with decoding the trimmed bytes, an accepted event
//! must become exactly one Arrow row, and its timestamp must survive formatting and re-parsing.
//! And an accepted event, applied to an engine whose stream two other servers hold at
//! 2020-03-17 08:00, is refused as `future` exactly when it is more than `input.max_lead` ahead
//! of them (the broken-clock case of issue 20), and never takes their data with it.
#![no_main]

use gatewatch::config::EngineConfig;
use gatewatch::event::{decode, format_rfc3339_ms, parse_rfc3339_ms, EventColumns, Reason};
use gatewatch::ingest::decode_record;
use gatewatch::state::Engine;
use libfuzzer_sys::fuzz_target;

/// 2020-03-17T08:00:00Z.
const STREAM_MS: i64 = 1_584_432_000_000;

fn stream_of_two_servers() -> Engine {
    let mut cols = EventColumns::with_capacity(2);
    for server in ["fuzz-a", "fuzz-b"] {
        let line = format!(
            r#"{{"type":"connect","ts":{STREAM_MS},"server":"{server}","session":"{server}-s","setup_ms":5}}"#
        );
        decode_record(line.as_bytes(), &mut cols).expect("a valid seed event");
    }
    let mut engine = Engine::new(EngineConfig::default());
    engine.apply(&cols.finish());
    engine
}

fuzz_target!(|data: &[u8]| {
    let trimmed = data.trim_ascii();
    let direct = decode(trimmed);
    let mut cols = EventColumns::with_capacity(1);
    let as_record = decode_record(data, &mut cols);
    match (&direct, &as_record) {
        (Ok(ev), Ok(())) => {
            assert_eq!(cols.len(), 1);
            let batch = cols.finish();
            assert_eq!(batch.num_rows(), 1);
            let ts = ev.ts;
            assert_eq!(parse_rfc3339_ms(&format_rfc3339_ms(ts)), Some(ts), "ts {ts}");
            let mut engine = stream_of_two_servers();
            let max_lead = engine.config().max_lead_ms;
            let others = ev.server.as_ref() != "fuzz-a" && ev.server.as_ref() != "fuzz-b";
            engine.apply(&batch);
            let future = engine.counters().rejected.get(&Reason::Future).copied();
            if others {
                let ahead = ts > STREAM_MS + max_lead;
                assert_eq!(future.is_some(), ahead, "ts {ts}: future {future:?}");
            }
            engine.flush();
            let snap = engine.snapshot();
            for server in ["fuzz-a", "fuzz-b"] {
                let s = snap.servers.iter().find(|s| &*s.name == server);
                let s = s.unwrap_or_else(|| panic!("{server} is gone after ts {ts}"));
                if others {
                    assert_eq!(s.sessions.len(), 1, "{server} after ts {ts}");
                }
            }
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("decode {direct:?} but decode_record {as_record:?}"),
    }
});
