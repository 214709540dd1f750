//! The JSON scanner: one flat JSON object to an [`Event`], checking each known field's type and
//! range as it reads it, borrowing every string it can. Two ways in: the general parser, and
//! [`decode_str_shaped`], which follows the shape of the record before.
//!
//! Owns: JSON syntax, number and string scanning, the shape cache. Must not touch: what the
//! fields mean past their types and ranges (that is `state`), or Arrow (that is `columns`).

use std::borrow::Cow;

use super::*;

/// The keys of the last record decoded, in order, with the exact bytes before each value.
///
/// A producer writes every event of a kind with the same keys in the same order and the same
/// punctuation, so the next record most likely has them too. [`decode_str_shaped`] then checks
/// each stretch between values with one or two word comparisons and goes straight to the
/// value, instead of skipping whitespace around, reading and looking up every key. A record
/// whose bytes differ anywhere from the shape's is decoded again from its start by the general
/// parser, which then records its shape. Both make the very same calls on each value, so the
/// results are identical (a unit test and the `ndjson_lines` fuzz target compare them).
#[derive(Clone, Default)]
pub struct Shape {
    steps: [ShapeStep; SHAPE_STEPS],
    pub(super) len: usize,
}

/// Before one value: its field and the bytes from the end of the value before (for the first,
/// the record's `{`) up to it, as two little-endian words (the second overlapping the first
/// when the stretch is shorter than 16 bytes).
#[derive(Clone, Copy)]
pub(super) struct ShapeStep {
    field: FieldName,
    len: u8,
    head: u64,
    tail: u64,
}

impl Default for ShapeStep {
    fn default() -> Self {
        ShapeStep {
            field: FieldName::Type,
            len: 0,
            head: 0,
            tail: 0,
        }
    }
}

/// Records with more keys than this (or a stretch between values longer than 16 bytes, or a
/// key gatewatch does not know) are not recorded: they keep the general parser.
pub(super) const SHAPE_STEPS: usize = 20;

impl ShapeStep {
    /// The step for the bytes `lit` (1 to 16 of them) before a value of `field`.
    fn new(field: FieldName, lit: &[u8]) -> Option<ShapeStep> {
        if lit.is_empty() || lit.len() > 16 {
            return None;
        }
        let (head, tail) = words(lit);
        Some(ShapeStep {
            field,
            len: lit.len() as u8,
            head,
            tail,
        })
    }

    /// Whether `at` starts with this step's bytes: two fixed 8-byte loads (one, masked, for a
    /// stretch under 8 bytes), unless the record ends within 8 bytes.
    #[inline(always)]
    fn matches(&self, at: &[u8]) -> bool {
        let n = self.len as usize;
        let load = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
        if n >= 8 {
            match (at.get(..8), at.get(n - 8..n)) {
                (Some(head), Some(tail)) => load(head) == self.head && load(tail) == self.tail,
                _ => false,
            }
        } else if let Some(head) = at.get(..8) {
            load(head) & ((1u64 << (8 * n)) - 1) == self.head
        } else {
            at.get(..n)
                .is_some_and(|lit| words(lit) == (self.head, self.tail))
        }
    }
}

/// 1 to 16 bytes as two words: the first up to 8 bytes, and the last up to 8 (overlapping).
#[inline(always)]
pub(super) fn words(lit: &[u8]) -> (u64, u64) {
    let word = |b: &[u8]| {
        let mut w = [0u8; 8];
        w[..b.len()].copy_from_slice(b);
        u64::from_le_bytes(w)
    };
    if lit.len() >= 8 {
        (word(&lit[..8]), word(&lit[lit.len() - 8..]))
    } else {
        (word(lit), 0)
    }
}

/// [`decode_str_into`], guided by the shape of the record before (see [`Shape`]), which it
/// updates.
pub fn decode_str_shaped<'a>(
    text: &'a str,
    ev: &mut Event<'a>,
    shape: &mut Shape,
) -> Result<(), Reason> {
    if shape.len > 0 {
        if let Some(result) = decode_as_shaped(text, ev, shape) {
            return result;
        }
    }
    decode_general(text, ev, Some(shape))
}

