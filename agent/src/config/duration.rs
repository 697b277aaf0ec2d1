//! Durations in our formats: a decimal count and a unit, `500ms`, `30s`, `15m`, `24h`.
//! The grammar is `sys::duration`'s; this wrapper adds serde, the schema and config's message.
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The pattern published in the JSON Schema; `parse` accepts exactly this.
pub const PATTERN: &str = "^[0-9]{1,9}(ms|s|m|h|d)$";

/// A length of time written with a unit. Serializes back to the same text form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub const fn from_secs(s: u64) -> Self {
        Duration(std::time::Duration::from_secs(s))
    }

    pub fn get(self) -> std::time::Duration {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl FromStr for Duration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("invalid duration {s:?}: expected a whole number and a unit (ms, s, m, h, d), e.g. \"30s\"")
        };
        if s.bytes().take_while(u8::is_ascii_digit).count() > 9 {
            return Err(bad());
        }
        let d = crate::sys::duration::parse(s).map_err(|_| bad())?;
        Ok(Duration(d))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms % 1000 != 0 {
            return write!(f, "{ms}ms");
        }
        let s = ms / 1000;
        for (unit, size) in [("d", 86400), ("h", 3600), ("m", 60)] {
            if s != 0 && s % size == 0 {
                return write!(f, "{}{unit}", s / size);
            }
        }
        write!(f, "{s}s")
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": PATTERN,
            "description": "A whole number and a unit: ms, s, m, h or d (\"500ms\", \"30s\", \"15m\", \"24h\").",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let ok = [
            ("500ms", 500),
            ("0s", 0),
            ("30s", 30_000),
            ("15m", 900_000),
            ("24h", 86_400_000),
            ("2d", 172_800_000),
        ];
        for (s, ms) in ok {
            let d: Duration = s.parse().unwrap();
            assert_eq!(d.0.as_millis(), ms, "{s}");
        }
        for bad in [
            "",
            "30",
            "s",
            "1.5s",
            "-1s",
            "30 s",
            "30S",
            "1w",
            "1234567890s",
            "+1s",
        ] {
            assert!(bad.parse::<Duration>().is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "500ms", "1500ms", "0s", "30s", "90s", "15m", "24h", "36h", "2d",
        ] {
            let d: Duration = s.parse().unwrap();
            let shown = d.to_string();
            assert_eq!(shown.parse::<Duration>().unwrap(), d, "{s} -> {shown}");
        }
        assert_eq!("60s".parse::<Duration>().unwrap().to_string(), "1m");
        assert_eq!("1500ms".parse::<Duration>().unwrap().to_string(), "1500ms");
    }
}
