//! The layering rule of the crate docs (agent/src/lib.rs), checked over the source: every
//! `crate::…` path and every `super::…` path that names a module is an import edge. The check
//! fails on an edge the rule does not allow, on a top-level module missing from the rule, and
//! on any cycle among the children of one module (a parent declares its children and a child
//! may use its ancestors' items, so those edges do not count). Run by `make lint`.
//!
//! Cross-module paths are read as written: reach another top-level module with `crate::…`
//! (a `super::super::…` that climbs out of an inline `mod` is not resolved).
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level modules and the ones each may import. Modules that do not exist yet are listed so
/// that they are held to the rule the day they land. `cmd` is the shell: nothing imports it.
const RULE: &[(&str, &[&str])] = &[
    ("sys", &[]),
    ("logging", &["sys"]),
    ("host", &["sys", "logging"]),
    ("manifest", &["sys", "logging", "host"]),
    ("keys", &["sys", "logging", "host"]),
    ("drift", &["sys", "logging", "host", "manifest", "keys"]),
    // init reads the image policy (its `root-check`) from the verified root, as enforce does.
    (
        "init",
        &[
            "sys", "logging", "host", "manifest", "keys", "drift", "config",
        ],
    ),
    (
        "enforce",
        &[
            "sys", "logging", "host", "manifest", "keys", "drift", "config",
        ],
    ),
    ("config", &["sys", "logging", "host", "keys"]),
    ("providers", &["sys", "logging", "host", "config"]),
    ("volumes", &["sys", "logging", "host", "config"]),
    ("logship", &["sys", "logging", "host", "config"]),
    // `pyre boot` joins config, providers and volumes, and extends init's boot record.
    (
        "boot",
        &[
            "sys",
            "logging",
            "host",
            "manifest",
            "keys",
            "drift",
            "init",
            "config",
            "providers",
            "volumes",
        ],
    ),
    (
        "daemon",
        &[
            "sys", "logging", "host", "manifest", "keys", "drift", "config", "logship", "enforce",
        ],
    ),
    (
        "cmd",
        &[
            "sys",
            "logging",
            "host",
            "manifest",
            "keys",
            "drift",
            "init",
            "enforce",
            "config",
            "providers",
            "volumes",
            "logship",
            "boot",
            "daemon",
        ],
    ),
];

type Module = Vec<String>;

/// One import: the file and line it is on, the importing and the imported module.
#[derive(Debug, Clone)]
struct Edge {
    at: String,
    from: Module,
    to: Module,
}

/// Module path of a source file below `src/` (`manifest/scan.rs` is manifest::scan).
fn module_of(rel: &Path) -> Module {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib") {
        parts.push(stem.to_string());
    }
    parts
}

/// Every `.rs` file below `src` but the binary's `main.rs`: (relative path, text).
fn sources(src: &Path) -> Vec<(String, String)> {
    fn walk(dir: &Path, src: &Path, out: &mut Vec<(String, String)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, src, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(src).unwrap().to_string_lossy().into_owned();
                if rel != "main.rs" {
                    out.push((rel, std::fs::read_to_string(&p).unwrap()));
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(src, src, &mut out);
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths of a use tree starting at `s` (after `crate::` or the `super::`s): `a::b::{c,
/// d::{e}}` gives a::b::c and a::b::d::e. Returns the paths and the bytes consumed.
fn use_tree(s: &str, prefix: &[String], out: &mut Vec<Module>) -> usize {
    let mut path = prefix.to_vec();
    let mut i = 0;
    let b = s.as_bytes();
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < b.len() && b[i] == b'{' {
            i += 1;
            loop {
                i += use_tree(&s[i..], &path, out);
                while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b',') {
                    i += 1;
                }
                if i >= b.len() || b[i] == b'}' {
                    return (i + 1).min(b.len());
                }
            }
        }
        let start = i;
        while i < b.len() && is_ident(b[i] as char) {
            i += 1;
        }
        if i == start {
            break;
        }
        let seg = &s[start..i];
        if seg != "self" {
            path.push(seg.to_string());
        }
        if s[i..].starts_with("::") {
            i += 2;
        } else {
            break;
        }
    }
    out.push(path);
    i
}

/// The module paths `text` refers to, by line, resolved against the file's module `me`.
fn references(me: &Module, text: &str) -> Vec<(usize, Module)> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.find("//").map_or(raw, |c| &raw[..c]);
        let mut at = 0;
        while at < line.len() {
            let tail = &line[at..];
            let starts_word = !line[..at].chars().next_back().is_some_and(is_ident);
            let (base, skip) = if starts_word && tail.starts_with("crate::") {
                (Some(Vec::new()), "crate::".len())
            } else if starts_word && tail.starts_with("super::") {
                let mut ups = 0;
                while tail[ups * "super::".len()..].starts_with("super::") {
                    ups += 1;
                }
                let keep = me.len().saturating_sub(ups);
                (Some(me[..keep].to_vec()), ups * "super::".len())
            } else {
                (None, tail.chars().next().map_or(1, char::len_utf8))
            };
            at += skip;
            if let Some(base) = base {
                let mut paths = Vec::new();
                at += use_tree(&line[at..], &base, &mut paths);
                out.extend(paths.into_iter().map(|p| (n + 1, p)));
            }
        }
    }
    out
}

