//! ed25519 key files and detached manifest signatures (formats in docs/manifest.md).
//!
//! - secret key: `pyre-secret-key ed25519 <64 hex: the 32-byte seed>\n`, mode 0600
//! - public key: `pyre-public-key ed25519 <64 hex>\n`
//! - signature:  `pyre-signature ed25519 <16 hex key id> <128 hex>\n`
//!
//! The key id is the first 8 bytes of SHA-256 of the public key. The signed message is
//! `pyre-manifest-signature v1 sha256:<hex>` (the manifest digest, domain separated).
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::sys::hex::{from_hex, to_hex};

const SECRET_TAG: &str = "pyre-secret-key ed25519 ";
const PUBLIC_TAG: &str = "pyre-public-key ed25519 ";
const SIG_TAG: &str = "pyre-signature ed25519 ";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("reading {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {msg}")]
    Format { path: PathBuf, msg: String },
    #[error("generating a key: no randomness from the OS: {0}")]
    Random(String),
    #[error("signature {path} was made with key {found}, not with the trusted key {expected}")]
    OtherKey {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("signature {path} does not match the manifest (manifest or signature altered)")]
    BadSignature { path: PathBuf },
}

/// The message a manifest signature covers.
pub fn signed_message(digest: &str) -> Vec<u8> {
    format!("pyre-manifest-signature v1 {digest}").into_bytes()
}

/// The short id of a public key: first 8 bytes of its SHA-256, in hex.
pub fn key_id(key: &VerifyingKey) -> String {
    to_hex(&Sha256::digest(key.as_bytes())[..8])
}

/// A fresh key pair from the OS random source.
pub fn generate() -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(SigningKey::from_bytes(&seed))
}

pub fn encode_secret(k: &SigningKey) -> String {
    format!("{SECRET_TAG}{}\n", to_hex(&k.to_bytes()))
}

pub fn encode_public(k: &VerifyingKey) -> String {
    format!("{PUBLIC_TAG}{}\n", to_hex(k.as_bytes()))
}

/// Parse `<tag><hex of n bytes>\n` exactly.
fn parse_line(path: &Path, text: &[u8], tag: &str, what: &str) -> Result<[u8; 32], KeyError> {
    let bad = |msg: String| KeyError::Format {
        path: path.to_path_buf(),
        msg,
    };
    let text =
        std::str::from_utf8(text).map_err(|_| bad(format!("not a pyre {what} (not text)")))?;
    let body = text.strip_prefix(tag).ok_or_else(|| {
        bad(format!(
            "not a pyre {what} (expected \"{}…\")",
            tag.trim_end()
        ))
    })?;
    let hex = body
        .strip_suffix('\n')
        .ok_or_else(|| bad("truncated: missing final newline".into()))?;
    let raw = from_hex(hex)
        .filter(|b| b.len() == 32)
        .ok_or_else(|| bad(format!("{what} must be 64 lowercase hex digits")))?;
    raw.try_into().map_err(|_| bad("key length".into()))
}

fn read(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|error| KeyError::Read {
        path: path.to_path_buf(),
        error,
    })
}

pub fn parse_secret(path: &Path, text: &[u8]) -> Result<SigningKey, KeyError> {
    Ok(SigningKey::from_bytes(&parse_line(
        path,
        text,
        SECRET_TAG,
        "secret key",
    )?))
}

pub fn parse_public(path: &Path, text: &[u8]) -> Result<VerifyingKey, KeyError> {
    let raw = parse_line(path, text, PUBLIC_TAG, "public key")?;
    VerifyingKey::from_bytes(&raw).map_err(|e| KeyError::Format {
        path: path.to_path_buf(),
        msg: format!("not a valid ed25519 public key: {e}"),
    })
}

pub fn load_secret(path: &Path) -> Result<SigningKey, KeyError> {
    parse_secret(path, &read(path)?)
}

