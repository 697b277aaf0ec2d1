//! Loki's push API (`POST /loki/api/v1/push`, JSON): one stream per label set, labels `host`,
//! `image`, `unit` and `source`; each value `[<unix ns as a string>, <message>]`. Loki drops an
//! entry identical in stream, timestamp and line to one it has, so the duplicates at-least-once
//! delivery can cause do not show there.
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::logship::record::{Record, Renderer};
use crate::logship::sink::{HTTP_BATCH_BYTES as BATCH_BYTES, HTTP_BATCH_RECORDS as BATCH_RECORDS};

/// `loki+http://h:p` → `http://h:p/loki/api/v1/push`; a path given in the URL is kept.
pub fn push_url(url: &str, https: bool) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let scheme = if https { "https" } else { "http" };
    match rest.find('/') {
        Some(i) if rest.len() > i + 1 => format!("{scheme}://{rest}"),
        Some(i) => format!("{scheme}://{}/loki/api/v1/push", &rest[..i]),
        None => format!("{scheme}://{rest}/loki/api/v1/push"),
    }
}

/// The push body for the first records of `recs`: how many it holds.
pub fn push_body(recs: &[Record], r: &Renderer, out: &mut Vec<u8>) -> usize {
    let mut streams: BTreeMap<Option<&str>, Vec<Value>> = BTreeMap::new();
    let mut n = 0;
    let mut size = 0;
    for rec in recs.iter().take(BATCH_RECORDS) {
        let e = &rec.entry;
        let t = e.time.unwrap_or_else(SystemTime::now);
        let ns = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
        let line = String::from_utf8_lossy(&e.message);
        size += line.len() + 48;
        streams
            .entry(e.unit.as_deref())
            .or_default()
            .push(json!([ns.to_string(), line]));
        n += 1;
        if size >= BATCH_BYTES {
            break;
        }
    }
    let id = &r.identity;
    let streams: Vec<Value> = streams
        .into_iter()
        .map(|(unit, values)| {
            let mut labels = Map::new();
            let host = if id.hostname.is_empty() {
                "unknown"
            } else {
                &id.hostname
            };
            labels.insert("host".into(), json!(host));
            if !id.image.is_empty() {
                labels.insert("image".into(), json!(id.image));
            }
            if let Some(u) = unit {
                labels.insert("unit".into(), json!(u));
            }
            labels.insert("source".into(), json!(r.source));
            json!({ "stream": labels, "values": values })
        })
        .collect();
    let _ = serde_json::to_writer(&mut *out, &json!({ "streams": streams }));
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logship::checkpoint::Position;
    use crate::logship::record::{Entry, Identity};
    use std::time::Duration;

    #[test]
    fn urls() {
        assert_eq!(
            push_url("loki+http://h:3100", false),
            "http://h:3100/loki/api/v1/push"
        );
        assert_eq!(
            push_url("loki+https://h:3100/", true),
            "https://h:3100/loki/api/v1/push"
        );
        assert_eq!(push_url("loki+http://h/x/push", false), "http://h/x/push");
    }

    #[test]
    fn streams_by_unit() {
        let r = Renderer {
            identity: Identity {
                hostname: "web-1".into(),
                image: "img".into(),
                ..Identity::default()
            },
            source: "journal".into(),
        };
        let rec = |seq, unit: Option<&str>| {
            let mut e = Entry::new(format!("line {seq}"));
            e.unit = unit.map(str::to_string);
            e.time = Some(UNIX_EPOCH + Duration::from_secs(seq));
            Record {
                seq,
                entry: e,
                pos: Position::Start,
            }
        };
        let recs = [
            rec(1, Some("a.service")),
            rec(2, None),
            rec(3, Some("a.service")),
        ];
        let mut out = Vec::new();
        assert_eq!(push_body(&recs, &r, &mut out), 3);
        let v: Value = serde_json::from_slice(&out).unwrap();
        let streams = v["streams"].as_array().unwrap();
        assert_eq!(streams.len(), 2);
        let a = streams
            .iter()
            .find(|s| s["stream"]["unit"] == "a.service")
            .unwrap();
        assert_eq!(a["stream"]["host"], "web-1");
        assert_eq!(a["values"][1], json!(["3000000000", "line 3"]));
    }
}
