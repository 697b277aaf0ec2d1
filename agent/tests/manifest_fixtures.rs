//! The manifest parser against kept fixtures: one good manifest with every entry kind and
//! field, and deliberately bad ones that must each fail with a clear, located message.
use std::path::Path;

use pyre::manifest::Manifest;

fn fixture(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn good_manifest_round_trips_byte_for_byte() {
    let bytes = fixture("good.manifest");
    let m = Manifest::decode(&bytes).unwrap();
    assert_eq!(m.entries.len(), 16);
    assert_eq!(m.excludes, vec![b"/proc".to_vec(), b"/run".to_vec()]);
    assert_eq!(m.encode(), bytes);
    let latin = m
        .entries
        .iter()
        .find(|e| e.path == b"/etc/caf\xe9")
        .unwrap();
    assert_eq!(latin.size, 0);
    let cafe = m
        .entries
        .iter()
        .find(|e| e.path == "/etc/café".as_bytes())
        .unwrap();
    assert_eq!(cafe.xattrs[1], (b"user.a b".to_vec(), vec![]));
}

#[test]
fn bad_manifests_fail_with_located_messages() {
    let cases: &[(&str, &str)] = &[
        ("empty", "manifest line 1: empty manifest"),
        ("wrong-magic", "line 1: not a pyre manifest"),
        (
            "future-version",
            "line 1: unsupported manifest version \"2\"",
        ),
        ("truncated-mid-line", "truncated: last line has no newline"),
        (
            "truncated-no-end",
            "truncated: missing the \"end <count>\" line",
        ),
        ("wrong-count", "line 20: end line says 15 entries, found 16"),
        ("unknown-type", "line 11: unknown entry type \"pipe\""),
        ("unknown-field", "line 12: unknown field \"mtime\""),
        ("field-order", "line 5: entry not in canonical form"),
        ("short-mode", "line 5: mode=755: expected 4 octal digits"),
        ("device-without-rdev", "line 7: char entry without rdev"),
        (
            "size-on-fifo",
            "line 11: field size is not allowed on a fifo entry",
        ),
        (
            "uppercase-escape",
            "line 10: path \"/etc/caf\\\\xE9\": bad escape",
        ),
        (
            "needless-escape",
            "line 19: target \"../lib/with\\\\x41\": not in canonical escaped form",
        ),
        ("unsorted", "line 7: /dev/loop0: entries not sorted"),
        (
            "duplicate",
            "line 7: /dev/loop0: entries not sorted by raw path bytes or duplicated",
        ),
        (
            "parent-not-dir",
            "line 17: /usr/bin/a: parent directory is not in the manifest",
        ),
        ("inside-exclude", "line 15: /run/x: inside an excluded path"),
        (
            "hardlink-no-leader",
            "no earlier leader entry naming itself",
        ),
        ("short-sha256", "line 17: sha256="),
        ("excludes-unsorted", "line 4: excludes not sorted"),
        ("crlf", "line 11: "),
        ("double-space", "line 11: unknown entry type \"\""),
        ("uid-too-big", "line 6: uid=4294967296: too big"),
        ("uid-leading-zero", "line 6: entry not in canonical form"),
        ("dotdot", "line 11: bad path \"/etc/../fifo\""),
        ("after-end", "line 21: content after the end line"),
        ("raw-non-utf8", "line 3: not valid UTF-8"),
        ("xattrs-unsorted", "line 9: xattrs not sorted"),
        (
            "no-root",
            "line 2: the first entry must be the root directory",
        ),
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad-manifests");
    let on_disk = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(
        on_disk,
        cases.len(),
        "every fixture has a case and every case a fixture"
    );
    for (name, want) in cases {
        let err = Manifest::decode(&fixture(&format!("bad-manifests/{name}.manifest")))
            .expect_err(name)
            .to_string();
        assert!(
            err.contains(want),
            "{name}: {err:?} should contain {want:?}"
        );
    }
}
