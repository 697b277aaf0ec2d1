//! Signed configs: `{"signed": "<config JSON as a string>", "signature": "ed25519:<hex|base64>",
//! "key": "<key id>"}`. The signature covers `pyre-config-signature v1 sha256:<hex of SHA-256
//! of the signed string's bytes>` (domain-separated from manifest signatures, so neither can
//! stand in for the other). The key id is `keys::key_id` of a public key in the keys directory.
use std::path::Path;

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ConfigError;
use crate::keys;
use crate::sys::hex::{from_hex, to_hex};

const SIG_PREFIX: &str = "ed25519:";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Envelope {
    pub signed: String,
    pub signature: String,
    pub key: String,
}

/// The bytes an ed25519 config signature covers.
pub fn signed_message(signed: &[u8]) -> Vec<u8> {
    format!(
        "pyre-config-signature v1 sha256:{}",
        to_hex(&Sha256::digest(signed))
    )
    .into_bytes()
}

/// Whether `bytes` look like an envelope (a JSON object with a `signed` member) rather than a
/// plain config. Anything else is handed to the config parser, which names the problem.
pub fn is_envelope(bytes: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Probe {
        signed: Option<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Probe>(bytes).is_ok_and(|p| p.signed.is_some())
}

/// Wrap `config` (already-checked config JSON text) in a signed envelope.
pub fn sign(config: &str, key: &SigningKey) -> Envelope {
    let sig = key.sign(&signed_message(config.as_bytes()));
    Envelope {
        signed: config.to_owned(),
        signature: format!("{SIG_PREFIX}{}", to_hex(&sig.to_bytes())),
        key: keys::key_id(&key.verifying_key()),
    }
}

impl Envelope {
    pub fn parse(bytes: &[u8]) -> Result<Envelope, ConfigError> {
        super::from_json(bytes).map_err(|p| ConfigError::Envelope(p.to_string()))
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("an envelope always serializes");
        s.push('\n');
        s
    }

    fn signature_bytes(&self) -> Result<Signature, ConfigError> {
        let bad = |m: &str| ConfigError::Envelope(format!("signature: {m}"));
        let body = self
            .signature
            .strip_prefix(SIG_PREFIX)
            .ok_or_else(|| bad("expected \"ed25519:<hex or base64>\""))?;
        let raw = if body.len() == 128 {
            from_hex(body)
        } else {
            base64::engine::general_purpose::STANDARD.decode(body).ok()
        };
        let raw: [u8; 64] = raw
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| bad("not 64 bytes of hex (128 digits) or base64"))?;
        Ok(Signature::from_bytes(&raw))
    }

    /// Check the signature with the key named by `key`, found among `trusted`.
    pub fn verify(&self, trusted: &[VerifyingKey]) -> Result<(), ConfigError> {
        let sig = self.signature_bytes()?;
        let key = trusted
            .iter()
            .find(|k| keys::key_id(k) == self.key)
            .ok_or_else(|| ConfigError::UnknownKey {
                key: self.key.clone(),
                trusted: match trusted {
                    [] => "none".to_string(),
                    ks => ks.iter().map(keys::key_id).collect::<Vec<_>>().join(", "),
                },
            })?;
        key.verify(&signed_message(self.signed.as_bytes()), &sig)
            .map_err(|_| ConfigError::BadSignature {
                key: self.key.clone(),
            })
    }
}

/// The public keys in `dir`: every `*.pub` file (`pyre keygen` output), sorted by name. A
/// missing directory means no trusted keys; a malformed key file is an error (an image bug).
pub fn load_keys(dir: &Path) -> Result<Vec<VerifyingKey>, ConfigError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(ConfigError::Keys(format!("reading {}: {e}", dir.display())));
        }
    };
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pub"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| keys::load_public(p).map_err(|e| ConfigError::Keys(e.to_string())))
        .collect()
}
