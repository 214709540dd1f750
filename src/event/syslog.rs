//! Syslog framing: the header a gateway, or a relay between it and Kafka, puts before a
//! vendor's message. RFC 3164 (`Mmm dd hh:mm:ss host tag: msg`, with the year some devices add:
//! `Mmm dd yyyy hh:mm:ss`) and RFC 5424 (`1 2021-10-19T09:16:53+02:00 host app procid msgid sd
//! msg`), each with or without a `<PRI>`, and a relay's RFC 3164 header wrapped around an RFC
//! 5424 message (what rsyslog writes when it forwards one).
//!
//! Owns: finding the time, host, tag and message of a line; year-less and zone-less stamps
//! (see [`Clock`]). Must not touch: what a vendor's message means (the vendor parsers read
//! `msg`). Nothing here allocates: every part borrows from the line.
//!
//! Work in progress for issue 22 (gateway syslog formats): the vendor parsers and the
//! `--input-format` flag that use this are not wired in yet.

use super::days_from_civil;

/// How to complete stamps that leave something out.
///
/// A year-less stamp (`Apr 27 02:03:03`) gets the year that puts it in the year-long window
/// starting at `window_start_ms` (so a window that starts in December takes the January after
/// it into the next year: the roll-over at New Year). Local times without a zone are at
/// `local_offset_ms` east of UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// Start of the year-long window year-less stamps fall in, epoch ms (UTC).
    pub window_start_ms: i64,
    /// Offset of the local time of stamps without a zone, in ms east of UTC (0: UTC).
    pub local_offset_ms: i64,
    /// Or the zone whose local time they are (summer time included); `local_offset_ms` is then
    /// not used.
    pub zone: Option<chrono_tz::Tz>,
}

/// Where zone-less local times are: `input.timezone`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalTime {
    /// A fixed offset, ms east of UTC (`UTC`, `+01:00`, `-0500`).
    Offset(i64),
    /// An IANA zone (`Europe/Paris`).
    Zone(chrono_tz::Tz),
}

impl LocalTime {
    /// `UTC`, `Z`, a fixed offset (`+01:00`, `-0500`, `UTC+2`), or an IANA zone name.
    pub fn parse(s: &str) -> Option<LocalTime> {
        let t = s.trim();
        if matches!(t, "UTC" | "Z" | "GMT" | "Etc/UTC") {
            return Some(LocalTime::Offset(0));
        }
        let fixed = t
            .strip_prefix("UTC")
            .or_else(|| t.strip_prefix("GMT"))
            .unwrap_or(t);
        if let Some(off) = fixed_offset_ms(fixed) {
            return Some(LocalTime::Offset(off));
        }
        t.parse::<chrono_tz::Tz>().ok().map(LocalTime::Zone)
    }
}

/// `+01:00`, `-0500`, `+2` -> ms east of UTC.
pub fn fixed_offset_ms(s: &str) -> Option<i64> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    if !rest.is_ascii() {
        return None;
    }
    let (hh, mm) = match rest.len() {
        1 | 2 => (rest, "0"),
        4 => rest.split_at(2),
        5 if rest.as_bytes()[2] == b':' => (&rest[..2], &rest[3..]),
        _ => return None,
    };
    if !hh.bytes().chain(mm.bytes()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (h, m) = (hh.parse::<i64>().ok()?, mm.parse::<i64>().ok()?);
    (h <= 14 && m < 60).then_some(sign * (h * 60 + m) * 60_000)
}

/// How far before a replay's first stamp its window starts, and how far ahead of the wall
/// clock a live stamp may be: 31 days.
pub const YEAR_SLACK_MS: i64 = 31 * 86_400_000;

impl Clock {
    /// Year-less stamps are in `year` (`input.year`, pinned).
    pub fn in_year(year: i64, local_offset_ms: i64) -> Clock {
        Clock {
            window_start_ms: days_from_civil(year, 1, 1) * 86_400_000 - local_offset_ms,
            local_offset_ms,
            zone: None,
        }
    }

