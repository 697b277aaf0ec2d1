use super::compare::compare;
use super::*;
use crate::manifest::{Entry, Kind};

fn e(path: &str, kind: Kind) -> Entry {
    Entry {
        path: path.as_bytes().to_vec(),
        kind,
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: 0,
        sha256: (kind == Kind::File).then_some([1; 32]),
        target: None,
        rdev: None,
        hardlink: None,
        xattrs: Vec::new(),
    }
}

fn found(entries: &[Entry], states: &[(&str, State)]) -> Vec<Scanned> {
    entries
        .iter()
        .map(|x| Scanned {
            entry: x.clone(),
            state: states
                .iter()
                .find(|(p, _)| p.as_bytes() == x.path)
                .map_or(State::Ok, |(_, s)| s.clone()),
        })
        .collect()
}

fn kinds(changes: &[Change]) -> Vec<(String, &'static str)> {
    changes
        .iter()
        .map(|c| (c.path.clone(), c.detail.kind()))
        .collect()
}

fn tree() -> Vec<Entry> {
    vec![
        e("/", Kind::Dir),
        e("/a", Kind::Dir),
        e("/a-b", Kind::File),
        e("/a/x", Kind::File),
        e("/a/y", Kind::Dir),
        e("/a/y/z", Kind::File),
        e("/b", Kind::File),
    ]
}

