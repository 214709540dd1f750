//! The event model and its decoder: bytes -> [`Event`] or [`Reason`]. Pure, no I/O.
//!
//! Owns: the input schema of DESIGN §1 (field names, types, ranges, required fields), the stable
//! rejection reason codes, and the Arrow schema of the `events` table with its columnar builder.
//! Must not touch: sessions, time windows, lateness or duplicates (that is `state`), Kafka or files.
//!
//! The decoder is the hot path. It is a hand-written scanner for one flat JSON object that borrows
//! every string from the input (a string is copied only when it contains an escape), skips unknown
//! fields without building them, and checks each known field's type and range as it goes, so that
//! a rejected line gets a precise reason (`bad_type:rtt_ms`) rather than a parser's prose.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{
    DataType, Field, Float64Type, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMillisecondType,
};

/// The six event types of DESIGN §1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// A session opened.
    Connect,
    /// A session closed.
    Disconnect,
    /// A round-trip-time (and optionally jitter/loss) sample of a session.
    Latency,
    /// A token/OTP check failed.
    AuthFail,
    /// The gateway refused a connection (capacity, licence…).
    Reject,
    /// A server announcement: capacity and/or state.
    Server,
}

impl EventType {
    /// All types, in declaration order (`as usize` indexes this).
    pub const ALL: [EventType; 6] = [
        EventType::Connect,
        EventType::Disconnect,
        EventType::Latency,
        EventType::AuthFail,
        EventType::Reject,
        EventType::Server,
    ];

    /// The wire name, as in the `type` field and the `events.type` column.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Connect => "connect",
            EventType::Disconnect => "disconnect",
            EventType::Latency => "latency",
            EventType::AuthFail => "auth_fail",
            EventType::Reject => "reject",
            EventType::Server => "server",
        }
    }

    /// Parses a wire name, compared as a [`ShortKey`] (this runs once per event).
    pub fn parse(s: &str) -> Option<Self> {
        const CONNECT: ShortKey = ShortKey::known("connect");
        const DISCONNECT: ShortKey = ShortKey::known("disconnect");
        const LATENCY: ShortKey = ShortKey::known("latency");
        const AUTH_FAIL: ShortKey = ShortKey::known("auth_fail");
        const REJECT: ShortKey = ShortKey::known("reject");
        const SERVER: ShortKey = ShortKey::known("server");
        Some(match ShortKey::of(s.as_bytes())? {
            LATENCY => EventType::Latency,
            CONNECT => EventType::Connect,
            DISCONNECT => EventType::Disconnect,
            AUTH_FAIL => EventType::AuthFail,
            REJECT => EventType::Reject,
            SERVER => EventType::Server,
            _ => return None,
        })
    }
}

/// A server's announced state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerState {
    /// Accepting sessions.
    Up,
    /// Finishing its sessions, taking no new ones.
    Draining,
    /// Gone: every session on it ends (`server_down`).
    Down,
}

impl ServerState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerState::Up => "up",
            ServerState::Draining => "draining",
            ServerState::Down => "down",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "up" => ServerState::Up,
            "draining" => ServerState::Draining,
            "down" => ServerState::Down,
            _ => return None,
        })
    }
}

/// The known input fields, for reason codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum FieldName {
    Type,
    Ts,
    Server,
    Id,
    Session,
    User,
    Site,
    Os,
    App,
    SetupMs,
    RttMs,
    JitterMs,
    LossPct,
    Reason,
    BytesIn,
    BytesOut,
    Capacity,
    State,
}