    /// Year-less stamps are at most [`YEAR_SLACK_MS`] before `first_ms` and less than a year
    /// after it less that slack: a file whose first line is at `first_ms` rolls over into the
    /// next year at New Year.
    pub fn from_first(first_ms: i64, local_offset_ms: i64) -> Clock {
        Clock {
            window_start_ms: first_ms - YEAR_SLACK_MS,
            local_offset_ms,
            zone: None,
        }
    }

    /// Live input: year-less stamps are in the year before `now_ms`, or at most
    /// [`YEAR_SLACK_MS`] ahead of it (a gateway's clock a little fast): a December stamp read in
    /// January is last year's.
    pub fn live(now_ms: i64, local_offset_ms: i64) -> Clock {
        Clock {
            window_start_ms: now_ms + YEAR_SLACK_MS - 365 * 86_400_000,
            local_offset_ms,
            zone: None,
        }
    }

    /// This clock with local times at `local`.
    pub fn at(self, local: LocalTime) -> Clock {
        match local {
            LocalTime::Offset(off) => Clock {
                local_offset_ms: off,
                zone: None,
                ..self
            },
            LocalTime::Zone(z) => Clock {
                zone: Some(z),
                ..self
            },
        }
    }

    /// The UTC instant of a local date and time in the clock's zone or offset.
    fn local_to_utc(&self, y: i64, month: u32, day: u32, ms_of_day: i64) -> i64 {
        let naive = days_from_civil(y, month, day) * 86_400_000 + ms_of_day;
        let Some(zone) = self.zone else {
            return naive - self.local_offset_ms;
        };
        use chrono::{LocalResult, TimeZone as _};
        let Some(dt) = chrono::DateTime::from_timestamp_millis(naive) else {
            return naive;
        };
        let local = dt.naive_utc();
        match zone.from_local_datetime(&local) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.timestamp_millis(),
            // A local time skipped when clocks go forward: read it at the offset before.
            LocalResult::None => {
                match zone.from_local_datetime(&(local - chrono::TimeDelta::hours(1))) {
                    LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
                        t.timestamp_millis() + 3_600_000
                    }
                    LocalResult::None => naive,
                }
            }
        }
    }

    /// The UTC instant of a local date and time, its year taken from the window when `year` is
    /// `None`.
    pub fn instant(&self, year: Option<i64>, month: u32, day: u32, ms_of_day: i64) -> i64 {
        let at = |y: i64| self.local_to_utc(y, month, day, ms_of_day);
        match year {
            Some(y) => at(y),
            None => {
                // (With a zone the offset is not known before the instant: a window starts a
                // month from any stamp it must hold, so a few hours do not matter.)
                let y = civil_year(self.window_start_ms + self.local_offset_ms);
                if at(y) >= self.window_start_ms {
                    at(y)
                } else {
                    at(y + 1)
                }
            }
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::in_year(1970, 0)
    }
}

/// A local date and time as vendors write them in their messages: `2021-10-19 09:10:35` or
/// `2021/03/24 11:30:00` (either separator, optional fraction ignored), at the clock's offset.
pub fn local_datetime(s: &str, clock: &Clock) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19
        || !matches!(b[4], b'-' | b'/')
        || b[7] != b[4]
        || !matches!(b[10], b' ' | b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let n = |r| digits(b, r);
    let (y, mo, d, ms) = civil(
        n(0..4)?,
        n(5..7)?,
        n(8..10)?,
        n(11..13)?,
        n(14..16)?,
        n(17..19)?,
    )?;
    Some(clock.instant(Some(y), mo, d, ms))
}

