//! Lowering the checking thread's CPU and I/O priority: nice 19 (setpriority(2) on the thread
//! id) and the idle I/O class (ioprio_set(2), IOPRIO_CLASS_IDLE). Threads it starts afterwards
//! (the re-verification's scan workers) inherit both. Lowering needs no privilege.
use std::io;

const IOPRIO_WHO_PROCESS: libc::c_int = 1;
const IOPRIO_CLASS_SHIFT: libc::c_int = 13;
pub const IOPRIO_CLASS_IDLE: libc::c_int = 3;
pub const NICE: libc::c_int = 19;

/// Nice 19 and the idle I/O class for the calling thread.
pub fn lower_this_thread() -> io::Result<()> {
    // SAFETY: plain syscalls on the calling thread's id; no memory is passed.
    unsafe {
        let tid = libc::gettid();
        if libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, NICE) != 0 {
            return Err(io::Error::last_os_error());
        }
        let prio = IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT;
        if libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, tid, prio) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The calling thread's nice value and I/O class (for tests and status).
pub fn this_thread() -> io::Result<(libc::c_int, libc::c_int)> {
    // SAFETY: as above.
    unsafe {
        let tid = libc::gettid();
        *libc::__errno_location() = 0;
        let nice = libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t);
        if nice == -1 && *libc::__errno_location() != 0 {
            return Err(io::Error::last_os_error());
        }
        let io = libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, tid);
        if io < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((nice, (io as libc::c_int) >> IOPRIO_CLASS_SHIFT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lowered_thread_and_its_children_are_nice_and_idle() {
        let (own, kids) = std::thread::spawn(|| {
            lower_this_thread().unwrap();
            let own = this_thread().unwrap();
            let kids = std::thread::spawn(|| this_thread().unwrap())
                .join()
                .unwrap();
            (own, kids)
        })
        .join()
        .unwrap();
        assert_eq!(own, (NICE, IOPRIO_CLASS_IDLE));
        assert_eq!(kids, (NICE, IOPRIO_CLASS_IDLE));
        // The test's own thread is untouched.
        assert_ne!(this_thread().unwrap().0, NICE);
    }
}
