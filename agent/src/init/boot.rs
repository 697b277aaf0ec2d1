//! The boot sequence of `pyre init`, step by step; each step logs its duration.
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::cmdline::{self, BootParams};
use super::dm;
use super::record::{BootRecord, Check, Stage, RECORD_VERSION};
use super::verify::{RootVerifier, Verified, VerifyFailure, VerifyInput};
use super::{modules, rootdev, InitError, InitPaths, DM_NAME};
use crate::config::policy::{Policy, RootCheck};
use crate::drift::ContentCheck;
use crate::host::{DmReply, DmRequest, Host, MsFlags};
use crate::sys::errno::errno_text;

struct Clock<'a> {
    host: &'a dyn Host,
    start: Duration,
    stages: Vec<Stage>,
}

impl Clock<'_> {
    /// Run one stage, log `name: detail (N.NNNs)` and keep its duration.
    fn stage<T>(
        &mut self,
        name: &str,
        f: impl FnOnce() -> Result<(T, String), InitError>,
    ) -> Result<T, InitError> {
        let t0 = self.host.now();
        let result = f();
        let took = self.host.now().saturating_sub(t0).as_secs_f64();
        let (value, detail) = result.inspect_err(|_| {
            self.host
                .console(&format!("pyre init: {name}: failed after {took:.3}s"));
        })?;
        self.host
            .console(&format!("pyre init: {name}: {detail} ({took:.3}s)"));
        self.stages.push(Stage {
            name: name.to_string(),
            seconds: took,
        });
        Ok(value)
    }

    fn total(&self) -> f64 {
        self.host.now().saturating_sub(self.start).as_secs_f64()
    }
}

fn mount(
    host: &dyn Host,
    source: &str,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), InitError> {
    host.mount(Some(source), target, fstype, flags, data)
        .map_err(|e| InitError::Mount {
            what: fstype.map_or_else(|| source.to_string(), str::to_string),
            target: target.to_path_buf(),
            reason: errno_text(&e),
        })
}

fn read(path: &Path) -> Result<Vec<u8>, InitError> {
    std::fs::read(path).map_err(|e| InitError::Read {
        path: path.to_path_buf(),
        reason: errno_text(&e),
    })
}

/// /proc, /sys, /dev (devtmpfs) and /run (tmpfs), then the console on stdout/stderr.
fn setup(host: &dyn Host, p: &InitPaths) -> Result<((), String), InitError> {
    let nosuid_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    let pseudo = [
        ("proc", &p.proc, nosuid_nodev | MsFlags::MS_NOEXEC, None),
        ("sysfs", &p.sys, nosuid_nodev | MsFlags::MS_NOEXEC, None),
        ("devtmpfs", &p.dev, MsFlags::MS_NOSUID, Some("mode=0755")),
        ("tmpfs", &p.run, nosuid_nodev, Some("mode=0755")),
    ];
    for (fs, target, flags, data) in pseudo {
        host.mkdir_all(target).map_err(|e| InitError::Mount {
            what: fs.to_string(),
            target: target.clone(),
            reason: format!("creating the mount point: {}", errno_text(&e)),
        })?;
        mount(host, fs, target, Some(fs), flags, data)?;
    }
    let console = p.dev.join("console");
    let detail = match host.attach_console(&console) {
        Ok(()) => format!(
            "proc, sysfs, devtmpfs, tmpfs mounted; output on {}",
            console.display()
        ),
        Err(e) => format!(
            "proc, sysfs, devtmpfs, tmpfs mounted; {} unusable: {}",
            console.display(),
            errno_text(&e)
        ),
    };
    Ok(((), detail))
}

/// Find the root by its verity superblock among the block devices sysfs lists.
fn root_device(
    host: &dyn Host,
    p: &InitPaths,
    params: &BootParams,
) -> Result<(rootdev::Seen, String), InitError> {
    let want = rootdev::Want::new(&params.verity, params.root_override.as_deref());
    let mut scanner = rootdev::Scanner::new(&p.sys, &p.dev, want.clone());
    let found = rootdev::find_root(host, &want, params.root_wait, &mut || scanner.scan())?;
    let detail = found.detail();
    Ok((found.root, detail))
}

fn dm_call(
    host: &dyn Host,
    p: &InitPaths,
    request: DmRequest,
    step: &'static str,
) -> Result<DmReply, InitError> {
    host.dm(&p.dm_control(), &request).map_err(|e| {
        let hint = match (e.raw_os_error(), &request) {
            (Some(libc::EINVAL), DmRequest::LoadTable { .. }) => {
                " (the kernel log names the bad verity parameter)"
            }
            (Some(libc::ENOENT), DmRequest::Version) => " (is dm-mod loaded?)",
            _ => "",
        };
        InitError::Dm {
            step,
            name: DM_NAME.to_string(),
            reason: format!("{}{hint}", errno_text(&e)),
        }
    })
}

