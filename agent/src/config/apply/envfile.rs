//! `/run/pyre/env` in systemd's EnvironmentFile= syntax, which a POSIX shell also reads:
//! `NAME="value"` with `"`, `\`, `$` and `` ` `` escaped by a backslash. Validation has already
//! refused names that are not identifiers and values with NUL or line breaks.
use std::collections::BTreeMap;

use crate::config::Secret;

pub fn render(env: &BTreeMap<String, Secret<String>>) -> Vec<u8> {
    let mut out = String::from("# Written by pyre boot from the instance config. Do not edit.\n");
    for (name, value) in env {
        out.push_str(name);
        out.push_str("=\"");
        for c in value.expose().chars() {
            if matches!(c, '"' | '\\' | '$' | '`') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push_str("\"\n");
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_escapes() {
        let mut env = BTreeMap::new();
        for (k, v) in [
            ("B", r#"a "quoted" $HOME `cmd` back\slash"#),
            ("A", "plain value with spaces and 'single' quotes"),
            ("EMPTY", ""),
        ] {
            env.insert(k.to_string(), Secret::new(v.to_string()));
        }
        let text = String::from_utf8(render(&env)).unwrap();
        assert_eq!(
            text,
            "# Written by pyre boot from the instance config. Do not edit.\n\
             A=\"plain value with spaces and 'single' quotes\"\n\
             B=\"a \\\"quoted\\\" \\$HOME \\`cmd\\` back\\\\slash\"\n\
             EMPTY=\"\"\n"
        );
    }

    /// A POSIX shell reads the file back to exactly the values (the same rules as systemd's
    /// EnvironmentFile= double quotes).
    #[test]
    fn shell_reads_back_the_values() {
        let Ok(sh) = which("sh") else { return };
        let mut env = BTreeMap::new();
        let tricky = r#"a "b" $c `d` \e \\f 'g' #h ;i &j"#;
        env.insert("X".to_string(), Secret::new(tricky.to_string()));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("env");
        std::fs::write(&f, render(&env)).unwrap();
        let out = std::process::Command::new(sh)
            .arg("-c")
            .arg(format!(". {} && printf %s \"$X\"", f.display()))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), tricky);
    }

    fn which(name: &str) -> Result<std::path::PathBuf, ()> {
        ["/bin", "/usr/bin"]
            .iter()
            .map(|d| std::path::Path::new(d).join(name))
            .find(|p| p.exists())
            .ok_or(())
    }
}
