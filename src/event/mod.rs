//! The event model: bytes -> [`Event`] or [`Reason`], and the Arrow form of accepted events.
//! Pure, no I/O. `ingest` and `state` both rest on this module; it uses neither.
//!
//! Owns: the input schema of `docs/events-and-semantics.md` (field names, types, ranges,
//! required fields) and the stable rejection reason codes (this file); the JSON scanner
//! ([`json`]); RFC 3339 parsing and formatting ([`time`]); the Arrow schema of the `events`
//! table, its columnar builder and the typed [`ChunkView`] of a decoded batch ([`columns`]).
//! Must not touch: sessions, time windows, lateness or duplicates (that is `state`), Kafka or
//! files (that is `ingest`).
//!
//! The decoder is the hot path. It is a hand-written scanner for one flat JSON object that borrows
//! every string from the input (a string is copied only when it contains an escape), skips unknown
//! fields without building them, and checks each known field's type and range as it goes, so that
//! a rejected line gets a precise reason (`bad_type:rtt_ms`) rather than a parser's prose.

pub mod cisco_asa;
pub mod citrix_adc;
mod columns;
pub mod fortigate;
pub mod gateway;
pub mod globalprotect;
mod json;
pub mod openvpn;
pub mod pulse;
pub mod syslog;
#[cfg(test)]
mod tests;
mod time;

pub use columns::{col, events_schema, id_hash, ts_type, ChunkView, EventColumns, FinishedRows};
pub(crate) use columns::{opt_f64, opt_str};
pub use gateway::{decode_line, Ignored, InputFormat, MessageId, Outcome};
use json::decode_general;
pub use json::{decode_str_shaped, Shape};
pub use time::{days_from_civil, format_rfc3339_ms, parse_rfc3339_ms};

use std::borrow::Cow;
use std::fmt;

/// The six event types (docs/events-and-semantics.md).
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
    DurationMs,
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
            DurationMs => "duration_ms",
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
            11 if k == "duration_ms" => Some(FieldName::DurationMs),
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
            "duration_ms" => DurationMs,
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
/// (`jitter_ms`, `bytes_out`) and `duration_ms` are never a word. Built at compile time; a collision fails the
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
    /// A line of this vendor's session messages whose fields cannot be read (or, under an
    /// explicit format, a line that is not this vendor's at all).
    Unparsed(gateway::InputFormat),
    /// Under `auto`: a line of no format gatewatch knows.
    UnknownFormat,
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
            Reason::Unparsed(format) => write!(f, "unparsed:{format}"),
            Reason::UnknownFormat => f.write_str("unknown_format"),
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
            "unknown_format" => Reason::UnknownFormat,
            _ => {
                let (kind, field) = code.split_once(':')?;
                if kind == "unparsed" {
                    return gateway::InputFormat::parse(field).map(Reason::Unparsed);
                }
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
    /// How long the session lasted, ms, on a `disconnect` that reports it (a gateway's
    /// whole-session record): a disconnect whose connect was never seen still counts the
    /// session over `[ts - duration_ms, ts)`.
    pub duration_ms: Option<i64>,
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

/// The largest `capacity` a `server` event may announce (the engine keeps capacities as `u32`).
pub const MAX_CAPACITY: i64 = u32::MAX as i64;
/// The largest `setup_ms`, `rtt_ms` or `jitter_ms` accepted: one hour. A larger "latency" is a
/// broken probe, not a slow tunnel, and would stretch the histograms for nothing.
pub const MAX_LATENCY_MS: f64 = 3_600_000.0;
