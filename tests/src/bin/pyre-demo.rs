//! `make demo`: boot the baked image and watch pyre verify it, then boot a copy with one byte
//! changed and watch pyre refuse it and power the machine off.
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use pyre_tests::image::{work_dir, Image};
use pyre_tests::markers::CODE_DRIFT;
use pyre_tests::scenario::{boot_clean, boot_refused, scaled, SHUTDOWN_GRACE};
use pyre_tests::tamper::{tamper_root, TAMPER_CANDIDATES};
use pyre_tests::QemuBuilder;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\npyre-demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn banner(title: &str, body: &str) {
    let mut out = std::io::stdout().lock();
    let (bold, plain) = if out.is_terminal() {
        ("\x1b[1;36m", "\x1b[0m")
    } else {
        ("", "")
    };
    let rule = "=".repeat(78);
    let _ = writeln!(out, "\n{bold}{rule}\n  {title}{plain}");
    for line in body.lines() {
        let _ = writeln!(out, "  {line}");
    }
    let _ = writeln!(out, "{bold}{rule}{plain}\n");
    let _ = out.flush();
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn run() -> anyhow::Result<()> {
    let image = Image::locate().context("no image to boot")?;
    let mut summary: Vec<(String, String)> = Vec::new();

    banner(
        "pyre demo, part 1 of 2: a clean boot",
        &format!(
            "Booting {} under QEMU (software emulation, so it is slow).\n\
             What you will see, in order:\n\
             - the Linux kernel starting;\n\
             - `pyre init`, running as PID 1 from the initramfs: it loads the disk and\n\
             \x20 dm-verity modules, opens the read-only root through dm-verity with the root\n\
             \x20 hash from the kernel command line, checks the manifest's signature, then reads\n\
             \x20 every file and compares it with the signed manifest; each stage prints its time;\n\
             - its verdict line: `pyre: root verified: manifest sha256:…`;\n\
             - systemd taking over (switch_root), pyre-verified.service repeating the verdict,\n\
             \x20 and the machine reaching multi-user (a login prompt).",
            image.dir.display()
        ),
    );
    let builder = QemuBuilder::new(&image, "demo-clean")
        .echo(true)
        .monitor(true);
    let mut clean = boot_clean(builder, image.manifest_digest())?;
    let stages: Vec<String> = clean
        .stages
        .iter()
        .map(|(n, s)| format!("{n} {s:.2}s"))
        .collect();
    banner(
        "part 1 done: the root is the one that was sealed",
        &format!(
            "pyre verified the root {} after QEMU started (stages: {});\n\
             systemd reached multi-user at {}.\n\
             Now asking the machine to shut down cleanly (the power button, or\n\
             Ctrl-Alt-Del when the power button goes unheard).",
            secs(clean.verified_at),
            stages.join(", "),
            secs(clean.multi_user_at)
        ),
    );
    summary.push(("clean boot: root verified".into(), secs(clean.verified_at)));
    summary.push(("clean boot: multi-user".into(), secs(clean.multi_user_at)));
    for (n, s) in &clean.stages {
        summary.push((format!("  pyre init stage {n}"), format!("{s:.2} s")));
    }
    let down = clean.vm.powerdown(scaled(SHUTDOWN_GRACE))?;
    summary.push((
        format!("clean boot: shutdown via {} (after asking)", down.via),
        secs(down.took),
    ));
    drop(clean);

    let work = work_dir().join("demo");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let t = tamper_root(&image, TAMPER_CANDIDATES, &work.join("rootfs.img"))?;
    banner(
        "pyre demo, part 2 of 2: a tampered root",
        &format!(
            "A copy of rootfs.img now has one byte changed: byte {} of {}\n\
             ({:#04x} became {:#04x}, at offset {} of the image). Nothing else differs.\n\
             What you will see: the same start, then dm-verity refusing the changed block when\n\
             pyre reads that file, pyre printing `BOOT REFUSED` with the reason and the drift\n\
             report, and the machine powering itself off. systemd never starts.",
            t.file_offset, t.file, t.before, t.after, t.offset
        ),
    );
    let builder = QemuBuilder::new(&image, "demo-tampered")
        .echo(true)
        .rootfs(&t.rootfs);
    let refused = boot_refused(builder, &[CODE_DRIFT])?;
    summary.push(("tampered root: refusal".into(), secs(refused.refused_at)));
    summary.push((
        "tampered root: powered off".into(),
        secs(refused.exited.elapsed),
    ));
    let reason = refused.reason.clone();
    drop(refused);
    let _ = std::fs::remove_dir_all(&work);

    let width = summary.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let table: Vec<String> = summary
        .iter()
        .map(|(k, v)| format!("{k:<width$}  {v:>9}"))
        .collect();
    banner(
        "summary (times since QEMU started)",
        &format!(
            "{}\n\nThe tampered machine said:\n  {reason}\nand powered itself off.\n\
             Console logs: {}",
            table.join("\n"),
            pyre_tests::image::log_dir().display()
        ),
    );
    Ok(())
}
