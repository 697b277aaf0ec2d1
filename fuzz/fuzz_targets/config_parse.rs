//! Fuzz config v1, signed envelopes and the image policy: untrusted bytes from a metadata
//! endpoint. Nothing may panic; an accepted config re-serializes and parses back to itself; a
//! made-up envelope never verifies against a key the fuzzer does not hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyre::config::{self, envelope, Envelope, Policy};

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = config::parse(data) {
        let again = config::parse(&c.to_json_with_secrets()).expect("re-serialized config parses");
        assert_eq!(again, c);
        let _ = c.summary();
    }
    let _ = envelope::is_envelope(data);
    if let Ok(env) = Envelope::parse(data) {
        let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        assert!(env.verify(&[key.verifying_key()]).is_err());
        let _ = config::parse(env.signed.as_bytes());
    }
    if let Ok(p) = Policy::parse(data) {
        let text = serde_json::to_vec(&p).unwrap();
        assert_eq!(Policy::parse(&text).unwrap(), p);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(d) = s.parse::<config::Duration>() {
            assert_eq!(d.to_string().parse::<config::Duration>().unwrap(), d);
        }
    }
});
