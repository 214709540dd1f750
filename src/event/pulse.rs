//! Pulse Connect Secure / Ivanti Connect Secure messages (the `PulseSecure:` events log): the
//! common prefix (`2021-10-19 09:10:35 - node - [client ip] user(realm)[roles] - text`) and
//! which texts are remote-access session messages.
//!
//! Owns: the prefix's fields, the wording of session, timeout, login-failure and
//! closed-connection texts, and what they mean in gatewatch's terms ([`reading`]). Must not
//! touch: the syslog header (that is `syslog`), event ids and the rules every vendor shares
//! (`gateway`).

use super::gateway::{MessageId, Reading, Said as Event, SessionName};
use super::syslog::{self, Clock, Header};
use super::EventType;

/// The fields every Pulse events-log message starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix<'a> {
    /// `2021-10-19 09:10:35`: the node's local time, no zone.
    pub local_time: &'a str,
    /// The node (appliance) name: the gateway.
    pub node: &'a str,
    /// The client's address.
    pub client_ip: &'a str,
    /// The user, without realm (`Default Network::` dropped); empty for `System()`.
    pub user: &'a str,
    /// The realm (the part in parentheses).
    pub realm: &'a str,
    /// The message text after ` - `.
    pub text: &'a str,
}

/// Reads the prefix of a Pulse message (`msg` as the syslog header left it; a leading `- - - `
/// of RFC 5424 nil fields is skipped).
pub fn prefix(msg: &str) -> Option<Prefix<'_>> {
    let mut s = msg.trim_start();
    while let Some(rest) = s.strip_prefix("- ") {
        s = rest;
    }
    // `2021-10-19 09:10:35 - node - [ip] who - text`
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' || b[13] != b':' {
        return None;
    }
    let local_time = s.get(..19)?;
    let rest = s[19..].strip_prefix(" - ")?;
    let (node, rest) = rest.split_once(" - ")?;
    let rest = rest.strip_prefix('[')?;
    let (client_ip, rest) = rest.split_once("] ")?;
    let (who, text) = rest.split_once(" - ")?;
    let who = who.rsplit("::").next().unwrap_or(who);
    let (user, realm) = match who.split_once('(') {
        Some((u, r)) => (u, r.split(')').next().unwrap_or("")),
        None => (who, ""),
    };
    Some(Prefix {
        local_time,
        node,
        client_ip,
        user,
        realm,
        text,
    })
}

/// What a Pulse message says, for remote-access purposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Said<'a> {
    /// `VPN Tunneling: Session started for user (session: sid…) with IPv4 address A`.
    Started {
        /// The session id (`sid…`).
        session: &'a str,
        /// The tunnel address given to the client, if named.
        tunnel_ip: Option<&'a str>,
    },
    /// `VPN Tunneling: Session ended …`, `Session timed out …`, `Logout from … (session:…)`.
    Ended {
        /// The session id.
        session: &'a str,
        /// `timeout` for a timed-out session, `logout` for a logout, else none.
        reason: Option<&'static str>,
    },
    /// `Closed connection to X after N seconds, with R bytes read and W bytes written`.
    Closed {
        /// What the connection went to (`TUN-VPN port 443` for the tunnel itself).
        target: &'a str,
        /// How long it was open.
        seconds: i64,
        /// Bytes read from the client.
        bytes_read: Option<i64>,
        /// Bytes written to the client.
        bytes_written: Option<i64>,
        /// The session, when the text names it.
        session: Option<&'a str>,
    },
    /// `Primary authentication failed…`, `Secondary authentication failed…` (the `Login
    /// failed…` lines that follow them are the same attempt, and ignored).
    AuthFailed,
    /// Any other message (successful logins, web requests, admin changes…).
    Ignored,
    /// A session message whose fields cannot be read.
    Unreadable,
}

