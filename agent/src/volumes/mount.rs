//! Mount options (flags and data string) and the current mount table.
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use nix::mount::MsFlags;

/// Mount flags and filesystem data from a volume's `options`, on top of `nodev,nosuid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    pub flags: MsFlags,
    /// Filesystem-specific options, passed as the data string.
    pub data: Vec<String>,
}

/// Options that set a mount flag.
const FLAGS: &[(&str, MsFlags)] = &[
    ("nodev", MsFlags::MS_NODEV),
    ("nosuid", MsFlags::MS_NOSUID),
    ("noexec", MsFlags::MS_NOEXEC),
    ("ro", MsFlags::MS_RDONLY),
    ("noatime", MsFlags::MS_NOATIME),
    ("nodiratime", MsFlags::MS_NODIRATIME),
    ("relatime", MsFlags::MS_RELATIME),
    ("strictatime", MsFlags::MS_STRICTATIME),
    ("lazytime", MsFlags::MS_LAZYTIME),
    ("sync", MsFlags::MS_SYNCHRONOUS),
    ("dirsync", MsFlags::MS_DIRSYNC),
];
/// Options that only restate the default.
const NO_OPS: &[&str] = &["rw", "exec", "defaults", "async", "atime"];
/// Options that would weaken the defaults or change what a mount is.
const REFUSED: &[(&str, &str)] = &[
    ("suid", "data volumes are untrusted: nosuid is always set"),
    ("dev", "data volumes are untrusted: nodev is always set"),
    ("bind", "volumes are block devices"),
    ("rbind", "volumes are block devices"),
    ("remount", "pyre mounts each volume once"),
    ("move", "pyre mounts each volume once"),
    ("shared", "propagation is not a volume option"),
    ("private", "propagation is not a volume option"),
    ("slave", "propagation is not a volume option"),
    ("unbindable", "propagation is not a volume option"),
];

impl MountOptions {
    pub fn parse(options: &[String]) -> Result<MountOptions, String> {
        let mut flags = MsFlags::MS_NODEV | MsFlags::MS_NOSUID;
        let mut data = vec![];
        for o in options {
            if let Some((_, why)) = REFUSED.iter().find(|r| r.0 == o) {
                return Err(format!("{o} is not allowed: {why}"));
            }
            if let Some((_, f)) = FLAGS.iter().find(|f| f.0 == o) {
                flags |= *f;
            } else if !NO_OPS.contains(&o.as_str()) {
                let ok = !o.is_empty()
                    && o.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_=.:/-+".contains(c));
                if !ok {
                    return Err(format!("{o:?} is not a mount option (one option per item)"));
                }
                data.push(o.clone());
            }
        }
        Ok(MountOptions { flags, data })
    }

    pub fn read_only(&self) -> bool {
        self.flags.contains(MsFlags::MS_RDONLY)
    }

    /// The data string for mount(2), if any.
    pub fn data_string(&self) -> Option<String> {
        (!self.data.is_empty()).then(|| self.data.join(","))
    }

    /// `ro,nodev,nosuid,noexec,discard`, for logs and reports.
    pub fn describe(&self) -> String {
        let mut words: Vec<&str> = vec![if self.read_only() { "ro" } else { "rw" }];
        words.extend(
            FLAGS
                .iter()
                .filter(|(n, f)| *n != "ro" && self.flags.contains(*f))
                .map(|(n, _)| *n),
        );
        words.extend(self.data.iter().map(String::as_str));
        words.join(",")
    }
}

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Device number of the mounted filesystem (`st_dev`).
    pub devnum: (u32, u32),
    pub mount_point: PathBuf,
    pub fstype: String,
    pub source: String,
}

