//! Gateway syslog in: the input formats (`--input-format`, a topic's `format`), recognising a
//! line's vendor, and turning what a vendor's line says into one gatewatch [`Event`].
//!
//! Owns: [`InputFormat`], [`MessageId`] and the `ignored` outcome, the vendor-neutral
//! [`Said`] the vendor modules answer with, derived session ids and event ids, and the rules
//! shared by every vendor (which fields an event needs, the id of a line, the relay's header
//! around a device's own). Must not touch: a vendor's wording (each vendor module reads its
//! own messages), the syslog header (that is `syslog`), what an event does to the state.
//!
//! Nothing on the common path allocates: an event borrows from its line, and the derived
//! session id and the event id are written into one buffer reused from line to line.

use std::fmt;

use super::syslog::{self, Clock, Header};
use super::{
    cisco_asa, citrix_adc, fortigate, globalprotect, openvpn, pulse, Event, EventType, FieldName,
    Reason, MAX_LATENCY_MS, MAX_TS_MS,
};

/// How the lines of an input are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum InputFormat {
    /// gatewatch's own JSON events (docs/events-and-semantics.md).
    #[default]
    Json,
    /// Cisco ASA / Firepower with AnyConnect (`%ASA-6-113039: …`).
    CiscoAsa,
    /// Pulse Connect Secure / Ivanti Connect Secure events log.
    Pulse,
    /// Citrix ADC (NetScaler) Gateway: SSLVPN, AAATM and ICA records.
    CitrixAdc,
    /// Palo Alto Networks GlobalProtect (PAN-OS `GLOBALPROTECT` CSV records).
    GlobalProtect,
    /// Fortinet FortiGate SSL-VPN and IPsec (key=value event records).
    FortiGate,
    /// OpenVPN server log.
    OpenVpn,
    /// Each line's own format, recognised line by line (JSON or any vendor above).
    Auto,
}

impl InputFormat {
    /// Every format, in declaration order.
    pub const ALL: [InputFormat; 8] = [
        InputFormat::Json,
        InputFormat::CiscoAsa,
        InputFormat::Pulse,
        InputFormat::CitrixAdc,
        InputFormat::GlobalProtect,
        InputFormat::FortiGate,
        InputFormat::OpenVpn,
        InputFormat::Auto,
    ];

    /// The name used by `--input-format`, the config and reason codes.
    pub fn as_str(self) -> &'static str {
        match self {
            InputFormat::Json => "json",
            InputFormat::CiscoAsa => "cisco-asa",
            InputFormat::Pulse => "pulse",
            InputFormat::CitrixAdc => "citrix-adc",
            InputFormat::GlobalProtect => "globalprotect",
            InputFormat::FortiGate => "fortigate",
            InputFormat::OpenVpn => "openvpn",
            InputFormat::Auto => "auto",
        }
    }

    /// The format a name names.
    pub fn parse(s: &str) -> Option<InputFormat> {
        InputFormat::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// The names, for error messages: `json, cisco-asa, …, auto`.
    pub fn names() -> String {
        InputFormat::ALL.map(InputFormat::as_str).join(", ")
    }

    /// A syslog format (anything but `json`).
    pub fn is_syslog(self) -> bool {
        self != InputFormat::Json
    }
}

impl fmt::Display for InputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A vendor's name for a kind of message (`302013`, `SSLVPN TCPCONNSTAT`, `portal-prelogin`),
/// at most [`MessageId::MAX`] bytes, kept inline so that counting one costs no allocation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId {
    len: u8,
    bytes: [u8; MessageId::MAX],
}

impl MessageId {
    /// The longest id kept; a longer one is cut (at a character boundary).
    pub const MAX: usize = 31;

    /// The id `s` (cut to [`MessageId::MAX`] bytes).
    pub fn new(s: &str) -> MessageId {
        let mut n = s.len().min(Self::MAX);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        let mut bytes = [0; Self::MAX];
        bytes[..n].copy_from_slice(&s.as_bytes()[..n]);
        MessageId {
            len: n as u8,
            bytes,
        }
    }

