//! The kernel command line contract between the image build and `pyre init`:
//!
//! `pyre.verity.uuid=<uuid> pyre.verity.roothash=<hex> pyre.verity.salt=<hex>
//!  pyre.verity.data-blocks=<N> pyre.verity.hash-offset=<bytes> pyre.manifest.digest=sha256:<hex>`
//! plus the optional `pyre.debug`, `pyre.verify=full|read|metadata` (how the root is checked,
//! over the image policy's `root-check`), `pyre.root-wait=<seconds>` and `pyre.root=/dev/<name>` (an
//! override: only that device is considered, and it must still carry the image's verity
//! superblock; see [`super::rootdev`]). Blocks are 4096 bytes, the hash is sha256. Unknown `pyre.*` keys are an error (a typo must not silently drop a check);
//! other words belong to the kernel or systemd and are ignored. When a key repeats, the last
//! value wins, as for the kernel's own parameters.
use std::time::Duration;

use super::dm::{VerityParams, VERITY_BLOCK};
use super::rootdev::parse_uuid;
use crate::config::policy::RootCheck;
use crate::sys::cmdline::{pyre_params, words};

pub const DEFAULT_ROOT_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootParams {
    pub verity: VerityParams,
    /// `pyre.root`: consider only this device (it must still match the verity superblock).
    pub root_override: Option<String>,
    /// `sha256:<hex>` of the manifest file.
    pub manifest_digest: String,
    pub root_wait: Duration,
    pub debug: bool,
    /// `pyre.verify=`: how the root is checked (over the image policy's `root-check`).
    pub root_check: Option<RootCheck>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CmdlineError {
    #[error("kernel command line lacks {0}")]
    Missing(&'static str),
    #[error("kernel command line has an unknown pyre parameter {0:?}")]
    Unknown(String),
    #[error("kernel command line parameter {key}={value:?} is invalid: {why}")]
    Invalid {
        key: &'static str,
        value: String,
        why: &'static str,
    },
}

/// Only the debug flag, found even when the rest of the line is unusable, so a failure to
/// parse still honours `pyre.debug`.
pub fn debug_requested(cmdline: &str) -> bool {
    let mut debug = false;
    for w in words(cmdline) {
        match w.as_str() {
            "pyre.debug" | "pyre.debug=1" => debug = true,
            "pyre.debug=0" => debug = false,
            _ => {}
        }
    }
    debug
}

/// Only `pyre.manifest.digest` (the last one wins), for readers after switch_root that must
/// not fail on the rest of the line (`pyre boot-report` on a boot pyre init did not make).
pub fn manifest_digest(cmdline: &str) -> Option<String> {
    words(cmdline)
        .into_iter()
        .filter_map(|w| w.strip_prefix("pyre.manifest.digest=").map(str::to_string))
        .next_back()
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.len() % 2 == 0 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn invalid(key: &'static str, value: &str, why: &'static str) -> CmdlineError {
    CmdlineError::Invalid {
        key,
        value: value.to_string(),
        why,
    }
}

fn number(key: &'static str, value: &str) -> Result<u64, CmdlineError> {
    value
        .parse::<u64>()
        .map_err(|_| invalid(key, value, "not a whole number"))
}

#[derive(Default)]
struct Raw {
    root: Option<String>,
    uuid: Option<String>,
    roothash: Option<String>,
    salt: Option<String>,
    data_blocks: Option<String>,
    hash_offset: Option<String>,
    digest: Option<String>,
    root_wait: Option<String>,
    verify: Option<String>,
}

/// Parse the whole contract; every error names the parameter and what is wrong with it.
pub fn parse(cmdline: &str) -> Result<BootParams, CmdlineError> {
    let mut raw = Raw::default();
    for p in pyre_params(cmdline) {
        let slot = match p.key.as_str() {
            "debug" => continue,
            // Read by `pyre boot` (providers::Settings), not by init.
            "provider" | "metadata.url" | "config.url" | "config.deadline" | "report.url" => {
                continue
            }
            "root" => &mut raw.root,
            "verity.uuid" => &mut raw.uuid,
            "verity.roothash" => &mut raw.roothash,
            "verity.salt" => &mut raw.salt,
            "verity.data-blocks" => &mut raw.data_blocks,
            "verity.hash-offset" => &mut raw.hash_offset,
            "manifest.digest" => &mut raw.digest,
            "root-wait" => &mut raw.root_wait,
            "verify" => &mut raw.verify,
            _ => return Err(CmdlineError::Unknown(p.word)),
        };
        *slot = Some(p.value.unwrap_or_default());
    }
    if let Some(root) = &raw.root {
        if !root.starts_with("/dev/") || root.contains(char::is_whitespace) {
            return Err(invalid(
                "pyre.root",
                root,
                "must be a device path under /dev/",
            ));
        }
    }
    let uuid_raw = raw.uuid.ok_or(CmdlineError::Missing("pyre.verity.uuid"))?;
    let uuid = parse_uuid(&uuid_raw).ok_or_else(|| {
        invalid(
            "pyre.verity.uuid",
            &uuid_raw,
            "must be a UUID (8-4-4-4-12 hex digits)",
        )
    })?;
    let root_hash = raw
        .roothash
        .ok_or(CmdlineError::Missing("pyre.verity.roothash"))?;
    if root_hash.len() != 64 || !is_hex(&root_hash) {
        return Err(invalid(
            "pyre.verity.roothash",
            &root_hash,
            "must be 64 hex digits (sha256)",
        ));
    }
    let salt = raw.salt.ok_or(CmdlineError::Missing("pyre.verity.salt"))?;
    let salt = if salt == "-" { String::new() } else { salt };
    if !salt.is_empty() && (!is_hex(&salt) || salt.len() > 512) {
        return Err(invalid(
            "pyre.verity.salt",
            &salt,
            "must be hex digits (or - for none)",
        ));
    }
    let blocks_raw = raw
        .data_blocks
        .ok_or(CmdlineError::Missing("pyre.verity.data-blocks"))?;
    let data_blocks = number("pyre.verity.data-blocks", &blocks_raw)?;
    if data_blocks == 0 || data_blocks > u64::MAX / VERITY_BLOCK {
        return Err(invalid(
            "pyre.verity.data-blocks",
            &blocks_raw,
            "must be at least 1",
        ));
    }
    let offset_raw = raw
        .hash_offset
        .ok_or(CmdlineError::Missing("pyre.verity.hash-offset"))?;
    let hash_offset = number("pyre.verity.hash-offset", &offset_raw)?;
    if hash_offset % VERITY_BLOCK != 0 {
        return Err(invalid(
            "pyre.verity.hash-offset",
            &offset_raw,
            "must be a multiple of 4096",
        ));
    }
    if hash_offset < data_blocks * VERITY_BLOCK {
        return Err(invalid(
            "pyre.verity.hash-offset",
            &offset_raw,
            "overlaps the data area (must be at least data-blocks * 4096)",
        ));
    }
    let manifest_digest = raw
        .digest
        .ok_or(CmdlineError::Missing("pyre.manifest.digest"))?;
    match manifest_digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && is_hex(hex) => {}
        _ => {
            return Err(invalid(
                "pyre.manifest.digest",
                &manifest_digest,
                "must be sha256:<64 hex digits>",
            ))
        }
    }
    let root_wait = match raw.root_wait {
        None => DEFAULT_ROOT_WAIT,
        Some(v) => match v.parse::<u64>() {
            Ok(s) if (1..=3600).contains(&s) => Duration::from_secs(s),
            _ => {
                return Err(invalid(
                    "pyre.root-wait",
                    &v,
                    "must be whole seconds from 1 to 3600",
                ))
            }
        },
    };
    let root_check = match raw.verify {
        None => None,
        Some(v) => Some(
            v.parse::<RootCheck>()
                .map_err(|()| invalid("pyre.verify", &v, "must be full, read or metadata"))?,
        ),
    };
    Ok(BootParams {
        verity: VerityParams {
            uuid,
            data_blocks,
            hash_offset,
            root_hash: root_hash.to_ascii_lowercase(),
            salt: salt.to_ascii_lowercase(),
        },
        root_override: raw.root,
        manifest_digest: manifest_digest.to_ascii_lowercase(),
        root_wait,
        debug: debug_requested(cmdline),
        root_check,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const U: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

    fn good() -> String {
        format!(
            "BOOT_IMAGE=/vmlinuz console=ttyS0 pyre.verity.uuid={U} pyre.verity.roothash={H} \
             pyre.verity.salt=00ff pyre.verity.data-blocks=10 pyre.verity.hash-offset=40960 \
             pyre.manifest.digest=sha256:{H} ro quiet"
        )
    }

    #[test]
    fn parses_the_contract() {
        let p = parse(&good()).unwrap();
        assert_eq!(p.root_override, None);
        assert_eq!(
            p.verity.uuid,
            [
                0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2,
                0xe1, 0xf0
            ]
        );
        assert_eq!(p.verity.root_hash, H);
        assert_eq!(p.verity.salt, "00ff");
        assert_eq!(p.verity.data_blocks, 10);
        assert_eq!(p.verity.hash_offset, 40960);
        assert_eq!(p.manifest_digest, format!("sha256:{H}"));
        assert_eq!(p.root_wait, DEFAULT_ROOT_WAIT);
        assert!(!p.debug);
        assert_eq!(p.root_check, None, "the image policy decides");
    }

    #[test]
    fn the_root_check_word() {
        for (word, want) in [
            ("pyre.verify=full", RootCheck::Full),
            ("pyre.verify=read", RootCheck::Read),
            ("pyre.verify=full pyre.verify=metadata", RootCheck::Metadata),
        ] {
            let p = parse(&format!("{} {word}", good())).unwrap();
            assert_eq!(p.root_check, Some(want), "{word}");
        }
        let err = parse(&format!("{} pyre.verify=fast", good())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "kernel command line parameter pyre.verify=\"fast\" is invalid: \
             must be full, read or metadata"
        );
    }

    #[test]
    fn optional_parameters_and_overrides() {
        let cases: &[(&str, bool, u64, &str, Option<&str>)] = &[
            ("pyre.debug", true, 30, "00ff", None),
            ("pyre.debug pyre.root-wait=5", true, 5, "00ff", None),
            ("pyre.debug=1 pyre.debug=0", false, 30, "00ff", None),
            ("pyre.verity.salt=-", false, 30, "", None),
            ("\"pyre.verity.salt=AB\"", false, 30, "ab", None),
            (
                "pyre.root=/dev/nvme0n1p2",
                false,
                30,
                "00ff",
                Some("/dev/nvme0n1p2"),
            ),
        ];
        for (extra, debug, wait, salt, root) in cases {
            let p =
                parse(&format!("{} {extra}", good())).unwrap_or_else(|e| panic!("{extra}: {e}"));
            assert_eq!(p.debug, *debug, "{extra}");
            assert_eq!(p.root_wait, Duration::from_secs(*wait), "{extra}");
            assert_eq!(p.verity.salt, *salt, "{extra}");
            assert_eq!(p.root_override.as_deref(), *root, "{extra}");
        }
        let upper = parse(&good().replace(U, &U.to_ascii_uppercase())).unwrap();
        assert_eq!(upper.verity.uuid, parse(&good()).unwrap().verity.uuid);
    }

    #[test]
    fn bad_lines_name_the_parameter() {
        let cases: &[(&str, &str, &str)] = &[
            (
                &format!("pyre.verity.uuid={U}"),
                "",
                "kernel command line lacks pyre.verity.roothash",
            ),
            (
                &format!("pyre.verity.uuid={U} "),
                "pyre.verity.roothash=xyz",
                "pyre.verity.roothash=\"xyz\" is invalid",
            ),
            (
                "pyre.verity.roothash=00",
                "",
                "kernel command line lacks pyre.verity.uuid",
            ),
            (
                "",
                "pyre.verity.uuid=0f1e2d3c4b5a69788796a5b4c3d2e1f0",
                "pyre.verity.uuid=\"0f1e2d3c4b5a69788796a5b4c3d2e1f0\" is invalid: must be a UUID",
            ),
            (
                "",
                "pyre.verity.uuid=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fg",
                "must be a UUID",
            ),
            (
                "",
                "pyre.root=vda",
                "pyre.root=\"vda\" is invalid: must be a device path",
            ),
            (
                "",
                "pyre.verity.data-blocks=ten",
                "pyre.verity.data-blocks=\"ten\" is invalid: not a whole",
            ),
            ("", "pyre.verity.data-blocks=0", "must be at least 1"),
            (
                "",
                "pyre.verity.hash-offset=100",
                "must be a multiple of 4096",
            ),
            ("", "pyre.verity.hash-offset=4096", "overlaps the data area"),
            (
                "",
                "pyre.manifest.digest=md5:00",
                "must be sha256:<64 hex digits>",
            ),
            (
                "",
                "pyre.verity.salt=0g",
                "pyre.verity.salt=\"0g\" is invalid",
            ),
            (
                "",
                "pyre.root-wait=0",
                "must be whole seconds from 1 to 3600",
            ),
            (
                "",
                "pyre.verity.rothash=00",
                "unknown pyre parameter \"pyre.verity.rothash=00\"",
            ),
        ];
        for (base, extra, want) in cases {
            let line = if base.is_empty() {
                format!("{} {extra}", good())
            } else {
                format!("{base} {extra}")
            };
            let err = parse(&line).expect_err(extra).to_string();
            assert!(err.contains(want), "{extra}: got {err:?}, want {want:?}");
        }
        assert_eq!(parse(""), Err(CmdlineError::Missing("pyre.verity.uuid")));
    }

    #[test]
    fn debug_is_found_on_an_unusable_line() {
        assert!(debug_requested("pyre.root=bogus pyre.debug"));
        assert!(!debug_requested("pyre.debugger"));
    }
}
