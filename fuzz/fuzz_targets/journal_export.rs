//! Fuzz the journal export format parser with whatever journalctl (or something in its place)
//! might print: no panic, no unbounded allocation (a binary field's length comes from the
//! input), kept values capped.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use pyre::logship::record::MAX_MESSAGE;
use pyre::logship::source::export::{cursor_seqnum, read_entry};

fuzz_target!(|data: &[u8]| {
    let mut r = Cursor::new(data);
    for _ in 0..64 {
        match read_entry(&mut r) {
            Ok(Some(e)) => {
                assert!(e.message.len() <= MAX_MESSAGE);
                let _ = cursor_seqnum(&e.cursor);
                let entry = e.to_entry();
                assert!(entry.severity <= 7 && entry.facility <= 23);
            }
            Ok(None) | Err(_) => break,
        }
    }
});
