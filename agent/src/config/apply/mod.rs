//! Applying a checked config: hostname, files, environment, and pyre's own records in
//! `/run/pyre/`. Nothing is written to the root. Everything is prepared first (paths mapped,
//! contents decoded, owners resolved) so a config that cannot be applied fails before the first
//! side effect; then, in order: files under /run, `/run/pyre/env`, the hostname (sethostname
//! and `/run/pyre/hostname`), and last `/run/pyre/config.json` (0600), which marks a complete
//! apply. Files under a volume's mountpoint are written by [`apply_volume_files`] once the
//! volumes code has mounted it.
use std::io;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use super::types::{Config, Encoding};
use super::validate::{self, Id};
use super::Problem;

mod envfile;
#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod tests;
mod write;

pub use envfile::render as render_env;

/// The side effects apply needs beyond writing beneath its base directories.
pub trait ApplyHost: Sync {
    fn set_hostname(&self, name: &str) -> io::Result<()>;
    /// The uid of a user name (`None`: no such user).
    fn user_id(&self, name: &str) -> io::Result<Option<u32>>;
    /// The gid of a group name (`None`: no such group).
    fn group_id(&self, name: &str) -> io::Result<Option<u32>>;
    /// Give the open, not yet renamed file (to be at `path`) its owner.
    fn chown(&self, file: BorrowedFd<'_>, path: &Path, uid: u32, gid: u32) -> io::Result<()>;
}

/// The real host: sethostname(2), the system's user database, fchown(2).
pub struct NixApplyHost;

impl ApplyHost for NixApplyHost {
    fn set_hostname(&self, name: &str) -> io::Result<()> {
        nix::unistd::sethostname(name).map_err(|e| io::Error::from_raw_os_error(e as i32))
    }

    fn user_id(&self, name: &str) -> io::Result<Option<u32>> {
        nix::unistd::User::from_name(name)
            .map(|u| u.map(|u| u.uid.as_raw()))
            .map_err(|e| io::Error::from_raw_os_error(e as i32))
    }

    fn group_id(&self, name: &str) -> io::Result<Option<u32>> {
        nix::unistd::Group::from_name(name)
            .map(|g| g.map(|g| g.gid.as_raw()))
            .map_err(|e| io::Error::from_raw_os_error(e as i32))
    }

    fn chown(&self, file: BorrowedFd<'_>, _path: &Path, uid: u32, gid: u32) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        nix::unistd::fchown(
            file.as_raw_fd(),
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )
        .map_err(|e| io::Error::from_raw_os_error(e as i32))
    }
}

/// Where `/run` is (a temp dir in tests). pyre's records go to `<run>/pyre/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyPaths {
    pub run: PathBuf,
}

impl Default for ApplyPaths {
    fn default() -> Self {
        ApplyPaths {
            run: PathBuf::from("/run"),
        }
    }
}

/// What was applied (names and paths only: safe for logs and the boot record).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ApplyReport {
    pub hostname: Option<String>,
    /// Config paths written, in order.
    pub files: Vec<String>,
    /// Config paths left for [`apply_volume_files`] (under a volume's mountpoint).
    pub deferred_files: Vec<String>,
    /// Names of the variables written to /run/pyre/env.
    pub environment: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("refusing to apply an invalid config: {}", .0.first().map(|p| p.to_string()).unwrap_or_default())]
    Invalid(Vec<Problem>),
    #[error("{at}: {msg}")]
    Owner { at: String, msg: String },
    #[error("writing {path}: {error}")]
    Write { path: String, error: io::Error },
    #[error("setting the hostname to {name:?}: {error}")]
    Hostname { name: String, error: io::Error },
    #[error("{0:?} is not the mountpoint of a configured volume")]
    NotAVolume(String),
}

impl ApplyError {
    pub fn message_id(&self) -> &'static str {
        super::msgid::APPLY
    }
}

/// One file ready to write: where, what, how.
struct Planned {
    /// The path as the config names it (for reports and errors).
    path: String,
    rel: String,
    bytes: Vec<u8>,
    mode: u32,
    owner: write::Owner,
}