/// NetScaler's `MM/DD/YYYY:HH:MM:SS` at the start of `s`, in UTC when `GMT` follows it
/// (`… GMT` or `…GMT`), else local time at the clock's offset. Its header and its records'
/// `Start_time`/`End_time` are written alike.
pub(crate) fn netscaler_stamp(s: &str, clock: &Clock) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19
        || b[2] != b'/'
        || b[5] != b'/'
        || b[10] != b':'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let n = |r| digits(b, r);
    let (y, mo, d, ms) = civil(
        n(6..10)?,
        n(0..2)?,
        n(3..5)?,
        n(11..13)?,
        n(14..16)?,
        n(17..19)?,
    )?;
    Some(if s[19..].trim_start().starts_with("GMT") {
        days_from_civil(y, mo, d) * 86_400_000 + ms
    } else {
        clock.instant(Some(y), mo, d, ms)
    })
}

/// `b[r]` as a number, when every byte is an ASCII digit.
fn digits(b: &[u8], r: std::ops::Range<usize>) -> Option<i64> {
    let t = &b[r];
    t.iter()
        .all(u8::is_ascii_digit)
        .then(|| t.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
}

/// A date and time that exists on a clock: `(year, month, day, ms of the day)`.
fn civil(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> Option<(i64, u32, u32, i64)> {
    let valid = (1..=12).contains(&mo) && (1..=31).contains(&d) && h <= 23 && mi <= 59 && s <= 59;
    valid.then_some((y, mo as u32, d as u32, ((h * 60 + mi) * 60 + s) * 1000))
}

/// The civil (proleptic Gregorian) year of an instant, epoch ms.
fn civil_year(ms: i64) -> i64 {
    let days = ms.div_euclid(86_400_000);
    // From Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    yoe + era * 400 + i64::from(month <= 2)
}

/// The parts of one syslog line. A line without a header it recognises is all `msg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The priority (`<134>`), if given.
    pub pri: Option<u8>,
    /// Event time, epoch ms (UTC), if the header has a stamp.
    pub ts_ms: Option<i64>,
    /// The sending host, if named.
    pub host: Option<&'a str>,
    /// The tag or app name (`CiscoASA[999]`, `PulseSecure`), without its colon.
    pub tag: Option<&'a str>,
    /// The rest: the vendor's message.
    pub msg: &'a str,
}

/// Splits `line` into its syslog header and message.
pub fn parse<'a>(line: &'a str, clock: &Clock) -> Header<'a> {
    let mut rest = line.trim_start();
    let mut pri = None;
    if let Some((p, after)) = take_pri(rest) {
        pri = Some(p);
        rest = after.trim_start();
    }
    if let Some(h) = rfc5424(rest) {
        return Header { pri, ..h };
    }
    if let Some(h) = netscaler(rest, clock) {
        return Header { pri, ..h };
    }
    if let Some((ts, after)) = rfc3164_stamp(rest, clock) {
        let (host, after_host) = word(after);
        // No host at all (PAN-OS sends its CSV right after the stamp): a host name has no comma.
        if host.contains(',') || host.contains('"') {
            return Header {
                pri,
                ts_ms: Some(ts),
                host: None,
                tag: None,
                msg: after.trim_start_matches(' '),
            };
        }
        let after = after_host;
        // `dev01: %ASA-...`: a host that ends with a colon has no tag after it.
        if let Some(host) = host.strip_suffix(':') {
            return Header {
                pri,
                ts_ms: Some(ts),
                host: Some(host),
                tag: None,
                msg: after.trim_start(),
            };
        }
        // A relay's header around an RFC 5424 message: the inner one has the year and zone.
        if let Some(inner) = rfc5424(after) {
            return Header {
                pri,
                ts_ms: inner.ts_ms.or(Some(ts)),
                ..inner
            };
        }
        let (tag, msg) = tag(after);
        return Header {
            pri,
            ts_ms: Some(ts),
            host: (!host.is_empty()).then_some(host),
            tag,
            msg,
        };
    }
    Header {
        pri,
        ts_ms: None,
        host: None,
        tag: None,
        msg: rest,
    }
}

