//! Host-only check of the foreign-signature helper with the real `pyre` binary (set PYRE_BIN,
//! or build it: `cargo build -p pyre`): the overlaid initrd carries a signature of the same
//! manifest that the build key's public half rejects and the other key's accepts.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pyre_tests::cpio::{newc, Entry};
use pyre_tests::image::{pyre_bin, Cmdline, Image};
use pyre_tests::tamper::initrd_signed_by_other_key;

fn pyre() -> PathBuf {
    pyre_bin().expect("no pyre binary: set PYRE_BIN or run `cargo build -p pyre`")
}

fn run(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().expect("running pyre");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// `cpio -i` each archive of a concatenated initrd in turn, later archives winning.
fn unpack_all(initrd: &Path, into: &Path) {
    let bytes = std::fs::read(initrd).unwrap();
    let mut at = 0;
    while let Some(start) = bytes[at..].iter().position(|&b| b != 0).map(|p| p + at) {
        let trailer = b"TRAILER!!!\0";
        let end = bytes[start..]
            .windows(trailer.len())
            .position(|w| w == trailer)
            .map(|p| start + p + trailer.len())
            .expect("archive has a trailer");
        let end = end.div_ceil(4) * 4;
        let mut child = Command::new("cpio")
            .args(["-i", "-d", "-u", "--quiet"])
            .current_dir(into)
            .stdin(Stdio::piped())
            .spawn()
            .expect("cpio is needed (make deps)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(&bytes[start..end])
            .unwrap();
        assert!(child.wait().unwrap().success());
        at = end.min(bytes.len());
    }
}

#[test]
fn overlay_signature_is_valid_for_another_key_only() {
    let pyre = pyre();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tree = d.join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::write(tree.join("etc/hostname"), b"sealed\n").unwrap();
    let build_key = d.join("build.key");
    let (code, out) = run(Command::new(&pyre).arg("keygen").arg("-o").arg(&build_key));
    assert_eq!(code, 0, "{out}");
    let manifest = d.join("manifest");
    let (code, out) = run(Command::new(&pyre)
        .arg("seal")
        .arg(&tree)
        .arg("-o")
        .arg(&manifest)
        .arg("--key")
        .arg(&build_key));
    assert_eq!(code, 0, "{out}");
    let sig = d.join("manifest.sig");
    let initrd = d.join("initrd.img");
    std::fs::write(
        &initrd,
        newc(&[
            Entry::dir("etc", 0o755),
            Entry::dir("etc/pyre", 0o755),
            Entry::file(
                "etc/pyre/manifest",
                0o644,
                std::fs::read(&manifest).unwrap(),
            ),
            Entry::file("etc/pyre/manifest.sig", 0o644, std::fs::read(&sig).unwrap()),
        ])
        .unwrap(),
    )
    .unwrap();
    let image = Image {
        dir: d.to_path_buf(),
        vmlinuz: d.join("vmlinuz"),
        initrd,
        rootfs: d.join("rootfs.img"),
        manifest,
        manifest_sig: sig,
        cmdline: Cmdline::parse("ro"),
    };
    let work = d.join("work");
    let foreign = initrd_signed_by_other_key(&image, Some(&pyre), &work).unwrap();

    let unpacked = d.join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    unpack_all(&foreign, &unpacked);
    let m = unpacked.join("etc/pyre/manifest");
    let verify = |pubkey: &Path| {
        run(Command::new(&pyre)
            .arg("verify")
            .arg(&tree)
            .arg("-m")
            .arg(&m)
            .arg("--pubkey")
            .arg(pubkey))
    };
    let (code, out) = verify(&d.join("build.key.pub"));
    assert_eq!(
        code, 2,
        "the build key must reject the foreign signature: {out}"
    );
    let (code, out) = verify(&work.join("other.key.pub"));
    assert_eq!(code, 0, "the other key must accept it: {out}");
}