/// What `p`'s text says.
pub fn read<'a>(p: &Prefix<'a>) -> Said<'a> {
    let t = p.text;
    if let Some(rest) = t.strip_prefix("VPN Tunneling: Session started") {
        return match session_id(rest) {
            Some(session) => Said::Started {
                session,
                tunnel_ip: rest
                    .split_once("IPv4 address ")
                    .map(|(_, a)| a.split([',', ' ']).next().unwrap_or(a))
                    .filter(|a| !a.is_empty()),
            },
            None => Said::Unreadable,
        };
    }
    let ended = |rest: &'a str, reason| match session_id(rest) {
        Some(session) => Said::Ended { session, reason },
        None => Said::Unreadable,
    };
    if let Some(rest) = t.strip_prefix("VPN Tunneling: Session ended") {
        return ended(rest, None);
    }
    if let Some(rest) = t.strip_prefix("Session timed out") {
        return ended(rest, Some("timeout"));
    }
    if let Some(rest) = t.strip_prefix("Logout from") {
        return ended(rest, Some("logout"));
    }
    if let Some(rest) = t.strip_prefix("Closed connection to ") {
        let Some((target, after)) = rest.split_once(" after ") else {
            return Said::Unreadable;
        };
        let Some(seconds) = after
            .split_once(" seconds")
            .and_then(|(n, _)| n.trim().parse().ok())
        else {
            return Said::Unreadable;
        };
        return Said::Closed {
            target,
            seconds,
            bytes_read: number_before(after, " bytes read"),
            bytes_written: number_before(after, " bytes written"),
            session: session_id(after),
        };
    }
    // One failed attempt logs `Primary authentication failed …` (or `Secondary …`, the token)
    // and then `Login failed …` lines: only the first kind is counted, once per attempt.
    if t.starts_with("Primary authentication failed")
        || t.starts_with("Secondary authentication failed")
    {
        return Said::AuthFailed;
    }
    Said::Ignored
}

/// What a Pulse line says, in gatewatch's terms: `VPN Tunneling: Session started` is a
/// connect, `Session ended`, `Session timed out` and `Logout from` are disconnects (reason
/// `timeout`, `logout`), `Closed connection to TUN-VPN … after N seconds` closes the tunnel's
/// session as a whole-session record with its bytes, failed logins are `auth_fail`. The node
/// in the prefix is the server; its local time the event time when the syslog header has none.
/// Every other message is ignored by its first two words.
pub(crate) fn reading<'a>(h: &Header<'a>, clock: &Clock) -> Reading<'a> {
    let Some(p) = prefix(h.msg) else {
        return Reading::NotMine;
    };
    let base = |kind| Event {
        server: Some(p.node),
        ts_ms: h
            .ts_ms
            .or_else(|| syslog::local_datetime(p.local_time, clock)),
        user: Some(p.user).filter(|u| !u.is_empty() && *u != "System"),
        ..Event::new(kind)
    };
    match read(&p) {
        Said::Started { session, .. } => Reading::Said(Event {
            session: SessionName::Given(session),
            ..base(EventType::Connect)
        }),
        Said::Ended { session, reason } => Reading::Said(Event {
            session: SessionName::Given(session),
            reason,
            ..base(EventType::Disconnect)
        }),
        Said::Closed {
            target,
            seconds,
            bytes_read,
            bytes_written,
            session: Some(session),
        } if target.starts_with("TUN-VPN") => Reading::Said(Event {
            session: SessionName::Given(session),
            duration_ms: Some(seconds.saturating_mul(1000)),
            // Bytes written to the client are what the user downloaded.
            bytes_in: bytes_written,
            bytes_out: bytes_read,
            ..base(EventType::Disconnect)
        }),
        Said::Closed { .. } => Reading::Ignored(MessageId::new("Closed connection")),
        Said::AuthFailed => Reading::Said(base(EventType::AuthFail)),
        Said::Ignored => Reading::Ignored(MessageId::words(p.text)),
        Said::Unreadable => Reading::Unreadable,
    }
}

/// `(session: sid…)` or `(session:sid…)` anywhere in `s`.
fn session_id(s: &str) -> Option<&str> {
    let (_, rest) = s.split_once("(session:")?;
    let rest = rest.trim_start();
    let end = rest.find(|c: char| !c.is_ascii_alphanumeric())?;
    let id = &rest[..end];
    (id.len() > 3 && id.starts_with("sid")).then_some(id)
}