/// The record decoded along `shape`, or `None` where its bytes leave the shape (nothing of
/// the attempt is kept: the caller starts again).
#[inline]
pub(super) fn decode_as_shaped<'a>(
    text: &'a str,
    ev: &mut Event<'a>,
    shape: &Shape,
) -> Option<Result<(), Reason>> {
    let mut p = Parser {
        s: text.as_bytes(),
        src: text,
        i: 0,
    };
    *ev = Event::default();
    let mut found = FieldsSeen::default();
    p.ws();
    for step in &shape.steps[..shape.len] {
        if !step.matches(&p.s[p.i..]) {
            return None;
        }
        p.i += step.len as usize;
        // The general parser would skip more whitespace before the value than the shape holds.
        if p.peek().is_some_and(is_json_ws) {
            return None;
        }
        match p.field(step.field, ev, &mut found) {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => {
                found.first_err.get_or_insert(reason);
            }
            // Malformed where the general parser would find it malformed too; but let it say
            // so, from the start.
            Err(_) => return None,
        }
    }
    p.ws();
    if p.next() != Some(b'}') {
        return None;
    }
    p.ws();
    if p.i != p.s.len() {
        return None;
    }
    Some(finish_event(ev, found))
}

/// The general parser; records the record's shape into `shape` when given one and the record
/// has one (see [`Shape`]).
pub(super) fn decode_general<'a>(
    text: &'a str,
    ev: &mut Event<'a>,
    mut shape: Option<&mut Shape>,
) -> Result<(), Reason> {
    let mut p = Parser {
        s: text.as_bytes(),
        src: text,
        i: 0,
    };
    // The shape is recorded in place and stands only once the record turned out well formed.
    if let Some(shape) = shape.as_deref_mut() {
        shape.len = 0;
    }
    let mut recording = shape.is_some();
    let mut n_steps = 0usize;
    p.ws();
    if p.peek() != Some(b'{') {
        // Distinguish "valid JSON that is not an object" from garbage.
        return match p.skip_value() {
            Ok(()) => {
                p.ws();
                if p.i == p.s.len() {
                    Err(Reason::NotAnObject)
                } else {
                    Err(Reason::InvalidJson)
                }
            }
            Err(()) => Err(Reason::InvalidJson),
        };
    }
    let mut stretch_start = p.i;
    p.i += 1;
    *ev = Event::default();
    let mut found = FieldsSeen::default();

    p.ws();
    if p.peek() == Some(b'}') {
        p.i += 1;
        recording = false;
    } else {
        loop {
            p.ws();
            let key = p.key().map_err(|_| Reason::InvalidJson)?;
            p.ws();
            if p.next() != Some(b':') {
                return Err(Reason::InvalidJson);
            }
            p.ws();
            if let (true, Some(shape)) = (recording, shape.as_deref_mut()) {
                let step = key.and_then(|f| ShapeStep::new(f, &p.s[stretch_start..p.i]));
                match step {
                    Some(step) if n_steps < SHAPE_STEPS => {
                        shape.steps[n_steps] = step;
                        n_steps += 1;
                    }
                    _ => recording = false,
                }
            }
            match key {
                None => p.skip_value().map_err(|_| Reason::InvalidJson)?,
                Some(field) => {
                    let r = p.field(field, ev, &mut found)?;
                    if let Err(reason) = r {
                        found.first_err.get_or_insert(reason);
                    }
                }
            }
            stretch_start = p.i;
            p.ws();
            match p.next() {
                Some(b',') => continue,
                Some(b'}') => break,
                _ => return Err(Reason::InvalidJson),
            }
        }
    }
    p.ws();
    if p.i != p.s.len() {
        return Err(Reason::InvalidJson);
    }
    // Only a well-formed record teaches its shape: one that is not would be decoded again
    // by the general parser anyway.
    if let (true, Some(shape)) = (recording, shape) {
        shape.len = n_steps;
    }
    finish_event(ev, found)
}

/// What a record's values leave for the checks after its last key: the required fields, kept
/// apart from the event until then, and the first field-level problem (reported only if the
/// JSON as a whole is well formed).
#[derive(Default)]
pub(super) struct FieldsSeen<'a> {
    server: Option<Cow<'a, str>>,
    ts: Option<i64>,
    type_str: Option<Cow<'a, str>>,
    first_err: Option<Reason>,
}

