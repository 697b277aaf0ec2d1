//! The config-related kernel command-line words: `pyre.provider=`, `pyre.metadata.url=`,
//! `pyre.config.url=`, `pyre.config.deadline=SECONDS`, `pyre.report.url=`. Other words are not
//! ours to judge here (`pyre init`'s parser refuses unknown `pyre.*` words).
//!
//! `pyre boot` starts from the image policy ([`Settings::for_policy`]: its deadline, whether
//! plain http is allowed, its report URL); the command line's words override the deadline and
//! the report URL.
use std::path::PathBuf;
use std::time::Duration;

use super::detect::ProviderKind;
use super::fetch::DEFAULT_DEADLINE;
use super::http::DEFAULT_MAX_BODY;
use super::ProviderError;
use crate::config::Policy;

/// Longest deadline accepted on the command line (a boot must end one way or the other).
pub const MAX_DEADLINE: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `None`: detect from DMI.
    pub provider: Option<ProviderKind>,
    /// Replaces the provider's base URL (`http://169.254.169.254` …): on-prem registries, tests.
    pub metadata_url: Option<String>,
    /// The `url` provider's address.
    pub config_url: Option<String>,
    /// The `file` provider's path.
    pub config_file: Option<PathBuf>,
    /// One deadline for the whole fetch.
    pub deadline: Duration,
    /// Plain http for the `url` provider (the image policy decides).
    pub allow_http: bool,
    pub max_body: u64,
    /// Where `pyre boot` POSTs its record on a boot-critical failure (`pyre.report.url=`).
    pub report_url: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            provider: None,
            metadata_url: None,
            config_url: None,
            config_file: None,
            deadline: DEFAULT_DEADLINE,
            allow_http: false,
            max_body: DEFAULT_MAX_BODY,
            report_url: None,
        }
    }
}

fn invalid(key: &'static str, value: &str, why: &'static str) -> ProviderError {
    ProviderError::Cmdline {
        key,
        value: value.to_string(),
        why,
    }
}

fn http_url(key: &'static str, value: &str) -> Result<String, ProviderError> {
    match reqwest::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            Ok(value.to_string())
        }
        _ => Err(invalid(key, value, "must be an http:// or https:// URL")),
    }
}

impl Settings {
    /// Read our words from a kernel command line (the last of a repeated word wins).
    pub fn from_cmdline(cmdline: &str) -> Result<Settings, ProviderError> {
        Settings::default().with_cmdline(cmdline)
    }

    /// The image policy's deadline, plain-http permission and report URL, then the command
    /// line's words over them.
    pub fn for_policy(cmdline: &str, policy: &Policy) -> Result<Settings, ProviderError> {
        Settings {
            deadline: policy.deadline.get(),
            allow_http: policy.allow_http,
            report_url: policy.report_url.clone(),
            ..Settings::default()
        }
        .with_cmdline(cmdline)
    }

    /// These settings with the command line's words applied over them.
    pub fn with_cmdline(self, cmdline: &str) -> Result<Settings, ProviderError> {
        let mut s = self;
        for w in crate::sys::cmdline::words(cmdline) {
            let Some((key, value)) = w.split_once('=') else {
                continue;
            };
            match key {
                "pyre.provider" => {
                    s.provider = Some(value.parse().map_err(|_| {
                        invalid(
                            "pyre.provider",
                            value,
                            "not one of aws, gcp, azure, openstack, qemu, url, file, none",
                        )
                    })?)
                }
                "pyre.metadata.url" => s.metadata_url = Some(http_url("pyre.metadata.url", value)?),
                "pyre.config.url" => s.config_url = Some(http_url("pyre.config.url", value)?),
                "pyre.report.url" => s.report_url = Some(http_url("pyre.report.url", value)?),
                "pyre.config.deadline" => {
                    let secs: u64 = value.parse().map_err(|_| {
                        invalid(
                            "pyre.config.deadline",
                            value,
                            "not a whole number of seconds",
                        )
                    })?;
                    let d = Duration::from_secs(secs);
                    if d.is_zero() || d > MAX_DEADLINE {
                        return Err(invalid(
                            "pyre.config.deadline",
                            value,
                            "must be 1 to 3600 seconds",
                        ));
                    }
                    s.deadline = d;
                }
                _ => {}
            }
        }
        Ok(s)
    }

    /// Check a URL given outside the command line (CLI flags) the same way.
    pub fn check_url(key: &'static str, value: &str) -> Result<String, ProviderError> {
        http_url(key, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_words() {
        let s = Settings::from_cmdline(
            "ro quiet pyre.provider=aws pyre.metadata.url=http://10.0.2.2:8080 \
             pyre.config.deadline=20 pyre.debug console=ttyS0",
        )
        .unwrap();
        assert_eq!(s.provider, Some(ProviderKind::Aws));
        assert_eq!(s.metadata_url.as_deref(), Some("http://10.0.2.2:8080"));
        assert_eq!(s.deadline, Duration::from_secs(20));
        assert_eq!(Settings::from_cmdline("").unwrap(), Settings::default());
    }

    #[test]
    fn refuses_bad_values() {
        let cases = [
            (
                "pyre.provider=ec2",
                "pyre.provider=\"ec2\" is invalid: not one of",
            ),
            ("pyre.config.deadline=0", "must be 1 to 3600 seconds"),
            ("pyre.config.deadline=9999", "must be 1 to 3600 seconds"),
            ("pyre.config.deadline=2m", "not a whole number of seconds"),
            (
                "pyre.metadata.url=ftp://x",
                "must be an http:// or https:// URL",
            ),
            (
                "pyre.config.url=/etc/x",
                "must be an http:// or https:// URL",
            ),
        ];
        for (line, want) in cases {
            let e = Settings::from_cmdline(line).unwrap_err().to_string();
            assert!(e.contains(want), "{line}: {e}");
        }
    }

    #[test]
    fn the_policy_then_the_command_line() {
        let policy = Policy {
            deadline: crate::config::Duration::from_secs(45),
            allow_http: true,
            report_url: Some("https://collector.example/boot".into()),
            ..Policy::default()
        };
        let s = Settings::for_policy("pyre.provider=qemu", &policy).unwrap();
        assert_eq!(s.deadline, Duration::from_secs(45));
        assert!(s.allow_http);
        assert_eq!(
            s.report_url.as_deref(),
            Some("https://collector.example/boot")
        );
        let s = Settings::for_policy(
            "pyre.config.deadline=20 pyre.report.url=http://10.0.2.2:9/r",
            &policy,
        )
        .unwrap();
        assert_eq!(s.deadline, Duration::from_secs(20));
        assert_eq!(s.report_url.as_deref(), Some("http://10.0.2.2:9/r"));
        assert!(Settings::for_policy("pyre.report.url=x", &policy).is_err());
    }

    #[test]
    fn quoted_and_repeated_words() {
        let s = Settings::from_cmdline(
            "pyre.provider=gcp \"pyre.config.url=https://r.example/a b\" pyre.provider=url",
        )
        .unwrap();
        assert_eq!(s.provider, Some(ProviderKind::Url));
        assert_eq!(s.config_url.as_deref(), Some("https://r.example/a b"));
    }
}
