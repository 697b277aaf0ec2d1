//! Mount points from a mountinfo file (`/proc/self/mountinfo` format, see proc(5)).

/// One mount: where it is and what it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Raw mount point path (octal escapes such as `\040` decoded).
    pub mount_point: Vec<u8>,
    pub fstype: String,
    pub source: String,
    /// `major:minor` of the filesystem's device (field 3).
    pub dev: String,
    /// Per-mount options (field 6), e.g. `ro,relatime`.
    pub mount_options: String,
    /// Per-superblock options (the last field), e.g. `ro,user_xattr`.
    pub super_options: String,
}

impl Mount {
    /// Whether this mount is read-only: the mount itself or its superblock.
    pub fn read_only(&self) -> bool {
        let has_ro = |opts: &str| opts.split(',').any(|o| o == "ro");
        has_ro(&self.mount_options) || has_ro(&self.super_options)
    }
}

/// Parse mountinfo text; lines that do not have the documented shape are skipped.
pub fn parse(text: &[u8]) -> Vec<Mount> {
    text.split(|b| *b == b'\n')
        .filter_map(|line| {
            let fields: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
            let sep = fields.iter().position(|f| *f == b"-")?;
            if sep < 6 || fields.len() < sep + 3 {
                return None;
            }
            let text = |f: &[u8]| String::from_utf8_lossy(f).into_owned();
            Some(Mount {
                mount_point: unoctal(fields[4]),
                fstype: text(fields[sep + 1]),
                source: text(fields[sep + 2]),
                dev: text(fields[2]),
                mount_options: text(fields[5]),
                super_options: fields.get(sep + 3).map_or_else(String::new, |f| text(f)),
            })
        })
        .collect()
}

/// Decode the kernel's `\ooo` escapes (space, tab, newline, backslash).
fn unoctal(f: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(f.len());
    let mut i = 0;
    while i < f.len() {
        let oct = |b: u8| matches!(b, b'0'..=b'7').then(|| b - b'0');
        if f[i] == b'\\' && f.len() >= i + 4 {
            if let (Some(a), Some(b), Some(c)) = (oct(f[i + 1]), oct(f[i + 2]), oct(f[i + 3])) {
                out.push(a << 6 | b << 3 | c);
                i += 4;
                continue;
            }
        }
        out.push(f[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_example() {
        let text =
            b"36 35 98:0 /mnt1 /mnt/parent\\040dir rw,noatime master:1 - ext3 /dev/root rw\n\
                     22 1 0:21 / /proc rw,nosuid shared:12 - proc proc rw\n\
                     garbage line\n";
        let m = parse(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].mount_point, b"/mnt/parent dir");
        assert_eq!(m[0].fstype, "ext3");
        assert_eq!(m[0].source, "/dev/root");
        assert_eq!(m[1].mount_point, b"/proc");
        assert_eq!(m[1].fstype, "proc");
        assert_eq!(
            (m[0].dev.as_str(), m[0].mount_options.as_str()),
            ("98:0", "rw,noatime")
        );
        assert_eq!(m[0].super_options, "rw");
        assert!(!m[0].read_only());
        let ro = parse(b"1 0 254:0 / / ro,relatime - erofs /dev/mapper/pyre-root ro,user_xattr\n");
        assert!(ro[0].read_only());
        let sb_ro = parse(b"1 0 8:1 / / rw - ext4 /dev/sda1 ro\n");
        assert!(sb_ro[0].read_only());
    }
}