#[test]
fn shadowed_directory_hides_its_subtree_only() {
    let exp = tree();
    // The live side of a mount point has no children (the walk stops there).
    let live: Vec<Entry> = exp
        .iter()
        .filter(|x| !x.path.starts_with(b"/a/"))
        .cloned()
        .collect();
    let mount = State::MountPoint {
        excluded: false,
        mount: None,
    };
    let changes = compare(&exp, &found(&live, &[("/a", mount)]), &[]);
    assert_eq!(kinds(&changes), vec![("/a".to_string(), "shadowed")]);
    match &changes[0].detail {
        Detail::Shadowed { hidden_entries, .. } => assert_eq!(*hidden_entries, 3),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unreadable_directory_does_not_report_children_removed() {
    let exp = tree();
    let live: Vec<Entry> = exp
        .iter()
        .filter(|x| !x.path.starts_with(b"/a/y/"))
        .cloned()
        .collect();
    let unreadable = State::Unreadable("listing directory: Permission denied".into());
    let changes = compare(&exp, &found(&live, &[("/a/y", unreadable)]), &[]);
    assert_eq!(kinds(&changes), vec![("/a/y".to_string(), "unreadable")]);
}

#[test]
fn type_change_reports_removed_children() {
    let exp = tree();
    let mut live: Vec<Entry> = exp
        .iter()
        .filter(|x| !x.path.starts_with(b"/a/y/"))
        .cloned()
        .collect();
    live[4] = e("/a/y", Kind::Symlink);
    live[4].target = Some(b"/elsewhere".to_vec());
    let changes = compare(&exp, &found(&live, &[]), &[]);
    assert_eq!(
        kinds(&changes),
        vec![
            ("/a/y".to_string(), "type-changed"),
            ("/a/y/z".to_string(), "removed")
        ]
    );
}

#[test]
fn excluded_mount_point_checks_type_only() {
    let exp = tree();
    let mut live = exp.clone();
    live[1].mode = 0o555;
    let mount = State::MountPoint {
        excluded: true,
        mount: None,
    };
    let live: Vec<Entry> = live
        .into_iter()
        .filter(|x| !x.path.starts_with(b"/a/"))
        .collect();
    let exp: Vec<Entry> = exp
        .into_iter()
        .filter(|x| !x.path.starts_with(b"/a/"))
        .collect();
    assert!(compare(&exp, &found(&live, &[("/a", mount)]), &[b"/a".to_vec()]).is_empty());
}

#[test]
fn text_rendering_groups_changes_after_a_summary_line() {
    let old = Manifest {
        excludes: vec![],
        entries: tree(),
    };
    let mut new = old.clone();
    new.entries[6].mode = 0o4755;
    new.entries.remove(3);
    let r = diff(&old, "sha256:00", &new, "sha256:11");
    let mut out = Vec::new();
    r.render_text(&mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "CHANGED: sha256:00 -> sha256:11: 2 changes (7 -> 6 entries)\n\
         modified (1):\n  /b  mode: 0644 -> 4755\n\
         removed (1):\n  /a/x  file 0644 0:0 0 bytes\n"
    );
    assert!(!r.is_identical());
    let same = diff(&old, "sha256:00", &old, "sha256:00");
    assert!(same.is_identical());
}

#[test]
fn excluded_paths_are_checked_for_type_only() {
    let exp = tree();
    let mut live = exp.clone();
    live[6].mode = 0o600;
    live[6].sha256 = Some([2; 32]);
    let excludes = vec![b"/b".to_vec()];
    assert!(compare(&exp, &found(&live, &[]), &excludes).is_empty());
    live[6] = e("/b", Kind::Dir);
    let changes = compare(&exp, &found(&live, &[]), &excludes);
    assert_eq!(kinds(&changes), vec![("/b".to_string(), "type-changed")]);
    live.remove(6);
    let changes = compare(&exp, &found(&live, &[]), &excludes);
    assert_eq!(kinds(&changes), vec![("/b".to_string(), "removed")]);
}

#[test]
fn a_metadata_only_comparison_ignores_content_but_not_the_rest() {
    let exp = tree();
    let mut live = exp.clone();
    // A metadata-only scan leaves every found digest empty...
    for x in live.iter_mut() {
        x.sha256 = None;
    }
    assert!(compare::compare_with(&exp, &found(&live, &[]), &[], false).is_empty());
    assert_eq!(compare(&exp, &found(&live, &[]), &[]).len(), 4);
    // ...and still sees a changed mode, size or a file that is gone.
    live[3].mode = 0o4755;
    live[6].size = 7;
    live.remove(2);
    let changes = compare::compare_with(&exp, &found(&live, &[]), &[], false);
    assert_eq!(
        kinds(&changes),
        [
            ("/a-b".to_string(), "removed"),
            ("/a/x".to_string(), "modified"),
            ("/b".to_string(), "modified"),
        ]
    );
}

/// The real walker in metadata mode opens no file: an unreadable file (mode 000, read as a
/// user without CAP_DAC_READ_SEARCH) or one changed in content only is not drift.
#[test]
fn verify_root_in_metadata_mode_reads_no_content() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("d")).unwrap();
    std::fs::write(root.join("d/f"), b"sealed").unwrap();
    std::fs::write(dir.path().join("mountinfo"), b"").unwrap();
    let m = crate::manifest::seal(&root, &[], &[], 1).unwrap();
    std::fs::write(dir.path().join("manifest"), m.encode()).unwrap();
    std::fs::write(root.join("d/f"), b"SEALED").unwrap();
    let (manifest, mountinfo) = (dir.path().join("manifest"), dir.path().join("mountinfo"));
    let req = |content| VerifyRequest {
        root: &root,
        manifest: &manifest,
        pubkey: None,
        mountinfo: &mountinfo,
        content,
    };
    let r = verify_root(&req(ContentCheck::Metadata)).unwrap();
    assert!(r.is_clean(), "{:?}", r.changes);
    assert_eq!((r.counts.files_hashed, r.counts.bytes_hashed), (0, 0));
    let r = verify_root(&req(ContentCheck::Hash)).unwrap();
    assert_eq!(kinds(&r.changes), [("/d/f".to_string(), "modified")]);
    std::fs::write(root.join("d/f"), b"longer, and so a new size").unwrap();
    let r = verify_root(&req(ContentCheck::Metadata)).unwrap();
    assert_eq!(kinds(&r.changes), [("/d/f".to_string(), "modified")]);
}
