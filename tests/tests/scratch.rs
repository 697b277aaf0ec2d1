use pyre_tests::instance::*;
use pyre_tests::{Image, QemuBuilder};
#[test]
fn scratch_guest_check() {
    let image = Image::locate().unwrap();
    let b = guest_check(
        QemuBuilder::new(&image, "scratch"),
        &[
            "hostname",
            "findmnt -n -o SOURCE,FSTYPE,OPTIONS /",
            "ls /nonexistent",
        ],
    )
    .unwrap();
    let vm = b.spawn().unwrap();
    let t = vm
        .wait_for(
            "]: pyre-e2e-check: done",
            std::time::Duration::from_secs(300),
        )
        .unwrap();
    eprintln!("done at {t:?}");
    let mut vm = vm;
    let e = vm.wait_exit(std::time::Duration::from_secs(60)).unwrap();
    eprintln!("{e:?}");
    let text = vm.console().text();
    for i in 0..3 {
        eprintln!("{i}: {:?}", check_output(&text, i));
    }
}