/// JSON's insignificant whitespace.
#[inline(always)]
pub(super) fn is_json_ws(c: u8) -> bool {
    c == b' ' || c == b'\t' || c == b'\n' || c == b'\r'
}

/// The checks after the last key: required fields, in a fixed order so a reason is stable.
#[inline(always)]
pub(super) fn finish_event<'a>(ev: &mut Event<'a>, found: FieldsSeen<'a>) -> Result<(), Reason> {
    let FieldsSeen {
        server,
        ts,
        type_str,
        first_err,
    } = found;
    // Required fields, in a fixed order so a reason is stable.
    let Some(type_str) = type_str else {
        return Err(first_err.unwrap_or(Reason::MissingField(FieldName::Type)));
    };
    if let Some(e) = first_err {
        return Err(e);
    }
    let kind = EventType::parse(&type_str).ok_or(Reason::UnknownType)?;
    ev.kind = Some(kind);
    ev.ts = ts.ok_or(Reason::MissingField(FieldName::Ts))?;
    ev.server = server.ok_or(Reason::MissingField(FieldName::Server))?;
    match kind {
        EventType::Connect | EventType::Disconnect => {
            if ev.session.is_none() {
                return Err(Reason::MissingField(FieldName::Session));
            }
        }
        EventType::Latency => {
            if ev.session.is_none() {
                return Err(Reason::MissingField(FieldName::Session));
            }
            if ev.rtt_ms.is_none() {
                return Err(Reason::MissingField(FieldName::RttMs));
            }
        }
        EventType::AuthFail | EventType::Reject | EventType::Server => {}
    }
    Ok(())
}

/// What a JSON value turned out to be, for type checks.
pub(super) enum Scalar<'a> {
    Str(Cow<'a, str>),
    Num { text: &'a str, integer: bool },
    Null,
    Other,
}

pub(super) struct Parser<'a> {
    pub(super) s: &'a [u8],
    pub(super) src: &'a str,
    pub(super) i: usize,
}

