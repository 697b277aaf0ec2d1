//! poll(2) on one descriptor, shared by the kmsg source and the stream sinks.
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

/// Wait up to `timeout` for `fd` to be readable (or hung up): the poll(2) revents, 0 on timeout
/// or EINTR.
pub(crate) fn poll_in(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<i16> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN | libc::POLLRDHUP,
        revents: 0,
    };
    let ms = timeout.as_millis().min(60_000) as libc::c_int;
    // SAFETY: one valid pollfd for the duration of the call.
    let r = unsafe { libc::poll(&mut p, 1, ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(0)
        } else {
            Err(e)
        };
    }
    Ok(if r == 0 { 0 } else { p.revents })
}
