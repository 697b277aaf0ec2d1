use super::*;

fn entry(path: &[u8], kind: Kind) -> Entry {
    Entry {
        path: path.to_vec(),
        kind,
        mode: 0o755,
        uid: 0,
        gid: 0,
        size: 0,
        sha256: None,
        target: None,
        rdev: None,
        hardlink: None,
        xattrs: Vec::new(),
    }
}

fn sample() -> Manifest {
    let mut file = entry(b"/a b\xff", Kind::File);
    file.sha256 = Some([0xab; 32]);
    file.size = 42;
    file.mode = 0o4755;
    file.uid = 4_294_967_295;
    file.xattrs = vec![
        (b"security.ima".to_vec(), vec![0, 1]),
        (b"user.x".to_vec(), vec![]),
    ];
    let mut link = entry(b"/l", Kind::Symlink);
    link.target = Some(b"/target with\nnewline".to_vec());
    let mut dev = entry(b"/null", Kind::Char);
    dev.rdev = Some((1, 3));
    Manifest {
        excludes: vec![b"/proc".to_vec()],
        entries: vec![
            entry(b"/", Kind::Dir),
            file,
            link,
            dev,
            entry(b"/proc", Kind::Dir),
        ],
    }
}

#[test]
fn encode_decode_round_trip() {
    let m = sample();
    let bytes = encode(&m);
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        text.contains("\n/a\\x20b\\xff file mode=4755 uid=4294967295 gid=0 size=42 sha256=abab")
    );
    assert!(text.contains(" xattr=security.ima=0001 xattr=user.x=\n"));
    assert!(
        text.contains("\n/l symlink mode=0755 uid=0 gid=0 target=/target\\x20with\\x0anewline\n")
    );
    assert!(text.ends_with("\nend 5\n"));
    assert_eq!(decode(&bytes).unwrap(), m);
}

#[test]
fn path_rules() {
    for good in [&b"/"[..], b"/a", b"/a/b", b"/.a", b"/a..", b"/\xff"] {
        assert!(valid_path(good), "{good:?}");
    }
    for bad in [&b""[..], b"a", b"/a/", b"//a", b"/a/./b", b"/..", b"/a//b"] {
        assert!(!valid_path(bad), "{bad:?}");
    }
    assert!(is_below(b"/a/b", b"/a"));
    assert!(!is_below(b"/ab", b"/a"));
    assert!(!is_below(b"/a", b"/a"));
    assert!(is_below(b"/a", b"/"));
    assert_eq!(parent(b"/a/b"), b"/a");
    assert_eq!(parent(b"/a"), b"/");
}

#[test]
fn normalize_exclude_table() {
    use super::super::normalize_exclude;
    let ok: &[(&[u8], &[u8])] = &[
        (b"/proc", b"/proc"),
        (b"/run/", b"/run"),
        (b"/a/b", b"/a/b"),
    ];
    for (raw, want) in ok {
        assert_eq!(normalize_exclude(raw).unwrap(), want.to_vec());
    }
    let bad: &[(&[u8], &str)] = &[
        (b"proc", "must start with /"),
        (b"/", "excluding the root"),
        (b"/a/../b", "component"),
        (b"//a", "component"),
    ];
    for (raw, want) in bad {
        let e = normalize_exclude(raw).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
}