    /// The id of an ASA message number.
    pub fn number(n: u32) -> MessageId {
        let mut buf = [0u8; 10];
        let mut i = buf.len();
        let mut n = n;
        loop {
            i -= 1;
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        MessageId::new(std::str::from_utf8(&buf[i..]).expect("digits"))
    }

    /// The first two words of a free-text message that have no digits (a word with digits is
    /// usually an id, an address or a count): what vendors without message numbers (Pulse,
    /// OpenVPN) are counted by.
    pub fn words(text: &str) -> MessageId {
        let mut out = [0u8; Self::MAX];
        let mut n = 0;
        let words = text
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '-')
            .filter(|w| !w.is_empty() && !w.bytes().any(|b| b.is_ascii_digit()))
            .take(2);
        for w in words {
            let add = if n == 0 { w.len() } else { w.len() + 1 };
            if n + add > Self::MAX {
                break;
            }
            if n > 0 {
                out[n] = b' ';
                n += 1;
            }
            out[n..n + w.len()].copy_from_slice(w.as_bytes());
            n += w.len();
        }
        if n == 0 {
            return MessageId::new("other");
        }
        MessageId::new(std::str::from_utf8(&out[..n]).expect("ASCII"))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len as usize]).expect("cut at a boundary")
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A line of a known vendor that is not about remote-access sessions (firewall traffic, admin
/// commands…): counted by vendor and message id, never dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ignored {
    /// The vendor's format.
    pub format: InputFormat,
    /// The vendor's message id.
    pub message: MessageId,
}

/// What a line was, when it was not rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It is the event decoded into `ev`.
    Event,
    /// It is a known vendor's line that says nothing about sessions.
    Ignored(Ignored),
}

/// How a vendor names a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum SessionName<'a> {
    /// No session (auth failures, rejects).
    #[default]
    None,
    /// The vendor's own session id (Pulse `sid…`, Citrix `SessionId`).
    Given(&'a str),
    /// No id from the vendor: `prefix:a:b:c` from the first `n` of the parts, what the line
    /// says of the session (see docs/gateways.md for each vendor's parts).
    Derived(&'static str, [&'a str; 3], u8),
}

/// What a vendor's line says, in gatewatch's terms. `server` and `ts` fall back to the
/// syslog header's host and stamp.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Said<'a> {
    pub kind: EventType,
    pub server: Option<&'a str>,
    pub ts_ms: Option<i64>,
    pub session: SessionName<'a>,
    pub user: Option<&'a str>,
    pub os: Option<&'a str>,
    pub app: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub bytes_in: Option<i64>,
    pub bytes_out: Option<i64>,
    pub duration_ms: Option<i64>,
    pub rtt_ms: Option<f64>,
}

impl<'a> Said<'a> {
    /// An event of `kind` with nothing else said yet.
    pub fn new(kind: EventType) -> Said<'a> {
        Said {
            kind,
            server: None,
            ts_ms: None,
            session: SessionName::None,
            user: None,
            os: None,
            app: None,
            reason: None,
            bytes_in: None,
            bytes_out: None,
            duration_ms: None,
            rtt_ms: None,
        }
    }
}

/// A vendor module's answer for one message. (Returned by value and matched at once: boxing
/// the large variant would cost an allocation per line.)
#[derive(Debug, Clone, Copy, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Reading<'a> {
    /// A session, login or refusal message.
    Said(Said<'a>),
    /// A message of the vendor about something else.
    Ignored(MessageId),
    /// Not this vendor's message at all.
    NotMine,
    /// This vendor's session message, but its fields cannot be read.
    Unreadable,
}

/// Decodes one syslog line (or, under [`InputFormat::Auto`], a JSON one) into `ev`, which
/// is overwritten. `scratch` holds the derived strings `ev` borrows (cleared here).
pub fn decode_line<'a>(
    line: &'a str,
    format: InputFormat,
    clock: &Clock,
    scratch: &'a mut String,
    ev: &mut Event<'a>,
) -> Result<Outcome, Reason> {
    if format == InputFormat::Json
        || (format == InputFormat::Auto && line.trim_start().starts_with('{'))
    {
        super::decode_str_into(line, ev)?;
        return Ok(Outcome::Event);
    }
    let header = syslog::parse(line, clock);
    let (vendor, header, reading) = match read(format, &header, clock) {
        Some(found) => found,
        None => {
            // A relay's header around the device's own (`<relay stamp> relay tag: Mmm dd
            // hh:mm:ss device …`): the device's line, its year-less stamp read near the relay's.
            let inner_clock = header.ts_ms.map_or(*clock, |t| Clock {
                window_start_ms: Clock::live(t, 0).window_start_ms,
                ..*clock
            });
            let inner = syslog::parse(header.msg, &inner_clock);
            match inner
                .ts_ms
                .is_some()
                .then(|| read(format, &inner, &inner_clock))
                .flatten()
            {
                Some(found) => found,
                None if format == InputFormat::Auto => return Err(Reason::UnknownFormat),
                None => return Err(Reason::Unparsed(format)),
            }
        }
    };
    match reading {
        Reading::Said(said) => {
            emit(vendor, &said, &header, scratch, ev)?;
            Ok(Outcome::Event)
        }
        Reading::Ignored(message) => Ok(Outcome::Ignored(Ignored {
            format: vendor,
            message,
        })),
        Reading::Unreadable | Reading::NotMine => Err(Reason::Unparsed(vendor)),
    }
}