pub fn load_public(path: &Path) -> Result<VerifyingKey, KeyError> {
    parse_public(path, &read(path)?)
}

/// The signature file text for a manifest digest.
pub fn sign_digest(k: &SigningKey, digest: &str) -> String {
    let sig = k.sign(&signed_message(digest));
    format!(
        "{SIG_TAG}{} {}\n",
        key_id(&k.verifying_key()),
        to_hex(&sig.to_bytes())
    )
}

/// Check signature file text `sig_text` (read from `path`) over `digest` with `key`.
pub fn verify_digest(
    path: &Path,
    sig_text: &[u8],
    digest: &str,
    key: &VerifyingKey,
) -> Result<(), KeyError> {
    let bad = |msg: String| KeyError::Format {
        path: path.to_path_buf(),
        msg,
    };
    let text = std::str::from_utf8(sig_text).map_err(|_| bad("not a pyre signature".into()))?;
    let body = text
        .strip_prefix(SIG_TAG)
        .and_then(|b| b.strip_suffix('\n'))
        .ok_or_else(|| {
            bad(format!(
                "not a pyre signature (expected \"{}…\\n\")",
                SIG_TAG.trim_end()
            ))
        })?;
    let (id, hex) = body
        .split_once(' ')
        .ok_or_else(|| bad("expected \"<key id> <signature>\"".into()))?;
    let raw: [u8; 64] = from_hex(hex)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("signature must be 128 lowercase hex digits".into()))?;
    let expected = key_id(key);
    if id != expected {
        return Err(KeyError::OtherKey {
            path: path.to_path_buf(),
            found: id.to_string(),
            expected,
        });
    }
    key.verify(&signed_message(digest), &Signature::from_bytes(&raw))
        .map_err(|_| KeyError::BadSignature {
            path: path.to_path_buf(),
        })
}

/// Where the detached signature of `manifest` lives: `<manifest>.sig`.
pub fn sig_path(manifest: &Path) -> PathBuf {
    let mut s = manifest.as_os_str().to_os_string();
    s.push(".sig");
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_table() {
        let k = SigningKey::from_bytes(&[7; 32]);
        let other = SigningKey::from_bytes(&[8; 32]);
        let p = Path::new("m.sig");
        let d = "sha256:00";
        let sig = sign_digest(&k, d);
        assert!(verify_digest(p, sig.as_bytes(), d, &k.verifying_key()).is_ok());
        let cases: Vec<(String, &str, VerifyingKey, &str)> = vec![
            (
                sig.clone(),
                "sha256:01",
                k.verifying_key(),
                "does not match",
            ),
            (
                sig.clone(),
                d,
                other.verifying_key(),
                "not with the trusted key",
            ),
            (
                sig.replace('\n', ""),
                d,
                k.verifying_key(),
                "not a pyre signature",
            ),
            (
                "garbage\n".into(),
                d,
                k.verifying_key(),
                "not a pyre signature",
            ),
            (
                sig[..60].to_string() + "\n",
                d,
                k.verifying_key(),
                "128 lowercase hex",
            ),
            (
                "pyre-signature ed25519 nospace\n".into(),
                d,
                k.verifying_key(),
                "expected \"<key id>",
            ),
        ];
        for (text, digest, key, want) in cases {
            let e = verify_digest(p, text.as_bytes(), digest, &key)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e:?} should contain {want:?}");
        }
    }

    #[test]
    fn key_files_round_trip() {
        let k = generate().unwrap();
        let p = Path::new("k");
        let s = parse_secret(p, encode_secret(&k).as_bytes()).unwrap();
        assert_eq!(s.to_bytes(), k.to_bytes());
        let v = parse_public(p, encode_public(&k.verifying_key()).as_bytes()).unwrap();
        assert_eq!(v, k.verifying_key());
        let e = parse_public(p, encode_secret(&k).as_bytes()).unwrap_err();
        assert!(e.to_string().contains("not a pyre public key"), "{e}");
    }
}