impl<'a> Parser<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let c = self.s.get(self.i).copied();
        self.i += 1;
        c
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(&c) = self.s.get(self.i) {
            if is_json_ws(c) {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    /// Parses one known field into `ev`. The outer `Err` is malformed JSON (fatal); the inner
    /// `Err` is a type or range problem with this field (the rest is still parsed).
    fn field(
        &mut self,
        field: FieldName,
        ev: &mut Event<'a>,
        found: &mut FieldsSeen<'a>,
    ) -> Result<Result<(), Reason>, Reason> {
        let v = self
            .scalar()
            .map_err(|_| crate::event::Reason::InvalidJson)?;
        let bad_type = Err(crate::event::Reason::BadType(field));
        let bad_value = Err(crate::event::Reason::BadValue(field));
        // `null` means absent for every field; a required one is then reported missing.
        if let Scalar::Null = v {
            return Ok(Ok(()));
        }
        use FieldName::*;
        Ok(match field {
            Type => match v {
                Scalar::Str(s) => {
                    found.type_str = Some(s);
                    Ok(())
                }
                _ => bad_type,
            },
            Ts => match v {
                Scalar::Str(s) => match parse_rfc3339_ms(&s) {
                    Some(t) if (0..=MAX_TS_MS).contains(&t) => {
                        found.ts = Some(t);
                        Ok(())
                    }
                    _ => bad_value,
                },
                Scalar::Num { text, integer } => match parse_integer(text, integer) {
                    Some(t) if (0..=MAX_TS_MS).contains(&t) => {
                        found.ts = Some(t);
                        Ok(())
                    }
                    Some(_) => bad_value,
                    None => bad_type,
                },
                _ => bad_type,
            },
            Server | Session | Id => match v {
                Scalar::Str(s) if s.is_empty() => bad_value,
                Scalar::Str(s) => {
                    match field {
                        Server => found.server = Some(s),
                        Session => ev.session = Some(s),
                        _ => ev.id = Some(s),
                    }
                    Ok(())
                }
                _ => bad_type,
            },
            User | Site | Os | App | Reason => match v {
                Scalar::Str(s) => {
                    let slot = match field {
                        User => &mut ev.user,
                        Site => &mut ev.site,
                        Os => &mut ev.os,
                        App => &mut ev.app,
                        _ => &mut ev.reason,
                    };
                    *slot = Some(s);
                    Ok(())
                }
                _ => bad_type,
            },
            SetupMs | RttMs | JitterMs | LossPct => match v {
                Scalar::Num { text, .. } => match parse_f64(text) {
                    Ok(x) if x >= 0.0 && x <= max_of(field) => {
                        let slot = match field {
                            SetupMs => &mut ev.setup_ms,
                            RttMs => &mut ev.rtt_ms,
                            JitterMs => &mut ev.jitter_ms,
                            _ => &mut ev.loss_pct,
                        };
                        *slot = Some(x);
                        Ok(())
                    }
                    _ => bad_value,
                },
                _ => bad_type,
            },
            BytesIn | BytesOut | Capacity | DurationMs => match v {
                Scalar::Num { text, integer } => match parse_integer(text, integer) {
                    Some(n)
                        if (field == DurationMs && (0..=MAX_TS_MS).contains(&n))
                            || (!matches!(field, Capacity | DurationMs) && n >= 0)
                            || (n > 0 && n <= MAX_CAPACITY) =>
                    {
                        match field {
                            BytesIn => ev.bytes_in = Some(n),
                            BytesOut => ev.bytes_out = Some(n),
                            DurationMs => ev.duration_ms = Some(n),
                            _ => ev.capacity = Some(n),
                        }
                        Ok(())
                    }
                    Some(_) => bad_value,
                    None => bad_type,
                },
                _ => bad_type,
            },
            State => match v {
                Scalar::Str(s) => match ServerState::parse(&s) {
                    Some(st) => {
                        ev.state = Some(st);
                        Ok(())
                    }
                    None => bad_value,
                },
                _ => bad_type,
            },
        })
    }

    /// Reads a value; strings and numbers are returned, anything else is skipped (validated).
    fn scalar(&mut self) -> Result<Scalar<'a>, ()> {
        match self.peek() {
            Some(b'"') => Ok(Scalar::Str(self.string()?)),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.i;
                let integer = self.number()?;
                Ok(Scalar::Num {
                    text: &self.src[start..self.i],
                    integer,
                })
            }
            Some(b'n') => {
                self.literal(b"null")?;
                Ok(Scalar::Null)
            }
            _ => {
                self.skip_value()?;
                Ok(Scalar::Other)
            }
        }
    }

    fn literal(&mut self, lit: &[u8]) -> Result<(), ()> {
        if self.s[self.i..].starts_with(lit) {
            self.i += lit.len();
            Ok(())
        } else {
            Err(())
        }
    }

    /// JSON number grammar; returns whether it was written as an integer.
    fn number(&mut self) -> Result<bool, ()> {
        let mut integer = true;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.i += 1;
                }
            }
            _ => return Err(()),
        }
        if self.peek() == Some(b'.') {
            integer = false;
            self.i += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(());
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            integer = false;
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(());
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
        }
        Ok(integer)
    }

    /// An object key at the cursor and the known field it names (`None`: a key gatewatch
    /// ignores). A key of up to 8 plain bytes (every key of the schema but `jitter_ms` and
    /// `bytes_out`) is read as one word and matched as an integer; any other key, escapes
    /// included, goes through [`Parser::string`] and [`FieldName::from_key`].
    #[inline]
    pub(super) fn key(&mut self) -> Result<Option<FieldName>, ()> {
        // The opening quote, 8 bytes, and the byte after them.
        if let Some(&[b'"', ref rest @ ..]) = self.s.get(self.i..self.i + 10) {
            let word = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes"));
            let flags = special_flags(word);
            let n = if flags == 0 {
                8
            } else {
                (flags.trailing_zeros() / 8) as usize
            };
            if rest[n] == b'"' {
                let key = if n == 8 {
                    word
                } else {
                    word & ((1u64 << (8 * n)) - 1)
                };
                self.i += n + 2;
                return Ok(if n == 0 {
                    None
                } else {
                    FieldName::from_word(key)
                });
            }
        }
        let key = self.string()?;
        Ok(FieldName::from_key(&key))
    }

    /// A JSON string at the cursor; borrowed unless it has escapes. Small enough to inline:
    /// only the scan to the closing quote; escapes go to [`Parser::escaped_string`].
    #[inline(always)]
    fn string(&mut self) -> Result<Cow<'a, str>, ()> {
        if self.next() != Some(b'"') {
            return Err(());
        }
        let start = self.i;
        // Fast path: the closing quote, with no escape or control character before it.
        let rest = &self.s[start..];
        let k = find_string_special(rest).ok_or(())?;
        if rest[k] == b'"' {
            self.i = start + k + 1;
            return Ok(Cow::Borrowed(&self.src[start..start + k]));
        }
        self.escaped_string(start, start + k)
    }

    /// The rest of a string whose first special byte (at `special`) was not its closing quote.
    #[cold]
    #[inline(never)]
    fn escaped_string(&mut self, start: usize, special: usize) -> Result<Cow<'a, str>, ()> {
        if self.s[special] != b'\\' {
            return Err(());
        }
        self.i = special;
        let mut out = String::with_capacity(self.i - start + 16);
        out.push_str(&self.src[start..self.i]);
        loop {
            let c = *self.s.get(self.i).ok_or(())?;
            match c {
                b'"' => {
                    self.i += 1;
                    return Ok(Cow::Owned(out));
                }
                b'\\' => {
                    self.i += 1;
                    let e = *self.s.get(self.i).ok_or(())?;
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let ch = if (0xD800..0xDC00).contains(&hi) {
                                if self.s.get(self.i..self.i + 2) != Some(b"\\u") {
                                    return Err(());
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(());
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else if (0xDC00..0xE000).contains(&hi) {
                                return Err(());
                            } else {
                                hi
                            };
                            out.push(char::from_u32(ch).ok_or(())?);
                        }
                        _ => return Err(()),
                    }
                }
                c if c < 0x20 => return Err(()),
                _ => {
                    // Copy a run of plain bytes at once; the input is valid UTF-8 and the run
                    // stops only at ASCII bytes, so it ends on a char boundary.
                    let run_start = self.i;
                    while let Some(&c) = self.s.get(self.i) {
                        if c == b'"' || c == b'\\' || c < 0x20 {
                            break;
                        }
                        self.i += 1;
                    }
                    out.push_str(&self.src[run_start..self.i]);
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, ()> {
        let h = self.s.get(self.i..self.i + 4).ok_or(())?;
        let mut v = 0u32;
        for &c in h {
            v = v * 16
                + match c {
                    b'0'..=b'9' => c - b'0',
                    b'a'..=b'f' => c - b'a' + 10,
                    b'A'..=b'F' => c - b'A' + 10,
                    _ => return Err(()),
                } as u32;
        }
        self.i += 4;
        Ok(v)
    }

    /// Skips any JSON value, validating it. Nesting is iterative so hostile input cannot
    /// overflow the stack.
    fn skip_value(&mut self) -> Result<(), ()> {
        // Stack of open containers: true = object, false = array.
        let mut stack: Vec<bool> = Vec::new();
        loop {
            self.ws();
            // A value.
            match self.peek().ok_or(())? {
                b'"' => {
                    self.string()?;
                }
                b'-' | b'0'..=b'9' => {
                    self.number()?;
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'[' => {
                    self.i += 1;
                    self.ws();
                    if self.peek() == Some(b']') {
                        self.i += 1;
                    } else {
                        stack.push(false);
                        continue;
                    }
                }
                b'{' => {
                    self.i += 1;
                    self.ws();
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                    } else {
                        stack.push(true);
                        self.string()?;
                        self.ws();
                        if self.next() != Some(b':') {
                            return Err(());
                        }
                        continue;
                    }
                }
                _ => return Err(()),
            }
            // After a value: close containers or move to the next element.
            loop {
                let Some(&is_obj) = stack.last() else {
                    return Ok(());
                };
                self.ws();
                match self.next() {
                    Some(b',') => {
                        if is_obj {
                            self.ws();
                            self.string()?;
                            self.ws();
                            if self.next() != Some(b':') {
                                return Err(());
                            }
                        }
                        break;
                    }
                    Some(b'}') if is_obj => {
                        stack.pop();
                    }
                    Some(b']') if !is_obj => {
                        stack.pop();
                    }
                    _ => return Err(()),
                }
            }
        }
    }
}

/// Index of the first `"`, `\\` or control byte (< 0x20): sixteen bytes at a time with SSE2
/// (part of every x86-64), then eight at a time (see [`find_string_special_swar`]).
#[inline]
pub(super) fn find_string_special(s: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8,
            _mm_or_si128, _mm_set1_epi8,
        };
        let mut i = 0;
        while i + 16 <= s.len() {
            // SAFETY: SSE2 is in the x86-64 baseline; the unaligned load reads s[i..i + 16],
            // which the loop condition keeps inside `s`.
            let mask = unsafe {
                let v = _mm_loadu_si128(s.as_ptr().add(i).cast::<__m128i>());
                let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
                let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
                // Unsigned v <= 0x1f exactly when min(v, 0x1f) == v.
                let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
                _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
            };
            if mask != 0 {
                return Some(i + mask.trailing_zeros() as usize);
            }
            i += 16;
        }
        find_string_special_swar(&s[i..]).map(|k| i + k)
    }
    #[cfg(not(target_arch = "x86_64"))]
    find_string_special_swar(s)
}

