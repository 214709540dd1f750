//! Fortinet FortiGate event records (FortiOS "Log Message Reference", type `event`, subtype
//! `vpn`): `date=2020-03-17 time=08:30:00 devname="fgt-1" logid="0101039424" type="event"
//! subtype="vpn" action="tunnel-up" tunnelid=42 remip=198.51.100.7 user="anna" …`, after a
//! syslog header or alone.
//!
//! Owns: reading `key=value` fields (values bare or quoted, `\"` inside quotes) and what each
//! SSL-VPN / IPsec action means in gatewatch's terms ([`reading`]). Must not touch: the syslog
//! header (that is `syslog`), event ids and the rules every vendor shares (`gateway`).

use super::gateway::{MessageId, Reading, Said, SessionName};
use super::syslog::{self, Clock, Header};
use super::EventType;

/// The fields of a record gatewatch reads, each as written (quotes removed), named as FortiOS
/// names them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Fields<'a> {
    pub devname: Option<&'a str>,
    pub logid: Option<&'a str>,
    pub subtype: Option<&'a str>,
    pub action: Option<&'a str>,
    pub tunnelid: Option<&'a str>,
    pub tunneltype: Option<&'a str>,
    pub remip: Option<&'a str>,
    pub user: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub eventtime: Option<&'a str>,
    pub date: Option<&'a str>,
    pub time: Option<&'a str>,
    pub tz: Option<&'a str>,
    pub duration: Option<&'a str>,
    pub sentbyte: Option<&'a str>,
    pub rcvdbyte: Option<&'a str>,
}

/// Reads the `key=value` pairs of `msg`; `None` when it is not such a record (no `logid`, or a
/// quote left open).
pub fn fields(msg: &str) -> Option<Fields<'_>> {
    let b = msg.as_bytes();
    let mut f = Fields::default();
    let mut i = 0;
    let mut pairs = 0;
    while i < b.len() {
        while b.get(i) == Some(&b' ') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let key_start = i;
        while i < b.len() && b[i] != b'=' && b[i] != b' ' {
            i += 1;
        }
        if b.get(i) != Some(&b'=') {
            // A word without `=`: not a key=value record (unless pairs came before: then it is
            // free text after them, which FortiOS does not write).
            return None;
        }
        let key = &msg[key_start..i];
        i += 1;
        let value = if b.get(i) == Some(&b'"') {
            let start = i + 1;
            let mut j = start;
            loop {
                match b.get(j) {
                    None => return None,
                    Some(b'\\') => j += 2,
                    Some(b'"') => break,
                    Some(_) => j += 1,
                }
            }
            i = j + 1;
            msg.get(start..j)?
        } else {
            let start = i;
            while i < b.len() && b[i] != b' ' {
                i += 1;
            }
            &msg[start..i]
        };
        pairs += 1;
        let slot = match key {
            "devname" => &mut f.devname,
            "logid" => &mut f.logid,
            "subtype" => &mut f.subtype,
            "action" => &mut f.action,
            "tunnelid" => &mut f.tunnelid,
            "tunneltype" => &mut f.tunneltype,
            "remip" => &mut f.remip,
            "user" => &mut f.user,
            "reason" => &mut f.reason,
            "eventtime" => &mut f.eventtime,
            "date" => &mut f.date,
            "time" => &mut f.time,
            "tz" => &mut f.tz,
            "duration" => &mut f.duration,
            "sentbyte" => &mut f.sentbyte,
            "rcvdbyte" => &mut f.rcvdbyte,
            _ => continue,
        };
        *slot = Some(value);
    }
    (pairs > 0 && f.logid.is_some()).then_some(f)
}

/// What a FortiGate record says, in gatewatch's terms: VPN `tunnel-up` is a connect,
/// `tunnel-down` a disconnect (a whole-session record with its `duration`, and its bytes),
/// `ssl-login-fail` an `auth_fail` (a `capacity` reject when its reason is a user limit). The
/// session is `fortigate:<tunnelid>` (`fortigate:<user>:<remip>` without one), the server the
/// `devname`. Every other record (traffic, other events) is ignored by its `logid`.
pub(crate) fn reading<'a>(h: &Header<'a>, clock: &Clock) -> Reading<'a> {
    if !h.msg.contains("logid=") {
        return Reading::NotMine;
    }
    let Some(f) = fields(h.msg) else {
        return Reading::Unreadable;
    };
    let logid = f.logid.unwrap_or("other");
    if f.subtype != Some("vpn") {
        return Reading::Ignored(MessageId::new(logid));
    }
    let ts_ms = f
        .eventtime
        .and_then(epoch_ms)
        .or_else(|| local_stamp(f.date?, f.time?, f.tz, clock))
        .or(h.ts_ms);
    let session = match f.tunnelid.filter(|t| !t.is_empty() && *t != "0") {
        Some(id) => SessionName::Derived("fortigate", [id, "", ""], 1),
        None => SessionName::Derived(
            "fortigate",
            [f.user.unwrap_or(""), f.remip.unwrap_or(""), ""],
            2,
        ),
    };
    let base = |kind| Said {
        server: f.devname.or(h.host),
        ts_ms,
        user: f.user.filter(|u| *u != "N/A"),
        app: f.tunneltype,
        ..Said::new(kind)
    };
    let number = |v: Option<&str>| v.and_then(|v| v.parse::<i64>().ok());
    match f.action {
        Some("tunnel-up") => Reading::Said(Said {
            session,
            ..base(EventType::Connect)
        }),
        Some("tunnel-down") => Reading::Said(Said {
            session,
            duration_ms: number(f.duration).map(|s| s.saturating_mul(1000)),
            reason: f.reason.filter(|r| *r != "N/A"),
            // What the FortiGate sent is what the user downloaded.
            bytes_in: number(f.sentbyte),
            bytes_out: number(f.rcvdbyte),
            ..base(EventType::Disconnect)
        }),
        Some("ssl-login-fail")
            if f.reason
                .is_some_and(|r| r.contains("limit") || r.contains("max")) =>
        {
            Reading::Said(Said {
                reason: Some("capacity"),
                ..base(EventType::Reject)
            })
        }
        Some("ssl-login-fail") => Reading::Said(base(EventType::AuthFail)),
        _ => Reading::Ignored(MessageId::new(logid)),
    }
}

