//! Cisco ASA / AnyConnect messages (`%ASA-6-113039: ...`, from Cisco's "ASA Series Syslog
//! Messages"): which ones are remote-access session messages, and their fields.
//!
//! Owns: message ids and the wording of their fields (`Group <g>`, `Group g`, `Group = g,`),
//! and what each session message means in gatewatch's terms ([`reading`]): the session id
//! AnyConnect does not give, derived as `asa:<group>:<user>:<client ip>`. Must not touch: the
//! syslog header (that is `syslog`), event ids and the rules every vendor shares (`gateway`).

use super::gateway::{MessageId, Reading, Said as Event, SessionName};
use super::syslog::{Clock, Header};
use super::EventType;

/// A message's id and text (after `%ASA-6-113039: `).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// Severity, 0–7.
    pub severity: u8,
    /// The message id (`113039`).
    pub id: u32,
    /// The text after the id.
    pub text: &'a str,
}

/// Finds `%ASA-n-NNNNNN:` (or Firepower's `%FTD-`) at the start of a syslog message.
pub fn message(msg: &str) -> Option<Message<'_>> {
    let rest = msg
        .strip_prefix("%ASA-")
        .or_else(|| msg.strip_prefix("%FTD-"))?;
    let b = rest.as_bytes();
    if b.len() < 9 || !b[0].is_ascii_digit() || b[1] != b'-' {
        return None;
    }
    let digits = &rest[2..];
    let end = digits.find(':')?;
    let id: u32 = digits[..end].parse().ok().filter(|_| end == 6)?;
    Some(Message {
        severity: b[0] - b'0',
        id,
        text: digits[end + 1..].trim_start_matches(' '),
    })
}

/// What a remote-access message says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Said<'a> {
    /// A session began (113039 AnyConnect parent session, 716001 WebVPN session).
    Started {
        /// The group policy / tunnel group.
        group: &'a str,
        /// The user.
        user: &'a str,
        /// The client's address.
        ip: &'a str,
    },
    /// A session ended (716002; 113019 with its duration, bytes and type).
    Ended {
        /// The group policy / tunnel group.
        group: &'a str,
        /// The user.
        user: &'a str,
        /// The client's address.
        ip: &'a str,
        /// Why (`User Requested`, `Idle timeout`).
        reason: Option<&'a str>,
        /// How long the session lasted, seconds (113019).
        duration_s: Option<i64>,
        /// Bytes sent to the client (113019 `Bytes xmt`).
        bytes_xmt: Option<i64>,
        /// Bytes received from the client (113019 `Bytes rcv`).
        bytes_rcv: Option<i64>,
        /// `AnyConnect-Parent`, `SSL`, `IPsec`, `LAN-to-LAN`… (113019).
        session_type: Option<&'a str>,
    },
    /// A session was refused for the session limit (113029).
    Refused {
        /// The group policy / tunnel group.
        group: &'a str,
        /// The user.
        user: &'a str,
        /// The client's address.
        ip: &'a str,
        /// The limit reached.
        limit: Option<i64>,
    },
    /// A login failed (611102, 113015, 113021).
    AuthFailed {
        /// The user, when the message names one.
        user: Option<&'a str>,
        /// The client's address, when given.
        ip: Option<&'a str>,
    },
    /// A message gatewatch does not read (firewall traffic, tunnel children, admin…).
    Ignored,
    /// A session message whose fields cannot be read.
    Unreadable,
}

/// What `m` says, for remote-access purposes.
pub fn read<'a>(m: &Message<'a>) -> Said<'a> {
    let t = m.text;
    let who = || Some((field(t, "Group")?, field(t, "User")?, field(t, "IP")?));
    let who_113019 = || Some((field(t, "Group")?, field(t, "Username")?, field(t, "IP")?));
    let said = match m.id {
        113039 | 716001 => who().map(|(group, user, ip)| Said::Started { group, user, ip }),
        716002 => who().map(|(group, user, ip)| Said::Ended {
            group,
            user,
            ip,
            reason: after(t, "terminated:").map(|r| r.trim_end_matches('.')),
            duration_s: None,
            bytes_xmt: None,
            bytes_rcv: None,
            session_type: None,
        }),
        113019 => who_113019().map(|(group, user, ip)| Said::Ended {
            group,
            user,
            ip,
            reason: field(t, "Reason"),
            duration_s: field(t, "Duration").and_then(duration_s),
            bytes_xmt: field(t, "Bytes xmt").and_then(|v| v.parse().ok()),
            bytes_rcv: field(t, "Bytes rcv").and_then(|v| v.parse().ok()),
            session_type: field(t, "Session Type"),
        }),
        113029 => who().map(|(group, user, ip)| Said::Refused {
            group,
            user,
            ip,
            limit: after(t, "session limit of")
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse().ok()),
        }),
        611102 => Some(Said::AuthFailed {
            user: field(t, "Uname"),
            ip: field(t, "IP address"),
        }),
        113015 => Some(Said::AuthFailed {
            user: colon_field(t, "user"),
            ip: colon_field(t, "user IP"),
        }),
        113021 => Some(Said::AuthFailed {
            user: field(t, "User"),
            ip: None,
        }),
        _ => return Said::Ignored,
    };
    said.unwrap_or(Said::Unreadable)
}

