//! Fuzz target: the event decoder (`gatewatch::event::decode`) on arbitrary bytes.
//!
//! Beyond "never panics": a record decoded as a whole Kafka message (`decode_record`, which
//! trims surrounding whitespace) must agree with decoding the trimmed bytes, an accepted event
//! must become exactly one Arrow row, and its timestamp must survive formatting and re-parsing.
#![no_main]

use gatewatch::event::{decode, format_rfc3339_ms, parse_rfc3339_ms, EventColumns};
use gatewatch::ingest::decode_record;
use libfuzzer_sys::fuzz_target;

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
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("decode {direct:?} but decode_record {as_record:?}"),
    }
});