/// Parse mountinfo (proc(5)); lines without the documented shape are skipped.
pub fn parse_mountinfo(text: &[u8]) -> Vec<MountEntry> {
    text.split(|b| *b == b'\n')
        .filter_map(|line| {
            let f: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
            let sep = f.iter().position(|x| *x == b"-")?;
            if sep < 6 || f.len() < sep + 3 {
                return None;
            }
            let devnum = std::str::from_utf8(f[2]).ok()?.split_once(':')?;
            Some(MountEntry {
                devnum: (devnum.0.parse().ok()?, devnum.1.parse().ok()?),
                mount_point: PathBuf::from(OsString::from_vec(unoctal(f[4]))),
                fstype: String::from_utf8_lossy(f[sep + 1]).into_owned(),
                source: String::from_utf8_lossy(&unoctal(f[sep + 2])).into_owned(),
            })
        })
        .collect()
}

/// Decode the kernel's `\ooo` escapes.
fn unoctal(f: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(f.len());
    let mut i = 0;
    while i < f.len() {
        if f[i] == b'\\' && f.len() >= i + 4 {
            let d = &f[i + 1..i + 4];
            if d.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = d.iter().fold(0u32, |a, c| a * 8 + u32::from(c - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(f[i]);
        i += 1;
    }
    out
}

/// What is mounted at `at` now: the last (topmost) entry for that mount point.
pub fn mounted_at<'a>(table: &'a [MountEntry], at: &std::path::Path) -> Option<&'a MountEntry> {
    table.iter().rev().find(|m| m.mount_point == at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(o: &[&str]) -> Result<MountOptions, String> {
        MountOptions::parse(&o.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn options_table() {
        let d = MsFlags::MS_NODEV | MsFlags::MS_NOSUID;
        let cases: &[(&[&str], MsFlags, Option<&str>, &str)] = &[
            (&[], d, None, "rw,nodev,nosuid"),
            (
                &["noexec"],
                d | MsFlags::MS_NOEXEC,
                None,
                "rw,nodev,nosuid,noexec",
            ),
            (
                &["ro", "noatime"],
                d | MsFlags::MS_RDONLY | MsFlags::MS_NOATIME,
                None,
                "ro,nodev,nosuid,noatime",
            ),
            (&["rw", "exec", "nodev"], d, None, "rw,nodev,nosuid"),
            (
                &["discard", "commit=30"],
                d,
                Some("discard,commit=30"),
                "rw,nodev,nosuid,discard,commit=30",
            ),
        ];
        for (input, flags, data, shown) in cases {
            let o = opts(input).unwrap();
            assert_eq!(o.flags, *flags, "{input:?}");
            assert_eq!(o.data_string().as_deref(), *data, "{input:?}");
            assert_eq!(o.describe(), *shown);
        }
    }

    #[test]
    fn weakening_or_odd_options_are_refused() {
        let cases = [
            (
                "suid",
                "suid is not allowed: data volumes are untrusted: nosuid is always set",
            ),
            (
                "dev",
                "dev is not allowed: data volumes are untrusted: nodev is always set",
            ),
            ("bind", "bind is not allowed: volumes are block devices"),
            (
                "noexec,ro",
                "\"noexec,ro\" is not a mount option (one option per item)",
            ),
            ("", "\"\" is not a mount option (one option per item)"),
            ("a b", "\"a b\" is not a mount option (one option per item)"),
        ];
        for (o, want) in cases {
            assert_eq!(opts(&[o]).unwrap_err(), want);
        }
    }

    #[test]
    fn mountinfo_lines() {
        let t = b"36 35 98:0 /mnt1 /var/lib/my\\040data rw,noatime master:1 - ext4 /dev/vdb rw\n\
                  37 35 98:0 / /var/lib/my\\040data rw - xfs /dev/vdc rw\n\
                  junk\n";
        let m = parse_mountinfo(t);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].devnum, (98, 0));
        assert_eq!(m[0].mount_point, PathBuf::from("/var/lib/my data"));
        assert_eq!(m[0].fstype, "ext4");
        assert_eq!(
            mounted_at(&m, std::path::Path::new("/var/lib/my data"))
                .unwrap()
                .source,
            "/dev/vdc"
        );
        assert!(mounted_at(&m, std::path::Path::new("/var")).is_none());
    }
}