/// Citrix ADC (NetScaler)'s own header: `MM/DD/YYYY:HH:MM:SS [GMT] host 0-PPE-0 : msg` (the
/// stamp in local time unless `GMT` follows it).
fn netscaler<'a>(s: &'a str, clock: &Clock) -> Option<Header<'a>> {
    let (stamp, rest) = word(s);
    if stamp.len() != 19 {
        return None;
    }
    let ts = netscaler_stamp(s.trim_start_matches(' '), clock)?;
    let rest = match word(rest) {
        ("GMT", after_zone) => after_zone,
        _ => rest,
    };
    let (first, after_first) = word(rest);
    // No host at all (`GMT  0-PPE-6 : …`): the packet engine comes first.
    let (host, rest) = if first.contains("-PPE-") && after_first.starts_with(':') {
        ("", rest)
    } else {
        (first, after_first)
    };
    // `0-PPE-0 :`: the packet engine, then the message.
    let (engine, after) = word(rest);
    let msg = match after.strip_prefix(':') {
        Some(m) if engine.contains("PPE") => m.trim_start_matches(' '),
        _ => rest,
    };
    Some(Header {
        pri: None,
        ts_ms: Some(ts),
        host: (!host.is_empty()).then_some(host),
        tag: engine.contains("PPE").then_some(engine),
        msg,
    })
}

/// `<134>` at the start: the priority (0–191) and what follows.
fn take_pri(s: &str) -> Option<(u8, &str)> {
    let b = s.as_bytes();
    if b.first() != Some(&b'<') {
        return None;
    }
    let close = b.iter().take(5).position(|&c| c == b'>')?;
    let digits = &s[1..close];
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let p: u16 = digits.parse().ok()?;
    (p <= 191).then(|| (p as u8, &s[close + 1..]))
}

/// The first space-separated word and the rest after one separating space run.
fn word(s: &str) -> (&str, &str) {
    let s = s.trim_start_matches(' ');
    match s.find(' ') {
        Some(i) => (&s[..i], s[i..].trim_start_matches(' ')),
        None => (s, ""),
    }
}

/// RFC 5424: `1 TIMESTAMP HOST APP PROCID MSGID SD [MSG]` (`-` for an absent field).
fn rfc5424(s: &str) -> Option<Header<'_>> {
    let (version, rest) = word(s);
    if version != "1" {
        return None;
    }
    let (stamp, rest) = word(rest);
    let ts = if stamp == "-" {
        None
    } else {
        Some(super::parse_rfc3339_ms(stamp)?)
    };
    let (host, rest) = word(rest);
    let (app, rest) = word(rest);
    let (_procid, rest) = word(rest);
    let (_msgid, rest) = word(rest);
    let msg = skip_structured_data(rest);
    let nil = |v: &str| -> bool { v.is_empty() || v == "-" };
    let app = app.strip_suffix(':').unwrap_or(app);
    Some(Header {
        pri: None,
        ts_ms: ts,
        host: (!nil(host)).then_some(host),
        tag: (!nil(app)).then_some(app),
        msg: msg.trim_start_matches(' '),
    })
}

