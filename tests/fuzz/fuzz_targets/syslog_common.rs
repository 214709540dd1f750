// Shared by the six `syslog_*` fuzz targets (each `include!`s it with its FORMAT): one gateway
// line, as that vendor's format and under `auto`, through `event::decode_line`.
//
// Beyond "never panics": decoding is deterministic (the same line gives the same event, id
// included); an event has a server, a time in range, a session when its type needs one, a
// non-negative duration, and becomes exactly one Arrow row; a line `auto` reads as an event or
// an ignored line is read the same way under the vendor's own format when `auto` says it is that
// vendor's.

use gatewatch::event::syslog::Clock;
use gatewatch::event::{decode_line, Event, EventColumns, EventType, InputFormat, Outcome, MAX_TS_MS};

fn decode(line: &str, format: InputFormat) -> (Result<Outcome, gatewatch::event::Reason>, Option<String>) {
    let clock = Clock::in_year(2020, 3_600_000);
    let mut scratch = String::new();
    let mut ev = Event::default();
    let r = decode_line(line, format, &clock, &mut scratch, &mut ev);
    let shown = matches!(r, Ok(Outcome::Event)).then(|| {
        assert!(!ev.server.is_empty(), "an event without a server: {line:?}");
        assert!((0..=MAX_TS_MS).contains(&ev.ts), "{line:?}");
        if matches!(ev.event_type(), EventType::Connect | EventType::Disconnect | EventType::Latency) {
            assert!(ev.session.as_deref().is_some_and(|s| !s.is_empty()), "{line:?}");
        }
        assert!(ev.duration_ms.is_none_or(|d| d >= 0), "{line:?}");
        let mut cols = EventColumns::with_capacity(1);
        cols.push(&ev);
        assert_eq!(cols.finish().num_rows(), 1);
        format!("{ev:?}")
    });
    (r, shown)
}

fn check(format: InputFormat, data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let first = decode(line, format);
    assert_eq!(first, decode(line, format), "not deterministic: {line:?}");
    let auto = decode(line, InputFormat::Auto);
    let autos_vendor = match &auto.0 {
        Ok(Outcome::Ignored(i)) => Some(i.format),
        Err(gatewatch::event::Reason::Unparsed(f)) => Some(*f),
        Ok(Outcome::Event) => auto.1.as_deref().and_then(|e| {
            let id = e.split("id: Some(\"").nth(1)?;
            InputFormat::parse(id.split('-').next()?)
        }),
        _ => None,
    };
    if autos_vendor == Some(format) {
        assert_eq!(auto, first, "auto and {format} differ on {line:?}");
    }
}