/// `eventtime` in seconds, milliseconds, microseconds or nanoseconds (FortiOS versions differ),
/// told apart by its number of digits.
fn epoch_ms(v: &str) -> Option<i64> {
    let n: i64 = v.parse().ok()?;
    Some(match v.len() {
        0..=11 => n.checked_mul(1000)?,
        12..=14 => n,
        15..=17 => n / 1000,
        _ => n / 1_000_000,
    })
}

/// `date=2020-03-17 time=08:30:00` at `tz` (`+0100`, `-05:00`), else at the clock's offset.
fn local_stamp(date: &str, time: &str, tz: Option<&str>, clock: &Clock) -> Option<i64> {
    let mut buf = [0u8; 19];
    if date.len() != 10 || time.len() != 8 {
        return None;
    }
    buf[..10].copy_from_slice(date.as_bytes());
    buf[10] = b' ';
    buf[11..].copy_from_slice(time.as_bytes());
    let text = std::str::from_utf8(&buf).ok()?;
    match tz.and_then(syslog::fixed_offset_ms) {
        Some(off) => {
            let utc = syslog::local_datetime(text, &Clock::in_year(1970, 0))?;
            Some(utc - off)
        }
        None => syslog::local_datetime(text, clock),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::syslog::parse;

    const UP: &str = r#"<190>date=2020-03-17 time=08:30:00 devname="fgt-1" devid="FG100F" logid="0101039424" type="event" subtype="vpn" level="information" vd="root" eventtime=1584433800000000000 tz="+0000" logdesc="SSL VPN tunnel up" action="tunnel-up" tunneltype="ssl-tunnel" tunnelid=42 remip=198.51.100.7 tunnelip=10.212.134.200 user="anna" group="staff" dst_host="N/A" reason="N/A" msg="SSL tunnel established""#;

    fn said(line: &str) -> Reading<'_> {
        let clock = Clock::in_year(2020, 0);
        reading(&parse(line, &clock), &clock)
    }

    #[test]
    fn tunnel_up_down_and_failures() {
        let Reading::Said(s) = said(UP) else { panic!() };
        assert_eq!(s.kind, EventType::Connect);
        assert_eq!(
            s.session,
            SessionName::Derived("fortigate", ["42", "", ""], 1)
        );
        assert_eq!(
            (s.server, s.user, s.app),
            (Some("fgt-1"), Some("anna"), Some("ssl-tunnel"))
        );
        assert_eq!(
            s.ts_ms,
            crate::event::parse_rfc3339_ms("2020-03-17T08:30:00Z")
        );
        let down = UP.replace("tunnel-up", "tunnel-down").replace(
            "logid=\"0101039424\"",
            "logid=\"0101039426\" duration=3600 sentbyte=900 rcvdbyte=100",
        );
        let Reading::Said(s) = said(&down) else {
            panic!()
        };
        assert_eq!(
            (s.kind, s.duration_ms, s.bytes_in, s.bytes_out, s.reason),
            (
                EventType::Disconnect,
                Some(3_600_000),
                Some(900),
                Some(100),
                None
            )
        );
        // No eventtime: date and time at tz.
        let local = UP
            .replace("eventtime=1584433800000000000 ", "")
            .replace("+0000", "+0100");
        let Reading::Said(s) = said(&local) else {
            panic!()
        };
        assert_eq!(
            s.ts_ms,
            crate::event::parse_rfc3339_ms("2020-03-17T07:30:00Z")
        );
        let fail = UP.replace("tunnel-up", "ssl-login-fail").replace(
            "reason=\"N/A\"",
            "reason=\"sslvpn_login_permission_denied\"",
        );
        assert!(matches!(
            said(&fail),
            Reading::Said(Said {
                kind: EventType::AuthFail,
                ..
            })
        ));
        let full = UP
            .replace("tunnel-up", "ssl-login-fail")
            .replace("reason=\"N/A\"", "reason=\"sslvpn_login_limit\"");
        assert!(matches!(
            said(&full),
            Reading::Said(Said {
                kind: EventType::Reject,
                reason: Some("capacity"),
                ..
            })
        ));
        let traffic = UP
            .replace("subtype=\"vpn\"", "subtype=\"forward\"")
            .replace("0101039424", "0000000013");
        assert_eq!(
            said(&traffic),
            Reading::Ignored(MessageId::new("0000000013"))
        );
        assert_eq!(
            said("<190>date=2020-03-17 logid=\"01 user=\"open"),
            Reading::Unreadable
        );
        assert_eq!(
            said("Mar 17 08:00:00 h x: %ASA-6-113039: x"),
            Reading::NotMine
        );
        let escaped = UP.replace("user=\"anna\"", "user=\"an\\\"na\"");
        assert!(matches!(
            said(&escaped),
            Reading::Said(Said {
                user: Some("an\\\"na"),
                ..
            })
        ));
    }
}
