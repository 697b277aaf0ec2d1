//! Table-driven tests over the fixtures in agent/tests/fixtures/config: every `bad_*.json` must
//! be refused with the message in its `bad_*.err`, every `good_*.json` accepted; plus signed
//! envelopes, the image policy, secrets, and the committed JSON Schema.
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;

use super::*;
use crate::keys;

/// Strings the fixtures use as secret values: no error or Debug output may contain them.
const SECRETS: &[&str] = &[
    "secret-content-xyz",
    "secret-line2",
    "31415926",
    "27182818",
    "s3cr3t-db",
    "tok-",
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config")
}

fn fixture_names(prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_str().unwrap();
            n.starts_with(prefix) && n.ends_with(".json")
        })
        .collect();
    v.sort();
    v
}

fn assert_no_secret(text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{text:?} shows the secret {s:?}");
    }
}

#[test]
fn bad_fixtures_are_refused_with_their_message() {
    let bad = fixture_names("bad_");
    assert!(bad.len() >= 40, "fixtures missing: {}", bad.len());
    for p in bad {
        let want = std::fs::read_to_string(p.with_extension("err")).unwrap();
        let want = want.trim_end();
        let e = parse(&std::fs::read(&p).unwrap())
            .map(|_| ())
            .expect_err(&p.display().to_string());
        assert_eq!(e.message_id(), msgid::INVALID);
        let all = e.problems().join("\n");
        assert!(
            all.contains(want),
            "{}:\n  got  {all:?}\n  want {want:?}",
            p.display()
        );
        assert_no_secret(&all);
        assert_no_secret(&e.to_string());
        assert_no_secret(&format!("{e:?}"));
    }
}

#[test]
fn good_fixtures_parse_and_round_trip() {
    for p in fixture_names("good_") {
        let c =
            parse(&std::fs::read(&p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let again = parse(&c.to_json_with_secrets()).unwrap();
        assert_eq!(again, c, "{}", p.display());
        assert_no_secret(&format!("{c:?}"));
        assert_no_secret(&format!("{c:#?}"));
        assert_no_secret(&c.summary());
    }
}

#[test]
fn full_config_has_the_documented_values_and_defaults() {
    let c = parse(&std::fs::read(fixtures().join("good_full.json")).unwrap()).unwrap();
    assert_eq!(c.hostname.as_deref(), Some("web-1"));
    assert_eq!(c.files[2].mode, "0600", "default mode");
    assert_eq!(c.files[2].encoding, Encoding::Utf8);
    assert_eq!(
        c.volumes[0].device.selector(),
        Selector::Serial("vol-0abc123")
    );
    assert_eq!(c.volumes[0].format, Format::IfBlank);
    assert_eq!(c.volumes[0].wait.get(), std::time::Duration::from_secs(30));
    assert_eq!(
        c.logs.as_ref().unwrap().sources[2],
        LogSource::File("/var/log/app.log".into())
    );
    assert_eq!(c.drift.as_ref().unwrap().action, DriftAction::Poweroff);
    assert_eq!(c.lifetime.as_ref().unwrap().max_age.to_string(), "1d");
    assert_eq!(
        c.summary(),
        "config v1: hostname web-1, 3 file(s), 2 environment variable(s), 1 volume(s), logs to 2 \
         sink(s), drift every 1h (poweroff), lifetime max-age 1d"
    );
    let min = parse(br#"{"version": 1, "volumes": [{"name": "d", "device": {"label": "d"},
        "filesystem": "xfs", "mountpoint": "/srv/d"}], "logs": {"sinks": [{"url": "relp://r.example"}]},
        "drift": {}}"#)
    .unwrap();
    let v = &min.volumes[0];
    assert_eq!(
        (v.format, v.required, v.grow, v.wait.to_string()),
        (Format::Never, true, false, "30s".into())
    );
    assert_eq!(
        min.logs.unwrap().sources,
        vec![LogSource::Journal, LogSource::Kmsg]
    );
    let d = min.drift.unwrap();
    assert_eq!(
        (d.interval.to_string(), d.grace.to_string(), d.action),
        ("1h".into(), "30s".into(), DriftAction::Poweroff)
    );
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let e = parse(br#"{"version": 1, "hostname": "a_b", "files": [{"path": "/etc/x", "mode": "999", "content": ""}]}"#)
        .unwrap_err();
    assert_eq!(
        e.problems(),
        vec![
            "hostname: \"a_b\" is not an RFC 1123 host name (dot-separated labels of letters, digits and inner hyphens)",
            "files[0].path: \"/etc/x\" is not under /run or a volume's mountpoint (the root is read-only)",
            "files[0].mode: \"999\" is not an octal mode such as \"0640\"",
        ]
    );
    assert!(e.to_string().ends_with("(and 2 more)"), "{e}");
}

#[test]
fn committed_schema_matches_the_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/config.schema.json");
    let generated = schema_json();
    if std::env::var_os("PYRE_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/config.schema.json is stale: run `pyre config schema > docs/config.schema.json` \
         (or PYRE_BLESS=1 cargo test -p pyre committed_schema)"
    );
    let v: serde_json::Value = serde_json::from_str(&generated).unwrap();
    assert_eq!(v["additionalProperties"], false);
    assert_eq!(v["required"], serde_json::json!(["version"]));
    assert!(v["$defs"]["Volume"]["properties"]["mountpoint"].is_object());
    assert!(v["$defs"]["Lifetime"]["properties"]["max-age"].is_object());
}

