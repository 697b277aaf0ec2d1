//! Canonical text encoding of a manifest and its strict parser (see docs/manifest.md).
//!
//! The parser decodes each line, then re-encodes it and requires the same bytes: so there is
//! exactly one accepted spelling of every manifest, and a digest pins the tree, not a spelling.
use std::collections::HashSet;
use std::fmt::Write as _;

use super::escape::{escape, unescape};
use super::{Entry, Kind, Manifest, ManifestError, FORMAT_VERSION};
use crate::sys::hex::{from_hex, to_hex};

const MAGIC: &str = "pyre-manifest";

pub fn encode(m: &Manifest) -> Vec<u8> {
    let mut s = String::with_capacity(64 + m.entries.len() * 120);
    let _ = writeln!(s, "{MAGIC} {FORMAT_VERSION}");
    for x in &m.excludes {
        let _ = writeln!(s, "exclude {}", escape(x));
    }
    for e in &m.entries {
        encode_entry(&mut s, e);
        s.push('\n');
    }
    let _ = writeln!(s, "end {}", m.entries.len());
    s.into_bytes()
}

fn encode_entry(s: &mut String, e: &Entry) {
    let _ = write!(
        s,
        "{} {} mode={:04o} uid={} gid={}",
        escape(&e.path),
        e.kind.as_str(),
        e.mode,
        e.uid,
        e.gid
    );
    if e.kind == Kind::File {
        let _ = write!(s, " size={}", e.size);
    }
    if let Some(h) = &e.sha256 {
        let _ = write!(s, " sha256={}", to_hex(h));
    }
    if let Some(t) = &e.target {
        let _ = write!(s, " target={}", escape(t));
    }
    if let Some((maj, min)) = e.rdev {
        let _ = write!(s, " rdev={maj}:{min}");
    }
    if let Some(h) = &e.hardlink {
        let _ = write!(s, " hardlink={}", escape(h));
    }
    for (k, v) in &e.xattrs {
        let _ = write!(s, " xattr={}={}", escape(k), to_hex(v));
    }
}

/// A path as the manifest allows it: `/`, or `/`-separated non-empty components that are
/// neither `.` nor `..`, with no trailing `/`.
pub fn valid_path(p: &[u8]) -> bool {
    if p == b"/" {
        return true;
    }
    p.first() == Some(&b'/')
        && p[1..]
            .split(|b| *b == b'/')
            .all(|c| !c.is_empty() && c != b"." && c != b"..")
}

fn parent(p: &[u8]) -> &[u8] {
    match p.iter().rposition(|b| *b == b'/') {
        Some(0) => b"/",
        Some(i) => &p[..i],
        None => b"",
    }
}

/// Whether `p` is strictly below `dir`.
pub fn is_below(p: &[u8], dir: &[u8]) -> bool {
    if dir == b"/" {
        return p.len() > 1;
    }
    p.len() > dir.len() && p.starts_with(dir) && p[dir.len()] == b'/'
}

pub fn decode(bytes: &[u8]) -> Result<Manifest, ManifestError> {
    let err = |line: usize, msg: String| ManifestError::Parse { line, msg };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        err(
            line,
            "not valid UTF-8 (non-UTF-8 names must be escaped)".into(),
        )
    })?;
    if text.is_empty() {
        return Err(err(1, "empty manifest".into()));
    }
    if !text.ends_with('\n') {
        let n = text.split('\n').count();
        return Err(err(n, "truncated: last line has no newline".into()));
    }
    let mut lines = text[..text.len() - 1]
        .split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l));
    let (_, first) = lines.next().unwrap_or((1, ""));
    match first.split_once(' ') {
        Some((MAGIC, v)) if v == FORMAT_VERSION.to_string() => {}
        Some((MAGIC, v)) => {
            return Err(err(
                1,
                format!("unsupported manifest version {v:?} (this pyre reads {FORMAT_VERSION})"),
            ))
        }
        _ => {
            return Err(err(
                1,
                format!("not a pyre manifest (expected \"{MAGIC} {FORMAT_VERSION}\")"),
            ))
        }
    }
    let mut m = Manifest::default();
    let mut dirs: HashSet<Vec<u8>> = HashSet::new();
    let mut leaders: HashSet<Vec<u8>> = HashSet::new();
    let mut ended = false;
    for (n, line) in lines {
        if ended {
            return Err(err(n, "content after the end line".into()));
        }
        if let Some(rest) = line.strip_prefix("exclude ") {
            if !m.entries.is_empty() {
                return Err(err(n, "exclude line after the first entry".into()));
            }
            let p = unescape(rest).map_err(|e| err(n, format!("exclude path: {e}")))?;
            if !valid_path(&p) || p == b"/" {
                return Err(err(n, format!("bad exclude path {rest:?}")));
            }
            if m.excludes
                .last()
                .is_some_and(|prev| prev.as_slice() >= p.as_slice())
            {
                return Err(err(
                    n,
                    "excludes not sorted by raw bytes or duplicated".into(),
                ));
            }
            m.excludes.push(p);
        } else if let Some(count) = line.strip_prefix("end ") {
            if count != m.entries.len().to_string() {
                return Err(err(
                    n,
                    format!("end line says {count} entries, found {}", m.entries.len()),
                ));
            }
            ended = true;
        } else {
            let e = decode_entry(line).map_err(|msg| err(n, msg))?;
            check_entry(&m, &e, &dirs, &leaders).map_err(|msg| err(n, msg))?;
            if e.kind == Kind::Dir {
                dirs.insert(e.path.clone());
            }
            if e.hardlink.as_ref() == Some(&e.path) {
                leaders.insert(e.path.clone());
            }
            m.entries.push(e);
        }
    }
    if !ended {
        let n = text.matches('\n').count();
        return Err(err(n, "truncated: missing the \"end <count>\" line".into()));
    }
    Ok(m)
}