/// The vendor whose message `header.msg` is (only `format`'s, unless `Auto`), and what it says.
fn read<'a>(
    format: InputFormat,
    header: &Header<'a>,
    clock: &Clock,
) -> Option<(InputFormat, Header<'a>, Reading<'a>)> {
    let read_as = |vendor| {
        let reading = match vendor {
            InputFormat::CiscoAsa => cisco_asa::reading(header, clock),
            InputFormat::Pulse => pulse::reading(header, clock),
            InputFormat::CitrixAdc => citrix_adc::reading(header, clock),
            InputFormat::GlobalProtect => globalprotect::reading(header, clock),
            InputFormat::FortiGate => fortigate::reading(header, clock),
            InputFormat::OpenVpn => openvpn::reading(header, clock),
            InputFormat::Json | InputFormat::Auto => Reading::NotMine,
        };
        (!matches!(reading, Reading::NotMine)).then_some((vendor, *header, reading))
    };
    match format {
        InputFormat::Json => None,
        InputFormat::Auto => {
            // The vendor the line's first bytes point at, tried first: every other vendor's
            // refusal costs a scan of the line.
            let likely = likely_vendor(header);
            likely.and_then(read_as).or_else(|| {
                InputFormat::ALL[1..7]
                    .iter()
                    .filter(|v| Some(**v) != likely)
                    .find_map(|v| read_as(*v))
            })
        }
        vendor => read_as(vendor),
    }
}

/// The vendor a line's tag or first bytes suggest, from cheap checks only (a guess: the caller
/// still lets the vendor's reader decide, and tries the others when it refuses).
fn likely_vendor(h: &Header<'_>) -> Option<InputFormat> {
    let msg = h.msg.as_bytes();
    if msg.starts_with(b"%ASA-") || msg.starts_with(b"%FTD-") {
        return Some(InputFormat::CiscoAsa);
    }
    if let Some(tag) = h.tag {
        if tag.contains("-PPE-") {
            return Some(InputFormat::CitrixAdc);
        }
        if tag.starts_with("PulseSecure") {
            return Some(InputFormat::Pulse);
        }
        if tag.starts_with("openvpn") || tag.starts_with("ovpn") {
            return Some(InputFormat::OpenVpn);
        }
    }
    if msg.starts_with(b"date=") || msg.starts_with(b"logver=") {
        return Some(InputFormat::FortiGate);
    }
    if msg.starts_with(b"- - - ") || msg.get(4) == Some(&b'-') && msg.get(10) == Some(&b' ') {
        return Some(InputFormat::Pulse);
    }
    // PAN-OS CSV: the type is the fourth field, within the first ~60 bytes.
    let head = &msg[..msg.len().min(80)];
    if memchr::memmem::find(head, b",GLOBALPROTECT,").is_some() {
        return Some(InputFormat::GlobalProtect);
    }
    if msg.starts_with(b"default ") {
        return Some(InputFormat::CitrixAdc);
    }
    None
}

