//! What host-side servers received, waitable with a deadline; and a UDP receiver (syslog over
//! UDP and the like) that the guest reaches at 10.0.2.2:<port>.
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::server::{ServerError, GUEST_HOST_ADDR};

/// Items in arrival order, shared between a server thread and the test.
pub struct Received<T> {
    items: Mutex<Vec<T>>,
    arrived: Condvar,
}

impl<T: Clone> Received<T> {
    pub fn new() -> Arc<Received<T>> {
        Arc::new(Received {
            items: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<T>> {
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn push(&self, item: T) {
        self.lock().push(item);
        self.arrived.notify_all();
    }

    /// Everything so far.
    pub fn all(&self) -> Vec<T> {
        self.lock().clone()
    }

    /// The first item (already here or arriving before `timeout`) for which `pred` holds.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&T) -> bool) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut items = self.lock();
        loop {
            if let Some(found) = items.iter().find(|i| pred(i)) {
                return Some(found.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            items = self
                .arrived
                .wait_timeout(items, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// A UDP socket on 127.0.0.1:0 keeping every datagram it gets. Stopped when dropped.
pub struct UdpReceiver {
    addr: SocketAddr,
    datagrams: Arc<Received<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpReceiver {
    pub fn start() -> Result<UdpReceiver, ServerError> {
        let sock = UdpSocket::bind("127.0.0.1:0").map_err(ServerError::Bind)?;
        let addr = sock.local_addr().map_err(ServerError::Bind)?;
        // Wake up now and then to notice the stop flag.
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(ServerError::Bind)?;
        let datagrams = Received::new();
        let stop = Arc::new(AtomicBool::new(false));
        let (d, s) = (datagrams.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !s.load(Ordering::SeqCst) {
                if let Ok((n, _)) = sock.recv_from(&mut buf) {
                    d.push(buf[..n].to_vec());
                }
            }
        });
        Ok(UdpReceiver {
            addr,
            datagrams,
            stop,
            thread: Some(thread),
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
    pub fn host_addr(&self) -> SocketAddr {
        self.addr
    }
    /// `10.0.2.2:<port>`: what the guest sends to.
    pub fn guest_addr(&self) -> String {
        format!("{GUEST_HOST_ADDR}:{}", self.port())
    }
    pub fn datagrams(&self) -> &Received<Vec<u8>> {
        &self.datagrams
    }
}

impl Drop for UdpReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_for_sees_items_already_there_and_arriving() {
        let r: Arc<Received<u32>> = Received::new();
        r.push(1);
        assert_eq!(r.wait_for(Duration::ZERO, |&i| i == 1), Some(1));
        let r2 = r.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            r2.push(7);
        });
        assert_eq!(r.wait_for(Duration::from_secs(5), |&i| i > 5), Some(7));
        t.join().unwrap();
        assert_eq!(r.wait_for(Duration::from_millis(20), |&i| i == 3), None);
        assert_eq!(r.all(), [1, 7]);
    }

    #[test]
    fn udp_receiver_keeps_datagrams() {
        let rx = UdpReceiver::start().unwrap();
        assert!(rx.guest_addr().starts_with("10.0.2.2:"));
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(b"<14>1 - host app - - - one", rx.host_addr())
            .unwrap();
        tx.send_to(b"<14>1 - host app - - - two", rx.host_addr())
            .unwrap();
        let got = rx
            .datagrams()
            .wait_for(Duration::from_secs(5), |d| d.ends_with(b"two"))
            .unwrap();
        assert_eq!(got, b"<14>1 - host app - - - two");
        assert_eq!(rx.datagrams().all().len(), 2);
    }
}
