//! RFC 3339 UTC timestamps without a date library (drift reports, RFC 5424 log records).
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
}