/// DM_VERSION, DM_DEV_CREATE, DM_TABLE_LOAD (read-only verity over `root` by its
/// major:minor), resume; then the node.
fn verity(
    host: &dyn Host,
    p: &InitPaths,
    params: &BootParams,
    root: &rootdev::Seen,
) -> Result<(PathBuf, String), InitError> {
    let name = DM_NAME.to_string();
    dm_call(host, p, DmRequest::Version, "version check")?;
    let created = dm_call(host, p, DmRequest::Create { name: name.clone() }, "create")?;
    let load = DmRequest::LoadTable {
        name: name.clone(),
        read_only: true,
        target: dm::verity_target(&params.verity, &root.dev()),
    };
    dm_call(host, p, load, "verity table load")?;
    dm_call(host, p, DmRequest::Resume { name }, "resume")?;
    let (major, minor) = created.major_minor();
    let node = p.dm_node();
    let mk = |step: &str, e: std::io::Error| InitError::Dm {
        step: "device node",
        name: DM_NAME.to_string(),
        reason: format!("{step} {}: {}", node.display(), errno_text(&e)),
    };
    host.mkdir_all(node.parent().unwrap_or(&p.dev))
        .map_err(|e| mk("creating the directory of", e))?;
    host.mknod_block(&node, major, minor)
        .map_err(|e| mk("creating", e))?;
    let detail = format!(
        "{} ({major}:{minor}) over {} ({}), {} data blocks, root hash {}",
        node.display(),
        root.node.display(),
        root.dev(),
        params.verity.data_blocks,
        params.verity.root_hash
    );
    Ok((node, detail))
}

fn mount_root(host: &dyn Host, p: &InitPaths, node: &Path) -> Result<((), String), InitError> {
    host.mkdir_all(&p.sysroot).map_err(|e| InitError::Mount {
        what: "erofs".into(),
        target: p.sysroot.clone(),
        reason: format!("creating the mount point: {}", errno_text(&e)),
    })?;
    let src = node.to_string_lossy();
    host.mount(
        Some(&src),
        &p.sysroot,
        Some("erofs"),
        MsFlags::MS_RDONLY,
        None,
    )
    .map_err(|e| InitError::RootMount {
        device: node.to_path_buf(),
        target: p.sysroot.clone(),
        reason: errno_text(&e),
        hint: if e.raw_os_error() == Some(libc::EIO) {
            " (dm-verity rejected a block: the image does not match the root hash)"
        } else {
            ""
        },
    })?;
    Ok((
        (),
        format!(
            "{} mounted read-only on {}",
            node.display(),
            p.sysroot.display()
        ),
    ))
}

pub(crate) fn trusted_keys(dir: &Path) -> Result<Vec<PathBuf>, InitError> {
    let entries = std::fs::read_dir(dir).map_err(|_| InitError::NoKeys(dir.to_path_buf()))?;
    let mut keys: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pub"))
        .collect();
    keys.sort();
    if keys.is_empty() {
        return Err(InitError::NoKeys(dir.to_path_buf()));
    }
    Ok(keys)
}

/// How the root is checked: `pyre.verify=` over the image policy's `root-check` (read from
/// the root just mounted: every block of it is authenticated by dm-verity).
fn root_check(p: &InitPaths, params: &BootParams) -> Result<RootCheck, InitError> {
    if let Some(c) = params.root_check {
        return Ok(c);
    }
    Policy::load(&p.policy())
        .map(|policy| policy.root_check)
        .map_err(|e| InitError::Verify(VerifyFailure::Other(format!("the image policy: {e}"))))
}

