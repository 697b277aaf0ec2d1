//! Durations written as one whole number and one unit: `500ms`, `30s`, `15m`, `24h`, `7d`. Config
//! v1 and the kernel command line (`pyre.config.deadline=30s`) use this form; nothing else is
//! accepted (no fractions, signs, spaces or compound forms such as `1h30m`: write `90m`).
use std::time::Duration;

/// The units, smallest first: (suffix, milliseconds).
const UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("duration is empty (write a number and a unit: 500ms, 30s, 15m, 24h)")]
    Empty,
    #[error("duration {0:?} does not start with a whole number (write e.g. 30s)")]
    NoNumber(String),
    #[error("duration {0:?} has no unit (ms, s, m, h or d)")]
    NoUnit(String),
    #[error("duration {input:?} has an unknown unit {unit:?} (ms, s, m, h or d)")]
    BadUnit { input: String, unit: String },
    #[error("duration {0:?} is too long")]
    Overflow(String),
}

/// Parse `<digits><unit>`.
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(DurationError::NoNumber(s.to_string()));
    }
    let (number, unit) = s.split_at(digits);
    if unit.is_empty() {
        return Err(DurationError::NoUnit(s.to_string()));
    }
    let Some((_, ms_per)) = UNITS.iter().find(|(u, _)| *u == unit) else {
        return Err(DurationError::BadUnit {
            input: s.to_string(),
            unit: unit.to_string(),
        });
    };
    let ms = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(*ms_per))
        .ok_or_else(|| DurationError::Overflow(s.to_string()))?;
    Ok(Duration::from_millis(ms))
}

/// The shortest form [`parse`] reads back: the largest unit that divides the duration exactly.
/// Below a millisecond is dropped (`1500us` is `1ms`).
pub fn format(d: Duration) -> String {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let (unit, per) = UNITS
        .iter()
        .rev()
        .find(|(_, per)| ms % per == 0 && ms > 0)
        .copied()
        .unwrap_or(("s", 1_000));
    format!("{}{unit}", ms / per)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        let cases: &[(&str, u64)] = &[
            ("500ms", 500),
            ("0s", 0),
            ("30s", 30_000),
            ("15m", 900_000),
            ("24h", 86_400_000),
            ("7d", 604_800_000),
            ("007s", 7_000),
            ("90m", 5_400_000),
        ];
        for (s, ms) in cases {
            assert_eq!(parse(s), Ok(Duration::from_millis(*ms)), "{s}");
        }
    }

    #[test]
    fn bad_durations_say_what_is_wrong() {
        let cases: &[(&str, &str)] = &[
            ("", "duration is empty"),
            ("s", "\"s\" does not start with a whole number"),
            ("-5s", "does not start with a whole number"),
            (" 5s", "does not start with a whole number"),
            ("30", "\"30\" has no unit (ms, s, m, h or d)"),
            ("1.5h", "unknown unit \".5h\""),
            ("5 s", "unknown unit \" s\""),
            ("1h30m", "unknown unit \"h30m\""),
            ("2w", "unknown unit \"w\""),
            ("10S", "unknown unit \"S\""),
            ("99999999999999999999s", "is too long"),
            ("18446744073709552h", "is too long"),
        ];
        for (s, want) in cases {
            let err = parse(s).expect_err(s).to_string();
            assert!(err.contains(want), "{s:?}: got {err:?}, want {want:?}");
        }
    }

    #[test]
    fn formats_in_the_largest_exact_unit_and_round_trips() {
        let cases: &[(u64, &str)] = &[
            (0, "0s"),
            (1, "1ms"),
            (1_500, "1500ms"),
            (30_000, "30s"),
            (90_000, "90s"),
            (900_000, "15m"),
            (5_400_000, "90m"),
            (82_800_000, "23h"),
            (86_400_000, "1d"),
            (90_000_000, "25h"),
        ];
        for (ms, want) in cases {
            let d = Duration::from_millis(*ms);
            assert_eq!(format(d), *want, "{ms}ms");
            assert_eq!(parse(want), Ok(d), "{want}");
        }
        assert_eq!(format(Duration::from_micros(1_500)), "1ms");
    }
}