/// Fills `ev` from what a line said: the header's host and stamp where the message has none,
/// the derived session id, and an event id.
fn emit<'a>(
    vendor: InputFormat,
    said: &Said<'a>,
    header: &Header<'a>,
    scratch: &'a mut String,
    ev: &mut Event<'a>,
) -> Result<(), Reason> {
    let server = said
        .server
        .or(header.host)
        .filter(|s| !s.is_empty())
        .ok_or(Reason::MissingField(FieldName::Server))?;
    let ts = said
        .ts_ms
        .or(header.ts_ms)
        .ok_or(Reason::MissingField(FieldName::Ts))?;
    if !(0..=MAX_TS_MS).contains(&ts) {
        return Err(Reason::BadValue(FieldName::Ts));
    }
    let needs_session = matches!(
        said.kind,
        EventType::Connect | EventType::Disconnect | EventType::Latency
    );
    if needs_session && said.session == SessionName::None {
        return Err(Reason::MissingField(FieldName::Session));
    }
    if let Some(rtt) = said.rtt_ms {
        if !(0.0..=MAX_LATENCY_MS).contains(&rtt) {
            return Err(Reason::BadValue(FieldName::RttMs));
        }
    }
    if said
        .duration_ms
        .is_some_and(|d| !(0..=MAX_TS_MS).contains(&d))
    {
        return Err(Reason::BadValue(FieldName::DurationMs));
    }
    if said.bytes_in.is_some_and(|b| b < 0) {
        return Err(Reason::BadValue(FieldName::BytesIn));
    }
    if said.bytes_out.is_some_and(|b| b < 0) {
        return Err(Reason::BadValue(FieldName::BytesOut));
    }
    // The derived session id, then the event id, written once into `scratch`.
    scratch.clear();
    if let SessionName::Derived(prefix, parts, n) = said.session {
        scratch.push_str(prefix);
        for p in &parts[..usize::from(n).min(parts.len())] {
            scratch.push(':');
            scratch.push_str(p);
        }
    }
    let session_end = scratch.len();
    // The same message from the same server at the same time is the same event (a relay's
    // redelivery, a file replayed twice): its id is a hash of the three.
    let seed = xxhash_rust::xxh3::xxh3_64(server.as_bytes()) ^ ts as u64;
    let hash = xxhash_rust::xxh3::xxh3_64_with_seed(header.msg.as_bytes(), seed);
    scratch.push_str(vendor.as_str());
    scratch.push('-');
    let mut hex = [0u8; 16];
    for (i, d) in hex.iter_mut().enumerate() {
        *d = b"0123456789abcdef"[(hash >> (60 - 4 * i)) as usize & 15];
    }
    scratch.push_str(std::str::from_utf8(&hex).expect("hex digits"));
    let scratch: &'a str = scratch;
    let (derived, id) = scratch.split_at(session_end);
    *ev = Event {
        kind: Some(said.kind),
        ts,
        server: server.into(),
        id: Some(id.into()),
        session: match said.session {
            SessionName::None => None,
            SessionName::Given(s) => Some(s.into()),
            SessionName::Derived(..) => Some(derived.into()),
        },
        user: said.user.filter(|u| !u.is_empty()).map(Into::into),
        os: said.os.filter(|u| !u.is_empty()).map(Into::into),
        app: said.app.filter(|u| !u.is_empty()).map(Into::into),
        reason: said.reason.filter(|u| !u.is_empty()).map(Into::into),
        bytes_in: said.bytes_in,
        bytes_out: said.bytes_out,
        duration_ms: said.duration_ms,
        rtt_ms: said.rtt_ms,
        ..Event::default()
    };
    Ok(())
}

/// The value after `key` in `text` up to `end` (exclusive), trimmed: `key` must start the text
/// or follow a space. The vendors' `Key value - Key value` and `key=value` fields.
pub(crate) fn value_after<'a>(text: &'a str, key: &str, end: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(at) = text[from..].find(key) {
        let start = from + at;
        from = start + key.len();
        if start > 0 && text.as_bytes()[start - 1] != b' ' {
            continue;
        }
        let rest = &text[from..];
        let v = match rest.find(end) {
            Some(e) => &rest[..e],
            None => rest,
        };
        return Some(v.trim());
    }
    None
}

