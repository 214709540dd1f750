//! Palo Alto Networks GlobalProtect records: PAN-OS's `GLOBALPROTECT` log type, one CSV record
//! per line (PAN-OS "GlobalProtect Log Fields", 9.1 and later), after a syslog stamp and no host.
//!
//! Owns: splitting a record into fields (borrowing: a quoted field loses its quotes; `""`
//! inside one is left as written) and what each event id means in gatewatch's terms
//! ([`reading`]). Must not touch: the syslog header (that is `syslog`), event ids and the rules
//! every vendor shares (`gateway`).

use super::gateway::{MessageId, Reading, Said, SessionName};
use super::syslog::{self, Clock, Header};
use super::EventType;

/// Field positions in a GLOBALPROTECT record.
mod at {
    pub const SERIAL: usize = 2;
    pub const TYPE: usize = 3;
    pub const GENERATED: usize = 6;
    pub const EVENT_ID: usize = 8;
    pub const USER: usize = 12;
    pub const MACHINE: usize = 14;
    pub const PUBLIC_IP: usize = 15;
    pub const PUBLIC_IPV6: usize = 16;
    pub const HOST_ID: usize = 19;
    pub const CLIENT_OS: usize = 22;
    pub const CLIENT_OS_VERSION: usize = 23;
    pub const REASON: usize = 25;
    pub const ERROR: usize = 26;
    pub const DESCRIPTION: usize = 27;
    pub const STATUS: usize = 28;
    pub const LOGIN_DURATION: usize = 30;
    pub const GATEWAY: usize = 33;
    /// Fields read, at most (the rest of a record is not split).
    pub const READ: usize = 34;
}

/// Splits `line` into up to `out.len()` CSV fields; the number found, or `None` for a quote
/// left open.
pub fn split<'a>(line: &'a str, out: &mut [&'a str]) -> Option<usize> {
    let b = line.as_bytes();
    let mut n = 0;
    let mut i = 0;
    loop {
        if n == out.len() {
            return Some(n);
        }
        if b.get(i) == Some(&b'"') {
            // A quoted field: up to the quote not doubled.
            let start = i + 1;
            let mut j = start;
            loop {
                match b.get(j) {
                    None => return None,
                    Some(b'"') if b.get(j + 1) == Some(&b'"') => j += 2,
                    Some(b'"') => break,
                    Some(_) => j += 1,
                }
            }
            out[n] = &line[start..j];
            n += 1;
            i = j + 1;
            match b.get(i) {
                None => return Some(n),
                Some(b',') => i += 1,
                // Text after a closing quote: the field was not quoted as CSV quotes; keep it.
                Some(_) => match line[i..].find(',') {
                    Some(k) => i += k + 1,
                    None => return Some(n),
                },
            }
        } else {
            match line[i..].find(',') {
                Some(k) => {
                    out[n] = &line[i..i + k];
                    n += 1;
                    i += k + 1;
                }
                None => {
                    out[n] = &line[i..];
                    return Some(n + 1);
                }
            }
        }
    }
}