impl FieldName {
    /// The JSON key.
    pub fn as_str(self) -> &'static str {
        use FieldName::*;
        match self {
            Type => "type",
            Ts => "ts",
            Server => "server",
            Id => "id",
            Session => "session",
            User => "user",
            Site => "site",
            Os => "os",
            App => "app",
            SetupMs => "setup_ms",
            RttMs => "rtt_ms",
            JitterMs => "jitter_ms",
            LossPct => "loss_pct",
            Reason => "reason",
            BytesIn => "bytes_in",
            BytesOut => "bytes_out",
            Capacity => "capacity",
            State => "state",
        }
    }

    /// The field named by a JSON key. The decoder's hot path reads keys of up to 8 bytes as
    /// a word itself ([`Parser::key`]); this is the same table for any key.
    pub fn from_key(k: &str) -> Option<Self> {
        match k.len() {
            1..=8 => Self::from_word(le_word(k.as_bytes())),
            // The schema's only longer keys.
            9 => match k {
                "jitter_ms" => Some(FieldName::JitterMs),
                "bytes_out" => Some(FieldName::BytesOut),
                _ => None,
            },
            _ => None,
        }
    }

    /// The field named by a key of at most 8 bytes, given as its bytes in a little-endian word
    /// padded with zeros: a perfect hash of the word picks the one slot it can be in, and one
    /// comparison decides. (A `match` on the sixteen words was a tree of comparisons per key of
    /// every event, its branches taken differently key after key.)
    #[inline]
    fn from_word(w: u64) -> Option<Self> {
        let (word, field) = KEY_SLOTS[key_slot(w)];
        if word == w {
            Some(field)
        } else {
            None
        }
    }

    /// [`FieldName::from_key`] written as a plain `match` on strings: the reference the fast
    /// version is tested against.
    #[cfg(test)]
    fn from_key_plain(k: &str) -> Option<Self> {
        use FieldName::*;
        Some(match k {
            "type" => Type,
            "ts" => Ts,
            "server" => Server,
            "id" => Id,
            "session" => Session,
            "user" => User,
            "site" => Site,
            "os" => Os,
            "app" => App,
            "setup_ms" => SetupMs,
            "rtt_ms" => RttMs,
            "jitter_ms" => JitterMs,
            "loss_pct" => LossPct,
            "reason" => Reason,
            "bytes_in" => BytesIn,
            "bytes_out" => BytesOut,
            "capacity" => Capacity,
            "state" => State,
            _ => return None,
        })
    }
}

/// Multiplier of the perfect hash of the schema's keys of up to 8 bytes (found by search): the
/// top four bits of `word * KEY_HASH` differ for all sixteen of them.
const KEY_HASH: u64 = 0x1cca_8aee_aa0d_1d77;

#[inline]
const fn key_slot(word: u64) -> usize {
    (word.wrapping_mul(KEY_HASH) >> 60) as usize
}

/// Each key word of up to 8 bytes in its slot, with its field. The two 9-byte keys
/// (`jitter_ms`, `bytes_out`) are never a word. Built at compile time; a collision fails the
/// build.
const KEY_SLOTS: [(u64, FieldName); 16] = {
    use FieldName::*;
    let keys: [(&str, FieldName); 16] = [
        ("type", Type),
        ("ts", Ts),
        ("server", Server),
        ("id", Id),
        ("session", Session),
        ("user", User),
        ("site", Site),
        ("os", Os),
        ("app", App),
        ("setup_ms", SetupMs),
        ("rtt_ms", RttMs),
        ("loss_pct", LossPct),
        ("reason", Reason),
        ("bytes_in", BytesIn),
        ("capacity", Capacity),
        ("state", State),
    ];
    // Sixteen keys in sixteen slots: every slot is filled (checked below), so no word can
    // match a placeholder.
    let mut slots = [(0u64, Type); 16];
    let mut i = 0;
    while i < keys.len() {
        let w = le_word(keys[i].0.as_bytes());
        let at = key_slot(w);
        assert!(
            slots[at].0 == 0,
            "KEY_HASH must give every key its own slot"
        );
        slots[at] = (w, keys[i].1);
        i += 1;
    }
    let mut at = 0;
    while at < slots.len() {
        assert!(slots[at].0 != 0, "every slot holds a key");
        at += 1;
    }
    slots
};

/// A string of 1 to 16 bytes packed into integers: two keys are equal exactly when the strings
/// are, so short names (event types, server ids) compare with integer comparisons
/// instead of `memcmp` calls. From 4 bytes up, two overlapping loads (the first and the last
/// bytes) cover the string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShortKey(u64, u64, usize);

impl ShortKey {
    /// The key of `b`, if it is 1 to 16 bytes long.
    #[inline]
    pub const fn of(b: &[u8]) -> Option<ShortKey> {
        let n = b.len();
        if n == 0 || n > 16 {
            return None;
        }
        Some(if n >= 8 {
            ShortKey(le_u64(b, 0), le_u64(b, n - 8), n)
        } else if n >= 4 {
            ShortKey(le_u32(b, 0), le_u32(b, n - 4), n)
        } else {
            let (mut w, mut i) = (0u64, 0);
            while i < n {
                w = w << 8 | b[i] as u64;
                i += 1;
            }
            ShortKey(w, 0, n)
        })
    }

    /// The key of a constant (compile time).
    const fn known(s: &str) -> ShortKey {
        match ShortKey::of(s.as_bytes()) {
            Some(k) => k,
            None => panic!("a known name is 1 to 16 bytes"),
        }
    }
}

/// Up to 8 bytes as a little-endian word padded with zeros.
#[inline]
const fn le_word(b: &[u8]) -> u64 {
    let mut w = 0u64;
    let mut i = b.len();
    while i > 0 {
        i -= 1;
        w = w << 8 | b[i] as u64;
    }
    w
}

