//! Console-friendly errno text.
use std::io;

/// `EIO (Input/output error)`: the errno name and its text, for console messages.
pub fn errno_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let name = format!("{:?}", nix::errno::Errno::from_raw(code));
            let mut text = e.to_string();
            if let Some(i) = text.find(" (os error") {
                text.truncate(i);
            }
            format!("{name} ({text})")
        }
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_text_names_the_errno() {
        assert_eq!(
            errno_text(&io::Error::from_raw_os_error(libc::EIO)),
            "EIO (Input/output error)"
        );
        assert_eq!(errno_text(&io::Error::other("plain")), "plain");
    }
}