/// What a GlobalProtect record says, in gatewatch's terms: `gateway-setup-ipsec`,
/// `gateway-setup-ssl` and `gateway-connected` are a connect (a refusal with a licence or
/// user-limit error a `reject`); `gateway-logout` a disconnect, a whole-session record when the
/// login duration is given; a failed `gateway-auth` an `auth_fail`;
/// `gateway-tunnel-latency` a latency sample (the post-tunnel latency). The gateway column
/// names the server (else the device serial); the host id names the session
/// (`gp:<host id>`, or `gp:<machine>:<public ip>` without one, the IPv6 one if there is no
/// IPv4). Every other event id is
/// ignored by name.
pub(crate) fn reading<'a>(h: &Header<'a>, clock: &Clock) -> Reading<'a> {
    let msg = h.msg;
    // Cheap refusal of other vendors' lines: the type is the fourth field.
    if !msg.contains(",GLOBALPROTECT,") {
        return Reading::NotMine;
    }
    // The type and event id first: most records (portal, HIP checks) are ignored by their id,
    // and need no more of the line split.
    let mut head = [""; at::EVENT_ID + 1];
    let Some(n) = split(msg, &mut head) else {
        return Reading::Unreadable;
    };
    if n <= at::TYPE || head[at::TYPE] != "GLOBALPROTECT" {
        return Reading::NotMine;
    }
    if n > at::EVENT_ID
        && !matches!(
            head[at::EVENT_ID],
            "gateway-setup-ipsec"
                | "gateway-setup-ssl"
                | "gateway-connected"
                | "gateway-logout"
                | "gateway-auth"
                | "gateway-tunnel-latency"
        )
    {
        return Reading::Ignored(MessageId::new(head[at::EVENT_ID]));
    }
    let mut f = [""; at::READ];
    let Some(n) = split(msg, &mut f) else {
        return Reading::Unreadable;
    };
    if n <= at::STATUS {
        return Reading::Unreadable;
    }
    let event_id = f[at::EVENT_ID];
    let ok = f[at::STATUS] == "success";
    let generated = f[at::GENERATED];
    let ts_ms = syslog::local_datetime(generated, clock)
        .filter(|_| !generated.ends_with('Z'))
        .or_else(|| super::parse_rfc3339_ms(generated))
        .or(h.ts_ms);
    let nonempty = |s: &'a str| Some(s).filter(|s| !s.is_empty());
    let server = f
        .get(at::GATEWAY)
        .copied()
        .and_then(nonempty)
        .or(h.host)
        .or_else(|| nonempty(f[at::SERIAL]));
    let session = match nonempty(f[at::HOST_ID]) {
        Some(id) => SessionName::Derived("gp", [id, "", ""], 1),
        None => {
            let v4 = f[at::PUBLIC_IP];
            let ip = if v4.is_empty() || v4 == "0.0.0.0" {
                f[at::PUBLIC_IPV6]
            } else {
                v4
            };
            SessionName::Derived("gp", [f[at::MACHINE], ip, ""], 2)
        }
    };
    let base = |kind| Said {
        server,
        ts_ms,
        session,
        user: nonempty(f[at::USER]),
        os: nonempty(f[at::CLIENT_OS_VERSION]).or_else(|| nonempty(f[at::CLIENT_OS])),
        ..Said::new(kind)
    };
    let said = |text: &str, what: &str| text.to_ascii_lowercase().contains(what);
    match event_id {
        "gateway-setup-ipsec" | "gateway-setup-ssl" | "gateway-connected" if ok => {
            Reading::Said(base(EventType::Connect))
        }
        "gateway-setup-ipsec" | "gateway-setup-ssl" | "gateway-connected" => {
            let why = [f[at::ERROR], f[at::DESCRIPTION], f[at::REASON]];
            let reason = if why.iter().any(|t| said(t, "licen")) {
                "license"
            } else if why
                .iter()
                .any(|t| said(t, "maximum") || said(t, "limit") || said(t, "exceed"))
            {
                "capacity"
            } else {
                return Reading::Ignored(MessageId::new(&format_failure(event_id)));
            };
            Reading::Said(Said {
                session: SessionName::None,
                reason: Some(reason),
                ..base(EventType::Reject)
            })
        }
        "gateway-logout" => {
            let duration_ms = f
                .get(at::LOGIN_DURATION)
                .and_then(|d| d.parse::<i64>().ok())
                .filter(|d| *d > 0)
                .map(|d| d.saturating_mul(1000));
            Reading::Said(Said {
                duration_ms,
                reason: nonempty(f[at::REASON]),
                ..base(EventType::Disconnect)
            })
        }
        "gateway-auth" if !ok => Reading::Said(Said {
            session: SessionName::None,
            ..base(EventType::AuthFail)
        }),
        "gateway-tunnel-latency" => {
            // `Pre-tunnel latency: 67ms, Post-tunnel latency: 47ms`
            let d = f[at::DESCRIPTION];
            let post = d
                .split_once("Post-tunnel latency:")
                .and_then(|(_, r)| r.trim_start().split("ms").next())
                .and_then(|v| v.trim().parse::<f64>().ok());
            match post {
                Some(rtt) => Reading::Said(Said {
                    rtt_ms: Some(rtt),
                    ..base(EventType::Latency)
                }),
                None => Reading::Unreadable,
            }
        }
        _ => Reading::Ignored(MessageId::new(event_id)),
    }
}

