//! Fuzz the manifest parser with arbitrary bytes: it must never panic, and whatever it
//! accepts must re-encode to exactly the input (the format has one spelling per tree).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyre::manifest::{escape, Manifest};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::decode(data) {
        assert_eq!(m.encode(), data, "accepted a non-canonical manifest");
    }
    // The escape round-trips any byte string, and rejects non-canonical tokens.
    let token = escape::escape(data);
    assert_eq!(escape::unescape(&token).as_deref(), Ok(data));
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(raw) = escape::unescape(s) {
            assert_eq!(escape::escape(&raw), s);
        }
    }
});
