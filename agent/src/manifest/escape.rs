//! The escape used for paths, symlink targets and xattr names in the manifest.
//!
//! A byte sequence is written as UTF-8 text with no spaces or control characters:
//! printable ASCII except `\` stays as is, as do non-ASCII characters of valid UTF-8 that are
//! neither control characters nor whitespace; every other byte (space, `\`, controls, invalid
//! UTF-8, Unicode whitespace) becomes `\xHH` with two lowercase hex digits. The escape is
//! canonical: each byte sequence has exactly one escaped form, and `unescape` rejects any other.
use crate::sys::hex::hex_val;

/// Escape raw bytes into the canonical manifest token form.
pub fn escape(raw: &[u8]) -> String {
    if raw.iter().all(|b| b.is_ascii_graphic() && *b != b'\\') {
        // Plain printable ASCII: nothing to escape (and valid UTF-8).
        return std::str::from_utf8(raw).unwrap_or_default().to_owned();
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                push_str(&mut out, s);
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                // valid_up_to guarantees `good` is UTF-8.
                push_str(&mut out, std::str::from_utf8(good).unwrap_or_default());
                let n = e.error_len().unwrap_or(bad.len());
                for b in &bad[..n] {
                    push_hex(&mut out, *b);
                }
                rest = &bad[n..];
            }
        }
    }
    out
}

fn push_str(out: &mut String, s: &str) {
    for c in s.chars() {
        if literal(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).as_bytes() {
                push_hex(out, *b);
            }
        }
    }
}

fn literal(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_graphic() && c != '\\'
    } else {
        !c.is_control() && !c.is_whitespace()
    }
}

fn push_hex(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('\\');
    out.push('x');
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 15)] as char);
}

/// Why a token is not a canonical escape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EscapeError {
    /// A `\` not followed by `x` and two lowercase hex digits.
    BadEscape(usize),
    /// The token decodes, but is not written the one canonical way.
    NotCanonical,
}

impl std::fmt::Display for EscapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EscapeError::BadEscape(at) => {
                write!(f, "bad escape at byte {at} (expected \\xHH, lowercase hex)")
            }
            EscapeError::NotCanonical => write!(
                f,
                "not in canonical escaped form (escape space, \\, controls and invalid UTF-8 \
                 as \\xHH, and nothing else)"
            ),
        }
    }
}

/// Decode a canonical escaped token back into raw bytes.
pub fn unescape(token: &str) -> Result<Vec<u8>, EscapeError> {
    let bytes = token.as_bytes();
    // Fast path: plain printable ASCII without `\` is canonical as it stands.
    if bytes.iter().all(|b| b.is_ascii_graphic() && *b != b'\\') {
        return Ok(bytes.to_vec());
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes.get(i + 1) != Some(&b'x') {
                return Err(EscapeError::BadEscape(i));
            }
            let hi = bytes.get(i + 2).and_then(|b| hex_val(*b));
            let lo = bytes.get(i + 3).and_then(|b| hex_val(*b));
            match (hi, lo) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => return Err(EscapeError::BadEscape(i)),
            }
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    if escape(&out) != token {
        return Err(EscapeError::NotCanonical);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_table() {
        let cases: &[(&[u8], &str)] = &[
            (b"/etc/passwd", "/etc/passwd"),
            (b"/a b", "/a\\x20b"),
            (b"/back\\slash", "/back\\x5cslash"),
            (b"/nl\n", "/nl\\x0a"),
            (b"/\xff\xfe", "/\\xff\\xfe"),
            ("/caf\u{e9}".as_bytes(), "/caf\u{e9}"),
            ("/nbsp\u{a0}".as_bytes(), "/nbsp\\xc2\\xa0"),
            (b"/del\x7f", "/del\\x7f"),
            (b"", ""),
        ];
        for (raw, esc) in cases {
            assert_eq!(escape(raw), *esc, "escaping {raw:?}");
            assert_eq!(unescape(esc).unwrap(), raw.to_vec(), "unescaping {esc}");
        }
    }

    #[test]
    fn unescape_rejects_non_canonical() {
        let cases: &[(&str, EscapeError)] = &[
            ("/a\\x41", EscapeError::NotCanonical),
            ("/a\\xFF", EscapeError::BadEscape(2)),
            ("/a\\n", EscapeError::BadEscape(2)),
            ("/a\\x4", EscapeError::BadEscape(2)),
            ("/a\\", EscapeError::BadEscape(2)),
            ("/a\u{a0}", EscapeError::NotCanonical),
            ("/a\t", EscapeError::NotCanonical),
        ];
        for (tok, err) in cases {
            assert_eq!(unescape(tok), Err(err.clone()), "token {tok:?}");
        }
    }
}
