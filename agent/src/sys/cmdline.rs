//! Kernel command line words, split as the kernel splits them, and the `pyre.*` parameters
//! among them. One tokenizer for every reader of the line: `pyre init` (its boot contract is
//! in `init::cmdline`) and, later, the config providers (`pyre.provider`, `pyre.metadata.url`,
//! `pyre.config.url`, `pyre.config.deadline`). Each reader decides which keys it knows.

/// The prefix of pyre's own parameters.
pub const PREFIX: &str = "pyre.";

/// Split like the kernel: whitespace separates words, double quotes group (and are dropped).
pub fn words(cmdline: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in cmdline.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// One `pyre.*` word: `pyre.root=/dev/vda` is key `root` with value `/dev/vda`; a bare
/// `pyre.debug` has no value; `pyre.x=` has an empty one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyreParam {
    /// The whole word as written (after quote removal), for messages.
    pub word: String,
    /// The name after `pyre.`, up to the first `=`.
    pub key: String,
    pub value: Option<String>,
}

/// The `pyre.*` words of the line, in order (a repeated key appears each time; readers let
/// the last one win, as the kernel does for its own parameters). Other words are skipped.
pub fn pyre_params(cmdline: &str) -> Vec<PyreParam> {
    words(cmdline)
        .into_iter()
        .filter_map(|word| {
            let rest = word.strip_prefix(PREFIX)?;
            let (key, value) = match rest.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (rest.to_string(), None),
            };
            Some(PyreParam { word, key, value })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_the_kernel() {
        let cases: &[(&str, &[&str])] = &[
            ("a \"b c\" d=\"e f\"  ", &["a", "b c", "d=e f"]),
            ("   ", &[]),
            ("", &[]),
            ("\"\"", &[""]),
            ("\ta\n\nb ", &["a", "b"]),
            ("x=\"unterminated y", &["x=unterminated y"]),
        ];
        for (line, want) in cases {
            assert_eq!(words(line), *want, "{line:?}");
        }
    }

    #[test]
    fn yields_pyre_keys_and_values() {
        let p = pyre_params(
            "console=ttyS0 pyre.debug pyre.metadata.url=http://10.0.2.2:8080/x=y \
             \"pyre.config.deadline=30s\" pyre.x= mypyre.root=no pyre.root=/dev/vda",
        );
        let got: Vec<(&str, Option<&str>)> = p
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("debug", None),
                ("metadata.url", Some("http://10.0.2.2:8080/x=y")),
                ("config.deadline", Some("30s")),
                ("x", Some("")),
                ("root", Some("/dev/vda")),
            ]
        );
        assert_eq!(p[2].word, "pyre.config.deadline=30s");
    }
}
