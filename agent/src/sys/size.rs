//! Byte sizes written as one whole number and an optional binary unit: `65536`, `64K`, `64M`,
//! `64MiB`, `1G`, `2T` (K, M, G, T and KiB, MiB, GiB, TiB are powers of 1024; `B` or no unit
//! is bytes). `pyre verify --hash-cap` uses this form.

/// The units, smallest first: (suffixes, bytes).
const UNITS: &[(&[&str], u64)] = &[
    (&["", "B"], 1),
    (&["K", "KiB"], 1 << 10),
    (&["M", "MiB"], 1 << 20),
    (&["G", "GiB"], 1 << 30),
    (&["T", "TiB"], 1 << 40),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("size {0:?} does not start with a whole number (write e.g. 64M or 65536)")]
    NoNumber(String),
    #[error("size {input:?} has an unknown unit {unit:?} (B, K, M, G, T or KiB, MiB, GiB, TiB)")]
    BadUnit { input: String, unit: String },
    #[error("size {0:?} is too large")]
    Overflow(String),
}

/// Parse `<digits>[unit]`.
pub fn parse(s: &str) -> Result<u64, SizeError> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(SizeError::NoNumber(s.to_string()));
    }
    let (number, unit) = s.split_at(digits);
    let Some((_, per)) = UNITS.iter().find(|(names, _)| names.contains(&unit)) else {
        return Err(SizeError::BadUnit {
            input: s.to_string(),
            unit: unit.to_string(),
        });
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(*per))
        .ok_or_else(|| SizeError::Overflow(s.to_string()))
}

/// `64 MiB` when a unit divides the size exactly, else `1500 bytes`.
pub fn format(bytes: u64) -> String {
    match UNITS
        .iter()
        .rev()
        .find(|(_, per)| *per > 1 && bytes >= *per && bytes % per == 0)
    {
        Some((names, per)) => format!("{} {}", bytes / per, names[1]),
        None if bytes == 1 => "1 byte".to_string(),
        None => format!("{bytes} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers_with_binary_units() {
        for (s, want) in [
            ("0", 0),
            ("65536", 65536),
            ("10B", 10),
            ("64K", 64 << 10),
            ("64M", 64 << 20),
            ("64MiB", 64 << 20),
            ("1G", 1 << 30),
            ("2TiB", 2 << 40),
        ] {
            assert_eq!(parse(s), Ok(want), "{s}");
        }
        assert!(matches!(parse(""), Err(SizeError::NoNumber(_))));
        assert!(matches!(parse("M"), Err(SizeError::NoNumber(_))));
        assert!(matches!(parse("-1"), Err(SizeError::NoNumber(_))));
        assert!(matches!(parse("64 M"), Err(SizeError::BadUnit { .. })));
        assert!(matches!(parse("64mb"), Err(SizeError::BadUnit { .. })));
        assert!(matches!(parse("99999999999T"), Err(SizeError::Overflow(_))));
    }

    #[test]
    fn formats_exact_units_and_reads_back() {
        assert_eq!(format(64 << 20), "64 MiB");
        assert_eq!(format(1536), "1536 bytes");
        assert_eq!(format(3 << 10), "3 KiB");
        assert_eq!(format(1 << 40), "1 TiB");
        assert_eq!(format(0), "0 bytes");
        assert_eq!(format(1), "1 byte");
        for n in [0, 1, 1536, 64 << 20, 5 << 30] {
            let s = format(n).replace(" bytes", "").replace(" byte", "");
            assert_eq!(parse(&s.replace(' ', "")), Ok(n));
        }
    }
}
