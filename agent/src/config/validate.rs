//! Semantic checks serde cannot make. Every problem names its JSON path; none quotes a secret.
use std::collections::BTreeSet;
use std::fmt;

use base64::Engine as _;

use super::types::{Config, Encoding, File, LogSource, Logs, Selector, Sink, Volume};
use super::CONFIG_VERSION;

/// One problem: the JSON path (`volumes[0].mountpoint`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub msg: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() || self.path == "." {
            f.write_str(&self.msg)
        } else {
            write!(f, "{}: {}", self.path, self.msg)
        }
    }
}

/// Directories of the sealed root: no volume is mounted on or under them.
pub const SEALED_DIRS: &[&str] = &[
    "/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot", "/proc",
    "/sys", "/dev", "/run",
];

/// pyre's own records under /run: config files may not write there.
pub const PYRE_RUN_DIR: &str = "/run/pyre";

#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn err(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            msg: msg.into(),
        });
    }
}

/// All semantic problems of `c`, in document order (empty: valid).
pub fn check(c: &Config) -> Vec<Problem> {
    let mut k = Checker::default();
    if c.version != CONFIG_VERSION {
        k.err(
            "version",
            format!(
                "unsupported config version {}, this pyre reads version {CONFIG_VERSION}",
                c.version
            ),
        );
    }
    if let Some(h) = &c.hostname {
        if let Err(m) = hostname(h) {
            k.err("hostname", m);
        }
    }
    let mounts: Vec<&str> = c.volumes.iter().map(|v| v.mountpoint.as_str()).collect();
    let mut seen = BTreeSet::new();
    for (i, f) in c.files.iter().enumerate() {
        file(&mut k, &format!("files[{i}]"), f, &mounts, &mut seen);
    }
    for (name, value) in &c.environment {
        let p = format!("environment.{name}");
        if !env_name(name) {
            k.err(
                &p,
                "not a valid variable name (letters, digits and _, not starting with a digit)",
            );
        }
        if value.expose().contains(['\0', '\n', '\r']) {
            k.err(
                &p,
                "the value contains a NUL or a line break (value not shown: secret)",
            );
        }
    }
    volumes(&mut k, &c.volumes);
    if let Some(l) = &c.logs {
        logs(&mut k, l);
    }
    if let Some(d) = &c.drift {
        if d.interval.is_zero() {
            k.err("drift.interval", "must be more than zero");
        }
        if let Some(u) = &d.report_url {
            if let Err(m) = url_with(u, &["http", "https"]) {
                k.err("drift.report-url", m);
            }
        }
    }
    if let Some(l) = &c.lifetime {
        if l.max_age.is_zero() {
            k.err("lifetime.max-age", "must be more than zero");
        }
        if l.jitter >= l.max_age {
            k.err("lifetime.jitter", "must be less than max-age");
        }
    }
    k.problems
}

/// RFC 1123 host name, at most 64 bytes (the kernel's limit).
pub fn hostname(h: &str) -> Result<(), String> {
    if h.is_empty() || h.len() > 64 {
        return Err(format!("{h:?} must be 1 to 64 characters"));
    }
    for label in h.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "{h:?} is not an RFC 1123 host name (dot-separated labels of letters, digits and \
                 inner hyphens)"
            ));
        }
    }
    Ok(())
}

/// An absolute path with no empty, `.` or `..` components and no trailing slash.
pub fn clean_absolute(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!("{p:?} is not an absolute path"));
    }
    if p.len() > 4095 || p.contains('\0') {
        return Err("path is too long or contains a NUL".into());
    }
    if p == "/" {
        return Ok(());
    }
    for comp in p[1..].split('/') {
        match comp {
            "" => return Err(format!("{p:?} has an empty component or a trailing slash")),
            "." | ".." => return Err(format!("{p:?} contains {comp:?}")),
            _ => {}
        }
    }
    Ok(())
}

/// Whether `p` is strictly below directory `dir` (both clean absolute paths).
pub fn is_below(p: &str, dir: &str) -> bool {
    p.strip_prefix(dir)
        .is_some_and(|rest| rest.starts_with('/'))
        || (dir == "/" && p != "/")
}