fn verify_root(
    host: &dyn Host,
    p: &InitPaths,
    params: &BootParams,
    verifier: &dyn RootVerifier,
) -> Result<((Verified, RootCheck, Check), String), InitError> {
    let started_at = host.now();
    let manifest = p.manifest();
    let bytes = read(&manifest)?;
    let actual = crate::manifest::digest(&bytes);
    if actual != params.manifest_digest {
        return Err(InitError::Digest {
            path: manifest,
            expected: params.manifest_digest.clone(),
            actual,
        });
    }
    let keys = trusted_keys(&p.keys())?;
    let mode = root_check(p, params)?;
    let check = |name: &str, bytes: u64| Check {
        name: name.into(),
        place: "initramfs".into(),
        started_at: started_at.as_secs_f64(),
        seconds: host.now().saturating_sub(started_at).as_secs_f64(),
        bytes,
        outcome: "passed".into(),
    };
    if mode == RootCheck::Read {
        // The signature binds the pinned manifest to the build; every block of the root is
        // authenticated by dm-verity as it is read. The tree is compared with the manifest,
        // and every block read, by pyre-content.service before pyre-ready.target.
        let digest = verifier.signature(&manifest, &keys)?;
        let v = Verified {
            manifest_digest: digest,
            entries: 0,
            bytes_hashed: 0,
        };
        let detail = format!(
            "manifest {} signed by a trusted key; the tree's metadata and every block of the \
             root are checked after switch_root by pyre-content.service, before \
             pyre-ready.target",
            v.manifest_digest
        );
        return Ok(((v, mode, check("manifest", bytes.len() as u64)), detail));
    }
    drop(bytes);
    let mountinfo = p.proc.join("self/mountinfo");
    let input = VerifyInput {
        root: &p.sysroot,
        manifest: &manifest,
        keys: &keys,
        mountinfo: &mountinfo,
        content: match mode {
            RootCheck::Full => ContentCheck::Hash,
            RootCheck::Read | RootCheck::Metadata => ContentCheck::Metadata,
        },
    };
    let v = verifier.verify(&input)?;
    let detail = match mode {
        RootCheck::Full => format!(
            "root verified: manifest {}, {} entries, {:.1} MB hashed",
            v.manifest_digest,
            v.entries,
            v.bytes_hashed as f64 / 1e6
        ),
        _ => format!(
            "root metadata verified: manifest {}, {} entries; content: checked by dm-verity \
             only as it is read (pyre.verify=metadata)",
            v.manifest_digest, v.entries
        ),
    };
    let name = if mode == RootCheck::Full {
        "content-hash"
    } else {
        "metadata"
    };
    let check = check(name, v.bytes_hashed);
    Ok(((v, mode, check), detail))
}

/// Fork the reader of the whole verity device (`read` check), so it runs while systemd starts;
/// pyre-content.service takes its result. Half the cores read (dm-verity hashes on the reading
/// cores; systemd keeps the others).
fn start_content_read(host: &dyn Host, p: &InitPaths, node: &Path) -> Option<u32> {
    let run_pyre = p.run_pyre();
    if let Err(e) = host.mkdir_all(&run_pyre) {
        host.console(&format!(
            "pyre init: content read not started early (creating {}: {})",
            run_pyre.display(),
            errno_text(&e)
        ));
        return None;
    }
    let readers = (crate::manifest::default_threads() / 2).max(1);
    let pid = super::early::start(host, node, &run_pyre, readers)?;
    host.console(&format!(
        "pyre init: content read of {} started (pid {pid}, {readers} reader(s)); \
         pyre-content.service takes its result",
        node.display()
    ));
    Some(pid)
}

fn handover_err(step: &str, path: &Path, e: std::io::Error) -> InitError {
    InitError::Handover {
        step: format!("{step} {}", path.display()),
        reason: errno_text(&e),
    }
}

/// /var overlay and /tmp tmpfs in the new root, pyre's files and the boot record on /run.
fn prepare_root(host: &dyn Host, p: &InitPaths, record: &BootRecord) -> Result<(), InitError> {
    let var = p.run_pyre().join("var");
    let (upper, work) = (var.join("upper"), var.join("work"));
    for dir in [&upper, &work, &p.run_pyre().join("keys")] {
        host.mkdir_all(dir)
            .map_err(|e| handover_err("creating", dir, e))?;
    }
    let sys_var = p.sysroot.join("var");
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        sys_var.display(),
        upper.display(),
        work.display()
    );
    mount(
        host,
        "overlay",
        &sys_var,
        Some("overlay"),
        MsFlags::empty(),
        Some(&opts),
    )?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount(
        host,
        "tmpfs",
        &p.sysroot.join("tmp"),
        Some("tmpfs"),
        flags,
        Some("mode=1777"),
    )?;
    let mut copies = vec![(p.manifest(), p.run_pyre().join("manifest"))];
    copies.push((p.signature(), p.run_pyre().join("manifest.sig")));
    for key in trusted_keys(&p.keys())? {
        let name = key.file_name().expect("a key file has a name").to_owned();
        copies.push((key, p.run_pyre().join("keys").join(name)));
    }
    for (from, to) in copies {
        let bytes = read(&from)?;
        host.write_file(&to, &bytes)
            .map_err(|e| handover_err("writing", &to, e))?;
    }
    let boot_json = p.run_pyre().join("boot.json");
    host.write_file(&boot_json, &record.to_json())
        .map_err(|e| handover_err("writing", &boot_json, e))?;
    for from in [&p.dev, &p.proc, &p.sys, &p.run] {
        let to = p.in_sysroot(from);
        mount(
            host,
            &from.to_string_lossy(),
            &to,
            None,
            MsFlags::MS_MOVE,
            None,
        )?;
    }
    Ok(())
}

