//! `make bench BENCH=boot` (tests/bench/boot.sh): the cost of pyre's root check in the boot,
//! under QEMU TCG, variants booted alternately so that a loaded host slows each alike:
//!
//! - `shipped`: the image as built (root check `read`: the manifest's signature in pyre init;
//!   the tree's metadata compared and the whole verity device read by pyre-content.service
//!   before pyre-ready.target);
//! - `no-content`: the same with `pyre.verify=metadata` (the tree's metadata in pyre init, no
//!   content read at all);
//! - `full`: `pyre.verify=full` (every file read and hashed in pyre init: the previous default).
//!
//! Each boot: QEMU start → `pyre-ready.target`, pyre init's own time to switch_root, its
//! modules and verify stages, and pyre-content.service's read. Then the floor: one boot into a
//! guest script (no pyre-content.service) that reads the verity device and the disk under it
//! sequentially with `dd iflag=direct`. Prints medians as a markdown table.
//!
//! Usage: pyre-bootbench [RUNS] [SMP]  (default 3 runs, 1 vCPU; 0 runs: the floor only)
use std::time::Duration;

use anyhow::Context;
use pyre_tests::image::Image;
use pyre_tests::markers::{line_with, CONTENT_READ, PYRE_READY};
use pyre_tests::scenario::{scaled, MULTI_USER_DEADLINE};
use pyre_tests::QemuBuilder;

const VARIANTS: [(&str, Option<&str>); 3] = [
    ("shipped", None),
    ("no-content", Some("pyre.verify=metadata")),
    ("full", Some("pyre.verify=full")),
];

/// One boot's figures, in seconds.
#[derive(Debug, Default, Clone)]
struct Boot {
    ready: f64,
    switch_root: f64,
    modules: f64,
    verify: f64,
    content_read: f64,
}

/// The number just before `suffix` at the end of the first line holding `marker`.
fn secs_in(text: &str, marker: &str, after: &str, suffix: char) -> Option<f64> {
    let line = line_with(text, marker)?;
    let (_, rest) = line.rsplit_once(after)?;
    let num: String = rest
        .chars()
        .take_while(|c| *c != suffix && *c != ' ')
        .collect();
    num.trim_end_matches('s').parse().ok()
}

fn smp_builder(image: &Image, name: &str, smp: &str) -> QemuBuilder {
    QemuBuilder::new(image, name)
        .arg("-smp")
        .arg(smp.to_string())
}

fn boot_once(image: &Image, variant: &str, word: Option<&str>, smp: &str) -> anyhow::Result<Boot> {
    let mut cmdline = image.cmdline.clone();
    if let Some(w) = word {
        cmdline.push(w);
    }
    let builder = smp_builder(image, &format!("bench-{variant}"), smp).cmdline(cmdline);
    let mut vm = builder.spawn()?;
    let (_, ready) = vm.wait_for_any(PYRE_READY, scaled(MULTI_USER_DEADLINE))?;
    if word.is_none() {
        vm.wait_for(CONTENT_READ, Duration::from_secs(5))?;
    }
    let text = vm.console().text();
    vm.kill();
    let b = Boot {
        ready: ready.as_secs_f64(),
        switch_root: secs_in(&text, "pyre init: switching root to", " after ", 's')
            .context("no switch_root line")?,
        modules: secs_in(&text, "pyre init: modules: ", "(", ')').unwrap_or(f64::NAN),
        verify: secs_in(&text, "pyre init: verify: ", "(", ')').unwrap_or(f64::NAN),
        content_read: secs_in(&text, CONTENT_READ, " read in ", 's').unwrap_or(0.0),
    };
    eprintln!("bench: {variant} (smp {smp}): {b:?}");
    Ok(b)
}

/// `dd` of the verity device and of the raw disk, direct I/O, in a guest script.
fn floor(image: &Image, smp: &str) -> anyhow::Result<(String, String)> {
    let mut cmdline = image.cmdline.clone();
    cmdline.push("pyre.verify=metadata");
    // No shell variables: systemd would expand them.
    let script = "echo FLOOR-VERITY; dd if=/dev/mapper/pyre-root of=/dev/null bs=4M iflag=direct \
                  2>&1 | tail -1; echo FLOOR-DISK; dd if=/dev/vda of=/dev/null bs=4M \
                  iflag=direct 2>&1 | tail -1";
    cmdline
        .run_in_guest(script)
        .map_err(|e| anyhow::anyhow!(e))?;
    let mut vm = smp_builder(image, "bench-floor", smp)
        .cmdline(cmdline)
        .spawn()?;
    vm.wait_exit(scaled(MULTI_USER_DEADLINE))?;
    let text = vm.console().text();
    let after = |m: &str| -> String {
        // The marker alone at the end of a line: the script's echo, not the kernel command
        // line that carries the script.
        let mut lines = text
            .lines()
            .skip_while(|l| !l.trim_end_matches('\r').ends_with(m))
            .skip(1);
        lines
            .find(|l| l.contains("copied"))
            .map(|l| l.trim_end_matches('\r').to_string())
            .unwrap_or_else(|| "(no dd output)".into())
    };
    Ok((after("FLOOR-VERITY"), after("FLOOR-DISK")))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 0 => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        n => v[n / 2],
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs: usize = args.first().map_or(Ok(3), |a| a.parse())?;
    let smp = args.get(1).cloned().unwrap_or_else(|| "1".into());
    let image = Image::locate().map_err(|e| anyhow::anyhow!("{e}"))?;
    if runs == 0 {
        let (verity, disk) = floor(&image, &smp)?;
        println!(
            "floor ({smp} vCPU), dd bs=4M iflag=direct: verity device: {verity}; disk: {disk}"
        );
        return Ok(());
    }
    let mut results: Vec<Vec<Boot>> = vec![Vec::new(); VARIANTS.len()];
    for _ in 0..runs {
        for (i, (name, word)) in VARIANTS.iter().enumerate() {
            results[i].push(boot_once(&image, name, *word, &smp)?);
        }
    }
    let (verity, disk) = floor(&image, &smp)?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\nBoot under QEMU TCG, {smp} vCPU, 1 GiB; median of {runs} boots per variant, booted \
         alternately; host load average {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("\n| variant | QEMU start → pyre-ready.target | pyre init → switch_root | modules | verify stage | content read (after switch_root) |");
    println!("|---|---|---|---|---|---|");
    let mut ready = Vec::new();
    for (i, (name, word)) in VARIANTS.iter().enumerate() {
        let r = &results[i];
        let m = |f: fn(&Boot) -> f64| median(r.iter().map(f).collect());
        ready.push(m(|b| b.ready));
        println!(
            "| {name} ({}) | {:.1} s | {:.2} s | {:.2} s | {:.2} s | {:.2} s |",
            word.unwrap_or("as built"),
            m(|b| b.ready),
            m(|b| b.switch_root),
            m(|b| b.modules),
            m(|b| b.verify),
            m(|b| b.content_read)
        );
    }
    println!("\nfloor, dd bs=4M iflag=direct in the guest: verity device: {verity}; disk: {disk}");
    println!(
        "ratio shipped / no-content (QEMU start → pyre-ready.target): {:.2}x (target ≤ 1.20x); \
         full / no-content: {:.2}x",
        ready[0] / ready[1],
        ready[2] / ready[1]
    );
    Ok(())
}