// ---- signed envelopes ----

fn keydir(keys_: &[&SigningKey]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (i, k) in keys_.iter().enumerate() {
        std::fs::write(
            d.path().join(format!("k{i}.pub")),
            keys::encode_public(&k.verifying_key()),
        )
        .unwrap();
    }
    std::fs::write(d.path().join("README"), "not a key: ignored").unwrap();
    d
}

const PLAIN: &str =
    r#"{"version": 1, "hostname": "signed-1", "environment": {"T": "secret-content-xyz"}}"#;

#[test]
fn signed_config_verifies_and_loads() {
    let k = SigningKey::from_bytes(&[1; 32]);
    let other = SigningKey::from_bytes(&[2; 32]);
    let dir = keydir(&[&other, &k]);
    let env = envelope::sign(PLAIN, &k);
    assert_eq!(env.key, keys::key_id(&k.verifying_key()));
    let required = Policy {
        signature_required: true,
        ..Policy::default()
    };
    let got = load(env.to_json().as_bytes(), &required, dir.path()).unwrap();
    assert_eq!(got.config.hostname.as_deref(), Some("signed-1"));
    assert_eq!(got.signed_by.as_deref(), Some(env.key.as_str()));
    // The same signature in base64 is accepted too.
    let sig = ed25519_dalek::Signer::sign(&k, &envelope::signed_message(PLAIN.as_bytes()));
    let b64 = Envelope {
        signature: format!(
            "ed25519:{}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, sig.to_bytes())
        ),
        ..env
    };
    assert!(load(b64.to_json().as_bytes(), &required, dir.path()).is_ok());
}