#[inline]
const fn le_u64(b: &[u8], i: usize) -> u64 {
    u64::from_le_bytes([
        b[i],
        b[i + 1],
        b[i + 2],
        b[i + 3],
        b[i + 4],
        b[i + 5],
        b[i + 6],
        b[i + 7],
    ])
}

#[inline]
const fn le_u32(b: &[u8], i: usize) -> u64 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as u64
}

/// Why an input was rejected. Its [`Display`](fmt::Display) is the stable reason code that goes to
/// the dead-letter record, the counters and the docs (`missing_field:ts`, `late`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The bytes are not UTF-8.
    InvalidUtf8,
    /// Not JSON at all, or JSON with trailing garbage.
    InvalidJson,
    /// Valid JSON, but not an object.
    NotAnObject,
    /// A required field is absent (or `null`).
    MissingField(FieldName),
    /// A field has the wrong JSON type.
    BadType(FieldName),
    /// A field has the right type but a value out of range or not allowed.
    BadValue(FieldName),
    /// `type` is not one of the six known types.
    UnknownType,
    /// The line is longer than the reader accepts.
    LineTooLong,
    /// Older than the newest event of its server by more than `allowed_lateness`.
    Late,
    /// Too far ahead of the wall clock (`input.max_clock_skew`, live service) or of the rest
    /// of the stream (`input.max_lead`): a gateway's clock that cannot be believed.
    Future,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::InvalidUtf8 => f.write_str("invalid_utf8"),
            Reason::InvalidJson => f.write_str("invalid_json"),
            Reason::NotAnObject => f.write_str("not_an_object"),
            Reason::MissingField(x) => write!(f, "missing_field:{}", x.as_str()),
            Reason::BadType(x) => write!(f, "bad_type:{}", x.as_str()),
            Reason::BadValue(x) => write!(f, "bad_value:{}", x.as_str()),
            Reason::UnknownType => f.write_str("unknown_type"),
            Reason::LineTooLong => f.write_str("line_too_long"),
            Reason::Late => f.write_str("late"),
            Reason::Future => f.write_str("future"),
        }
    }
}

impl Reason {
    /// The reason a code names (the inverse of `Display`).
    pub fn parse(code: &str) -> Option<Reason> {
        Some(match code {
            "invalid_utf8" => Reason::InvalidUtf8,
            "invalid_json" => Reason::InvalidJson,
            "not_an_object" => Reason::NotAnObject,
            "unknown_type" => Reason::UnknownType,
            "line_too_long" => Reason::LineTooLong,
            "late" => Reason::Late,
            "future" => Reason::Future,
            _ => {
                let (kind, field) = code.split_once(':')?;
                let field = FieldName::from_key(field)?;
                match kind {
                    "missing_field" => Reason::MissingField(field),
                    "bad_type" => Reason::BadType(field),
                    "bad_value" => Reason::BadValue(field),
                    _ => return None,
                }
            }
        })
    }
}

/// One decoded event. Strings borrow from the input unless they contained escapes.
#[derive(Debug, Clone, PartialEq, Default)]
#[allow(missing_docs)]
pub struct Event<'a> {
    pub kind: Option<EventType>,
    /// Event time, epoch milliseconds (UTC).
    pub ts: i64,
    pub server: Cow<'a, str>,
    pub id: Option<Cow<'a, str>>,
    pub session: Option<Cow<'a, str>>,
    pub user: Option<Cow<'a, str>>,
    pub site: Option<Cow<'a, str>>,
    pub os: Option<Cow<'a, str>>,
    pub app: Option<Cow<'a, str>>,
    pub setup_ms: Option<f64>,
    pub rtt_ms: Option<f64>,
    pub jitter_ms: Option<f64>,
    pub loss_pct: Option<f64>,
    pub reason: Option<Cow<'a, str>>,
    pub bytes_in: Option<i64>,
    pub bytes_out: Option<i64>,
    pub capacity: Option<i64>,
    pub state: Option<ServerState>,
}

impl Event<'_> {
    /// The event type (always set on a successfully decoded event).
    pub fn event_type(&self) -> EventType {
        self.kind.unwrap_or(EventType::Server)
    }
}

/// The largest event time accepted: 9999-12-31T23:59:59.999Z.
pub const MAX_TS_MS: i64 = 253_402_300_799_999;

/// Decodes one NDJSON line or Kafka message payload.
pub fn decode(bytes: &[u8]) -> Result<Event<'_>, Reason> {
    let text = std::str::from_utf8(bytes).map_err(|_| Reason::InvalidUtf8)?;
    decode_str(text)
}