/// The number right before `marker` (`1308 bytes read`).
fn number_before(s: &str, marker: &str) -> Option<i64> {
    let (before, _) = s.split_once(marker)?;
    before.rsplit(' ').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STARTED: &str = "- - - 2020-03-17 08:30:05 - vpn-node2 - [198.51.100.7] anna.b(Staff)[Staff_Roles] - VPN Tunneling: Session started for user (session: sid0123456789abcdef) with IPv4 address 10.20.0.9, hostname LAPTOP-1";

    #[test]
    fn the_prefix_in_both_user_forms() {
        let p = prefix(STARTED).unwrap();
        assert_eq!(
            (p.local_time, p.node, p.client_ip, p.user, p.realm),
            (
                "2020-03-17 08:30:05",
                "vpn-node2",
                "198.51.100.7",
                "anna.b",
                "Staff"
            )
        );
        let p = prefix("2020-03-17 08:30:05 - vpn-node2 - [198.51.100.7] Default Network::anna.b(Staff)[Staff_Roles][0a1b2c] - VPN Tunneling: Session ended for user  (session: sidfeed) with IPv4 address 10.20.0.9").unwrap();
        assert_eq!((p.user, p.realm), ("anna.b", "Staff"));
        let p = prefix("2020-03-17 08:30:05 - vpn-node2 - [127.0.0.1] Default Network::System()[][] - :Client connection done").unwrap();
        assert_eq!(
            (p.user, p.realm, p.text),
            ("System", "", ":Client connection done")
        );
        for bad in [
            "",
            "- - -",
            "2020-03-17",
            "2020-03-17 08:30:05 vpn",
            "2020-03-17 08:30:05 - n - 1.2.3.4 u - t",
        ] {
            assert_eq!(prefix(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn sessions_start_and_end() {
        assert_eq!(
            read(&prefix(STARTED).unwrap()),
            Said::Started {
                session: "sid0123456789abcdef",
                tunnel_ip: Some("10.20.0.9")
            }
        );
        let said = |text: &str| {
            let line = format!(
                "2020-03-17 09:00:00 - vpn-node2 - [198.51.100.7] anna.b(Staff)[] - {text}"
            );
            format!("{:?}", read(&prefix(&line).unwrap()))
        };
        assert_eq!(said("VPN Tunneling: Session ended for user (session: sidfeed01) with IPv4 address 10.20.0.9"), r#"Ended { session: "sidfeed01", reason: None }"#);
        assert_eq!(said("Session timed out for anna.b/Staff (session:sidfeed01) due to inactivity (last access at 08:40:00 2020/03/17). Idle session identified during routine system scan."), r#"Ended { session: "sidfeed01", reason: Some("timeout") }"#);
        assert_eq!(
            said("Logout from 198.51.100.7 (session:sidfeed01)"),
            r#"Ended { session: "sidfeed01", reason: Some("logout") }"#
        );
        assert_eq!(
            said("VPN Tunneling: Session started for user with IPv4 address 10.20.0.9"),
            "Unreadable"
        );
    }

    #[test]
    fn closed_connections_failures_and_the_rest() {
        let said = |text: &str| {
            let line = format!(
                "2020-03-17 09:00:00 - vpn-node2 - [198.51.100.7] anna.b(Staff)[] - {text}"
            );
            format!("{:?}", read(&prefix(&line).unwrap()))
        };
        assert_eq!(
            said("Closed connection to TUN-VPN port 443 after 1800 seconds, with 5000 bytes read (in 7 chunks) and 9000 bytes written (in 9 chunks) (session:sidfeed01)"),
            r#"Closed { target: "TUN-VPN port 443", seconds: 1800, bytes_read: Some(5000), bytes_written: Some(9000), session: Some("sidfeed01") }"#
        );
        assert_eq!(
            said("Closed connection to 10.1.2.3 after soon"),
            "Unreadable"
        );
        assert_eq!(said("Login failed. Reason: Wrong Password"), "Ignored");
        assert_eq!(
            said("Primary authentication failed for anna.b/Staff from 198.51.100.7"),
            "AuthFailed"
        );
        assert_eq!(
            said("Primary authentication successful for anna.b/Staff from 198.51.100.7"),
            "Ignored"
        );
        assert_eq!(
            said("WebRequest completed, GET to https://intranet/ from 198.51.100.7 result=200"),
            "Ignored"
        );
    }
}