/// Free the initramfs, make the new root `/` and exec its init.
fn switch_root(host: &dyn Host, p: &InitPaths, init_args: &[String]) -> Result<(), InitError> {
    let err = |step: &str, e: std::io::Error| InitError::SwitchRoot {
        step: step.to_string(),
        reason: errno_text(&e),
    };
    host.chdir(&p.sysroot)
        .map_err(|e| err("chdir to the new root", e))?;
    if let Err(e) = host.clear_initramfs(&p.rootfs) {
        host.console(&format!(
            "pyre init: freeing the initramfs: {} (continuing)",
            errno_text(&e)
        ));
    }
    let sysroot = p.sysroot.to_string_lossy();
    host.mount(Some(&sysroot), &p.rootfs, None, MsFlags::MS_MOVE, None)
        .map_err(|e| err("moving the new root to /", e))?;
    host.chroot(Path::new(".")).map_err(|e| err("chroot", e))?;
    host.chdir(Path::new("/")).map_err(|e| err("chdir /", e))?;
    let mut argv = vec![p.init.to_string_lossy().into_owned()];
    argv.extend(init_args.iter().cloned());
    host.execv(&p.init, &argv)
        .map_err(|e| err(&format!("exec {}", p.init.display()), e))
}

/// The whole sequence. Returns only when it failed, or when `host.execv` returns success
/// (the recording fake); the real exec never returns.
pub fn boot(
    host: &dyn Host,
    p: &InitPaths,
    verifier: &dyn RootVerifier,
    init_args: &[String],
) -> Result<(), InitError> {
    let mut clock = Clock {
        host,
        start: host.now(),
        stages: Vec::new(),
    };
    clock.stage("setup", || setup(host, p))?;
    host.console(&format!(
        "pyre init: pyre {} started at {:.3}s after boot",
        env!("CARGO_PKG_VERSION"),
        clock.start.as_secs_f64()
    ));
    let params = clock.stage("cmdline", || {
        let text = String::from_utf8_lossy(&read(&p.cmdline)?).into_owned();
        let params = cmdline::parse(&text)?;
        let detail = format!(
            "root verity uuid {}{}, root hash {}",
            rootdev::uuid_text(&params.verity.uuid),
            params
                .root_override
                .as_ref()
                .map(|r| format!(" on {r}"))
                .unwrap_or_default(),
            params.verity.root_hash
        );
        Ok((params, detail))
    })?;
    clock.stage("modules", || {
        let s = modules::load_all(host, &p.modules_list())?;
        Ok((
            (),
            format!(
                "{} loaded, {} already loaded, {} failed",
                s.loaded,
                s.already,
                s.failed.len()
            ),
        ))
    })?;
    let root = clock.stage("root-device", || root_device(host, p, &params))?;
    let node = clock.stage("verity", || verity(host, p, &params, &root))?;
    clock.stage("mount", || mount_root(host, p, &node))?;
    let (verified, mode, check) =
        clock.stage("verify", || verify_root(host, p, &params, verifier))?;
    let content_reader = if mode == RootCheck::Read {
        start_content_read(host, p, &node)
    } else {
        None
    };
    let record = BootRecord {
        version: RECORD_VERSION,
        verified: true,
        manifest_digest: verified.manifest_digest,
        entries: verified.entries,
        bytes_hashed: verified.bytes_hashed,
        root_hash: params.verity.root_hash.clone(),
        root_device: root.node.display().to_string(),
        started_at: clock.start.as_secs_f64(),
        stages: clock.stages.clone(),
        total_seconds: clock.total(),
        root_check: Some(mode.as_str().to_string()),
        checks: vec![check],
        content_reader,
        boot: None,
    };
    host.console(&record.summary_line());
    clock.stage("handover", || {
        prepare_root(host, p, &record).map(|()| ((), "/var overlay, /tmp, /run/pyre ready".into()))
    })?;
    host.console(&format!(
        "pyre init: switching root to {} after {:.3}s",
        p.init.display(),
        clock.total()
    ));
    switch_root(host, p, init_args)
}