/// [`decode`] of text already known to be UTF-8 (the NDJSON reader checks a whole block at once,
/// which is several times cheaper than checking line by line).
pub fn decode_str(text: &str) -> Result<Event<'_>, Reason> {
    let mut ev = Event::default();
    decode_str_into(text, &mut ev)?;
    Ok(ev)
}

/// [`decode_str`] into `ev`, which is overwritten (and left unspecified on an error). Decoding
/// many records into one `Event` saves returning the ~320-byte struct by copy each time.
pub fn decode_str_into<'a>(text: &'a str, ev: &mut Event<'a>) -> Result<(), Reason> {
    decode_general(text, ev, None)
}

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
    len: usize,
}

/// Before one value: its field and the bytes from the end of the value before (for the first,
/// the record's `{`) up to it, as two little-endian words (the second overlapping the first
/// when the stretch is shorter than 16 bytes).
#[derive(Clone, Copy)]
struct ShapeStep {
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
const SHAPE_STEPS: usize = 20;

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
fn words(lit: &[u8]) -> (u64, u64) {
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
fn decode_as_shaped<'a>(
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
    let mut found = Found::default();
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
fn decode_general<'a>(
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
    let mut found = Found::default();

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
struct Found<'a> {
    server: Option<Cow<'a, str>>,
    ts: Option<i64>,
    type_str: Option<Cow<'a, str>>,
    first_err: Option<Reason>,
}

/// JSON's insignificant whitespace.
#[inline(always)]
fn is_json_ws(c: u8) -> bool {
    c == b' ' || c == b'\t' || c == b'\n' || c == b'\r'
}

/// The checks after the last key: required fields, in a fixed order so a reason is stable.
#[inline(always)]
fn finish_event<'a>(ev: &mut Event<'a>, found: Found<'a>) -> Result<(), Reason> {
    let Found {
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
enum Scalar<'a> {
    Str(Cow<'a, str>),
    Num { text: &'a str, integer: bool },
    Null,
    Other,
}

struct Parser<'a> {
    s: &'a [u8],
    src: &'a str,
    i: usize,
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
        found: &mut Found<'a>,
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
            BytesIn | BytesOut | Capacity => match v {
                Scalar::Num { text, integer } => match parse_integer(text, integer) {
                    Some(n) if (field != Capacity && n >= 0) || (n > 0 && n <= MAX_CAPACITY) => {
                        match field {
                            BytesIn => ev.bytes_in = Some(n),
                            BytesOut => ev.bytes_out = Some(n),
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
    fn key(&mut self) -> Result<Option<FieldName>, ()> {
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
fn find_string_special(s: &[u8]) -> Option<usize> {
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
fn find_string_special_swar(s: &[u8]) -> Option<usize> {
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
fn special_flags(w: u64) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let q = w ^ (LO * b'"' as u64);
    let b = w ^ (LO * b'\\' as u64);
    (q.wrapping_sub(LO) & !q | b.wrapping_sub(LO) & !b | w.wrapping_sub(LO * 0x20) & !w) & HI
}

const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// A JSON number as f64. Plain decimals with at most 15 digits (`38.2`, `1450.5`) take Clinger's
/// fast path: the digits as an integer (exact below 2^53) divided by an exact power of ten is
/// correctly rounded, so the result equals `str::parse`. Anything else goes to `str::parse`.
fn parse_f64(text: &str) -> Result<f64, std::num::ParseFloatError> {
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

/// An integer field: integer syntax, or a float with no fractional part (`1e3`).
/// The largest `capacity` a `server` event may announce (the engine keeps capacities as `u32`).
pub const MAX_CAPACITY: i64 = u32::MAX as i64;
/// The largest `setup_ms`, `rtt_ms` or `jitter_ms` accepted: one hour. A larger "latency" is a
/// broken probe, not a slow tunnel, and would stretch the histograms for nothing.
pub const MAX_LATENCY_MS: f64 = 3_600_000.0;

/// The largest value of a float field: `loss_pct` is a percentage, the others latencies.
fn max_of(field: FieldName) -> f64 {
    match field {
        FieldName::LossPct => 100.0,
        _ => MAX_LATENCY_MS,
    }
}

fn parse_integer(text: &str, integer: bool) -> Option<i64> {
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

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Parses an RFC 3339 timestamp (`2020-03-17T08:30:00.123Z`, `…+01:00`) to epoch ms.
/// Fractions below a millisecond are truncated. `t`/`z` and a space separator are accepted.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    parse_canonical_ms(s.as_bytes()).or_else(|| parse_rfc3339_general(s))
}

/// The shape every producer we know writes, `YYYY-MM-DDTHH:MM:SS.mmmZ`, checked eight bytes at
/// a time; `None` for anything else (including that shape with an impossible date), which
/// then goes through [`parse_rfc3339_general`]. Equal to it wherever it answers (tested).
#[inline]
fn parse_canonical_ms(b: &[u8]) -> Option<i64> {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    // Byte masks of the separators in each word (little-endian: byte 0 is the lowest).
    const SEP: [u64; 3] = [
        0xff00_00ff_0000_0000,
        0x0000_ff00_00ff_0000,
        0xff00_0000_ff00_00ff,
    ];
    // The separators themselves: `-` `-` | `T` `:` | `:` `.` `Z`.
    const WANT: [u64; 3] = [
        0x2d00_002d_0000_0000,
        0x0000_3a00_0054_0000,
        0x5a00_0000_2e00_003a,
    ];
    let b: &[u8; 24] = b.try_into().ok()?;
    let mut d = [0u64; 3];
    for k in 0..3 {
        let w = u64::from_le_bytes(b[8 * k..8 * k + 8].try_into().expect("8 bytes"));
        if w & SEP[k] != WANT[k] {
            return None;
        }
        // Separators read as '0'; every byte must then be an ASCII digit: no byte has its high
        // bit set, and none goes below '0' or above '9' (adding 0x46 carries into bit 7).
        let digits = w & !SEP[k] | ZEROS & SEP[k];
        if (digits | digits.wrapping_add(0x4646_4646_4646_4646)) & 0x8080_8080_8080_8080 != 0
            || (digits & 0xf0f0_f0f0_f0f0_f0f0) != ZEROS
        {
            return None;
        }
        d[k] = digits - ZEROS;
    }
    let at = |k: usize, i: usize| ((d[k] >> (8 * i)) & 0xff) as u32;
    let hour = at(1, 3) * 10 + at(1, 4);
    let minute = at(1, 6) * 10 + at(1, 7);
    let second = at(2, 1) * 10 + at(2, 2);
    let millis = at(2, 4) * 100 + at(2, 5) * 10 + at(2, 6);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // The date's digits as read (bytes 0–9): events in a row nearly always share their date,
    // so its day number (validated when it was computed) is kept per thread.
    let date = (d[0], (d[1] & 0xffff) as u16);
    let days = match LAST_DATE.with(Cell::get) {
        (seen, days) if seen == date => days,
        _ => {
            let year = at(0, 0) * 1000 + at(0, 1) * 100 + at(0, 2) * 10 + at(0, 3);
            let month = at(0, 5) * 10 + at(0, 6);
            let day = at(1, 0) * 10 + at(1, 1);
            let year = year as i64;
            let dim = match month {
                2 if is_leap(year) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                1..=12 => 31,
                _ => return None,
            };
            if day == 0 || day > dim {
                return None;
            }
            let days = days_from_civil(year, month, day);
            LAST_DATE.with(|c| c.set((date, days)));
            days
        }
    };
    let secs = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64;
    Some(secs * 1000 + millis as i64)
}

thread_local! {
    /// The last valid date [`parse_canonical_ms`] read (its digits, as it keys them) and its day
    /// number. Starts with digits no date has (every byte is at most 9 after subtracting '0').
    static LAST_DATE: Cell<((u64, u16), i64)> = const { Cell::new(((u64::MAX, u16::MAX), 0)) };
}

/// Every form [`parse_rfc3339_ms`] accepts.
fn parse_rfc3339_general(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for i in 0..n {
            let c = *b.get(at + i)?;
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + (c - b'0') as u32;
        }
        Some(v)
    }
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = digits(b, 0, 4)? as i64;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    let dim = [
        31,
        if is_leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month) || day == 0 || day > dim[month as usize - 1] {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + (b[i] - b'0') as i64;
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..3 {
            millis *= 10;
        }
    }
    let offset_min: i64 = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        c @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = digits(b, i + 1, 2)? as i64;
            let om = digits(b, i + 4, 2)? as i64;
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 60 + om;
            if *c == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs =
        days * 86_400 + hour as i64 * 3600 + minute as i64 * 60 + second as i64 - offset_min * 60;
    Some(secs * 1000 + millis)
}

/// Formats epoch ms as RFC 3339 UTC with milliseconds (`2020-03-17T08:30:00.000Z`).
pub fn format_rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // civil_from_days (Hinnant)
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// The Arrow type of every timestamp gatewatch returns: UTC, millisecond precision.
pub fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// Columns of the `events` table, in order. The first 16 are DESIGN §2's; `capacity` and `state`
/// carry the payload of `server` events, which the contract's list leaves out.
pub fn events_schema() -> SchemaRef {
    let s = |n: &str| Field::new(n, DataType::Utf8, true);
    let f = |n: &str| Field::new(n, DataType::Float64, true);
    let i = |n: &str| Field::new(n, DataType::Int64, true);
    Arc::new(Schema::new(vec![
        Field::new("ts", ts_type(), false),
        Field::new("type", DataType::Utf8, false),
        Field::new("server", DataType::Utf8, false),
        s("session"),
        s("user"),
        s("site"),
        s("os"),
        s("app"),
        f("setup_ms"),
        f("rtt_ms"),
        f("jitter_ms"),
        f("loss_pct"),
        s("reason"),
        i("bytes_in"),
        i("bytes_out"),
        s("id"),
        i("capacity"),
        s("state"),
    ]))
}

/// Column indexes of [`events_schema`], for readers of a batch.
#[allow(missing_docs)]
pub mod col {
    pub const TS: usize = 0;
    pub const TYPE: usize = 1;
    pub const SERVER: usize = 2;
    pub const SESSION: usize = 3;
    pub const USER: usize = 4;
    pub const SITE: usize = 5;
    pub const OS: usize = 6;
    pub const APP: usize = 7;
    pub const SETUP_MS: usize = 8;
    pub const RTT_MS: usize = 9;
    pub const JITTER_MS: usize = 10;
    pub const REASON: usize = 12;
    pub const ID: usize = 15;
    pub const CAPACITY: usize = 16;
    pub const STATE: usize = 17;
}

/// A column builder that appends runs of nulls at once. Most optional fields are absent from
/// most events (a latency sample has no user, site, os, app, setup_ms, reason, bytes or
/// capacity), and one bulk append per run costs far less than one call per row.
struct Gaps<B> {
    builder: B,
    /// Nulls owed to the builder, appended before the next value or at the end.
    nulls: usize,
}

impl<B> Gaps<B> {
    fn new(builder: B) -> Self {
        Gaps { builder, nulls: 0 }
    }
}

/// What [`Gaps`] needs of an Arrow builder.
trait ColumnBuilder {
    /// What one row holds.
    type Value<'a>;
    fn append(&mut self, v: Self::Value<'_>);
    fn append_nulls(&mut self, n: usize);
    fn finish_array(&mut self) -> ArrayRef;
}

/// Validity of a column as its runs of nulls (`(first row, rows)`, in order), turned into a
/// bitmap once at the end: the decoder appends nulls in runs ([`Gaps`]), so a value costs no
/// bookkeeping at all.
#[derive(Default)]
struct NullRuns(Vec<(usize, usize)>);

impl NullRuns {
    fn add(&mut self, first: usize, n: usize) {
        self.0.push((first, n));
    }

    fn finish(&mut self, rows: usize) -> Option<arrow::buffer::NullBuffer> {
        if self.0.is_empty() {
            return None;
        }
        let mut bits = arrow::array::BooleanBufferBuilder::new(rows);
        for (first, n) in self.0.drain(..) {
            bits.append_n(first - bits.len(), true);
            bits.append_n(n, false);
        }
        bits.append_n(rows - bits.len(), true);
        Some(arrow::buffer::NullBuffer::new(bits.finish()))
    }
}

/// A string column as plain vectors: where each value ends, and their bytes. Arrow's
/// `StringBuilder` does the same with a capacity check, a validity bit and an offset conversion
/// per call; the decoder appends several strings per event.
struct StrColumn {
    /// Where each value ends in `bytes`; starts with 0.
    ends: Vec<i32>,
    bytes: Vec<u8>,
    nulls: NullRuns,
}

impl StrColumn {
    fn with_capacity(rows: usize, bytes: usize) -> Self {
        let mut ends = Vec::with_capacity(rows + 1);
        ends.push(0);
        StrColumn {
            ends,
            bytes: Vec::with_capacity(bytes),
            nulls: NullRuns::default(),
        }
    }
}

impl ColumnBuilder for StrColumn {
    type Value<'a> = &'a str;
    #[inline(always)]
    fn append(&mut self, v: &str) {
        self.bytes.extend_from_slice(v.as_bytes());
        let end = i32::try_from(self.bytes.len()).expect("a batch's strings fit in i32 offsets");
        self.ends.push(end);
    }
    fn append_nulls(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.nulls.add(self.ends.len() - 1, n);
        let end = *self.ends.last().expect("ends start with 0");
        self.ends.resize(self.ends.len() + n, end);
    }
    fn finish_array(&mut self) -> ArrayRef {
        let ends = std::mem::replace(&mut self.ends, vec![0]);
        let nulls = self.nulls.finish(ends.len() - 1);
        // SAFETY: `ends` starts at 0 and never decreases (each is the length of `bytes` after
        // an append), and `bytes` is whole `&str` values laid end to end, so it is UTF-8 and
        // every offset falls on a character boundary.
        let array = unsafe {
            arrow::array::StringArray::new_unchecked(
                arrow::buffer::OffsetBuffer::new_unchecked(ends.into()),
                arrow::buffer::Buffer::from_vec(std::mem::take(&mut self.bytes)),
                nulls,
            )
        };
        // Debug builds (tests, the fuzzer) check what the SAFETY comment claims.
        debug_assert!(
            arrow::array::Array::to_data(&array).validate_full().is_ok(),
            "string column: bad offsets or UTF-8"
        );
        Arc::new(array)
    }
}

/// A primitive column as a vector of values (a null holds the type's default).
struct NumColumn<T: arrow::datatypes::ArrowPrimitiveType> {
    values: Vec<T::Native>,
    nulls: NullRuns,
}

impl<T: arrow::datatypes::ArrowPrimitiveType> NumColumn<T> {
    fn with_capacity(rows: usize) -> Self {
        NumColumn {
            values: Vec::with_capacity(rows),
            nulls: NullRuns::default(),
        }
    }

    fn finish_typed(&mut self) -> arrow::array::PrimitiveArray<T> {
        let nulls = self.nulls.finish(self.values.len());
        arrow::array::PrimitiveArray::new(std::mem::take(&mut self.values).into(), nulls)
    }
}

impl<T: arrow::datatypes::ArrowPrimitiveType> ColumnBuilder for NumColumn<T> {
    type Value<'a> = T::Native;
    #[inline(always)]
    fn append(&mut self, v: T::Native) {
        self.values.push(v);
    }
    fn append_nulls(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.nulls.add(self.values.len(), n);
        self.values
            .resize(self.values.len() + n, T::Native::default());
    }
    fn finish_array(&mut self) -> ArrayRef {
        Arc::new(self.finish_typed())
    }
}

impl<B: ColumnBuilder> Gaps<B> {
    #[inline(always)]
    fn push(&mut self, v: Option<B::Value<'_>>) {
        match v {
            Some(v) => {
                if self.nulls > 0 {
                    self.builder.append_nulls(std::mem::take(&mut self.nulls));
                }
                self.builder.append(v);
            }
            None => self.nulls += 1,
        }
    }

    fn finish(&mut self) -> ArrayRef {
        self.builder.append_nulls(std::mem::take(&mut self.nulls));
        self.builder.finish_array()
    }
}

/// Appends decoded events to the columns of the `events` table.
pub struct EventColumns {
    ts: NumColumn<TimestampMillisecondType>,
    kind: StrColumn,
    server: StrColumn,
    session: Gaps<StrColumn>,
    user: Gaps<StrColumn>,
    site: Gaps<StrColumn>,
    os: Gaps<StrColumn>,
    app: Gaps<StrColumn>,
    setup_ms: Gaps<NumColumn<Float64Type>>,
    rtt_ms: Gaps<NumColumn<Float64Type>>,
    jitter_ms: Gaps<NumColumn<Float64Type>>,
    loss_pct: Gaps<NumColumn<Float64Type>>,
    reason: Gaps<StrColumn>,
    bytes_in: Gaps<NumColumn<Int64Type>>,
    bytes_out: Gaps<NumColumn<Int64Type>>,
    id: Gaps<StrColumn>,
    capacity: Gaps<NumColumn<Int64Type>>,
    state: Gaps<StrColumn>,
    /// Each row's type and the xxh3-128 of its `id` (0 if none), kept beside the columns so the
    /// engine does not parse them back out of the batch.
    kinds: Vec<EventType>,
    id_hashes: Vec<u128>,
    len: usize,
    /// Only what the engine reads (see [`EventColumns::for_engine`]).
    for_engine: bool,
}

/// A finished [`EventColumns`]: the batch, plus per row what the engine needs first.
pub struct FinishedRows {
    /// The rows, with the `events` schema.
    pub batch: RecordBatch,
    /// Each row's event type.
    pub kinds: Vec<EventType>,
    /// xxh3-128 of each row's `id`, 0 where it has none.
    pub id_hashes: Vec<u128>,
    /// Made by [`EventColumns::for_engine`]: `type` and `id` hold empty strings.
    pub for_engine: bool,
}

/// The xxh3-128 of an event id, as the engine's duplicate check keys it.
pub fn id_hash(id: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(id.as_bytes())
}

impl EventColumns {
    /// Builders sized for `rows` events of about 150 bytes.
    pub fn with_capacity(rows: usize) -> Self {
        Self::sized(rows, false)
    }

    /// Builders for a batch only the engine reads, never kept as the `events` table (a
    /// `replay` whose query does not read it): the `type` column is empty strings and the
    /// `id` column an empty string where an id was given, since the engine takes each row's
    /// type and id hash from beside the batch. Copying those two strings is ~2 % of a replay's
    /// instructions.
    pub fn for_engine(rows: usize) -> Self {
        Self::sized(rows, true)
    }

    fn sized(rows: usize, for_engine: bool) -> Self {
        let s = |bytes: usize| StrColumn::with_capacity(rows, rows * bytes);
        let f = || Gaps::new(NumColumn::<Float64Type>::with_capacity(rows));
        let i = || Gaps::new(NumColumn::<Int64Type>::with_capacity(rows));
        EventColumns {
            ts: NumColumn::with_capacity(rows),
            // Generous per-row byte estimates: a string buffer that regrows copies itself.
            kind: if for_engine {
                StrColumn::with_capacity(0, 0)
            } else {
                s(10)
            },
            server: s(8),
            session: Gaps::new(s(24)),
            user: Gaps::new(s(8)),
            site: Gaps::new(s(8)),
            os: Gaps::new(s(12)),
            app: Gaps::new(s(8)),
            setup_ms: f(),
            rtt_ms: f(),
            jitter_ms: f(),
            loss_pct: f(),
            reason: Gaps::new(s(4)),
            bytes_in: i(),
            bytes_out: i(),
            id: Gaps::new(if for_engine { s(0) } else { s(24) }),
            capacity: i(),
            state: Gaps::new(s(1)),
            kinds: Vec::with_capacity(rows),
            id_hashes: Vec::with_capacity(rows),
            len: 0,
            for_engine,
        }
    }

    /// Rows appended so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one event as a row.
    pub fn push(&mut self, e: &Event<'_>) {
        self.ts.append(e.ts);
        if !self.for_engine {
            self.kind.append(e.event_type().as_str());
        }
        self.server.append(&e.server);
        self.session.push(e.session.as_deref());
        self.user.push(e.user.as_deref());
        self.site.push(e.site.as_deref());
        self.os.push(e.os.as_deref());
        self.app.push(e.app.as_deref());
        self.setup_ms.push(e.setup_ms);
        self.rtt_ms.push(e.rtt_ms);
        self.jitter_ms.push(e.jitter_ms);
        self.loss_pct.push(e.loss_pct);
        self.reason.push(e.reason.as_deref());
        self.bytes_in.push(e.bytes_in);
        self.bytes_out.push(e.bytes_out);
        if self.for_engine {
            self.id.push(e.id.as_ref().map(|_| ""));
        } else {
            self.id.push(e.id.as_deref());
        }
        self.capacity.push(e.capacity);
        self.state.push(e.state.map(ServerState::as_str));
        self.kinds.push(e.event_type());
        self.id_hashes.push(e.id.as_deref().map_or(0, id_hash));
        self.len += 1;
    }

    /// Seals the rows into a record batch and resets the builders.
    pub fn finish(&mut self) -> RecordBatch {
        self.finish_rows().batch
    }

    /// [`EventColumns::finish`], with each row's type and id hash.
    pub fn finish_rows(&mut self) -> FinishedRows {
        let kind = if self.for_engine {
            Arc::new(arrow::array::StringArray::new(
                arrow::buffer::OffsetBuffer::new_zeroed(self.len),
                arrow::buffer::Buffer::from_vec(Vec::<u8>::new()),
                None,
            ))
        } else {
            self.kind.finish_array()
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.ts.finish_typed().with_timezone("UTC")),
            kind,
            self.server.finish_array(),
            self.session.finish(),
            self.user.finish(),
            self.site.finish(),
            self.os.finish(),
            self.app.finish(),
            self.setup_ms.finish(),
            self.rtt_ms.finish(),
            self.jitter_ms.finish(),
            self.loss_pct.finish(),
            self.reason.finish(),
            self.bytes_in.finish(),
            self.bytes_out.finish(),
            self.id.finish(),
            self.capacity.finish(),
            self.state.finish(),
        ];
        self.len = 0;
        FinishedRows {
            batch: RecordBatch::try_new(events_schema(), columns)
                .expect("builders match the events schema"),
            kinds: std::mem::take(&mut self.kinds),
            id_hashes: std::mem::take(&mut self.id_hashes),
            for_engine: self.for_engine,
        }
    }
}

#[cfg(test)]
mod tests {
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
        let e = decode(
            br#"{"type":"server","ts":0,"server":"gw-03","capacity":120,"state":"draining"}"#,
        )
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
        let e =
            decode(br#"{"type":"reject","ts":1,"server":"gw\u002d\"1\"\n\ud83d\ude00"}"#).unwrap();
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
            let mut present = [true; 15];
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
        cols.push(
            &decode(br#"{"type":"reject","ts":1,"server":"a","reason":"capacity"}"#).unwrap(),
        );
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
}
