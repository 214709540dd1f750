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

use std::fmt::{self, Write as _};

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
    let vendors: &[InputFormat] = match format {
        InputFormat::Auto => &InputFormat::ALL[1..7],
        InputFormat::Json => &[],
        f => std::slice::from_ref(InputFormat::ALL.iter().find(|v| **v == f)?),
    };
    for &vendor in vendors {
        let reading = match vendor {
            InputFormat::CiscoAsa => cisco_asa::reading(header, clock),
            InputFormat::Pulse => pulse::reading(header, clock),
            InputFormat::CitrixAdc => citrix_adc::reading(header, clock),
            InputFormat::GlobalProtect => globalprotect::reading(header, clock),
            InputFormat::FortiGate => fortigate::reading(header, clock),
            InputFormat::OpenVpn => openvpn::reading(header, clock),
            InputFormat::Json | InputFormat::Auto => Reading::NotMine,
        };
        if reading != Reading::NotMine {
            return Some((vendor, *header, reading));
        }
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
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(server.as_bytes());
    h.update(&ts.to_le_bytes());
    h.update(header.msg.as_bytes());
    let _ = write!(scratch, "{}-{:016x}", vendor.as_str(), h.digest());
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
    (parts.next().is_none() && (0..60).contains(&m) && (0..60).contains(&s) && h >= 0)
        .then_some(h * 3600 + m * 60 + s)
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
}
