//! Citrix ADC (NetScaler) Gateway messages: `default SSLVPN LOGIN 2345680 0 : User u -
//! Client_ip … - Vserver …`, the `AAATM`/`SSLVPN` `LOGOUT` record of a whole session with its
//! `Start_time` and `End_time`, and the `ICASTART`/`ICAEND_CONNSTAT` records of a VDI (ICA)
//! connection (Citrix's "NetScaler Gateway syslog messages" reference).
//!
//! Owns: the message head (context, feature, event, sequence) and the ` - `-separated fields,
//! and what each message means in gatewatch's terms ([`reading`]). Must not touch: the syslog
//! header, NetScaler's own included (that is `syslog`), event ids and the rules every vendor
//! shares (`gateway`).

use super::gateway::{hms_seconds, value_after, MessageId, Reading, Said, SessionName};
use super::syslog::{self, Clock, Header};
use super::EventType;

/// The head of a NetScaler message: `default SSLVPN LOGIN 2345680 0 : text`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// The module (`SSLVPN`, `AAATM`, `AAA`, `ICA`, `TCP`…), when named.
    pub feature: &'a str,
    /// The event (`LOGIN`, `LOGOUT`, `TCPCONNSTAT`, `Message`…).
    pub event: &'a str,
    /// The fields after ` : `.
    pub text: &'a str,
}

/// Finds the head: an optional partition/context word, the feature in capitals, the event,
/// two numbers, then ` : `. (`LOGOUT 1234567 0 :` without a feature, as older firmware writes
/// it, has an empty feature.)
pub fn message(msg: &str) -> Option<Message<'_>> {
    let colon = msg
        .find(" : ")
        .or_else(|| msg.strip_suffix(" :").map(str::len))?;
    let head = &msg[..colon];
    let text = msg.get(colon + 3..).unwrap_or("").trim_start_matches(' ');
    let mut words = [""; 5];
    let mut n = 0;
    for w in head.split(' ').filter(|w| !w.is_empty()) {
        if n == words.len() {
            return None;
        }
        words[n] = w;
        n += 1;
    }
    if n < 3 {
        return None;
    }
    let number = |w: &str| !w.is_empty() && w.bytes().all(|c| c.is_ascii_digit());
    if !number(words[n - 1]) || !number(words[n - 2]) {
        return None;
    }
    let name = |w: &str| {
        !w.is_empty() && w.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') && w.len() <= 40
    };
    let capitals = |w: &str| name(w) && w.bytes().all(|c| !c.is_ascii_lowercase());
    let event = words[n - 3];
    if !name(event) {
        return None;
    }
    let feature = match n {
        5 if capitals(words[1]) => words[1],
        4 if capitals(words[0]) && words[0] != "default" => words[0],
        4 | 3 => "",
        _ => return None,
    };
    Some(Message {
        feature,
        event,
        text,
    })
}