fn file(k: &mut Checker, at: &str, f: &File, mounts: &[&str], seen: &mut BTreeSet<String>) {
    let path = format!("{at}.path");
    match clean_absolute(&f.path) {
        Err(m) => k.err(&path, m),
        Ok(()) => {
            let in_run = is_below(&f.path, "/run");
            let in_volume = mounts.iter().any(|m| is_below(&f.path, m));
            if f.path == PYRE_RUN_DIR || is_below(&f.path, PYRE_RUN_DIR) {
                k.err(
                    &path,
                    format!("{:?} is under /run/pyre, which pyre owns", f.path),
                );
            } else if !in_run && !in_volume {
                k.err(
                    &path,
                    format!(
                        "{:?} is not under /run or a volume's mountpoint (the root is read-only)",
                        f.path
                    ),
                );
            }
            if !seen.insert(f.path.clone()) {
                k.err(&path, format!("{:?} is given twice", f.path));
            }
        }
    }
    if let Err(m) = mode(&f.mode) {
        k.err(format!("{at}.mode"), m);
    }
    if let Some(o) = &f.owner {
        if let Err(m) = owner(o) {
            k.err(format!("{at}.owner"), m);
        }
    }
    if f.encoding == Encoding::Base64 && decode_base64(f.content.expose()).is_err() {
        k.err(
            format!("{at}.content"),
            "not valid base64 (value not shown: secret)",
        );
    }
}

/// `0600` / `600` → 0o600; no setuid, setgid or sticky bits.
pub fn mode(m: &str) -> Result<u32, String> {
    let digits = m.strip_prefix('0').filter(|d| d.len() == 3).unwrap_or(m);
    if digits.len() == 4 && digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(format!(
            "{m:?}: setuid, setgid and sticky bits are not allowed"
        ));
    }
    if digits.len() != 3 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(format!("{m:?} is not an octal mode such as \"0640\""));
    }
    u32::from_str_radix(digits, 8).map_err(|e| e.to_string())
}

/// One side of an owner: a numeric id or a name to look up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Id {
    Num(u32),
    Name(String),
}

/// `USER:GROUP`, each a name or a number.
pub fn owner(o: &str) -> Result<(Id, Id), String> {
    let bad = || format!("{o:?} is not \"USER:GROUP\" (names or numeric ids)");
    let (u, g) = o.split_once(':').ok_or_else(bad)?;
    let side = |s: &str| -> Option<Id> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse::<u32>()
                .ok()
                .filter(|&n| n != u32::MAX)
                .map(Id::Num);
        }
        let name_ok = !s.is_empty()
            && s.len() <= 32
            && s.bytes().enumerate().all(|(i, b)| {
                b.is_ascii_lowercase()
                    || b == b'_'
                    || (i > 0 && (b.is_ascii_digit() || b == b'-' || b == b'.'))
                    || (i > 0 && i == s.len() - 1 && b == b'$')
            });
        name_ok.then(|| Id::Name(s.to_owned()))
    };
    Ok((side(u).ok_or_else(bad)?, side(g).ok_or_else(bad)?))
}

pub fn decode_base64(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(compact)
}

pub fn env_name(n: &str) -> bool {
    !n.is_empty()
        && !n.starts_with(|c: char| c.is_ascii_digit())
        && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn volumes(k: &mut Checker, vs: &[Volume]) {
    let mut names = BTreeSet::new();
    for (i, v) in vs.iter().enumerate() {
        let at = format!("volumes[{i}]");
        if v.name.is_empty()
            || v.name.len() > 64
            || !v
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            k.err(
                format!("{at}.name"),
                format!(
                    "{:?} must be 1 to 64 letters, digits, '-', '_' or '.'",
                    v.name
                ),
            );
        } else if !names.insert(v.name.as_str()) {
            k.err(format!("{at}.name"), format!("{:?} is given twice", v.name));
        }
        device(k, &format!("{at}.device"), v);
        let mp = format!("{at}.mountpoint");
        match clean_absolute(&v.mountpoint) {
            Err(m) => k.err(&mp, m),
            Ok(()) if v.mountpoint == "/" => k.err(&mp, "cannot mount over the root"),
            Ok(()) => {
                if let Some(s) = SEALED_DIRS
                    .iter()
                    .find(|s| v.mountpoint == **s || is_below(&v.mountpoint, s))
                {
                    k.err(
                        &mp,
                        format!(
                            "{:?} is in {s}, which belongs to the sealed system or the runtime",
                            v.mountpoint
                        ),
                    );
                }
                for (j, w) in vs.iter().enumerate().take(i) {
                    if w.mountpoint == v.mountpoint {
                        k.err(
                            &mp,
                            format!("{:?} is also volumes[{j}]'s mountpoint", v.mountpoint),
                        );
                    } else if is_below(&v.mountpoint, &w.mountpoint)
                        || is_below(&w.mountpoint, &v.mountpoint)
                    {
                        k.err(
                            &mp,
                            format!(
                                "{:?} nests with volumes[{j}]'s mountpoint {:?}",
                                v.mountpoint, w.mountpoint
                            ),
                        );
                    }
                }
            }
        }
        if let Some(l) = &v.label {
            if l.is_empty()
                || l.len() > 16
                || l.contains(['/', '\0'])
                || l.contains(char::is_whitespace)
            {
                k.err(
                    format!("{at}.label"),
                    format!("{l:?} must be 1 to 16 bytes with no '/' or spaces"),
                );
            }
        }
        for (j, o) in v.options.iter().enumerate() {
            if o.is_empty() || o.contains([',', '\0']) || o.contains(char::is_whitespace) {
                k.err(
                    format!("{at}.options[{j}]"),
                    format!("{o:?} must be one option, without commas or spaces"),
                );
            }
        }
    }
}