#[test]
fn bad_envelopes_are_refused_with_the_signature_message_id() {
    let k = SigningKey::from_bytes(&[1; 32]);
    let stranger = SigningKey::from_bytes(&[3; 32]);
    let dir = keydir(&[&k]);
    let good = envelope::sign(PLAIN, &k);
    let tampered = Envelope {
        signed: PLAIN.replace("signed-1", "evil-1"),
        ..good.clone()
    };
    let by_stranger = envelope::sign(PLAIN, &stranger);
    let relabelled = Envelope {
        key: good.key.clone(),
        ..by_stranger.clone()
    };
    let garbled = Envelope {
        signature: "ed25519:zz".into(),
        ..good.clone()
    };
    let no_prefix = Envelope {
        signature: good.signature.replace("ed25519:", "rsa:"),
        ..good.clone()
    };
    // A manifest signature by the right key over the same bytes must not pass as a config one.
    let manifest_sig = keys::sign_digest(&k, PLAIN);
    let cross = Envelope {
        signature: format!(
            "ed25519:{}",
            manifest_sig.trim_end().rsplit(' ').next().unwrap()
        ),
        ..good.clone()
    };
    let cases: Vec<(String, &str)> = vec![
        (
            tampered.to_json(),
            "does not match (config or signature altered)",
        ),
        (by_stranger.to_json(), "config signed with unknown key"),
        (relabelled.to_json(), "does not match"),
        (cross.to_json(), "does not match"),
        (
            garbled.to_json(),
            "signature: not 64 bytes of hex (128 digits) or base64",
        ),
        (
            no_prefix.to_json(),
            "signature: expected \"ed25519:<hex or base64>\"",
        ),
        (
            r#"{"signed": "{}", "signature": "ed25519:00", "key": "k", "extra": 1}"#.into(),
            "extra: unknown field `extra`",
        ),
        (
            r#"{"signed": "{}", "key": "k"}"#.into(),
            "missing field `signature`",
        ),
        (
            r#"{"signed": 5, "signature": "ed25519:00", "key": "k"}"#.into(),
            "signed: invalid type: integer `5`, expected a string",
        ),
    ];
    for policy in [
        Policy::default(),
        Policy {
            signature_required: true,
            ..Policy::default()
        },
    ] {
        for (text, want) in &cases {
            let e = load(text.as_bytes(), &policy, dir.path()).unwrap_err();
            assert!(e.to_string().contains(want), "{e} should contain {want:?}");
            assert_eq!(e.message_id(), msgid::SIGNATURE, "{e}");
            assert_no_secret(&e.to_string());
        }
    }
    // No keys baked at all: every envelope is from an unknown key.
    let empty = tempfile::tempdir().unwrap();
    let e = load(
        good.to_json().as_bytes(),
        &Policy::default(),
        &empty.path().join("none"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("(trusted: none)"), "{e}");
}

#[test]
fn unsigned_config_against_the_policy() {
    let dir = keydir(&[]);
    let required = Policy {
        signature_required: true,
        ..Policy::default()
    };
    let e = load(PLAIN.as_bytes(), &required, dir.path()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "config signature required by the image policy, but the config is not signed"
    );
    assert_eq!(e.message_id(), msgid::SIGNATURE);
    let got = load(PLAIN.as_bytes(), &Policy::default(), dir.path()).unwrap();
    assert_eq!(got.signed_by, None);
    // A valid signature over an invalid config: refused as invalid, after the signature check.
    let k = SigningKey::from_bytes(&[1; 32]);
    let dir = keydir(&[&k]);
    let env = envelope::sign(r#"{"version": 1, "hostname": "-x"}"#, &k);
    let e = load(env.to_json().as_bytes(), &required, dir.path()).unwrap_err();
    assert_eq!(e.message_id(), msgid::INVALID);
}

#[test]
fn malformed_trusted_key_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.pub"), "junk\n").unwrap();
    let k = SigningKey::from_bytes(&[1; 32]);
    let e = load(
        envelope::sign(PLAIN, &k).to_json().as_bytes(),
        &Policy::default(),
        dir.path(),
    )
    .unwrap_err();
    assert_eq!(e.message_id(), msgid::POLICY);
    assert!(e.to_string().contains("not a pyre public key"), "{e}");
}

// ---- image policy ----

#[test]
fn policy_defaults_and_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = Policy::load(&dir.path().join("image.json")).unwrap();
    assert_eq!(missing, Policy::default());
    assert_eq!(missing.deadline.to_string(), "2m");
    assert_eq!(missing.on_failure, OnFailure::Poweroff);
    assert!(missing.check_absent().is_ok());
    assert!(missing.check_provider(ProviderKind::Aws).is_ok());

    let p = Policy::parse(
        br#"{"version": 1, "config-required": true, "signature-required": true,
        "providers": ["qemu", "url"], "deadline": "20s", "allow-http": true, "on-failure": "halt",
        "report-url": "http://10.0.2.2:8080/boot"}"#,
    )
    .unwrap();
    assert_eq!(p.check_absent().unwrap_err().message_id(), msgid::MISSING);
    assert!(p.check_provider(ProviderKind::Qemu).is_ok());
    let e = p.check_provider(ProviderKind::Aws).unwrap_err();
    assert_eq!(
        (e.to_string().as_str(), e.message_id()),
        (
            "provider aws is not allowed by the image policy",
            msgid::POLICY
        )
    );
    assert_eq!(p.deadline.get(), std::time::Duration::from_secs(20));

    let f = dir.path().join("image.json");
    for (text, want) in [
        (
            r#"{"version": 2}"#,
            "version: unsupported image policy version 2",
        ),
        (
            r#"{"version": 1, "on-failure": "explode"}"#,
            "on-failure: unknown variant `explode`",
        ),
        (
            r#"{"version": 1, "providers": ["ec2"]}"#,
            "providers[0]: unknown variant `ec2`",
        ),
        (
            r#"{"version": 1, "deadline": "0s"}"#,
            "deadline: must be more than zero",
        ),
        (
            r#"{"version": 1, "config": true}"#,
            "config: unknown field `config`",
        ),
        (
            r#"{"version": 1, "report-url": "gopher://x"}"#,
            "report-url: unsupported scheme",
        ),
    ] {
        std::fs::write(&f, text).unwrap();
        let e = Policy::load(&f).unwrap_err();
        let s = e.to_string();
        assert!(
            s.starts_with(&format!("image policy: {}: ", f.display())),
            "{s}"
        );
        assert!(s.contains(want), "{s} should contain {want:?}");
        assert_eq!(e.message_id(), msgid::POLICY);
    }
}

/// A small deterministic mutation run over the fixtures, with the fuzz target's properties, so
/// `cargo test` catches a panic or a non-round-tripping config without cargo-fuzz.
#[test]
fn mutated_fixtures_never_panic_and_accepted_ones_round_trip() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    let alphabet = b"{}[]\":,0123456789abcdefghijklmnopqrstuvwxyz-_/. \\\n\x00\xff";
    let mut accepted = 0;
    for p in fixture_names("") {
        let orig = std::fs::read(&p).unwrap();
        for _ in 0..300 {
            let mut b = orig.clone();
            for _ in 0..1 + next() % 3 {
                let i = next() % (b.len() + 1);
                let c = alphabet[next() % alphabet.len()];
                match next() % 3 {
                    0 if i < b.len() => b[i] = c,
                    1 if i < b.len() => {
                        b.remove(i);
                    }
                    _ => b.insert(i, c),
                }
            }
            if let Ok(c) = parse(&b) {
                accepted += 1;
                assert_eq!(
                    parse(&c.to_json_with_secrets()).unwrap(),
                    c,
                    "{}",
                    String::from_utf8_lossy(&b)
                );
            }
            if let Ok(env) = Envelope::parse(&b) {
                assert!(env
                    .verify(&[SigningKey::from_bytes(&[9; 32]).verifying_key()])
                    .is_err());
            }
        }
    }
    assert!(
        accepted > 100,
        "mutations too destructive to exercise acceptance: {accepted}"
    );
}
