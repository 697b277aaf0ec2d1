//! Fuzz the other parsers of untrusted bytes: key files, signature files, mountinfo, the
//! verity superblock read from any attached disk, cloud metadata documents, Azure's base64 user
//! data and config-drive volume labels. None may panic; a signature made up by the fuzzer must
//! never verify; a superblock is the root's only with the pinned uuid and salt.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pyre::init::rootdev::{judge, Verdict, Want, SUPERBLOCK_SIZE};
use pyre::keys;
use pyre::providers::{aws, azure, gcp, openstack};
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
    let mut sb = [0u8; SUPERBLOCK_SIZE];
    let n = data.len().min(SUPERBLOCK_SIZE);
    sb[..n].copy_from_slice(&data[..n]);
    let want = Want {
        uuid: [7; 16],
        data_blocks: 100,
        hash_offset: 409_600,
        salt: vec![0xaa, 0x55],
        only: None,
    };
    if judge(&sb, &want) == Verdict::Root {
        assert_eq!(
            (&sb[16..32], &sb[88..90]),
            (&[7u8; 16][..], &[0xaa, 0x55][..])
        );
    }
    for m in mountinfo::parse(data) {
        // Fields are space-separated: no parsed field may contain one.
        assert!(!m.fstype.contains(' ') && !m.source.contains(' '));
    }
    let _ = aws::parse_identity(data);
    let _ = gcp::parse_identity(data);
    let _ = azure::parse_identity(data);
    let _ = openstack::parse_identity(data);
    let _ = azure::decode_user_data(data);
    let _ = openstack::drive::probe_label(&mut std::io::Cursor::new(data));
});