fn device(k: &mut Checker, at: &str, v: &Volume) {
    let sel = v.device.selectors();
    if sel.len() != 1 {
        k.err(
            at,
            "give exactly one of path, label, uuid, partlabel, partuuid, serial",
        );
        return;
    }
    let (field, value) = match sel[0] {
        Selector::Path(s) => ("path", s),
        Selector::Label(s) => ("label", s),
        Selector::Uuid(s) => ("uuid", s),
        Selector::Partlabel(s) => ("partlabel", s),
        Selector::Partuuid(s) => ("partuuid", s),
        Selector::Serial(s) => ("serial", s),
    };
    let at = format!("{at}.{field}");
    if value.is_empty() || value.len() > 255 || value.contains('\0') {
        k.err(at, "must be 1 to 255 bytes");
    } else if field == "path" && (clean_absolute(value).is_err() || !is_below(value, "/dev")) {
        k.err(at, format!("{value:?} is not a clean path under /dev"));
    }
}

fn logs(k: &mut Checker, l: &Logs) {
    for (i, s) in l.sources.iter().enumerate() {
        if let LogSource::File(p) = s {
            if let Err(m) = clean_absolute(p) {
                k.err(format!("logs.sources[{i}]"), m);
            }
        }
    }
    if l.sinks.is_empty() {
        k.err("logs.sinks", "at least one sink is needed");
    }
    for (i, s) in l.sinks.iter().enumerate() {
        sink(k, &format!("logs.sinks[{i}]"), s);
    }
}

/// The sink URL schemes a config may name (the log shipper accepts each: see
/// `logship::spec`'s tests).
pub const SINK_SCHEMES: &[&str] = &[
    "syslog+tcp",
    "syslog+tls",
    "syslog+udp",
    "relp",
    "relp+tls",
    "loki+http",
    "loki+https",
    "http",
    "https",
];
/// Of those, the ones over TLS (the only ones that take `ca`, `server-name` and client certs).
pub const TLS_SCHEMES: &[&str] = &["syslog+tls", "relp+tls", "loki+https", "https"];

fn sink(k: &mut Checker, at: &str, s: &Sink) {
    let scheme = match url_with(&s.url, SINK_SCHEMES) {
        Ok(u) => u.scheme().to_owned(),
        Err(m) => return k.err(format!("{at}.url"), m),
    };
    let tls = TLS_SCHEMES.contains(&scheme.as_str());
    for (name, v) in [
        ("ca", &s.ca),
        ("client-cert", &s.client_cert),
        ("client-key", &s.client_key),
    ] {
        if let Some(p) = v {
            if !tls {
                k.err(
                    format!("{at}.{name}"),
                    format!(
                        "only for TLS sinks ({}), not {scheme}",
                        TLS_SCHEMES.join(", ")
                    ),
                );
            } else if let Err(m) = clean_absolute(p) {
                k.err(format!("{at}.{name}"), m);
            }
        }
    }
    if s.server_name.is_some() && !tls {
        k.err(
            format!("{at}.server-name"),
            format!("only for TLS sinks, not {scheme}"),
        );
    }
    if s.client_cert.is_some() != s.client_key.is_some() {
        k.err(at, "client-cert and client-key go together");
    }
    if s.framing.is_some() && !["syslog+tcp", "syslog+tls"].contains(&scheme.as_str()) {
        k.err(
            format!("{at}.framing"),
            format!("only for syslog+tcp and syslog+tls, not {scheme}"),
        );
    }
}

/// Parse `u` and check its scheme; no credentials in URLs (they would reach logs).
pub fn url_with(u: &str, schemes: &[&str]) -> Result<url::Url, String> {
    let parsed = url::Url::parse(u).map_err(|e| format!("not a URL: {e}"))?;
    if !schemes.contains(&parsed.scheme()) {
        return Err(format!(
            "unsupported scheme {:?}, expected one of {}",
            parsed.scheme(),
            schemes.join(", ")
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("credentials in a URL are not allowed (they would be logged)".into());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{u:?} has no host"));
    }
    Ok(parsed)
}
