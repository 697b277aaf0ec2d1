//! Lowercase hex, the one spelling pyre writes and accepts (digests, keys, signatures, xattr
//! values): uppercase is rejected so that every value has exactly one form.

/// Lowercase hex digit value; uppercase is rejected so that every value has one spelling.
pub fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Lowercase hex of a byte string.
pub fn to_hex(raw: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(raw.len() * 2);
    for b in raw {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

/// Parse lowercase hex; `None` on odd length, uppercase or any other character.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.len() % 2 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(b.len() / 2);
    for pair in b.chunks_exact(2) {
        out.push(hex_val(pair[0])? << 4 | hex_val(pair[1])?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        assert_eq!(to_hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(from_hex("00abff").unwrap(), vec![0, 0xab, 0xff]);
        assert_eq!(from_hex(""), Some(vec![]));
        for bad in ["0", "AB", "0g", "+1"] {
            assert_eq!(from_hex(bad), None, "{bad}");
        }
        assert_eq!(
            (hex_val(b'7'), hex_val(b'f'), hex_val(b'F')),
            (Some(7), Some(15), None)
        );
    }
}