/// What an ASA line says, in gatewatch's terms: sessions started (113039, 716001) and ended
/// (716002; 113019 with its duration and bytes: a whole-session record), refused for the
/// session limit (113029, `capacity`) or a pending reboot (113037, `draining`), failed logins
/// (611102, 113015, 113021); every other ASA message is ignored by its number (113019 of a
/// LAN-to-LAN tunnel as `113019 LAN-to-LAN`: a site-to-site tunnel is not a user's session).
pub(crate) fn reading<'a>(h: &Header<'a>, _clock: &Clock) -> Reading<'a> {
    let Some(m) = message(h.msg) else {
        return Reading::NotMine;
    };
    let session = |group, user, ip| SessionName::Derived("asa", [group, user, ip], 3);
    match read(&m) {
        Said::Started { group, user, ip } => Reading::Said(Event {
            session: session(group, user, ip),
            user: Some(user),
            ..Event::new(EventType::Connect)
        }),
        Said::Ended {
            session_type: Some("LAN-to-LAN"),
            ..
        } => Reading::Ignored(MessageId::new("113019 LAN-to-LAN")),
        Said::Ended {
            group,
            user,
            ip,
            reason,
            duration_s,
            bytes_xmt,
            bytes_rcv,
            ..
        } => Reading::Said(Event {
            session: session(group, user, ip),
            user: Some(user),
            reason,
            duration_ms: duration_s.map(|s| s.saturating_mul(1000)),
            // Bytes the ASA sent to the client are what the user downloaded.
            bytes_in: bytes_xmt,
            bytes_out: bytes_rcv,
            ..Event::new(EventType::Disconnect)
        }),
        Said::Refused { user, .. } => Reading::Said(Event {
            user: Some(user),
            reason: Some("capacity"),
            ..Event::new(EventType::Reject)
        }),
        Said::AuthFailed { user, .. } => Reading::Said(Event {
            user,
            ..Event::new(EventType::AuthFail)
        }),
        Said::Ignored if m.id == 113037 => Reading::Said(Event {
            reason: Some("draining"),
            ..Event::new(EventType::Reject)
        }),
        Said::Ignored => Reading::Ignored(MessageId::number(m.id)),
        Said::Unreadable => Reading::Unreadable,
    }
}

/// The value after `key` in the three ways ASA writes one: `key <value>` (may hold spaces),
/// `key = value,` and `key: value,` (113019, 611102), or `key value` (one word).
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(at) = text[from..].find(key) {
        let start = from + at;
        from = start + key.len();
        // The key must be a whole word: not the end of a longer one (`Username` for `User`).
        let before_ok = start == 0 || matches!(text.as_bytes()[start - 1], b' ' | b',');
        let rest = &text[from..];
        if !before_ok {
            continue;
        }
        if let Some(v) = rest.strip_prefix(" <") {
            return v.find('>').map(|e| &v[..e]);
        }
        for sep in [" = ", ": "] {
            if let Some(v) = rest.strip_prefix(sep) {
                let end = v.find(',').unwrap_or(v.len());
                return Some(v[..end].trim()).filter(|v| !v.is_empty());
            }
        }
        if let Some(v) = rest.strip_prefix(' ') {
            let end = v.find(' ').unwrap_or(v.len());
            return Some(&v[..end]).filter(|v| !v.is_empty());
        }
    }
    None
}

