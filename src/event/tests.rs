//! The event module's unit tests: decoding, shapes, time, columns.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};

use super::json::*;
use super::time::*;
use super::*;

fn reason(s: &str) -> String {
    decode(s.as_bytes()).unwrap_err().to_string()
}

#[test]
fn decodes_every_type_and_borrows_strings() {
    let e = decode(br#"{"type":"connect","ts":"2020-03-17T08:30:00.250Z","server":"gw-03","session":"s1","user":"u7","site":"gland","os":"windows-10","app":"vpn","setup_ms":812.5,"extra":{"a":[1,2,{"b":null}]}}"#).unwrap();
    assert_eq!(e.kind, Some(EventType::Connect));
    assert_eq!(e.ts, 1_584_433_800_250);
    assert!(matches!(e.server, Cow::Borrowed("gw-03")));
    assert_eq!(e.setup_ms, Some(812.5));
    let e = decode(br#"{"type":"latency","ts":1584433800000,"server":"gw-03","session":"s1","rtt_ms":12,"jitter_ms":1.5,"loss_pct":0}"#).unwrap();
    assert_eq!(
        (e.ts, e.rtt_ms, e.jitter_ms),
        (1_584_433_800_000, Some(12.0), Some(1.5))
    );
    let e =
        decode(br#"{"type":"server","ts":0,"server":"gw-03","capacity":120,"state":"draining"}"#)
            .unwrap();
    assert_eq!(
        (e.capacity, e.state),
        (Some(120), Some(ServerState::Draining))
    );
    for t in ["disconnect", "auth_fail", "reject"] {
        let line = format!(
            r#"{{"type":"{t}","ts":5,"server":"a","session":"x","reason":"r","bytes_in":1e3}}"#
        );
        let e = decode(line.as_bytes()).unwrap();
        assert_eq!(e.event_type().as_str(), t);
        assert_eq!(e.bytes_in, Some(1000));
    }
}

#[test]
fn unescapes_strings() {
    let e = decode(br#"{"type":"reject","ts":1,"server":"gw\u002d\"1\"\n\ud83d\ude00"}"#).unwrap();
    assert_eq!(e.server, "gw-\"1\"\n😀");
}

/// Decoding along the shape of the record before gives exactly what the general parser
/// gives, record by record, through runs of alike records, changes of kind, and records
/// that leave the shape anywhere: whitespace, other key orders, escaped, unknown and
/// repeated keys, wrong types, nulls, cut-off and trailing bytes. Most alike records are
/// decoded along the shape.
#[test]
fn shaped_decoding_equals_the_general_parser() {
    let bases = [
        r#"{"type":"latency","ts":"2020-03-16T07:07:30.424Z","server":"gw-01","session":"gw-01-18337-20","rtt_ms":21.5,"id":"1-18337-8615"}"#,
        r#"{"type":"connect","ts":"2020-03-17T08:30:00.250Z","server":"gw-03","session":"s1","user":"u7","site":"gland","os":"windows-10","app":"vpn","setup_ms":812.5,"id":"c-1"}"#,
        r#"{"type":"disconnect","ts":1584433800000,"server":"gw-03","session":"s1","reason":"user","bytes_in":10,"bytes_out":0}"#,
        r#"{"type":"server","ts":"2020-03-16T00:00:00.000Z","server":"gw-01","capacity":80,"state":"up","id":"1-18337-1"}"#,
        r#"{"type":"reject","ts":"2020-03-17T08:31:00Z","server":"gw-02","user":"u9"}"#,
        r#"{"type":"latency","ts":"2020-03-16T07:07:31.811Z","server":"gw-04","session":"gw-04-18337-17","rtt_ms":24.5,"jitter_ms":3,"loss_pct":0.1}"#,
    ];
    let mut rng = crate::sim::Rng::new(29);
    let mut lines: Vec<String> = Vec::new();
    for _ in 0..12_000 {
        let base = bases[rng.below(bases.len() as u64) as usize];
        let mut line = base.to_string();
        // Half the records as they are (runs of alike ones), half changed somewhere.
        let change = if rng.below(2) == 0 { 99 } else { rng.below(11) };
        let at = |rng: &mut crate::sim::Rng, l: &str| {
            let mut i = rng.below(l.len() as u64 + 1) as usize;
            while !l.is_char_boundary(i) {
                i -= 1;
            }
            i
        };
        match change {
            0 => {
                let i = at(&mut rng, &line);
                line.insert(i, [' ', '\t', '\n'][rng.below(3) as usize]);
            }
            1 => line = line.replacen(",\"ts\"", ", \"ts\" ", 1),
            2 => line = line.replacen("\"type\"", "\"t\\u0079pe\"", 1),
            3 => line = line.replacen("{", "{\"extra\":{\"a\":[1,null]},", 1),
            4 => line = line.replacen("\"server\"", "\"server\":\"gw-x\",\"server\"", 1),
            5 => {
                line = line
                    .replacen("21.5", "\"21.5\"", 1)
                    .replacen("812.5", "null", 1)
            }
            6 => line.truncate(at(&mut rng, base)),
            7 => line.push_str(if rng.below(2) == 0 { " " } else { "x" }),
            8 => {
                // Keys in another order: the first two swapped.
                let body = &line[1..line.len() - 1];
                let mut parts: Vec<&str> = body.splitn(3, ',').collect();
                parts.swap(0, 1);
                line = format!("{{{}}}", parts.join(","));
            }
            9 => line = line.replacen("gw-0", "gw-\\u0030", 1),
            10 => {
                // One byte replaced by a JSON-significant one.
                let i = at(&mut rng, &line).min(line.len().saturating_sub(1));
                if line.is_char_boundary(i + 1) {
                    let c = b"\"{}[],: 0a\\-e.n"[rng.below(15) as usize] as char;
                    line.replace_range(i..i + 1, &c.to_string());
                }
            }
            _ => {}
        }
        // Runs: a record often repeats its kind.
        for _ in 0..1 + rng.below(4) {
            lines.push(line.clone());
        }
    }
    let mut shape = Shape::default();
    let mut ev = Event::default();
    let mut along_shape = 0;
    for line in &lines {
        let want = decode_str(line);
        if shape.len > 0 {
            let mut probe = Event::default();
            if decode_as_shaped(line, &mut probe, &shape).is_some() {
                along_shape += 1;
            }
        }
        let got = decode_str_shaped(line, &mut ev, &mut shape).map(|()| ev.clone());
        assert_eq!(got, want, "{line:?}");
    }
    assert!(
        along_shape > lines.len() / 2,
        "{along_shape} of {} along the shape",
        lines.len()
    );
}

#[test]
fn rejects_with_stable_reasons() {
    assert_eq!(reason("not json"), "invalid_json");
    assert_eq!(reason(""), "invalid_json");
    assert_eq!(reason("[1,2]"), "not_an_object");
    assert_eq!(reason("\"str\""), "not_an_object");
    assert_eq!(reason(r#"{"type":"connect"} x"#), "invalid_json");
    assert_eq!(
        reason(r#"{"type":"connect","ts":1,"server":"a""#),
        "invalid_json"
    );
    assert_eq!(reason(r#"{"ts":1,"server":"a"}"#), "missing_field:type");
    assert_eq!(
        reason(r#"{"type":"nope","ts":1,"server":"a"}"#),
        "unknown_type"
    );
    assert_eq!(
        reason(r#"{"type":"connect","server":"a","session":"s"}"#),
        "missing_field:ts"
    );
    assert_eq!(
        reason(r#"{"type":"connect","ts":1,"session":"s"}"#),
        "missing_field:server"
    );
    assert_eq!(
        reason(r#"{"type":"connect","ts":1,"server":"a"}"#),
        "missing_field:session"
    );
    assert_eq!(
        reason(r#"{"type":"latency","ts":1,"server":"a","session":"s"}"#),
        "missing_field:rtt_ms"
    );
    assert_eq!(
        reason(r#"{"type":"latency","ts":1,"server":"a","session":"s","rtt_ms":"5"}"#),
        "bad_type:rtt_ms"
    );
    assert_eq!(
        reason(r#"{"type":"latency","ts":1,"server":"a","session":"s","rtt_ms":-5}"#),
        "bad_value:rtt_ms"
    );
    assert_eq!(
        reason(r#"{"type":"connect","ts":"yesterday","server":"a","session":"s"}"#),
        "bad_value:ts"
    );
    assert_eq!(
        reason(r#"{"type":"connect","ts":"2020-03-17T08:30:00","server":"a","session":"s"}"#),
        "bad_value:ts"
    );
    assert_eq!(
        reason(r#"{"type":"connect","ts":-1,"server":"a","session":"s"}"#),
        "bad_value:ts"
    );
    assert_eq!(
        reason(r#"{"type":"connect","ts":1.5,"server":"a","session":"s"}"#),
        "bad_type:ts"
    );
    assert_eq!(
        reason(r#"{"type":"connect","ts":true,"server":"a","session":"s"}"#),
        "bad_type:ts"
    );
    assert_eq!(
        reason(r#"{"type":"connect","ts":1,"server":"","session":"s"}"#),
        "bad_value:server"
    );
    assert_eq!(
        reason(r#"{"type":"connect","ts":1,"server":7,"session":"s"}"#),
        "bad_type:server"
    );
    assert_eq!(
        reason(r#"{"type":"server","ts":1,"server":"a","capacity":0}"#),
        "bad_value:capacity"
    );
    assert_eq!(
        reason(r#"{"type":"server","ts":1,"server":"a","capacity":1.5}"#),
        "bad_type:capacity"
    );
    assert_eq!(
        reason(r#"{"type":"server","ts":1,"server":"a","state":"sideways"}"#),
        "bad_value:state"
    );
    assert_eq!(
        reason(r#"{"type":"disconnect","ts":1,"server":"a","session":"s","bytes_out":-1}"#),
        "bad_value:bytes_out"
    );
    assert_eq!(reason(r#"{"type":5,"ts":1,"server":"a"}"#), "bad_type:type");
    assert_eq!(
        decode(b"{\"type\":\"reject\",\"ts\":1,\"server\":\"\xff\"}").unwrap_err(),
        Reason::InvalidUtf8
    );
    // A type error is not reported when the JSON itself is broken.
    assert_eq!(reason(r#"{"type":"latency","rtt_ms":"x","#), "invalid_json");
}

#[test]
fn short_keys_are_equal_exactly_when_strings_are() {
    let mut rng = crate::sim::Rng::new(5);
    let names: Vec<String> = (0..3000)
        .map(|_| {
            let n = rng.below(20) as usize;
            (0..n)
                // NUL too: a zero byte must not look like padding.
                .map(|_| ['a', 'b', '\0'][rng.below(3) as usize])
                .collect()
        })
        .collect();
    for a in &names {
        let ka = ShortKey::of(a.as_bytes());
        assert_eq!(ka.is_some(), (1..=16).contains(&a.len()), "{a:?}");
        for b in names.iter().take(300) {
            if let (Some(ka), Some(kb)) = (ka, ShortKey::of(b.as_bytes())) {
                assert_eq!(ka == kb, a == b, "{a:?} {b:?}");
            }
        }
    }
}

#[test]
fn key_and_type_matching_equal_plain_string_matches() {
    let mut words: Vec<String> = (0..18)
        .map(|i| {
            let f = FieldName::from_key_plain(
                [
                    "type",
                    "ts",
                    "server",
                    "id",
                    "session",
                    "user",
                    "site",
                    "os",
                    "app",
                    "setup_ms",
                    "rtt_ms",
                    "jitter_ms",
                    "loss_pct",
                    "reason",
                    "bytes_in",
                    "bytes_out",
                    "capacity",
                    "state",
                ][i],
            )
            .unwrap();
            f.as_str().to_string()
        })
        .collect();
    words.extend(EventType::ALL.iter().map(|t| t.as_str().to_string()));
    // Near misses: every word with one byte changed, cut short, or extended.
    let mut all = words.clone();
    for w in &words {
        for i in 0..w.len() {
            let mut b = w.clone().into_bytes();
            b[i] ^= 1;
            all.push(String::from_utf8(b).unwrap());
            all.push(w[..i].to_string());
        }
        all.push(format!("{w}s"));
    }
    all.extend(["", "x", "TYPE", "tsx", "jitter_mss"].map(String::from));
    // Words of zero bytes: the placeholder value of a hash slot.
    for nul in ["\0", "\0\0\0\0\0\0\0\0"] {
        assert_eq!(FieldName::from_key(nul), None);
    }
    for w in &all {
        assert_eq!(
            FieldName::from_key(w),
            FieldName::from_key_plain(w),
            "{w:?}"
        );
        let plain = EventType::ALL.into_iter().find(|t| t.as_str() == w);
        assert_eq!(EventType::parse(w), plain, "{w:?}");
        // The word path of `Parser::key` (text after the key) and its fallback (none).
        for tail in ["", ":1}", ":\"a much longer value\"}"] {
            let text = format!("\"{w}\"{tail}");
            let mut p = Parser {
                s: text.as_bytes(),
                src: &text,
                i: 0,
            };
            assert_eq!(p.key(), Ok(FieldName::from_key_plain(w)), "{text:?}");
            assert_eq!(p.i, w.len() + 2, "{text:?}");
        }
    }
    // Escaped and unterminated keys.
    for (text, want) in [
        ("\"typ\\u0065\":1", Ok(Some(FieldName::Type))),
        ("\"ty\\\"pe\":1}", Ok(None)),
        ("\"type", Err(())),
        ("\"ty\u{1}pe\":1234567", Err(())),
    ] {
        let mut p = Parser {
            s: text.as_bytes(),
            src: text,
            i: 0,
        };
        assert_eq!(p.key(), want, "{text:?}");
    }
}

/// The decoder's own column vectors give exactly the batch Arrow's builders give, row by
/// row, for events with every field present or absent in runs and alone, empty and non-ASCII
/// strings, at batch sizes from 0 up; and every array passes Arrow's full validation.
#[test]
fn event_columns_equal_arrows_builders() {
    use arrow::array::{Float64Builder, Int64Builder, StringBuilder};
    let mut rng = crate::sim::Rng::new(17);
    let words = [
        "",
        "a",
        "gw-03",
        "sess-000123-7",
        "ünïcödé ☎",
        "a much longer value, past sixteen bytes",
    ];
    for rows in [0usize, 1, 2, 7, 64, 300] {
        let owned: Vec<[String; 8]> = (0..rows)
            .map(|_| std::array::from_fn(|_| words[rng.below(6) as usize].to_string()))
            .collect();
        // Fields come and go in runs (most events lack most fields) and alone.
        let mut present = [true; 16];
        let events: Vec<Event<'_>> = owned
            .iter()
            .map(|w| {
                for p in &mut present {
                    if rng.below(3) == 0 {
                        *p = !*p;
                    }
                }
                let r: [u64; 16] = std::array::from_fn(|_| rng.below(1 << 50));
                let s = |k: usize, i: usize| present[k].then(|| Cow::Borrowed(w[i].as_str()));
                let x = |k: usize| present[k].then(|| (r[k] % 100_000) as f64 / 8.0);
                Event {
                    kind: Some(EventType::ALL[(r[15] % 6) as usize]),
                    ts: (r[14] % (1 << 40)) as i64,
                    server: Cow::Borrowed(w[0].as_str()),
                    id: s(0, 1),
                    session: s(1, 2),
                    user: s(2, 3),
                    site: s(3, 4),
                    os: s(4, 5),
                    app: s(5, 6),
                    setup_ms: x(6),
                    rtt_ms: x(7),
                    jitter_ms: x(8),
                    loss_pct: x(9),
                    reason: s(10, 7),
                    bytes_in: present[11].then_some(r[11] as i64),
                    bytes_out: present[12].then_some((r[12] % 9) as i64),
                    capacity: present[13].then_some((r[13] % 500) as i64),
                    state: present[14].then_some(ServerState::Draining),
                    duration_ms: present[15].then_some((r[12] % 86_400_000) as i64),
                }
            })
            .collect();
        let mut cols = EventColumns::with_capacity(rows / 2);
        for e in &events {
            cols.push(e);
        }
        let got = cols.finish();
        let strs = |f: &dyn Fn(&Event<'_>) -> Option<String>| -> ArrayRef {
            let mut b = StringBuilder::new();
            for e in &events {
                b.append_option(f(e));
            }
            Arc::new(b.finish())
        };
        let floats = |f: &dyn Fn(&Event<'_>) -> Option<f64>| -> ArrayRef {
            let mut b = Float64Builder::new();
            for e in &events {
                b.append_option(f(e));
            }
            Arc::new(b.finish())
        };
        let ints = |f: &dyn Fn(&Event<'_>) -> Option<i64>| -> ArrayRef {
            let mut b = Int64Builder::new();
            for e in &events {
                b.append_option(f(e));
            }
            Arc::new(b.finish())
        };
        let o = |v: &Option<Cow<'_, str>>| v.as_deref().map(str::to_string);
        let want = RecordBatch::try_new(
            events_schema(),
            vec![
                Arc::new(
                    arrow::array::TimestampMillisecondArray::from(
                        events.iter().map(|e| e.ts).collect::<Vec<_>>(),
                    )
                    .with_timezone("UTC"),
                ),
                strs(&|e| Some(e.event_type().as_str().to_string())),
                strs(&|e| Some(e.server.to_string())),
                strs(&|e| o(&e.session)),
                strs(&|e| o(&e.user)),
                strs(&|e| o(&e.site)),
                strs(&|e| o(&e.os)),
                strs(&|e| o(&e.app)),
                floats(&|e| e.setup_ms),
                floats(&|e| e.rtt_ms),
                floats(&|e| e.jitter_ms),
                floats(&|e| e.loss_pct),
                strs(&|e| o(&e.reason)),
                ints(&|e| e.bytes_in),
                ints(&|e| e.bytes_out),
                strs(&|e| o(&e.id)),
                ints(&|e| e.capacity),
                strs(&|e| e.state.map(|s| s.as_str().to_string())),
                ints(&|e| e.duration_ms),
            ],
        )
        .unwrap();
        assert_eq!(got, want, "{rows} rows");
        for c in got.columns() {
            c.to_data().validate_full().unwrap();
        }
        // The engine's builders: the same batch but for empty `type` strings, and an empty
        // `id` string exactly where an id was given; the same types and id hashes beside.
        let mut lean = EventColumns::for_engine(rows / 2);
        let mut full = EventColumns::with_capacity(rows / 2);
        for e in &events {
            lean.push(e);
            full.push(e);
        }
        let (lean, full) = (lean.finish_rows(), full.finish_rows());
        assert!(lean.for_engine && !full.for_engine);
        assert_eq!(lean.kinds, full.kinds);
        assert_eq!(lean.id_hashes, full.id_hashes);
        let mut columns = want.columns().to_vec();
        columns[1] = strs(&|_| Some(String::new()));
        columns[15] = strs(&|e| e.id.as_ref().map(|_| String::new()));
        let want_lean = RecordBatch::try_new(events_schema(), columns).unwrap();
        assert_eq!(lean.batch, want_lean, "{rows} rows, for the engine");
        for c in lean.batch.columns() {
            c.to_data().validate_full().unwrap();
        }
    }
}

#[test]
fn special_byte_scan_matches_a_plain_scan() {
    let mut rng = crate::sim::Rng::new(3);
    let alphabet = [
        b'a', b'"', b'\\', 0x1f, 0x20, 0x7f, 0x80, 0xc3, 0x21, 0x5b, 0x5d, 0x01, 0x00,
    ];
    for round in 0..40_000 {
        let n = rng.below(70) as usize;
        // Dense specials, and sparse ones (found in a later 16-byte block or the tail).
        let one_in = if round % 2 == 0 { 4 } else { 48 };
        let v: Vec<u8> = (0..n)
            .map(|_| {
                if rng.below(one_in) == 0 {
                    alphabet[rng.below(13) as usize]
                } else {
                    b'a' + rng.below(26) as u8
                }
            })
            .collect();
        let plain = v.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        assert_eq!(find_string_special(&v), plain, "{v:?}");
        assert_eq!(find_string_special_swar(&v), plain, "{v:?}");
    }
}

#[test]
fn fast_float_parse_equals_std() {
    let mut rng = crate::sim::Rng::new(11);
    for _ in 0..200_000 {
        let magnitude = rng.below(9) as u32 + 1;
        let int = rng.below(10u64.pow(magnitude));
        let frac_digits = rng.below(8) as usize;
        let frac: String = (0..frac_digits)
            .map(|_| (b'0' + rng.below(10) as u8) as char)
            .collect();
        let text = if frac_digits == 0 {
            int.to_string()
        } else {
            format!("{int}.{frac}")
        };
        assert_eq!(
            parse_f64(&text).unwrap().to_bits(),
            text.parse::<f64>().unwrap().to_bits(),
            "{text}"
        );
    }
    for t in [
        "0",
        "0.1",
        "1e3",
        "-2.5",
        "123456789012345.6",
        "0.30000000000000004",
        "9007199254740993",
    ] {
        assert_eq!(
            parse_f64(t).unwrap().to_bits(),
            t.parse::<f64>().unwrap().to_bits(),
            "{t}"
        );
    }
}

#[test]
fn null_means_absent() {
    let e = decode(br#"{"type":"reject","ts":1,"server":"a","user":null}"#).unwrap();
    assert_eq!(e.user, None);
    assert_eq!(
        reason(r#"{"type":"reject","ts":null,"server":"a"}"#),
        "missing_field:ts"
    );
}

#[test]
fn deep_nesting_does_not_overflow() {
    let deep = format!(
        r#"{{"type":"reject","ts":1,"server":"a","x":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(decode(deep.as_bytes()).is_ok());
    let broken = "[".repeat(100_000);
    assert_eq!(decode(broken.as_bytes()).unwrap_err(), Reason::InvalidJson);
}

#[test]
fn canonical_timestamps_parse_like_the_general_parser() {
    let mut rng = crate::sim::Rng::new(11);
    let mut answered = 0;
    for i in 0..200_000u64 {
        // Mostly plausible dates (some impossible: month 13, 31 April, 29 February), some
        // with a byte replaced by anything.
        let ms = rng.below(MAX_TS_MS as u64 / 1000) as i64 * 1000 + (i % 1000) as i64;
        let mut b = format_rfc3339_ms(ms).into_bytes();
        match rng.below(4) {
            0 => {
                let month = rng.below(14);
                b[5] = b'0' + (month / 10) as u8;
                b[6] = b'0' + (month % 10) as u8;
                b[8] = b'0' + rng.below(4) as u8;
            }
            1 => {
                let at = rng.below(24) as usize;
                b[at] = rng.below(256) as u8;
            }
            _ => {}
        }
        let Ok(text) = std::str::from_utf8(&b) else {
            continue;
        };
        let general = parse_rfc3339_general(text);
        if let Some(fast) = parse_canonical_ms(&b) {
            answered += 1;
            assert_eq!(Some(fast), general, "{text:?}");
        }
        assert_eq!(parse_rfc3339_ms(text), general, "{text:?}");
    }
    assert!(answered > 100_000, "the fast path answered only {answered}");
    // Runs of one date (the per-thread date cache answers), broken by other dates and by
    // impossible ones (never cached).
    for date in [
        "2020-03-17",
        "2020-02-29",
        "2020-02-30",
        "2021-02-29",
        "2020-03-17",
    ] {
        for t in (0..86_400_000i64).step_by(3_600_007) {
            let text = format!("{date}{}", &format_rfc3339_ms(t)[10..]);
            assert_eq!(
                parse_canonical_ms(text.as_bytes()),
                parse_rfc3339_general(&text),
                "{text:?}"
            );
        }
    }
}

#[test]
fn rfc3339_round_trip_and_offsets() {
    assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        parse_rfc3339_ms("2020-03-17T09:30:00+01:00"),
        Some(1_584_433_800_000)
    );
    assert_eq!(
        parse_rfc3339_ms("2020-03-17t08:30:00.123456z"),
        Some(1_584_433_800_123)
    );
    assert_eq!(parse_rfc3339_ms("2020-02-30T00:00:00Z"), None);
    assert_eq!(
        parse_rfc3339_ms("2020-02-29T00:00:00Z")
            .map(format_rfc3339_ms)
            .as_deref(),
        Some("2020-02-29T00:00:00.000Z")
    );
    for ms in [0, 1_584_433_800_123, MAX_TS_MS, 951_782_400_000] {
        assert_eq!(parse_rfc3339_ms(&format_rfc3339_ms(ms)), Some(ms));
    }
}

#[test]
fn columns_build_a_batch() {
    let mut cols = EventColumns::with_capacity(4);
    cols.push(&decode(br#"{"type":"reject","ts":1,"server":"a","reason":"capacity"}"#).unwrap());
    let batch = cols.finish();
    assert_eq!(batch.num_rows(), 1);
    assert_eq!(batch.schema(), events_schema());
    assert!(cols.is_empty());
}

/// Runs of absent fields are appended in bulk: every row still has exactly its own values
/// and nulls, in any pattern of presence, across several batches from one builder.
#[test]
fn columns_hold_each_rows_values_and_nulls() {
    use arrow::array::{Array, Float64Array, Int64Array, StringArray};
    // Columns without a name constant here: 11 loss_pct, 13 bytes_in.
    let mut rng = crate::sim::Rng::new(17);
    let mut cols = EventColumns::with_capacity(8);
    for _ in 0..5 {
        let rows: Vec<Event<'static>> = (0..rng.below(300) as usize)
            .map(|i| {
                let mut some = || rng.below(5) == 0;
                Event {
                    kind: Some(EventType::Latency),
                    ts: i as i64,
                    server: "gw".into(),
                    session: some().then(|| format!("s{i}").into()),
                    user: some().then(|| format!("u{i}").into()),
                    rtt_ms: some().then_some(i as f64),
                    bytes_in: some().then_some(i as i64),
                    capacity: some().then_some(i as i64 + 1),
                    state: some().then_some(ServerState::Down),
                    ..Event::default()
                }
            })
            .collect();
        for e in &rows {
            cols.push(e);
        }
        let b = cols.finish();
        assert_eq!(b.num_rows(), rows.len());
        let s = |c: usize| {
            b.column(c)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone()
        };
        let (session, user, state) = (s(col::SESSION), s(col::USER), s(col::STATE));
        let rtt = b
            .column(col::RTT_MS)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        let i64s = |c: usize| {
            b.column(c)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .clone()
        };
        let (bytes_in, capacity) = (i64s(13), i64s(col::CAPACITY));
        for (i, e) in rows.iter().enumerate() {
            let opt_s = |a: &StringArray| a.is_valid(i).then(|| a.value(i).to_string());
            assert_eq!(
                opt_s(&session),
                e.session.as_ref().map(|v| v.to_string()),
                "row {i}"
            );
            assert_eq!(
                opt_s(&user),
                e.user.as_ref().map(|v| v.to_string()),
                "row {i}"
            );
            assert_eq!(opt_s(&state), e.state.map(|v| v.as_str().to_string()));
            assert_eq!(rtt.is_valid(i).then(|| rtt.value(i)), e.rtt_ms, "row {i}");
            assert_eq!(bytes_in.is_valid(i).then(|| bytes_in.value(i)), e.bytes_in);
            assert_eq!(capacity.is_valid(i).then(|| capacity.value(i)), e.capacity);
        }
        // Columns no row had are all null, and as long as the others.
        assert_eq!(b.column(col::SITE).null_count(), rows.len());
        assert_eq!(b.column(11).null_count(), rows.len());
    }
}