/// The longest prefix of `path` that is a module.
fn resolve(path: &[String], modules: &BTreeSet<Module>) -> Module {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains(p))
        .unwrap_or_default()
}

fn edges(files: &[(String, String)]) -> Vec<Edge> {
    let modules: BTreeSet<Module> = files.iter().map(|(f, _)| module_of(Path::new(f))).collect();
    let mut out = Vec::new();
    for (file, text) in files {
        let me = module_of(Path::new(file));
        for (line, path) in references(&me, text) {
            let to = resolve(&path, &modules);
            // A module may use its own items and its ancestors' (which declare it).
            if to.is_empty() || me.starts_with(&to) {
                continue;
            }
            out.push(Edge {
                at: format!("src/{file}:{line}"),
                from: me.clone(),
                to,
            });
        }
    }
    out
}

fn breaches(edges: &[Edge], modules: &BTreeSet<Module>) -> Vec<String> {
    let rule: BTreeMap<&str, &[&str]> = RULE.iter().copied().collect();
    let mut out = Vec::new();
    for top in modules.iter().filter_map(|m| m.first()) {
        if !rule.contains_key(top.as_str()) {
            out.push(format!(
                "module {top} is not in the layering rule (tests/layering.rs, src/lib.rs)"
            ));
        }
    }
    for e in edges {
        let (f, t) = (&e.from[0], &e.to[0]);
        if f != t
            && !rule
                .get(f.as_str())
                .is_some_and(|ok| ok.contains(&t.as_str()))
        {
            out.push(format!(
                "{}: {} imports {}, which the layering rule forbids",
                e.at,
                e.from.join("::"),
                e.to.join("::")
            ));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Cycles among the children of each module, e.g. `manifest: scan -> walk -> scan`.
fn cycles(edges: &[Edge], modules: &BTreeSet<Module>) -> Vec<String> {
    let mut parents: BTreeSet<Module> = modules
        .iter()
        .filter(|m| !m.is_empty())
        .map(|m| m[..m.len() - 1].to_vec())
        .collect();
    parents.insert(Vec::new());
    let mut out = Vec::new();
    for p in &parents {
        let child =
            |m: &Module| (m.len() > p.len() && m.starts_with(p)).then(|| m[p.len()].clone());
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for e in edges {
            if let (Some(a), Some(b)) = (child(&e.from), child(&e.to)) {
                if a != b {
                    graph.entry(a).or_default().insert(b);
                }
            }
        }
        if let Some(cycle) = find_cycle(&graph) {
            let scope = if p.is_empty() {
                "crate".into()
            } else {
                p.join("::")
            };
            out.push(format!("import cycle in {scope}: {}", cycle.join(" -> ")));
        }
    }
    out
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut c = stack[i..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for m in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, graph, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

fn check(files: &[(String, String)]) -> Vec<String> {
    let modules: BTreeSet<Module> = files.iter().map(|(f, _)| module_of(Path::new(f))).collect();
    let e = edges(files);
    let mut problems = breaches(&e, &modules);
    problems.extend(cycles(&e, &modules));
    problems
}

#[test]
fn the_crate_keeps_its_layering_rule() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = sources(&src);
    assert!(files.len() > 30, "read the sources of {}", src.display());
    let problems = check(&files);
    assert!(
        problems.is_empty(),
        "layering rule broken:\n  {}",
        problems.join("\n  ")
    );
}

fn tree(files: &[(&str, &str)]) -> Vec<(String, String)> {
    files
        .iter()
        .map(|(f, t)| (f.to_string(), t.to_string()))
        .collect()
}

#[test]
fn a_breach_an_unknown_module_and_cycles_are_caught() {
    let files = tree(&[
        (
            "lib.rs",
            "pub mod sys; pub mod host; pub mod init; pub mod gadgets;",
        ),
        ("sys/mod.rs", "pub mod a;\npub mod b;"),
        ("sys/a.rs", "use super::b::thing;"),
        (
            "sys/b.rs",
            "// use crate::host::Ignored;\nuse super::{a::{self, other}};",
        ),
        (
            "host/mod.rs",
            "use crate::{sys::a, init::boot::Thing}; // crate::cmd",
        ),
        ("init/mod.rs", "pub mod boot;"),
        ("init/boot.rs", "use crate::host::Host;\nuse super::Parent;"),
        ("gadgets.rs", ""),
    ]);
    let problems = check(&files);
    assert_eq!(
        problems,
        [
            "module gadgets is not in the layering rule (tests/layering.rs, src/lib.rs)",
            "src/host/mod.rs:1: host imports init::boot, which the layering rule forbids",
            "import cycle in crate: host -> init -> host",
            "import cycle in sys: a -> b -> a",
        ],
        "{problems:#?}"
    );
}

#[test]
fn use_trees_and_super_paths_resolve() {
    let me: Module = vec!["manifest".into(), "scan".into()];
    let refs = references(
        &me,
        "use crate::{sys::{hex::to_hex, mountinfo}, keys};\nlet x = super::super::drift::f(crate::host::dm::X);",
    );
    let paths: Vec<String> = refs.iter().map(|(_, p)| p.join("::")).collect();
    assert_eq!(
        paths,
        [
            "sys::hex::to_hex",
            "sys::mountinfo",
            "keys",
            "drift::f",
            "host::dm::X"
        ]
    );
}
