//! Fuzz the /dev/kmsg record parser: any bytes the kernel (or a writer to /dev/kmsg) hands
//! back must parse or be refused, never panic; a parsed record keeps its fields in range.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyre::logship::source::kmsg::parse_record;

fuzz_target!(|data: &[u8]| {
    if let Some(r) = parse_record(data) {
        assert!(r.severity <= 7 && r.facility <= 23);
        assert!(!r.message.contains(&b'\n'));
    }
});