/// After RFC 5424's MSGID: `-` or one or more `[id k="v" ...]` elements, then the message.
fn skip_structured_data(s: &str) -> &str {
    let s = s.trim_start_matches(' ');
    if let Some(rest) = s.strip_prefix('-') {
        return rest;
    }
    let b = s.as_bytes();
    let mut i = 0;
    while b.get(i) == Some(&b'[') {
        // Inside an element, `]` ends it unless escaped; quoted values may hold `]` escaped.
        i += 1;
        let mut escaped = false;
        while let Some(&c) = b.get(i) {
            i += 1;
            match c {
                b'\\' if !escaped => escaped = true,
                b']' if !escaped => break,
                _ => escaped = false,
            }
        }
    }
    &s[i..]
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// RFC 3164's `Mmm dd hh:mm:ss` (day space-padded), or with a year after the day (`Oct 10 2018
/// 12:34:56`, as Cisco devices write it), in local time; and what follows.
fn rfc3164_stamp<'a>(s: &'a str, clock: &Clock) -> Option<(i64, &'a str)> {
    let month = MONTHS.iter().position(|m| s.starts_with(m))? as u32 + 1;
    let rest = s.get(3..)?.strip_prefix(' ')?.trim_start_matches(' ');
    let (day, rest) = word(rest);
    let day: u32 = day.parse().ok().filter(|d| (1..=31).contains(d))?;
    let (next, mut rest) = word(rest);
    let (year, hms) = if next.len() == 4 && next.bytes().all(|c| c.is_ascii_digit()) {
        let (hms, after) = word(rest);
        rest = after;
        (Some(next.parse().ok()?), hms)
    } else {
        (None, next)
    };
    let b = hms.as_bytes();
    if b.len() != 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let two = |i: usize| -> Option<i64> {
        let (h, l) = (b[i], b[i + 1]);
        (h.is_ascii_digit() && l.is_ascii_digit()).then(|| ((h - b'0') * 10 + (l - b'0')) as i64)
    };
    let (h, m, sec) = (two(0)?, two(3)?, two(6)?);
    if h > 23 || m > 59 || sec > 59 {
        return None;
    }
    let ms_of_day = ((h * 60 + m) * 60 + sec) * 1000;
    Some((clock.instant(year, month, day, ms_of_day), rest))
}

