//! RFC 3339 UTC timestamps without a date library (drift reports, RFC 5424 log records), and
//! reading them back (stored reports).
use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for `t` (UTC, milliseconds).
pub fn rfc3339(t: SystemTime) -> String {
    let mut out = String::new();
    write_rfc3339(&mut out, t, 3);
    out
}

/// Append `YYYY-MM-DDTHH:MM:SS.<fraction>Z` for `t` (UTC) with `digits` (1-9) fraction digits.
pub fn write_rfc3339(out: &mut impl Write, t: SystemTime, digits: u32) {
    let digits = digits.clamp(1, 9);
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil_from_days(days);
    let frac = d.subsec_nanos() / 10u32.pow(9 - digits);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{frac:0w$}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        w = digits as usize
    );
}

/// Milliseconds since the Unix epoch of an RFC 3339 time (`2026-11-23T10:15:02.120Z`, any
/// number of fraction digits, `Z` or a `±HH:MM` offset); `None` if `s` is not one.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let d = b.get(r)?;
        d.iter()
            .all(u8::is_ascii_digit)
            .then(|| d.iter().fold(0, |n, c| n * 10 + i64::from(c - b'0')))
    };
    let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let month_days = [
        31,
        28 + i64::from(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)),
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
    if !(1..=12).contains(&mo)
        || d < 1
        || d > month_days[mo as usize - 1]
        || h > 23
        || mi > 59
        || sec > 60
    {
        return None;
    }
    let mut i = 19;
    let mut ms = 0;
    if sep(i, b".") {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let first3 = format!("{:0<3}", &s[i + 1..i + 1 + digits.min(3)]);
        ms = first3.parse::<i64>().ok()?;
        i += 1 + digits;
    }
    let offset_min = match b.get(i..)? {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), ..] if b.len() == i + 6 && sep(i + 3, b":") => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            (oh * 60 + om) * if *sign == b'-' { -1 } else { 1 }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) - offset_min * 60) * 1000 + ms)
}

/// (year, month, day) → days since 1970-01-01 (H. Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's civil_from_days).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn known_instants() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400, "2000-02-29T00:00:00.000Z"),
            (1_700_000_000, "2023-11-14T22:13:20.000Z"),
            (4_102_444_799, "2099-12-31T23:59:59.000Z"),
        ];
        for (s, want) in cases {
            assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(s)), want);
        }
        let t = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let mut micros = String::new();
        write_rfc3339(&mut micros, t, 6);
        assert_eq!(micros, "2023-11-14T22:13:20.123456Z");
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn parses_back_what_it_writes_and_offsets() {
        for s in [0u64, 951_782_400_250, 1_700_000_000_123, 4_102_444_799_999] {
            let t = UNIX_EPOCH + Duration::from_millis(s);
            assert_eq!(parse_rfc3339_ms(&rfc3339(t)), Some(s as i64), "{s}");
        }
        let cases = [
            ("2023-11-14T22:13:20Z", Some(1_700_000_000_000)),
            ("2023-11-14T22:13:20.5Z", Some(1_700_000_000_500)),
            ("2023-11-14T22:13:20.123456789Z", Some(1_700_000_000_123)),
            ("2023-11-14T23:13:20+01:00", Some(1_700_000_000_000)),
            ("2023-11-14T21:43:20-00:30", Some(1_700_000_000_000)),
            ("1969-12-31T23:59:59.000Z", Some(-1000)),
            ("2023-11-14T22:13:20", None),
            ("2023-02-29T00:00:00Z", None),
            ("2023-13-01T00:00:00Z", None),
            ("2023-11-14T22:13:20.Z", None),
            ("2023-11-14T22:13:20+0100", None),
            ("yesterday", None),
            ("", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_rfc3339_ms(s), want, "{s}");
        }
    }
}