/// What a NetScaler line says, in gatewatch's terms: `LOGIN` is a connect; `LOGOUT` (AAATM or
/// SSLVPN) a whole-session record (`Start_time` to `End_time`, its bytes and `LogoutMethod` as
/// the reason); `ICASTART` and `ICAEND_CONNSTAT` the connect and whole-session record of a VDI
/// connection (app `ica`); `LOGIN_FAILED` an `auth_fail`; `LICLMT_REACHED` a `license` reject.
/// The session is `SessionId` when the firmware writes one, else `citrix:<user>:<client ip>`;
/// an ICA connection's is `ica:<connectionId>`. Every other message (`TCPCONNSTAT`,
/// `HTTPREQUEST`…) is ignored as `FEATURE EVENT`.
pub(crate) fn reading<'a>(h: &Header<'a>, clock: &Clock) -> Reading<'a> {
    let Some(m) = message(h.msg) else {
        return Reading::NotMine;
    };
    // Most of a gateway's NetScaler lines are traffic statistics: counted by name before any
    // field of theirs is looked for.
    if !matches!(
        m.event,
        "LOGIN" | "LOGOUT" | "ICASTART" | "ICAEND_CONNSTAT" | "LOGIN_FAILED" | "LICLMT_REACHED"
    ) {
        return Reading::Ignored(feature_event(&m));
    }
    let t = m.text;
    let field = |key: &str| value_after(t, key, " - ").map(unquote);
    let user = field("User ").and_then(|u| u.split(' ').next());
    let client_ip = field("Client_ip ").unwrap_or("");
    let server = h.host.or_else(|| {
        field("Vserver ")
            .filter(|v| !v.is_empty() && !v.starts_with("0.0.0.0"))
            .and_then(|v| v.split(' ').next())
    });
    let session = || match field("SessionId: ").filter(|s| !s.is_empty()) {
        Some(id) => Some(SessionName::Derived("citrix", [id, "", ""], 1)),
        None => user.map(|u| SessionName::Derived("citrix", [u, client_ip, ""], 2)),
    };
    let base = |kind| Said {
        server,
        user,
        ..Said::new(kind)
    };
    let bytes = |key: &str| field(key).and_then(|v| v.parse::<i64>().ok());
    let interval = |start_key: &str, end_key: &str| {
        let end = field(end_key).and_then(|v| syslog::netscaler_stamp(v, clock));
        let start = field(start_key).and_then(|v| syslog::netscaler_stamp(v, clock));
        let duration = match (start, end) {
            (Some(s), Some(e)) if e >= s => Some(e - s),
            _ => field("Duration ")
                .and_then(hms_seconds)
                .map(|s| s.saturating_mul(1000)),
        };
        (end, duration)
    };
    match m.event {
        "LOGIN" => match session() {
            Some(session) => Reading::Said(Said {
                session,
                app: field("SSLVPN_client_type "),
                ..base(EventType::Connect)
            }),
            None => Reading::Unreadable,
        },
        "LOGOUT" => {
            let (end, duration_ms) = interval("Start_time ", "End_time ");
            match session() {
                Some(session) => Reading::Said(Said {
                    session,
                    ts_ms: end,
                    duration_ms,
                    reason: field("LogoutMethod "),
                    // What the appliance sent is what the user downloaded.
                    bytes_in: bytes("Total_bytes_send "),
                    bytes_out: bytes("Total_bytes_recv "),
                    ..base(EventType::Disconnect)
                }),
                None => Reading::Unreadable,
            }
        }
        "ICASTART" | "ICAEND_CONNSTAT" => {
            let Some(id) = value_after(t, "connectionId ", " ").filter(|v| !v.is_empty()) else {
                return Reading::Unreadable;
            };
            // `username:domainname dkesecs:norr.org`
            let user = value_after(t, "username:domainname ", " - ")
                .map(|v| v.split(':').next().unwrap_or(v))
                .filter(|u| !u.is_empty());
            let ica = Said {
                session: SessionName::Derived("ica", [id, "", ""], 1),
                app: Some("ica"),
                user,
                ..base(EventType::Connect)
            };
            if m.event == "ICASTART" {
                return Reading::Said(ica);
            }
            let (end, duration_ms) = interval("startTime ", "endTime ");
            Reading::Said(Said {
                kind: EventType::Disconnect,
                ts_ms: end,
                duration_ms,
                bytes_in: bytes("Total_bytes_send "),
                bytes_out: bytes("Total_bytes_recv "),
                ..ica
            })
        }
        "LOGIN_FAILED" => Reading::Said(base(EventType::AuthFail)),
        "LICLMT_REACHED" => Reading::Said(Said {
            reason: Some("license"),
            ..base(EventType::Reject)
        }),
        _ => Reading::Ignored(feature_event(&m)),
    }
}

/// `SSLVPN TCPCONNSTAT`, or the event alone.
fn feature_event(m: &Message<'_>) -> MessageId {
    let mut buf = [0u8; MessageId::MAX];
    let (f, e) = (m.feature.as_bytes(), m.event.as_bytes());
    let mut n = 0;
    for part in [f, b" ", e] {
        if f.is_empty() && part == b" " {
            continue;
        }
        let k = part.len().min(buf.len() - n);
        buf[n..n + k].copy_from_slice(&part[..k]);
        n += k;
    }
    MessageId::new(std::str::from_utf8(&buf[..n]).unwrap_or("other"))
}

