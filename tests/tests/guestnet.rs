//! The guest reaches a host-side server at 10.0.2.2:<port> (QEMU user networking): the
//! verified image boots into a one-line bash client (`Cmdline::run_in_guest`), which connects,
//! prints the server's answer on the console, and powers the machine off.
use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use pyre_tests::received::Received;
use pyre_tests::report::record;
use pyre_tests::scenario::{scaled, MULTI_USER_DEADLINE};
use pyre_tests::server::TcpServer;
use pyre_tests::{Image, QemuBuilder};

#[test]
fn guest_reaches_a_host_server_at_10_0_2_2() {
    let image = Image::locate().unwrap_or_else(|e| panic!("{e}"));
    let lines: std::sync::Arc<Received<String>> = Received::new();
    let seen = lines.clone();
    let srv = TcpServer::start(move |conn| {
        let mut line = String::new();
        let _ = BufReader::new(&conn).read_line(&mut line);
        seen.push(line.trim_end().to_string());
        let _ = (&conn).write_all(b"host-says-hi\n");
    })
    .unwrap();
    let script = format!(
        "until exec 3<>/dev/tcp/10.0.2.2/{}; do sleep 1; done; echo guest-says-hi >&3; \
         head -n1 <&3",
        srv.port()
    );
    let mut cmdline = image.cmdline.clone();
    cmdline.run_in_guest(&script).unwrap();
    let scenario = "guest-net";
    let mut vm = QemuBuilder::new(&image, scenario)
        .cmdline(cmdline)
        .spawn()
        .unwrap();
    let got = lines.wait_for(scaled(MULTI_USER_DEADLINE), |l| l == "guest-says-hi");
    assert!(
        got.is_some(),
        "the guest never reached {}; {}",
        srv.guest_addr(),
        vm.console_context()
    );
    record(scenario, "guest reached the host server", vm.elapsed());
    // The client prints the server's answer (journal+console), then systemd powers off.
    vm.wait_for("]: host-says-hi", Duration::from_secs(30))
        .unwrap();
    let e = vm.wait_exit(Duration::from_secs(120)).unwrap();
    assert!(e.by_itself(), "{e:?}");
}
