//! Fuzz the RELP frame and `rsp` parsers with what a server (or anything at its address) may
//! send: no panic; a parsed frame lies within the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyre::logship::sink::relp::{parse_frame, parse_rsp};

fuzz_target!(|data: &[u8]| {
    let mut at = 0;
    while at < data.len() {
        match parse_frame(&data[at..]) {
            Ok(Some((f, used))) => {
                assert!(used > 0 && at + used <= data.len());
                assert!(f.data.len() < used);
                if f.command == "rsp" {
                    if let Ok((code, _)) = parse_rsp(f.data) {
                        assert!((100..1000).contains(&code));
                    }
                }
                at += used;
            }
            Ok(None) | Err(_) => break,
        }
    }
});