/// A value without its quotes (`"Mapped Ip"`, or `\"…\"` as some relays escape them).
fn unquote(v: &str) -> &str {
    v.trim_matches(|c| c == '"' || c == '\\')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::syslog::parse;

    fn said(line: &str) -> Reading<'_> {
        let clock = Clock::in_year(2020, 0);
        reading(&parse(line, &clock), &clock)
    }

    fn ms(s: &str) -> i64 {
        crate::event::parse_rfc3339_ms(s).unwrap()
    }

    #[test]
    fn heads() {
        let m = message("default SSLVPN LOGIN 2345680 0 : User u - Client_ip 1.2.3.4").unwrap();
        assert_eq!((m.feature, m.event), ("SSLVPN", "LOGIN"));
        assert_eq!(m.text, "User u - Client_ip 1.2.3.4");
        let m = message("default LOGOUT 1234567 0 :  User cerry").unwrap();
        assert_eq!((m.feature, m.event, m.text), ("", "LOGOUT", "User cerry"));
        let m = message("default AAA Message 12345678 0 :  \"core\"").unwrap();
        assert_eq!((m.feature, m.event), ("AAA", "Message"));
        for bad in [
            "",
            "default SSLVPN LOGIN x 0 : a",
            "a b c d e f 1 2 : x",
            "%ASA-6-1: x",
        ] {
            assert_eq!(message(bad), None, "{bad}");
        }
    }

    #[test]
    fn login_logout_and_ica() {
        let Reading::Said(s) = said("<135> 03/17/2020:08:30:00 GMT vpx-a 0-PPE-0 : default SSLVPN LOGIN 1 0 : Context anna@10.1.1.1 - SessionId: 77 - User anna - Client_ip 10.1.1.1 - Nat_ip \"Mapped Ip\" - Vserver 10.0.0.1:443 - Browser_type \"Mozilla/5.0\" - SSLVPN_client_type ICA - Group(s) \"Staff\"") else { panic!() };
        assert_eq!(s.kind, EventType::Connect);
        assert_eq!(s.session, SessionName::Derived("citrix", ["77", "", ""], 1));
        assert_eq!(
            (s.user, s.app, s.server),
            (Some("anna"), Some("ICA"), Some("vpx-a"))
        );
        // No SessionId (older firmware), escaped quotes, the end time without a space.
        let Reading::Said(s) = said("<134> 03/17/2020:09:30:00 GMT vpx-a 0-PPE-0 : default AAATM LOGOUT 2 0 :  User anna - Client_ip 10.1.1.1 - Nat_ip \\\"Mapped Ip\\\" - Vserver 10.0.0.1:443 - Start_time \\\"03/17/2020:08:30:00 GMT\\\" - End_time \\\"03/17/2020:09:29:59GMT\\\" - Duration 00:59:59  - Total_bytes_send 900 - Total_bytes_recv 100 - LogoutMethod \\\"Explicit\\\" - Group(s) \\\"N/A\\\"") else { panic!() };
        assert_eq!(s.kind, EventType::Disconnect);
        assert_eq!(
            s.session,
            SessionName::Derived("citrix", ["anna", "10.1.1.1", ""], 2)
        );
        assert_eq!(s.ts_ms, Some(ms("2020-03-17T09:29:59Z")));
        assert_eq!(s.duration_ms, Some(3_599_000));
        assert_eq!(
            (s.bytes_in, s.bytes_out, s.reason),
            (Some(900), Some(100), Some("Explicit"))
        );
        // Local time without GMT; no header host: the Vserver names the gateway.
        let Reading::Said(s) = said("<135> default ICAEND_CONNSTAT 3 0 :  [TCP][CGP] Source 10.1.1.1:5 - Destination 10.2.2.2:1494 - customername  - username:domainname anna:corp - startTime \"03/17/2020:08:00:00\" - endTime \"03/17/2020:08:45:11\" - Duration 00:45:11  - Total_bytes_send 5 - Total_bytes_recv 6 - connectionId 99") else { panic!() };
        assert_eq!(
            (s.kind, s.app, s.user),
            (EventType::Disconnect, Some("ica"), Some("anna"))
        );
        assert_eq!(s.session, SessionName::Derived("ica", ["99", "", ""], 1));
        assert_eq!(
            (s.ts_ms, s.duration_ms),
            (Some(ms("2020-03-17T08:45:11Z")), Some(2_711_000))
        );
        assert_eq!(s.server, None);
        assert_eq!(
            said("<135> 03/17/2020:08:30:00 GMT vpx-a 0-PPE-0 : default SSLVPN TCPCONNSTAT 4 0 : User anna"),
            Reading::Ignored(MessageId::new("SSLVPN TCPCONNSTAT"))
        );
        assert_eq!(said("<135> 03/17/2020:08:30:00 GMT vpx-a 0-PPE-0 : default SSLVPN LOGIN 5 0 : Client_ip 1.1.1.1"), Reading::Unreadable);
        assert_eq!(
            said("Mar 17 08:00:00 h x: %ASA-6-113039: x"),
            Reading::NotMine
        );
    }
}
