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

const STORED: &[u8] = include_bytes!("../../tests/fixtures/report/drift.json");

#[test]
fn a_stored_report_reads_back_to_the_same_json() {
    let r = DriftReport::from_json(STORED).unwrap();
    assert_eq!(r.changes.len(), 5);
    let again = serde_json::to_value(&r).unwrap();
    let orig: serde_json::Value = serde_json::from_slice(STORED).unwrap();
    assert_eq!(again, orig);
    let mut text = Vec::new();
    r.render_text(&mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.starts_with("DRIFT: / differs from sha256:3fe0"),
        "{text}"
    );
    assert!(
        text.contains("shadowed (1):\n  /opt/app  mount of tmpfs (tmpfs) hides 12"),
        "{text}"
    );
}

#[test]
fn a_stored_report_it_cannot_decode_is_named_and_still_rendered() {
    let mut v: serde_json::Value = serde_json::from_slice(STORED).unwrap();
    v["changes"][2]["kind"] = "moved".into();
    let err = DriftReport::from_value(&v).unwrap_err();
    assert!(err.starts_with("at changes[2]"), "{err}");
    assert!(err.contains("unknown variant `moved`"), "{err}");
    let mut text = Vec::new();
    crate::drift::render_text_value(&v, &err, &mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("DRIFT: / differs from sha256:3fe0"),
        "{text}"
    );
    assert!(
        lines[0].contains("5 changes (not fully read by pyre"),
        "{text}"
    );
    assert_eq!(lines[1], "modified (2):", "{text}");
    assert!(
        lines[2].starts_with("  /usr/bin/ls  {\"attributes\":[{"),
        "{text}"
    );
    assert_eq!(&lines[4..6], ["removed (1):", "  /etc/passwd  {\"expected\":{\"gid\":0,\"mode\":\"0644\",\"sha256\":\"sha256:037d604c1c026b9f815eaeda9bad221290c9f6354587d3ca87f54c4b7466fad4\",\"size\":26,\"type\":\"file\",\"uid\":0}}"], "{text}");
    assert_eq!(lines[lines.len() - 2], "moved (1):", "{text}");
    assert_eq!(
        lines[lines.len() - 1],
        "  /opt/app  {\"fstype\":\"tmpfs\",\"hidden_entries\":12,\"source\":\"tmpfs\"}",
        "{text}"
    );
}