/// 113015's ` : key = value :` fields.
fn colon_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.split(" : ").find_map(|part| {
        let (k, v) = part.split_once(" = ")?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// The rest of the text after `marker`, trimmed.
fn after<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    text.find(marker)
        .map(|i| text[i + marker.len()..].trim())
        .filter(|r| !r.is_empty())
}

/// `0h:32m:16s`, `1d 2h:03m:04s` -> seconds.
fn duration_s(v: &str) -> Option<i64> {
    let mut total = 0i64;
    let mut seen = false;
    for part in v.split([':', ' ']).filter(|p| !p.is_empty()) {
        // `32m`: digits, then one ASCII unit letter (anything else is no duration).
        if !part.is_ascii() {
            return None;
        }
        let (n, unit) = part.split_at(part.len().checked_sub(1)?);
        let n: i64 = n.parse().ok()?;
        total = total.checked_add(n.checked_mul(match unit {
            "d" => 86_400,
            "h" => 3_600,
            "m" => 60,
            "s" => 1,
            _ => return None,
        })?)?;
        seen = true;
    }
    seen.then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(line: &str) -> Said<'_> {
        read(&message(line).unwrap())
    }

    #[test]
    fn ids_and_text() {
        let m = message(
            "%ASA-6-113039: Group <G> User <u> IP <10.0.0.1> AnyConnect parent session started.",
        )
        .unwrap();
        assert_eq!((m.severity, m.id), (6, 113039));
        assert!(m.text.starts_with("Group <G>"));
        assert_eq!(message("%FTD-4-113019: x").unwrap().id, 113019);
        for bad in [
            "",
            "%ASA-",
            "%ASA-6-11303: x",
            "%ASA-x-113039: x",
            "%ASA-6-1130399: x",
            "ASA-6-113039: x",
            "%ASA-6-113039 x",
        ] {
            assert_eq!(message(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn sessions_start_in_every_quoting() {
        for line in [
            "%ASA-6-113039: Group <Remote Staff> User <anna.b> IP <192.0.2.10> AnyConnect parent session started.",
            "%ASA-6-113039: Group Remote Staff User anna.b IP 192.0.2.10 AnyConnect parent session started.",
        ] {
            let s = said(line);
            let Said::Started { user, ip, .. } = s else { panic!("{s:?}") };
            assert_eq!((user, ip), ("anna.b", "192.0.2.10"));
        }
        assert_eq!(
            said("%ASA-6-716001: Group <G> User <o'brien@bank.example> IP <2001:db8::7> WebVPN session started."),
            Said::Started { group: "G", user: "o'brien@bank.example", ip: "2001:db8::7" }
        );
    }

    #[test]
    fn a_113019_carries_the_whole_session() {
        let s = said("%ASA-4-113019: Group = Staff, Username = anna.b, IP = 192.0.2.10, Session disconnected. Session Type: AnyConnect-Parent, Duration: 1h:02m:03s, Bytes xmt: 1200, Bytes rcv: 3400, Reason: Idle Timeout");
        assert_eq!(
            s,
            Said::Ended {
                group: "Staff",
                user: "anna.b",
                ip: "192.0.2.10",
                reason: Some("Idle Timeout"),
                duration_s: Some(3723),
                bytes_xmt: Some(1200),
                bytes_rcv: Some(3400),
                session_type: Some("AnyConnect-Parent"),
            }
        );
        assert_eq!(duration_s("2d 0h:00m:01s"), Some(172_801));
        assert_eq!(duration_s("soon"), None);
    }

    #[test]
    fn ends_refusals_and_failures() {
        let Said::Ended { reason, .. } = said(
            "%ASA-6-716002: Group G User u IP 192.0.2.1 WebVPN session terminated: Idle timeout.",
        ) else {
            panic!()
        };
        assert_eq!(reason, Some("Idle timeout"));
        assert_eq!(
            said("%ASA-4-113029: Group <G> User <u> IP <192.0.2.1> Session could not be established: session limit of 250 reached."),
            Said::Refused { group: "G", user: "u", ip: "192.0.2.1", limit: Some(250) }
        );
        assert_eq!(
            said("%ASA-6-611102: User authentication failed: IP address: 192.0.2.9, Uname: eve"),
            Said::AuthFailed {
                user: Some("eve"),
                ip: Some("192.0.2.9")
            }
        );
        assert_eq!(
            said("%ASA-6-113015: AAA user authentication Rejected : reason = Invalid password : server = 10.1.1.1 : user = bob : user IP = 192.0.2.3"),
            Said::AuthFailed { user: Some("bob"), ip: Some("192.0.2.3") }
        );
    }

    #[test]
    fn other_messages_are_ignored_and_broken_session_messages_unreadable() {
        assert_eq!(said("%ASA-6-302013: Built outbound TCP connection 1 for a:10.0.0.1/80 (10.0.0.1/80) to b:10.0.0.2/5 (10.0.0.2/5)"), Said::Ignored);
        assert_eq!(said("%ASA-4-722051: Group <G> User <u> IP <192.0.2.1> IPv4 Address <10.9.0.2> IPv6 address <::> assigned to session"), Said::Ignored);
        assert_eq!(
            said("%ASA-6-113039: Group <G> AnyConnect parent session started."),
            Said::Unreadable
        );
        assert_eq!(
            said("%ASA-6-113039: Group <G User <u IP <"),
            Said::Unreadable
        );
        assert_eq!(
            said("%ASA-4-113019: Session disconnected."),
            Said::Unreadable
        );
    }
}