/// `HH:MM:SS` (hours may exceed 24) -> seconds.
pub(crate) fn hms_seconds(v: &str) -> Option<i64> {
    let mut parts = v.trim().split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let s: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(0..60).contains(&m) || !(0..60).contains(&s) || h < 0 {
        return None;
    }
    h.checked_mul(3600)?.checked_add(m * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_round_trip() {
        for f in InputFormat::ALL {
            assert_eq!(InputFormat::parse(f.as_str()), Some(f));
            assert_eq!(
                Reason::parse(&Reason::Unparsed(f).to_string()),
                Some(Reason::Unparsed(f))
            );
        }
        assert_eq!(InputFormat::parse("syslog"), None);
        assert!(InputFormat::names().starts_with("json, cisco-asa"));
    }

    #[test]
    fn message_ids_are_cut_and_counted_by_words() {
        assert_eq!(MessageId::number(302013).as_str(), "302013");
        assert_eq!(MessageId::number(0).as_str(), "0");
        assert_eq!(
            MessageId::words("Primary authentication successful for x").as_str(),
            "Primary authentication"
        );
        assert_eq!(
            MessageId::words("Session:[681cfe5eba] for user").as_str(),
            "Session for"
        );
        assert_eq!(MessageId::words(":: 12 ::").as_str(), "other");
        let long = "é".repeat(40);
        assert!(MessageId::new(&long).as_str().len() <= MessageId::MAX);
    }

    #[test]
    fn helpers_read_fields_and_durations() {
        let t = "User u1 - Client_ip 10.0.0.1 - Nat_ip \"Mapped Ip\" - Duration 15:05:35  - X";
        assert_eq!(value_after(t, "Client_ip ", " - "), Some("10.0.0.1"));
        assert_eq!(value_after(t, "User ", " - "), Some("u1"));
        assert_eq!(value_after(t, "ip ", " - "), None);
        assert_eq!(
            value_after(t, "Duration ", " - ").and_then(hms_seconds),
            Some(54_335)
        );
        assert_eq!(hms_seconds("00:61:00"), None);
    }

    /// Inputs the fuzz targets found panicking (a slice cut inside a character), read in every
    /// format.
    #[test]
    fn lines_the_fuzzers_found() {
        let found: [&[u8]; 6] = [
            b"\x3c\x31\x36\x36\x3e\x4d\x61\x72\x20\x32\x30\x20\x17\x00\x32\x00\x6e\x09\x00\x00\x32\x2c\x30\x20\xd0\x95\x74\x3a\x20\x54\x69",
            b"\x3c\x31\x33\x34\x3e\x20\x30\x33\x2f\x32\x34\x2f\x32\x30\x32\x30\x3a\x30\x38\x3a\x2d\x20\x3a\x30\x30\x20\x47\x4d\x54\x20\x76\x70\x78\x2d\x61\x20\x20\xdc\x80\x00\x11\x11\x11\x11\x11\x11\x11\x3d\x11\x11\x6f\x76\x70\x6e\x30\x2d\x50\x50\x45\x2d\x31\x28\x44\x65\x63\x20\x00\x11\x11\x11\x11\x11\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x66\x61\x75\x6c\x74\x20\x41\x41\x41\x54\x4d\x20\x4c\x4f\x47\x4f\x3a\x20\x64\x60\x00\x00\x00\x00\x6e\x20\x30\x31\x3a\x30\x39\x3a\x35\x30\x36\x20\x30\x6c\x5f\x62\x79\x74\x65\x73\x5f\x20\x3a\x20\x72\x65\x66\x66\x22",
            b"\x00\x00\x00\x00\x30\x33\x3a\x30\x38\x3a\x00\x00\x00\x02\x37\x37\x20\x64\x65\x39\x61\x31\x38\x3e\x3c\x64\x2a\x01\x64\x30\x30\x3c\xc2\x83\x2d\x46\x20\x3a",
            b"\x3c\x31\x34\x3e\x4d\x61\x72\x20\x32\x34\x20\x30\x34\x3e\x3c\x4d\x31\x32\x01\x00\x15\x00\x00\xc2\xb3\x25\x46\x54\x44\x2d\x20\x30\x31\x30\x3a\x3a\x71\x71\x71\x71\x71\x71\x71\x71\x71\x71\x71\x71\x71\x71\x30\x22\x31\x2c\x32\x30\x32\x30\x2f\x30",
            b"\x6c\x6f\x67\x69\x3e\x4d\x32\x5d\x3a\x20\x4d\x55\x4c\x54\x49\x3a\x20\x6e\x65\x77\x20\x49\x5b\x73\x20\xdd\x9c\x00\x00\x00\x00\x00\x00\x00\x00",
            b"\xc4\x96\xc3\x8e\x69\xc4\x96\xc3\x8e\x3c\x31\x33\x2d\x34\x44\x31\x20\x4a\x75\x6c\x3a\x30\x32\x30\x2d\x30\x33\x2d\x32\x34\x30\x30\xc4\x96\xc3\x8e\x69\xc4\x96\xc3\x8e\x3c\x31\x33\x2d\x34\x44\x31\x20\x4a\x75\x6c\x3a\x30\x32\x30\x2d\x30\x33\x2d\x32\x34\x30\x30\x2b\x30\x31\x31\x32\x34\x20\x30\x37\x3a\x30\x30\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x20\x2b\x30\x31\x31\x32\x34\x20\x30\x37\x3a\x30\x30\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x20",
        ];
        for bytes in found {
            let Ok(line) = std::str::from_utf8(bytes) else {
                continue;
            };
            for format in InputFormat::ALL {
                let mut scratch = String::new();
                let mut ev = Event::default();
                let _ = decode_line(
                    line,
                    format,
                    &Clock::in_year(2020, 3_600_000),
                    &mut scratch,
                    &mut ev,
                );
            }
        }
    }
}
