use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::providers::testing::{ok, rig, status};

const B: &str = "http://127.0.0.1:9";

struct FakeDrive(Option<Option<&'static str>>);

impl DriveAccess for FakeDrive {
    fn find(&self) -> Option<(PathBuf, &'static str)> {
        self.0.map(|_| (PathBuf::from("/dev/sr0"), "iso9660"))
    }
    fn read_user_data(&self, dev: &Path, fstype: &str) -> Result<Option<Vec<u8>>, ProviderError> {
        assert_eq!((dev, fstype), (Path::new("/dev/sr0"), "iso9660"));
        Ok(self.0.flatten().map(|s| s.as_bytes().to_vec()))
    }
}

#[test]
fn config_drive_first() {
    let r = rig(Duration::from_secs(30), |_, _| ok("from-service"));
    let o = Openstack::new(
        r.fetcher.clone(),
        Some(B.into()),
        Box::new(FakeDrive(Some(Some("from-drive")))),
    );
    assert_eq!(
        o.config().unwrap().as_deref(),
        Some(b"from-drive".as_slice())
    );
    assert_eq!(r.script.send_count(), 0);
    // A drive without user data is a definite "no config": the service is not asked.
    let o = Openstack::new(
        r.fetcher.clone(),
        Some(B.into()),
        Box::new(FakeDrive(Some(None))),
    );
    assert_eq!(o.config().unwrap(), None);
    assert_eq!(r.script.send_count(), 0);
}

#[test]
fn metadata_service_without_a_drive() {
    let r = rig(Duration::from_secs(30), |_, _| ok("from-service"));
    let o = Openstack::new(r.fetcher.clone(), Some(B.into()), Box::new(FakeDrive(None)));
    assert_eq!(
        o.config().unwrap().as_deref(),
        Some(b"from-service".as_slice())
    );
    assert_eq!(r.script.lines(), [format!("GET {B}{USER_DATA_PATH}")]);
    let r = rig(Duration::from_secs(30), |_, _| status(404));
    let o = Openstack::new(r.fetcher.clone(), Some(B.into()), Box::new(FakeDrive(None)));
    assert_eq!(o.config().unwrap(), None);
}

#[test]
fn identity_from_meta_data() {
    let doc = r#"{"uuid":"83679162-1378-4288-a2d4-70e13ec132aa","availability_zone":"nova",
                 "hostname":"web-1.novalocal","name":"web-1","meta":{}}"#;
    let r = rig(Duration::from_secs(30), move |_, _| ok(doc));
    let o = Openstack::new(r.fetcher.clone(), Some(B.into()), Box::new(FakeDrive(None)));
    let id = o.identity().unwrap();
    assert_eq!(
        id.instance_id.as_deref(),
        Some("83679162-1378-4288-a2d4-70e13ec132aa")
    );
    assert_eq!(id.zone.as_deref(), Some("nova"));
    assert_eq!(id.hostname.as_deref(), Some("web-1.novalocal"));
}