/// RFC 3164's TAG (`CiscoASA[999]:`, `PulseSecure:`, or a lone `:`) and the message after it.
/// Without a word ending in a colon, there is no tag and all of it is the message.
fn tag(s: &str) -> (Option<&str>, &str) {
    let s = s.trim_start_matches(' ');
    if let Some(rest) = s.strip_prefix(':') {
        return (None, rest.trim_start_matches(' '));
    }
    let (first, rest) = word(s);
    match first.strip_suffix(':') {
        Some(t) if !t.is_empty() && t.len() <= 48 => (Some(t), rest),
        _ => (None, s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        super::super::parse_rfc3339_ms(text).unwrap()
    }

    const CLOCK: Clock = Clock {
        // 2020-01-01T00:00:00Z
        window_start_ms: 1_577_836_800_000,
        local_offset_ms: 0,
        zone: None,
    };

    #[test]
    fn local_times_in_a_zone_follow_summer_time() {
        let paris = Clock::in_year(2020, 0).at(LocalTime::parse("Europe/Paris").unwrap());
        let at = |line: &str| parse(line, &paris).ts_ms.unwrap();
        assert_eq!(at("Mar 17 09:30:00 h x: m"), ms("2020-03-17T08:30:00Z"));
        assert_eq!(at("Jul 17 09:30:00 h x: m"), ms("2020-07-17T07:30:00Z"));
        // 02:30 on the morning clocks go forward does not exist: read at the winter offset.
        assert_eq!(at("Mar 29 02:30:00 h x: m"), ms("2020-03-29T01:30:00Z"));
        for (text, want) in [
            ("UTC", Some(LocalTime::Offset(0))),
            ("+01:00", Some(LocalTime::Offset(3_600_000))),
            ("-0530", Some(LocalTime::Offset(-19_800_000))),
            ("UTC+2", Some(LocalTime::Offset(7_200_000))),
            ("Mars/Olympus", None),
            ("+25:00", None),
        ] {
            assert_eq!(LocalTime::parse(text), want, "{text}");
        }
    }

    #[test]
    fn year_less_stamps_take_the_window_s_year_and_roll_over() {
        let c = Clock::in_year(2020, 0);
        assert_eq!(c, CLOCK);
        let at = |c: &Clock, line: &str| parse(line, c).ts_ms.unwrap();
        assert_eq!(at(&c, "Dec 31 23:59:59 h x: m"), ms("2020-12-31T23:59:59Z"));
        // A file that starts on New Year's Eve rolls over into the next year.
        let c = Clock::from_first(ms("2019-12-31T23:00:00Z"), 0);
        assert_eq!(at(&c, "Dec 31 23:00:00 h x: m"), ms("2019-12-31T23:00:00Z"));
        assert_eq!(at(&c, "Jan  1 00:10:00 h x: m"), ms("2020-01-01T00:10:00Z"));
        // Live in January: December is last year's, a stamp a little ahead is this year's.
        let c = Clock::live(ms("2021-01-02T00:00:00Z"), 0);
        assert_eq!(at(&c, "Dec 31 23:00:00 h x: m"), ms("2020-12-31T23:00:00Z"));
        assert_eq!(at(&c, "Jan  3 00:00:00 h x: m"), ms("2021-01-03T00:00:00Z"));
        // Local time at +01:00; an explicit year is kept.
        let c = Clock::in_year(2020, 3_600_000);
        assert_eq!(at(&c, "Jan  1 00:30:00 h x: m"), ms("2019-12-31T23:30:00Z"));
        assert_eq!(
            at(&c, "Jan  1 2018 00:30:00 h x: m"),
            ms("2017-12-31T23:30:00Z")
        );
        for y in [1970, 1999, 2000, 2020, 2024, 2100] {
            for (m, d) in [(1, 1), (2, 29), (3, 1), (12, 31)] {
                let ms = days_from_civil(y, m, d) * 86_400_000;
                assert_eq!(civil_year(ms), y);
                assert_eq!(civil_year(ms + 86_399_999), y);
            }
        }
    }

    #[test]
    fn rfc3164_with_and_without_a_year_pri_and_tag() {
        let h = parse(
            "Mar 17 2020 08:30:01 gw-asa-1 CiscoASA[412]: %ASA-6-113039: Group G User u IP 10.0.0.1 AnyConnect parent session started.",
            &CLOCK,
        );
        assert_eq!(h.ts_ms, Some(ms("2020-03-17T08:30:01Z")));
        assert_eq!(h.host, Some("gw-asa-1"));
        assert_eq!(h.tag, Some("CiscoASA[412]"));
        assert!(h.msg.starts_with("%ASA-6-113039: Group G"));

        let h = parse("<166>Mar 17 2020 08:30:01 edge2 : %ASA-6-113039: x", &CLOCK);
        assert_eq!((h.pri, h.host, h.tag), (Some(166), Some("edge2"), None));
        assert_eq!(h.msg, "%ASA-6-113039: x");

        // Year-less, day padded with a space, host ending in a colon (no tag).
        let h = parse("Mar  7 23:59:59 vpn2: %ASA-4-113019: Group = g", &CLOCK);
        assert_eq!(h.ts_ms, Some(ms("2020-03-07T23:59:59Z")));
        assert_eq!((h.host, h.tag), (Some("vpn2"), None));
        assert_eq!(h.msg, "%ASA-4-113019: Group = g");
    }

    #[test]
    fn netscaler_and_pan_os_headers() {
        let h = parse(
            "<134> 03/17/2020:08:30:00 GMT vpx-a 0-PPE-1 : default SSLVPN LOGIN 1001 0 : Context u@10.0.0.1",
            &CLOCK,
        );
        assert_eq!(h.ts_ms, Some(ms("2020-03-17T08:30:00Z")));
        assert_eq!((h.host, h.tag), (Some("vpx-a"), Some("0-PPE-1")));
        assert_eq!(h.msg, "default SSLVPN LOGIN 1001 0 : Context u@10.0.0.1");
        // No host: the packet engine right after the stamp.
        let h = parse(
            "<135> 07/09/2025:19:05:23 GMT  0-PPE-6 : default AAA Message 1 0 : x",
            &CLOCK,
        );
        assert_eq!((h.host, h.tag), (None, Some("0-PPE-6")));
        assert_eq!(h.msg, "default AAA Message 1 0 : x");
        // Without GMT the stamp is local time.
        let h = parse(
            "<135> 03/17/2020:09:30:00 vpx-a 0-PPE-0 : default AAATM LOGOUT 7 0 : User u",
            &Clock::in_year(2020, 3_600_000),
        );
        assert_eq!(h.ts_ms, Some(ms("2020-03-17T08:30:00Z")));
        // No header at all: the message is the line after the priority.
        let h = parse("<135> default LOGOUT 12 0 :  User u", &CLOCK);
        assert_eq!((h.ts_ms, h.msg), (None, "default LOGOUT 12 0 :  User u"));
        // PAN-OS: the CSV record right after a host-less stamp.
        let h = parse(
            "Mar 17 08:30:00 1,2020/03/17 08:30:00,0011,GLOBALPROTECT,0,2305,2020/03/17 08:30:00,vsys1,gateway-auth",
            &CLOCK,
        );
        assert_eq!((h.ts_ms, h.host), (Some(ms("2020-03-17T08:30:00Z")), None));
        assert!(h
            .msg
            .starts_with("1,2020/03/17 08:30:00,0011,GLOBALPROTECT"));
    }

    #[test]
    fn zone_less_stamps_take_the_configured_offset() {
        let clock = Clock::in_year(2020, 3_600_000);
        let h = parse("Mar 17 09:30:00 gw tag: m", &clock);
        assert_eq!(h.ts_ms, Some(ms("2020-03-17T08:30:00Z")));
    }

    #[test]
    fn rfc5424_with_nil_fields_and_structured_data() {
        let h = parse(
            "<134>1 2020-03-17T09:10:35+01:00 vpn-node2 PulseSecure: - - - 2020-03-17 09:10:35 - vpn-node2 - [10.1.1.1] u(R)[] - Login failed",
            &CLOCK,
        );
        assert_eq!(h.pri, Some(134));
        assert_eq!(h.ts_ms, Some(ms("2020-03-17T08:10:35Z")));
        assert_eq!((h.host, h.tag), (Some("vpn-node2"), Some("PulseSecure")));
        assert!(h.msg.starts_with("2020-03-17 09:10:35 - vpn-node2"));

        let h = parse(
            r#"1 2020-03-17T08:00:00Z h app 12 ID47 [ex@1 a="x\]y" b="2"][ex@2 c="3"] the message"#,
            &CLOCK,
        );
        assert_eq!(h.msg, "the message");
        let h = parse("1 - - - - - -", &CLOCK);
        assert_eq!((h.ts_ms, h.host, h.tag, h.msg), (None, None, None, ""));
    }

    #[test]
    fn a_relay_header_around_rfc5424_takes_the_inner_stamp() {
        let h = parse(
            "Mar 17 08:10:35 vpn-node2 1 2020-03-17T09:10:35+01:00 10.5.2.3 PulseSecure: - - - msg here",
            &Clock::in_year(1999, 0),
        );
        assert_eq!(h.ts_ms, Some(ms("2020-03-17T08:10:35Z")));
        assert_eq!(
            (h.host, h.tag, h.msg),
            (Some("10.5.2.3"), Some("PulseSecure"), "msg here")
        );
    }

    #[test]
    fn what_is_not_a_header_is_all_message_and_nothing_panics() {
        for line in [
            "",
            "<",
            "<999>x",
            "<12",
            "Mar",
            "Mar 32 10:00:00 h t: m",
            "Mar 17 25:00:00 h t: m",
            "Mar 17 2020",
            "1 not-a-time h a - - -",
            "1 2020-03-17T08:00:00Z",
            "{\"type\":\"connect\"}",
            "\u{0}\u{1}ÿ<1>",
            "Mar 17 08:00:00 é: ü",
        ] {
            let h = parse(line, &CLOCK);
            assert!(line.contains(h.msg), "{line:?}");
        }
        assert_eq!(parse("<999>x", &CLOCK).msg, "<999>x");
        assert_eq!(parse("Mar 32 10:00:00 h t: m", &CLOCK).ts_ms, None);
    }
}
