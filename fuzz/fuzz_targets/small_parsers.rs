//! Fuzz the other parsers of untrusted bytes: key files, signature files and mountinfo. None
//! may panic; a signature made up by the fuzzer must never verify.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pyre::keys;
use pyre::sys::mountinfo;

fuzz_target!(|data: &[u8]| {
    let p = Path::new("fuzz");
    let _ = keys::parse_secret(p, data);
    if let Ok(k) = keys::parse_public(p, data) {
        assert_eq!(keys::encode_public(&k).as_bytes(), data);
    }
    let signer = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let digest = "sha256:00";
    assert!(keys::verify_digest(p, data, digest, &signer.verifying_key()).is_err());
    for m in mountinfo::parse(data) {
        // Fields are space-separated: no parsed field may contain one.
        assert!(!m.fstype.contains(' ') && !m.source.contains(' '));
    }
});
