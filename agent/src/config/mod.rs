//! Config v1: types (serde + JSON Schema), validation, signed envelopes, the image policy, and
//! applying hostname, files and environment. Reference: docs/config.md.
//!
//! The boot entry points: [`load`] turns fetched bytes into a checked [`Config`] under the image
//! [`Policy`]; [`apply::apply`] applies it through an injected [`apply::ApplyHost`].
use std::path::Path;

pub mod apply;
pub mod duration;
pub mod envelope;
pub mod policy;
pub mod secret;
pub mod types;
pub mod validate;

#[cfg(test)]
mod tests;

pub use duration::Duration;
pub use envelope::Envelope;
pub use policy::{OnFailure, Policy, ProviderKind};
pub use secret::Secret;
pub use types::*;
pub use validate::Problem;

/// Production place of the trusted public keys.
pub const KEYS_DIR: &str = "/etc/pyre/keys";

/// Stable message ids at the start of log lines, for alerting (docs/config.md).
pub mod msgid {
    /// A config signature is missing where required, malformed, by an unknown key, or wrong.
    pub const SIGNATURE: &str = "PYRE_CONFIG_SIGNATURE";
    /// The config does not parse or fails validation.
    pub const INVALID: &str = "PYRE_CONFIG_INVALID";
    /// The image requires a config and the provider has none.
    pub const MISSING: &str = "PYRE_CONFIG_MISSING";
    /// The image policy or trusted keys are unusable, or the provider is not allowed.
    pub const POLICY: &str = "PYRE_CONFIG_POLICY";
    /// Applying the config failed (nothing or part of it was applied: see the message).
    pub const APPLY: &str = "PYRE_CONFIG_APPLY";
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Parse errors and semantic problems, each prefixed with its JSON path.
    #[error("invalid config: {}", show_problems(.0))]
    Invalid(Vec<Problem>),
    #[error("invalid signed envelope: {0}")]
    Envelope(String),
    #[error("config signature required by the image policy, but the config is not signed")]
    Unsigned,
    #[error("config signed with unknown key {key} (trusted: {trusted})")]
    UnknownKey { key: String, trusted: String },
    #[error("config signature by key {key} does not match (config or signature altered)")]
    BadSignature { key: String },
    #[error("trusted keys: {0}")]
    Keys(String),
    #[error("image policy: {0}")]
    Policy(String),
    #[error("provider {0} is not allowed by the image policy")]
    ProviderNotAllowed(ProviderKind),
    #[error("no config, and the image policy requires one")]
    Missing,
}

fn show_problems(ps: &[Problem]) -> String {
    match ps {
        [] => "no problem recorded".into(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}

impl ConfigError {
    /// The stable message id for this failure's log line.
    pub fn message_id(&self) -> &'static str {
        match self {
            ConfigError::Invalid(_) => msgid::INVALID,
            ConfigError::Envelope(_)
            | ConfigError::Unsigned
            | ConfigError::UnknownKey { .. }
            | ConfigError::BadSignature { .. } => msgid::SIGNATURE,
            ConfigError::Keys(_) | ConfigError::Policy(_) | ConfigError::ProviderNotAllowed(_) => {
                msgid::POLICY
            }
            ConfigError::Missing => msgid::MISSING,
        }
    }

    /// Every problem, one per line (for `pyre config validate`).
    pub fn problems(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid(ps) => ps.iter().map(|p| p.to_string()).collect(),
            other => vec![other.to_string()],
        }
    }
}

/// A serde error with its JSON path, and the position without serde_json's " at line …" tail.
pub(crate) fn path_error(e: serde_path_to_error::Error<serde_json::Error>) -> Problem {
    let path = match e.path().to_string() {
        p if p == "." || p == "?" => String::new(),
        p => p,
    };
    let inner = e.into_inner();
    let tail = format!(" at line {} column {}", inner.line(), inner.column());
    let text = inner.to_string();
    let msg = match text.strip_suffix(&tail) {
        Some(m) if inner.line() > 0 => {
            format!("{m} (line {}, column {})", inner.line(), inner.column())
        }
        _ => text,
    };
    Problem { path, msg }
}

/// Deserialize one JSON document (nothing but whitespace after it), errors with their path.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let v = serde_path_to_error::deserialize(&mut *de).map_err(path_error)?;
    de.end().map_err(|e| {
        let tail = format!(" at line {} column {}", e.line(), e.column());
        let text = e.to_string();
        let msg = text.strip_suffix(&tail).unwrap_or(&text);
        Problem {
            path: String::new(),
            msg: format!("{msg} (line {}, column {})", e.line(), e.column()),
        }
    })?;
    Ok(v)
}

/// Parse and validate a plain config (no envelope).
pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
    let c: Config = from_json(bytes).map_err(|p| ConfigError::Invalid(vec![p]))?;
    let problems = validate::check(&c);
    if problems.is_empty() {
        Ok(c)
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

/// A config accepted by [`load`], and the key that signed it (none: plain config).
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub config: Config,
    pub signed_by: Option<String>,
}

/// Bytes from a provider → a checked config. An envelope is always verified against the keys in
/// `keys_dir`; a plain config is refused when `policy.signature_required`.
pub fn load(bytes: &[u8], policy: &Policy, keys_dir: &Path) -> Result<Loaded, ConfigError> {
    if envelope::is_envelope(bytes) {
        let env = Envelope::parse(bytes)?;
        let trusted = envelope::load_keys(keys_dir)?;
        env.verify(&trusted)?;
        let config = parse(env.signed.as_bytes())?;
        return Ok(Loaded {
            config,
            signed_by: Some(env.key),
        });
    }
    if policy.signature_required {
        // Say what is wrong with it too, but the refusal is about the signature.
        return Err(ConfigError::Unsigned);
    }
    Ok(Loaded {
        config: parse(bytes)?,
        signed_by: None,
    })
}

/// The JSON Schema of config v1, as published in docs/config.schema.json.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(Config);
    let mut s = serde_json::to_string_pretty(&schema).expect("a schema always serializes");
    s.push('\n');
    s
}

impl Config {
    /// One line for logs and `pyre config validate`: counts only, never a secret.
    pub fn summary(&self) -> String {
        format!(
            "config v{}: hostname {}, {} file(s), {} environment variable(s), {} volume(s), logs {}, drift {}, lifetime {}",
            self.version,
            self.hostname.as_deref().unwrap_or("(unchanged)"),
            self.files.len(),
            self.environment.len(),
            self.volumes.len(),
            self.logs.as_ref().map_or("off".to_string(), |l| format!("to {} sink(s)", l.sinks.len())),
            self.drift.as_ref().map_or("off".to_string(), |d| format!("every {} ({:?})", d.interval, d.action).to_lowercase()),
            self.lifetime.as_ref().map_or("unlimited".to_string(), |l| format!("max-age {}", l.max_age)),
        )
    }

    /// The config as pretty JSON, secrets included: only for /run/pyre/config.json (0600) and
    /// `pyre fetch`'s stdout.
    pub fn to_json_with_secrets(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("a config always serializes");
        v.push(b'\n');
        v
    }
}
