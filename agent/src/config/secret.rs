//! `Secret<T>`: a value (file content, environment value) that must never be shown. Debug and
//! Display print `<redacted N bytes>`; type errors while parsing never echo the input.
//! Serialize writes the real value (for `/run/pyre/config.json`, mode 0600, and `pyre fetch`).
use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret<T>(T);

impl<T: AsRef<[u8]>> Secret<T> {
    pub fn new(v: T) -> Self {
        Secret(v)
    }

    /// The value itself. Every call site is a place a secret leaves this wrapper: keep them few.
    pub fn expose(&self) -> &T {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.as_ref().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: AsRef<[u8]>> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted {} bytes>", self.len())
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl<T: Serialize> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// Accepts only a string; any other JSON value is refused without quoting it.
struct SecretString;

fn not_a_string<E: de::Error>(kind: &str) -> E {
    E::custom(format!(
        "invalid type: {kind}, expected a string (value not shown: secret)"
    ))
}

impl<'de> Visitor<'de> for SecretString {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<String, E> {
        Err(not_a_string("boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<String, E> {
        Err(not_a_string("number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<String, E> {
        Err(not_a_string("number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<String, E> {
        Err(not_a_string("number"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Err(not_a_string("null"))
    }

    fn visit_none<E: de::Error>(self) -> Result<String, E> {
        Err(not_a_string("null"))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(not_a_string("array"))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(not_a_string("object"))
    }
}

impl<'de> Deserialize<'de> for Secret<String> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // deserialize_any, not deserialize_string: serde_json builds its own "invalid type" error,
        // quoting the value, when a string was asked for and something else is there.
        d.deserialize_any(SecretString).map(Secret)
    }
}

impl JsonSchema for Secret<String> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Secret".into()
    }

    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        String::json_schema(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shows_the_value() {
        let s = Secret::new("hunter2".to_string());
        assert_eq!(format!("{s:?}"), "<redacted 7 bytes>");
        assert_eq!(format!("{s}"), "<redacted 7 bytes>");
        assert_eq!(
            format!("{:#?}", Some(&s)),
            "Some(\n    <redacted 7 bytes>,\n)"
        );
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"hunter2\"");
    }

    #[test]
    fn type_errors_do_not_echo_the_input() {
        for input in [
            "314159265",
            "true",
            "[\"hunter2\"]",
            "{\"a\":\"hunter2\"}",
            "2.5",
            "null",
        ] {
            let e = serde_json::from_str::<Secret<String>>(input)
                .unwrap_err()
                .to_string();
            assert!(e.contains("value not shown"), "{e}");
            for leak in ["314159265", "hunter2", "2.5", "true"] {
                assert!(!e.contains(leak), "{e} leaks {leak}");
            }
        }
    }
}