fn check_entry(
    m: &Manifest,
    e: &Entry,
    dirs: &HashSet<Vec<u8>>,
    leaders: &HashSet<Vec<u8>>,
) -> Result<(), String> {
    let shown = escape(&e.path);
    if !valid_path(&e.path) {
        return Err(format!(
            "bad path {shown:?} (must be absolute, no empty/./.. parts)"
        ));
    }
    match m.entries.last() {
        None if e.path != b"/" || e.kind != Kind::Dir => {
            return Err("the first entry must be the root directory \"/\"".into())
        }
        Some(prev) if prev.path.as_slice() >= e.path.as_slice() => {
            return Err(format!(
                "{shown}: entries not sorted by raw path bytes or duplicated"
            ))
        }
        _ => {}
    }
    if e.path != b"/" && !dirs.contains(parent(&e.path)) {
        return Err(format!("{shown}: parent directory is not in the manifest"));
    }
    if m.excludes.iter().any(|x| is_below(&e.path, x)) {
        return Err(format!("{shown}: inside an excluded path"));
    }
    if let Some(l) = &e.hardlink {
        if e.kind == Kind::Dir {
            return Err(format!("{shown}: a directory cannot be a hardlink"));
        }
        if l != &e.path && !leaders.contains(l) {
            return Err(format!(
                "{shown}: hardlink group {} has no earlier leader entry naming itself",
                escape(l)
            ));
        }
    }
    Ok(())
}

fn decode_entry(line: &str) -> Result<Entry, String> {
    let mut tokens = line.split(' ');
    let path_tok = tokens.next().unwrap_or_default();
    let path = unescape(path_tok).map_err(|e| format!("path {path_tok:?}: {e}"))?;
    let kind_tok = tokens.next().ok_or("missing the entry type")?;
    let kind = Kind::parse(kind_tok).ok_or_else(|| format!("unknown entry type {kind_tok:?}"))?;
    let mut e = Entry {
        path,
        kind,
        mode: u32::MAX,
        uid: u32::MAX,
        gid: u32::MAX,
        size: 0,
        sha256: None,
        target: None,
        rdev: None,
        hardlink: None,
        xattrs: Vec::new(),
    };
    let mut seen: Vec<&str> = Vec::new();
    for tok in tokens {
        let (key, val) = tok
            .split_once('=')
            .ok_or_else(|| format!("field {tok:?} has no ="))?;
        if key != "xattr" && seen.contains(&key) {
            return Err(format!("field {key} given twice"));
        }
        seen.push(key);
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{key}={v}: not a number"))
        };
        match key {
            "mode" => {
                e.mode = u32::from_str_radix(val, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777 && val.len() == 4)
                    .ok_or_else(|| format!("mode={val}: expected 4 octal digits"))?
            }
            "uid" => e.uid = u32::try_from(num(val)?).map_err(|_| format!("uid={val}: too big"))?,
            "gid" => e.gid = u32::try_from(num(val)?).map_err(|_| format!("gid={val}: too big"))?,
            "size" => e.size = num(val)?,
            "sha256" => {
                let h = from_hex(val).filter(|h| h.len() == 32);
                let h = h.ok_or_else(|| format!("sha256={val}: expected 64 lowercase hex"))?;
                e.sha256 = Some(h.try_into().map_err(|_| "sha256 length")?);
            }
            "target" => e.target = Some(unescape(val).map_err(|x| format!("target {val:?}: {x}"))?),
            "rdev" => {
                let (a, b) = val
                    .split_once(':')
                    .ok_or(format!("rdev={val}: expected MAJ:MIN"))?;
                e.rdev = Some((num(a)?, num(b)?));
            }
            "hardlink" => {
                e.hardlink = Some(unescape(val).map_err(|x| format!("hardlink {val:?}: {x}"))?)
            }
            "xattr" => {
                let (name, value) = val
                    .rsplit_once('=')
                    .ok_or_else(|| format!("xattr {val:?}: expected NAME=HEX"))?;
                let name = unescape(name).map_err(|x| format!("xattr name {name:?}: {x}"))?;
                let value = from_hex(value)
                    .ok_or_else(|| format!("xattr value {value:?}: expected lowercase hex"))?;
                e.xattrs.push((name, value));
            }
            _ => return Err(format!("unknown field {key:?}")),
        }
    }
    for (key, missing) in [("mode", e.mode), ("uid", e.uid), ("gid", e.gid)] {
        if missing == u32::MAX && !seen.contains(&key) {
            return Err(format!("missing field {key}"));
        }
    }
    let needs = |f: &str| seen.contains(&f);
    let want: &[&str] = match kind {
        Kind::File => &["size", "sha256"],
        Kind::Symlink => &["target"],
        Kind::Char | Kind::Block => &["rdev"],
        _ => &[],
    };
    for f in want {
        if !needs(f) {
            return Err(format!("{} entry without {f}", kind.as_str()));
        }
    }
    for (f, allowed) in [
        ("size", kind == Kind::File),
        ("sha256", kind == Kind::File),
        ("target", kind == Kind::Symlink),
        ("rdev", matches!(kind, Kind::Char | Kind::Block)),
    ] {
        if needs(f) && !allowed {
            return Err(format!(
                "field {f} is not allowed on a {} entry",
                kind.as_str()
            ));
        }
    }
    if e.xattrs.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err("xattrs not sorted by raw name or duplicated".into());
    }
    let mut again = String::new();
    encode_entry(&mut again, &e);
    if again != line {
        return Err("entry not in canonical form (field order, spelling of numbers)".into());
    }
    Ok(e)
}

#[cfg(test)]
mod tests;
