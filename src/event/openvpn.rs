//! OpenVPN server log lines (OpenVPN 2.x, `--syslog` or a relay's forwarding of its log):
//! `198.51.100.7:51234 [anna] Peer Connection Initiated with [AF_INET]198.51.100.7:51234`,
//! `anna/198.51.100.7:51234 SIGTERM[soft,remote-exit] received, client-instance exiting`.
//!
//! Owns: the client prefix (`ip:port [cn]` before authentication is done, `cn/ip:port` after),
//! OpenVPN's own stamps (`Tue Mar 17 08:30:00 2020`, `2020-03-17 08:30:00`) and what each
//! message means in gatewatch's terms ([`reading`]). Must not touch: the syslog header (that is
//! `syslog`), event ids and the rules every vendor shares (`gateway`).

use super::gateway::{MessageId, Reading, Said, SessionName};
use super::syslog::{self, Clock, Header};
use super::EventType;

/// A client instance: its common name (empty before it is known) and `ip:port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client<'a> {
    /// The certificate's common name (or the username).
    pub cn: &'a str,
    /// The client's address and port.
    pub addr: &'a str,
}

/// The client prefix of `text` and what follows it.
pub fn client(text: &str) -> Option<(Client<'_>, &str)> {
    let (first, rest) = text.split_once(' ').unwrap_or((text, ""));
    if let Some((cn, addr)) = first.split_once('/') {
        if !cn.is_empty() && addr.contains(':') {
            return Some((Client { cn, addr }, rest));
        }
    }
    let port = first.rsplit_once(':')?.1;
    if port.is_empty() || !port.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if let Some(after) = rest.strip_prefix('[') {
        if let Some((cn, rest)) = after.split_once("] ") {
            return Some((Client { cn, addr: first }, rest));
        }
    }
    Some((
        Client {
            cn: "",
            addr: first,
        },
        rest,
    ))
}

/// OpenVPN's own stamp at the start of `s` (its log file writes one when not to syslog), in
/// local time: `Tue Mar 17 08:30:00 2020 ` or `2020-03-17 08:30:00 `; with what follows.
fn own_stamp<'a>(s: &'a str, clock: &Clock) -> Option<(i64, &'a str)> {
    if let Some(ts) = s.get(..19).and_then(|p| syslog::local_datetime(p, clock)) {
        return Some((ts, s[19..].trim_start()));
    }
    // `Tue Mar 17 08:30:00 2020`: weekday, then a year-ful RFC 3164-like stamp.
    let (_, rest) = s.split_once(' ')?;
    let head = rest.get(..20).filter(|h| h.is_ascii())?; // `Mar 17 08:30:00 2020`
    let (md, year) = head.split_at(16);
    let year: i64 = year.parse().ok()?;
    let line = syslog::parse(md.trim_end(), &Clock::in_year(year, clock.local_offset_ms));
    Some((line.ts_ms?, rest[20..].trim_start()))
}

