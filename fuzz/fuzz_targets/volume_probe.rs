//! Fuzz the volume prober: the bytes are a device (and, placed at both ends of a 1 GiB
//! device, its head and tail). It must never panic, and "blank" must mean exactly "no
//! signature and every byte read is zero" — the rule that stops mkfs.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use pyre::volumes::probe::{self, containers, gpt, Regions};

fuzz_target!(|data: &[u8]| {
    let p = probe::probe(&mut Cursor::new(data)).expect("a Cursor never fails to read");
    assert_eq!(p.size, data.len() as u64);
    assert_eq!(p.bytes_read, data.len() as u64, "small devices are read whole");
    let all_zero = data.iter().all(|b| *b == 0);
    assert_eq!(p.is_blank(), all_zero);
    assert_eq!(p.first_nonzero, data.iter().position(|b| *b != 0).map(|i| i as u64));

    // The same bytes as the head and the tail of a large device.
    let size = 1u64 << 30;
    let head = &data[..data.len().min(1 << 20)];
    let spans = vec![(0, head.to_vec()), (size - head.len() as u64, head.to_vec())];
    let r = Regions::from_spans(size, spans);
    let big = probe::identify(&r);
    assert_eq!(big.is_blank(), head.iter().all(|b| *b == 0));
    for s in &big.found {
        assert!(s.offset < size);
        assert!(!s.to_string().chars().any(|c| c.is_control()), "printable: {s}");
    }
    let _ = gpt::partitions(&r);
    let _ = containers::xdr_nvlist(data);
});