/// [`find_string_special`] eight bytes at a time: for each special kind,
/// `(x - 0x01..) & !x & 0x80..` flags zero bytes of `x`; only flags above the first true match
/// can be spurious (borrows travel upwards), so the lowest flag is exact.
#[inline]
pub(super) fn find_string_special_swar(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 8 <= s.len() {
        let w = u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes"));
        let flags = special_flags(w);
        if flags != 0 {
            return Some(i + (flags.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    s[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|k| i + k)
}

/// The high bit of every byte of `w` (little-endian) that is `"`, `\\` or a control byte; only
/// the lowest flag is exact (see [`find_string_special`]).
#[inline]
pub(super) fn special_flags(w: u64) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let q = w ^ (LO * b'"' as u64);
    let b = w ^ (LO * b'\\' as u64);
    (q.wrapping_sub(LO) & !q | b.wrapping_sub(LO) & !b | w.wrapping_sub(LO * 0x20) & !w) & HI
}

pub(super) const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// A JSON number as f64. Plain decimals with at most 15 digits (`38.2`, `1450.5`) take Clinger's
/// fast path: the digits as an integer (exact below 2^53) divided by an exact power of ten is
/// correctly rounded, so the result equals `str::parse`. Anything else goes to `str::parse`.
pub(super) fn parse_f64(text: &str) -> Result<f64, std::num::ParseFloatError> {
    let b = text.as_bytes();
    let (mut mantissa, mut digits, mut frac) = (0u64, 0u32, None::<u32>);
    for &c in b {
        match c {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + (c - b'0') as u64;
                digits += 1;
                if let Some(f) = frac.as_mut() {
                    *f += 1;
                }
            }
            b'.' if frac.is_none() => frac = Some(0),
            _ => return text.parse(),
        }
        if digits > 15 {
            return text.parse();
        }
    }
    // Through i64: at most 15 digits fit, and baseline x86-64 converts signed integers in one
    // instruction (unsigned takes four).
    Ok(mantissa as i64 as f64 / POW10[frac.unwrap_or(0) as usize])
}

/// The largest value of a float field: `loss_pct` is a percentage, the others latencies.
pub(super) fn max_of(field: FieldName) -> f64 {
    match field {
        FieldName::LossPct => 100.0,
        _ => MAX_LATENCY_MS,
    }
}

/// An integer field: integer syntax, or a float with no fractional part (`1e3`).
pub(super) fn parse_integer(text: &str, integer: bool) -> Option<i64> {
    if integer {
        return text.parse::<i64>().ok();
    }
    let x: f64 = text.parse().ok()?;
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        Some(x as i64)
    } else {
        None
    }
}