fn resolve(host: &dyn ApplyHost, at: &str, owner: &str) -> Result<(u32, u32), ApplyError> {
    let err = |msg: String| ApplyError::Owner {
        at: at.to_string(),
        msg,
    };
    let (u, g) = validate::owner(owner).map_err(err)?;
    let uid = match u {
        Id::Num(n) => n,
        Id::Name(n) => host
            .user_id(&n)
            .map_err(|e| err(format!("looking up user {n:?}: {e}")))?
            .ok_or_else(|| err(format!("no user {n:?} in this image")))?,
    };
    let gid = match g {
        Id::Num(n) => n,
        Id::Name(n) => host
            .group_id(&n)
            .map_err(|e| err(format!("looking up group {n:?}: {e}")))?
            .ok_or_else(|| err(format!("no group {n:?} in this image")))?,
    };
    Ok((uid, gid))
}

/// Prepare every file of `config` whose path is below `base_path` (a clean absolute path).
fn plan(
    host: &dyn ApplyHost,
    config: &Config,
    base_path: &str,
) -> Result<Vec<Planned>, ApplyError> {
    let mut out = Vec::new();
    for (i, f) in config.files.iter().enumerate() {
        let Some(rel) = f
            .path
            .strip_prefix(base_path)
            .and_then(|r| r.strip_prefix('/'))
        else {
            continue;
        };
        let bytes = match f.encoding {
            Encoding::Utf8 => f.content.expose().as_bytes().to_vec(),
            Encoding::Base64 => validate::decode_base64(f.content.expose()).map_err(|_| {
                ApplyError::Invalid(vec![Problem {
                    path: format!("files[{i}].content"),
                    msg: "not valid base64".into(),
                }])
            })?,
        };
        let owner = match &f.owner {
            Some(o) => Some(resolve(host, &format!("files[{i}].owner"), o)?),
            None => None,
        };
        let mode = validate::mode(&f.mode).map_err(|msg| {
            ApplyError::Invalid(vec![Problem {
                path: format!("files[{i}].mode"),
                msg,
            }])
        })?;
        out.push(Planned {
            path: f.path.clone(),
            rel: rel.to_string(),
            bytes,
            mode,
            owner,
        });
    }
    Ok(out)
}

fn write_all(
    host: &dyn ApplyHost,
    base: &Path,
    files: &[Planned],
) -> Result<Vec<String>, ApplyError> {
    let mut done = Vec::new();
    for p in files {
        write::write_beneath(host, base, &p.rel, &p.bytes, p.mode, p.owner).map_err(|error| {
            ApplyError::Write {
                path: p.path.clone(),
                error,
            }
        })?;
        log::info!(
            "wrote {} (mode {:04o}, {} bytes)",
            p.path,
            p.mode,
            p.bytes.len()
        );
        done.push(p.path.clone());
    }
    Ok(done)
}

fn record(
    host: &dyn ApplyHost,
    paths: &ApplyPaths,
    name: &str,
    bytes: &[u8],
    mode: u32,
) -> Result<(), ApplyError> {
    write::write_beneath(host, &paths.run, &format!("pyre/{name}"), bytes, mode, None).map_err(
        |error| ApplyError::Write {
            path: format!("/run/pyre/{name}"),
            error,
        },
    )
}

/// A config checked and prepared for applying: every file's path mapped, content decoded and
/// owner resolved, the environment rendered. Made by [`prepare`] before the first side effect;
/// its steps are then run in the boot's order: [`Prepared::set_hostname`], (volumes mounted by
/// the caller), [`Prepared::write_run`], [`Prepared::write_volume_files`] per volume, and
/// [`Prepared::commit`] (`/run/pyre/config.json`, which marks a complete apply) last.
pub struct Prepared<'c> {
    config: &'c Config,
    run_files: Vec<Planned>,
    /// Per volume mountpoint (as the config names it), its files.
    volume_files: Vec<(String, Vec<Planned>)>,
    env: Vec<u8>,
}

