//! Event time as text: RFC 3339 timestamps to milliseconds since the epoch and back, with a
//! fast path for the canonical `YYYY-MM-DDTHH:MM:SS.mmmZ` form every producer we know writes.
//!
//! Owns: calendar arithmetic. Must not touch: anything else.

use std::cell::Cell;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub(super) fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Parses an RFC 3339 timestamp (`2020-03-17T08:30:00.123Z`, `…+01:00`) to epoch ms.
/// Fractions below a millisecond are truncated. `t`/`z` and a space separator are accepted.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    parse_canonical_ms(s.as_bytes()).or_else(|| parse_rfc3339_general(s))
}

/// The shape every producer we know writes, `YYYY-MM-DDTHH:MM:SS.mmmZ`, checked eight bytes at
/// a time; `None` for anything else (including that shape with an impossible date), which
/// then goes through [`parse_rfc3339_general`]. Equal to it wherever it answers (tested).
#[inline]
pub(super) fn parse_canonical_ms(b: &[u8]) -> Option<i64> {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    // Byte masks of the separators in each word (little-endian: byte 0 is the lowest).
    const SEP: [u64; 3] = [
        0xff00_00ff_0000_0000,
        0x0000_ff00_00ff_0000,
        0xff00_0000_ff00_00ff,
    ];
    // The separators themselves: `-` `-` | `T` `:` | `:` `.` `Z`.
    const WANT: [u64; 3] = [
        0x2d00_002d_0000_0000,
        0x0000_3a00_0054_0000,
        0x5a00_0000_2e00_003a,
    ];
    let b: &[u8; 24] = b.try_into().ok()?;
    let mut d = [0u64; 3];
    for k in 0..3 {
        let w = u64::from_le_bytes(b[8 * k..8 * k + 8].try_into().expect("8 bytes"));
        if w & SEP[k] != WANT[k] {
            return None;
        }
        // Separators read as '0'; every byte must then be an ASCII digit: no byte has its high
        // bit set, and none goes below '0' or above '9' (adding 0x46 carries into bit 7).
        let digits = w & !SEP[k] | ZEROS & SEP[k];
        if (digits | digits.wrapping_add(0x4646_4646_4646_4646)) & 0x8080_8080_8080_8080 != 0
            || (digits & 0xf0f0_f0f0_f0f0_f0f0) != ZEROS
        {
            return None;
        }
        d[k] = digits - ZEROS;
    }
    let at = |k: usize, i: usize| ((d[k] >> (8 * i)) & 0xff) as u32;
    let hour = at(1, 3) * 10 + at(1, 4);
    let minute = at(1, 6) * 10 + at(1, 7);
    let second = at(2, 1) * 10 + at(2, 2);
    let millis = at(2, 4) * 100 + at(2, 5) * 10 + at(2, 6);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // The date's digits as read (bytes 0–9): events in a row nearly always share their date,
    // so its day number (validated when it was computed) is kept per thread.
    let date = (d[0], (d[1] & 0xffff) as u16);
    let days = match LAST_DATE.with(Cell::get) {
        (seen, days) if seen == date => days,
        _ => {
            let year = at(0, 0) * 1000 + at(0, 1) * 100 + at(0, 2) * 10 + at(0, 3);
            let month = at(0, 5) * 10 + at(0, 6);
            let day = at(1, 0) * 10 + at(1, 1);
            let year = year as i64;
            let dim = match month {
                2 if is_leap(year) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                1..=12 => 31,
                _ => return None,
            };
            if day == 0 || day > dim {
                return None;
            }
            let days = days_from_civil(year, month, day);
            LAST_DATE.with(|c| c.set((date, days)));
            days
        }
    };
    let secs = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64;
    Some(secs * 1000 + millis as i64)
}

thread_local! {
    /// The last valid date [`parse_canonical_ms`] read (its digits, as it keys them) and its day
    /// number. Starts with digits no date has (every byte is at most 9 after subtracting '0').
    static LAST_DATE: Cell<((u64, u16), i64)> = const { Cell::new(((u64::MAX, u16::MAX), 0)) };
}

/// Every form [`parse_rfc3339_ms`] accepts.
pub(super) fn parse_rfc3339_general(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for i in 0..n {
            let c = *b.get(at + i)?;
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + (c - b'0') as u32;
        }
        Some(v)
    }
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = digits(b, 0, 4)? as i64;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    let dim = [
        31,
        if is_leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month) || day == 0 || day > dim[month as usize - 1] {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + (b[i] - b'0') as i64;
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..3 {
            millis *= 10;
        }
    }
    let offset_min: i64 = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        c @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = digits(b, i + 1, 2)? as i64;
            let om = digits(b, i + 4, 2)? as i64;
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 60 + om;
            if *c == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs =
        days * 86_400 + hour as i64 * 3600 + minute as i64 * 60 + second as i64 - offset_min * 60;
    Some(secs * 1000 + millis)
}

/// Formats epoch ms as RFC 3339 UTC with milliseconds (`2020-03-17T08:30:00.000Z`).
pub fn format_rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // civil_from_days (Hinnant)
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}