/// `gateway-setup-ipsec failure`, cut to fit a message id.
fn format_failure(event_id: &str) -> String {
    // Only on a refused tunnel, not on the common path.
    format!("{event_id} failure")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::syslog::parse;

    const SETUP: &str = "Mar 17 08:30:05 1,2020/03/17 08:30:04,0123,GLOBALPROTECT,0,2305,2020/03/17 08:30:04,vsys1,gateway-setup-ipsec,tunnel,,IPSec,corp\\anna,DE,LAPTOP-1,198.51.100.7,0.0.0.0,10.20.0.9,0.0.0.0,hid-1,SER1,5.1.1,Windows,\"Microsoft Windows 10 Pro , 64-bit\",1,,,,success,,0,,0,gp-gw-1,1,0x0";

    fn said(line: &str) -> Reading<'_> {
        let clock = Clock::in_year(2020, 0);
        reading(&parse(line, &clock), &clock)
    }

    #[test]
    fn splits_quotes_and_refuses_an_open_one() {
        let mut f = [""; 6];
        assert_eq!(split("a,\"b,c\",,\"d\"\"e\"", &mut f), Some(4));
        assert_eq!(f[..4], ["a", "b,c", "", "d\"\"e"]);
        assert_eq!(split("a,\"open", &mut f), None);
        assert_eq!(split("1,2,3,4,5,6,7,8", &mut f), Some(6));
    }

    #[test]
    fn setup_logout_latency_auth() {
        let Reading::Said(s) = said(SETUP) else {
            panic!()
        };
        assert_eq!(s.kind, EventType::Connect);
        assert_eq!(s.server, Some("gp-gw-1"));
        assert_eq!(s.session, SessionName::Derived("gp", ["hid-1", "", ""], 1));
        assert_eq!(
            (s.user, s.os),
            (
                Some("corp\\anna"),
                Some("Microsoft Windows 10 Pro , 64-bit")
            )
        );
        assert_eq!(
            s.ts_ms,
            crate::event::parse_rfc3339_ms("2020-03-17T08:30:04Z")
        );
        let logout = SETUP
            .replace("gateway-setup-ipsec", "gateway-logout")
            .replace(",success,,0,", ",success,,3600,")
            .replace(",1,,,,success", ",1,client logout,,,success");
        let Reading::Said(s) = said(&logout) else {
            panic!()
        };
        assert_eq!(
            (s.kind, s.duration_ms, s.reason),
            (
                EventType::Disconnect,
                Some(3_600_000),
                Some("client logout")
            )
        );
        let latency = SETUP
            .replace("gateway-setup-ipsec", "gateway-tunnel-latency")
            .replace(
                ",1,,,,success",
                ",1,,,\"Pre-tunnel latency: 67ms, Post-tunnel latency: 47ms\",success",
            );
        let Reading::Said(s) = said(&latency) else {
            panic!()
        };
        assert_eq!((s.kind, s.rtt_ms), (EventType::Latency, Some(47.0)));
        let failed = SETUP
            .replace("gateway-setup-ipsec", "gateway-auth")
            .replace(",success,", ",failure,");
        let Reading::Said(s) = said(&failed) else {
            panic!()
        };
        assert_eq!(
            (s.kind, s.session),
            (EventType::AuthFail, SessionName::None)
        );
        let full = SETUP.replace(
            ",1,,,,success",
            ",1,,Exceeded maximum number of users,,failure",
        );
        let Reading::Said(s) = said(&full) else {
            panic!()
        };
        assert_eq!((s.kind, s.reason), (EventType::Reject, Some("capacity")));
        assert_eq!(
            said(&SETUP.replace("gateway-setup-ipsec", "portal-prelogin")),
            Reading::Ignored(MessageId::new("portal-prelogin"))
        );
        assert_eq!(said(&SETUP[..SETUP.len() - 60]), Reading::Unreadable);
        assert_eq!(said("Mar 17 08:30:05 1,2,3,TRAFFIC,x"), Reading::NotMine);
        assert_eq!(
            said("Mar 17 08:30:05 1,2,3,GLOBALPROTECT,\"x"),
            Reading::Unreadable
        );
    }
}