/// Check `config` and prepare everything, volume files included; nothing is written.
pub fn prepare<'c>(config: &'c Config, host: &dyn ApplyHost) -> Result<Prepared<'c>, ApplyError> {
    let problems = validate::check(config);
    if !problems.is_empty() {
        return Err(ApplyError::Invalid(problems));
    }
    let run_files = plan(host, config, "/run")?;
    let mut volume_files = Vec::new();
    for v in &config.volumes {
        volume_files.push((v.mountpoint.clone(), plan(host, config, &v.mountpoint)?));
    }
    Ok(Prepared {
        config,
        run_files,
        volume_files,
        env: envfile::render(&config.environment),
    })
}

impl Prepared<'_> {
    /// sethostname(2) and `/run/pyre/hostname`, when the config names a hostname.
    pub fn set_hostname(
        &self,
        host: &dyn ApplyHost,
        paths: &ApplyPaths,
    ) -> Result<Option<String>, ApplyError> {
        let Some(h) = &self.config.hostname else {
            return Ok(None);
        };
        host.set_hostname(h).map_err(|error| ApplyError::Hostname {
            name: h.clone(),
            error,
        })?;
        record(host, paths, "hostname", format!("{h}\n").as_bytes(), 0o644)?;
        log::info!("hostname set to {h}");
        Ok(Some(h.clone()))
    }

    /// The files under /run, then `/run/pyre/env`. Returns the config paths written.
    pub fn write_run(
        &self,
        host: &dyn ApplyHost,
        paths: &ApplyPaths,
    ) -> Result<Vec<String>, ApplyError> {
        let files = write_all(host, &paths.run, &self.run_files)?;
        record(host, paths, "env", &self.env, 0o600)?;
        Ok(files)
    }

    /// The files under volume `mountpoint` (as the config names it), mounted at `mounted_at`.
    pub fn write_volume_files(
        &self,
        host: &dyn ApplyHost,
        mountpoint: &str,
        mounted_at: &Path,
    ) -> Result<Vec<String>, ApplyError> {
        let files = self
            .volume_files
            .iter()
            .find(|(m, _)| m == mountpoint)
            .ok_or_else(|| ApplyError::NotAVolume(mountpoint.to_string()))?;
        write_all(host, mounted_at, &files.1)
    }

    /// Config paths that live under a volume's mountpoint.
    pub fn deferred_files(&self) -> Vec<String> {
        self.volume_files
            .iter()
            .flat_map(|(_, fs)| fs.iter().map(|p| p.path.clone()))
            .collect()
    }

    /// `/run/pyre/config.json` (0600, secrets included): the mark of a complete apply.
    pub fn commit(&self, host: &dyn ApplyHost, paths: &ApplyPaths) -> Result<(), ApplyError> {
        record(
            host,
            paths,
            "config.json",
            &self.config.to_json_with_secrets(),
            0o600,
        )
    }
}

/// Apply files under /run, environment and hostname; write /run/pyre/config.json last. Files
/// under volumes are left for [`apply_volume_files`] (`pyre boot` uses [`prepare`]'s steps so
/// that config.json comes after the volumes).
pub fn apply(
    config: &Config,
    host: &dyn ApplyHost,
    paths: &ApplyPaths,
) -> Result<ApplyReport, ApplyError> {
    let prepared = prepare(config, host)?;
    let files = prepared.write_run(host, paths)?;
    prepared.set_hostname(host, paths)?;
    prepared.commit(host, paths)?;
    Ok(ApplyReport {
        hostname: config.hostname.clone(),
        files,
        deferred_files: prepared.deferred_files(),
        environment: config.environment.keys().cloned().collect(),
    })
}

/// Write the files under volume `mountpoint` (as the config names it), now mounted at
/// `mounted_at` (the same path in production). Returns the config paths written.
pub fn apply_volume_files(
    config: &Config,
    host: &dyn ApplyHost,
    mountpoint: &str,
    mounted_at: &Path,
) -> Result<Vec<String>, ApplyError> {
    if !config.volumes.iter().any(|v| v.mountpoint == mountpoint) {
        return Err(ApplyError::NotAVolume(mountpoint.to_string()));
    }
    let files = plan(host, config, mountpoint)?;
    write_all(host, mounted_at, &files)
}