/// What an OpenVPN line says, in gatewatch's terms: `Peer Connection Initiated` is a connect,
/// `client-instance exiting` and `client-instance restarting` (after `SIGTERM[soft,…]`,
/// `SIGUSR1[soft,ping-restart]`…) a disconnect with the signal's reason, `AUTH_FAILED` and
/// `Auth Username/Password verification failed` an `auth_fail`, `would exceed maximum number
/// of clients` (`--max-clients`) a `capacity` reject. The session is
/// `openvpn:<cn>:<ip:port>` (a client instance). Lines of a process tagged `openvpn` about
/// anything else are ignored by their first words.
pub(crate) fn reading<'a>(h: &Header<'a>, clock: &Clock) -> Reading<'a> {
    let tagged = h
        .tag
        .is_some_and(|t| t.starts_with("openvpn") || t.starts_with("ovpn"));
    let (own_ts, text) = match own_stamp(h.msg, clock) {
        Some((ts, rest)) => (Some(ts), rest),
        None => (None, h.msg),
    };
    let said = |kind, c: Option<Client<'a>>| Said {
        ts_ms: h.ts_ms.or(own_ts),
        session: c.map_or(SessionName::None, |c| {
            SessionName::Derived("openvpn", [c.cn, c.addr, ""], 2)
        }),
        user: c
            .map(|c| c.cn)
            .filter(|cn| !cn.is_empty() && *cn != "UNDEF"),
        ..Said::new(kind)
    };
    // `MULTI: new incoming connection from ip:port would exceed maximum number of clients (N)`
    // (`--max-clients`): a capacity refusal.
    if text.contains("would exceed maximum number of clients") {
        return Reading::Said(Said {
            reason: Some("capacity"),
            ..said(EventType::Reject, None)
        });
    }
    let Some((c, rest)) = client(text) else {
        return if tagged {
            Reading::Ignored(MessageId::words(text))
        } else {
            Reading::NotMine
        };
    };
    if rest.contains("AUTH_FAILED") || rest.contains("Auth Username/Password verification failed") {
        return Reading::Said(Said {
            session: SessionName::None,
            ..said(EventType::AuthFail, Some(c))
        });
    }
    if rest.starts_with("Peer Connection Initiated with") {
        return if c.cn.is_empty() {
            Reading::Unreadable
        } else {
            Reading::Said(said(EventType::Connect, Some(c)))
        };
    }
    if rest.ends_with("client-instance exiting") || rest.ends_with("client-instance restarting") {
        // `SIGTERM[soft,remote-exit] received, client-instance exiting`
        let reason = rest
            .split_once('[')
            .and_then(|(_, r)| r.split_once(']'))
            .map(|(inside, _)| inside.rsplit(',').next().unwrap_or(inside));
        return Reading::Said(Said {
            reason,
            ..said(EventType::Disconnect, Some(c))
        });
    }
    if tagged {
        Reading::Ignored(MessageId::words(rest))
    } else {
        Reading::NotMine
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::syslog::parse;

    fn said(line: &str) -> Reading<'_> {
        let clock = Clock::in_year(2020, 0);
        reading(&parse(line, &clock), &clock)
    }

    #[test]
    fn sessions_and_failures() {
        let Reading::Said(s) = said("Mar 17 08:30:00 vpn1 openvpn[812]: 198.51.100.7:51234 [anna] Peer Connection Initiated with [AF_INET]198.51.100.7:51234") else { panic!() };
        assert_eq!(s.kind, EventType::Connect);
        assert_eq!(
            s.session,
            SessionName::Derived("openvpn", ["anna", "198.51.100.7:51234", ""], 2)
        );
        assert_eq!(s.user, Some("anna"));
        let Reading::Said(s) = said("Mar 17 09:30:00 vpn1 openvpn[812]: anna/198.51.100.7:51234 SIGTERM[soft,remote-exit] received, client-instance exiting") else { panic!() };
        assert_eq!(
            (s.kind, s.reason),
            (EventType::Disconnect, Some("remote-exit"))
        );
        assert_eq!(
            s.session,
            SessionName::Derived("openvpn", ["anna", "198.51.100.7:51234", ""], 2)
        );
        let Reading::Said(s) = said("Mar 17 09:30:00 vpn1 openvpn[812]: 198.51.100.9:4000 TLS Auth Error: Auth Username/Password verification failed for peer") else { panic!() };
        assert_eq!((s.kind, s.user), (EventType::AuthFail, None));
        assert_eq!(
            said("Mar 17 09:30:00 vpn1 openvpn[812]: MULTI: multi_create_instance called"),
            Reading::Ignored(MessageId::new("MULTI multi_create_instance"))
        );
        assert_eq!(
            said("Mar 17 09:30:00 vpn1 sshd[1]: Accepted publickey for x"),
            Reading::NotMine
        );
        // OpenVPN's own log file stamp (no syslog header).
        let Reading::Said(s) = said("Tue Mar 17 08:30:00 2020 anna/[AF_INET6]2001:db8::7:1194 SIGUSR1[soft,ping-restart] received, client-instance restarting") else { panic!() };
        assert_eq!(
            (s.ts_ms, s.reason),
            (
                crate::event::parse_rfc3339_ms("2020-03-17T08:30:00Z"),
                Some("ping-restart")
            )
        );
    }
}
