//! Device-mapper: the typed requests of [`super::Devices::dm`] and their ioctl buffers
//! (linux/dm-ioctl.h, interface version 4).
//!
//! The kernel reads a `struct dm_ioctl` header followed, for DM_TABLE_LOAD, by one
//! `struct dm_target_spec` and its NUL-terminated parameter string. The layout is mirrored by
//! `#[repr(C)]` structs whose field offsets (checked in the tests against the kernel header)
//! drive a safe byte encoder; no pointer casts are needed because the kernel copies the
//! buffer with `copy_from_user`, which has no alignment requirement.
use std::mem::{offset_of, size_of};

/// `struct dm_ioctl` from linux/dm-ioctl.h (312 bytes, 8-byte aligned).
#[repr(C)]
#[allow(dead_code)] // the layout is read through offset_of!/size_of only
pub struct DmIoctl {
    version: [u32; 3],
    data_size: u32,
    data_start: u32,
    target_count: u32,
    open_count: i32,
    flags: u32,
    event_nr: u32,
    padding: u32,
    dev: u64,
    name: [u8; DM_NAME_LEN],
    uuid: [u8; DM_UUID_LEN],
    data: [u8; 7],
}

/// `struct dm_target_spec` (40 bytes), followed by the target's parameter string.
#[repr(C)]
#[allow(dead_code)]
pub struct DmTargetSpec {
    sector_start: u64,
    length: u64,
    status: i32,
    next: u32,
    target_type: [u8; DM_MAX_TYPE_NAME],
}

pub const DM_NAME_LEN: usize = 128;
pub const DM_UUID_LEN: usize = 129;
pub const DM_MAX_TYPE_NAME: usize = 16;
/// Name of pyre's dm-verity root device (`/dev/mapper/pyre-root`), set up by `pyre init` and
/// checked at run time by `pyre daemon`.
pub const VERITY_ROOT_NAME: &str = "pyre-root";
/// Interface version we speak; the kernel accepts any request with major 4.
pub const DM_VERSION: [u32; 3] = [4, 0, 0];
pub const DM_READONLY_FLAG: u32 = 1 << 0;
/// Size of the buffer handed to every ioctl, so replies always fit.
pub const DM_BUFFER_SIZE: usize = 16 * 1024;
/// Offset of the `dev` field in a reply.
const DM_DEV_OFFSET: usize = offset_of!(DmIoctl, dev);

/// The device-mapper commands pyre uses (`DM_*_CMD` numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmCmd {
    Version = 0,
    DevCreate = 3,
    DevRemove = 4,
    DevSuspend = 6,
    TableLoad = 9,
    TableStatus = 12,
}

impl DmCmd {
    /// The ioctl request number: `_IOWR(DM_IOCTL, cmd, struct dm_ioctl)`.
    pub fn request(self) -> u64 {
        const IOC_READ_WRITE: u64 = 3;
        const DM_IOCTL: u64 = 0xfd;
        (IOC_READ_WRITE << 30)
            | ((size_of::<DmIoctl>() as u64) << 16)
            | (DM_IOCTL << 8)
            | self as u64
    }

    /// The command whose request number is `request`, if it is one of ours.
    pub fn from_request(request: u64) -> Option<DmCmd> {
        [
            Self::Version,
            Self::DevCreate,
            Self::DevRemove,
            Self::DevSuspend,
            Self::TableLoad,
            Self::TableStatus,
        ]
        .into_iter()
        .find(|c| c.request() == request)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DmError {
    #[error("device-mapper name {0:?} is empty, too long or contains '/'")]
    BadName(String),
    #[error("device-mapper target parameters for {0:?} contain a NUL byte")]
    BadParams(String),
    #[error("device-mapper reply is {0} bytes, shorter than the 312-byte header")]
    ShortReply(usize),
}

/// One target line of a table: `sector_start length target_type params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub sector_start: u64,
    pub length: u64,
    pub target_type: String,
    pub params: String,
}

/// A device-mapper request, typed; [`DmRequest::encode`] makes its ioctl buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DmRequest {
    /// DM_VERSION: is device-mapper there (and does it speak interface 4)?
    Version,
    /// DM_DEV_CREATE: a new device `name` with no table; the reply carries its dev_t.
    Create { name: String },
    /// DM_TABLE_LOAD: one target into the inactive table of `name`.
    LoadTable {
        name: String,
        read_only: bool,
        target: Target,
    },
    /// DM_DEV_SUSPEND without the suspend flag: make the loaded table live.
    Resume { name: String },
    /// DM_TABLE_STATUS (info, not the table): the live table's status line of `name`; for a
    /// verity target `V` (verified so far) or `C` (corruption seen). Needs CAP_SYS_ADMIN.
    Status { name: String },
}

impl DmRequest {
    pub fn cmd(&self) -> DmCmd {
        match self {
            DmRequest::Version => DmCmd::Version,
            DmRequest::Create { .. } => DmCmd::DevCreate,
            DmRequest::LoadTable { .. } => DmCmd::TableLoad,
            DmRequest::Resume { .. } => DmCmd::DevSuspend,
            DmRequest::Status { .. } => DmCmd::TableStatus,
        }
    }

    /// The ioctl buffer (header, and for a table load its one target).
    pub fn encode(&self) -> Result<Vec<u8>, DmError> {
        match self {
            DmRequest::Version => encode("", 0, None),
            DmRequest::Create { name }
            | DmRequest::Resume { name }
            | DmRequest::Status { name } => encode(name, 0, None),
            DmRequest::LoadTable {
                name,
                read_only,
                target,
            } => {
                let flags = if *read_only { DM_READONLY_FLAG } else { 0 };
                encode(name, flags, Some(target))
            }
        }
    }
}

/// What pyre reads from a reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DmReply {
    /// The device's dev_t (huge_encode_dev form), set by DM_DEV_CREATE.
    pub dev: u64,
    /// The first target's type and status line, set by DM_TABLE_STATUS (e.g. `verity`, `V`).
    pub status: Option<(String, String)>,
}

impl DmReply {
    pub fn major_minor(&self) -> (u32, u32) {
        dev_major_minor(self.dev)
    }
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

fn get_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}

fn get_u64(buf: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(buf[at..at + 8].try_into().expect("8 bytes"))
}

fn check_name(name: &str) -> Result<(), DmError> {
    if name.is_empty() || name.len() >= DM_NAME_LEN || name.contains('/') || name.contains('\0') {
        return Err(DmError::BadName(name.to_string()));
    }
    Ok(())
}

/// A request buffer: the header for `name` with `flags`, optionally one target.
fn encode(name: &str, flags: u32, target: Option<&Target>) -> Result<Vec<u8>, DmError> {
    if !name.is_empty() {
        check_name(name)?;
    }
    let mut buf = vec![0u8; DM_BUFFER_SIZE];
    for (i, v) in DM_VERSION.iter().enumerate() {
        put(
            &mut buf,
            offset_of!(DmIoctl, version) + 4 * i,
            &v.to_ne_bytes(),
        );
    }
    put(
        &mut buf,
        offset_of!(DmIoctl, data_size),
        &(DM_BUFFER_SIZE as u32).to_ne_bytes(),
    );
    let data_start = size_of::<DmIoctl>() as u32;
    put(
        &mut buf,
        offset_of!(DmIoctl, data_start),
        &data_start.to_ne_bytes(),
    );
    put(&mut buf, offset_of!(DmIoctl, flags), &flags.to_ne_bytes());
    put(&mut buf, offset_of!(DmIoctl, name), name.as_bytes());
    if let Some(t) = target {
        if t.params.contains('\0') || t.target_type.len() >= DM_MAX_TYPE_NAME {
            return Err(DmError::BadParams(t.target_type.clone()));
        }
        put(
            &mut buf,
            offset_of!(DmIoctl, target_count),
            &1u32.to_ne_bytes(),
        );
        let spec = data_start as usize;
        let params_len = (t.params.len() + 1).next_multiple_of(8);
        let next = (size_of::<DmTargetSpec>() + params_len) as u32;
        put(
            &mut buf,
            spec + offset_of!(DmTargetSpec, sector_start),
            &t.sector_start.to_ne_bytes(),
        );
        put(
            &mut buf,
            spec + offset_of!(DmTargetSpec, length),
            &t.length.to_ne_bytes(),
        );
        put(
            &mut buf,
            spec + offset_of!(DmTargetSpec, next),
            &next.to_ne_bytes(),
        );
        put(
            &mut buf,
            spec + offset_of!(DmTargetSpec, target_type),
            t.target_type.as_bytes(),
        );
        put(
            &mut buf,
            spec + size_of::<DmTargetSpec>(),
            t.params.as_bytes(),
        );
    }
    Ok(buf)
}

/// What a reply or request says: name, flags, the `dev` field and the first target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub version: [u32; 3],
    pub name: String,
    pub flags: u32,
    pub dev: u64,
    pub target: Option<Target>,
}

fn cstr(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Decode a buffer (a reply, or a request in tests).
pub fn decode(buf: &[u8]) -> Result<Decoded, DmError> {
    if buf.len() < size_of::<DmIoctl>() {
        return Err(DmError::ShortReply(buf.len()));
    }
    let v = offset_of!(DmIoctl, version);
    let name_at = offset_of!(DmIoctl, name);
    let mut target = None;
    let data_start = get_u32(buf, offset_of!(DmIoctl, data_start)) as usize;
    let spec_end = data_start + size_of::<DmTargetSpec>();
    if get_u32(buf, offset_of!(DmIoctl, target_count)) > 0 && spec_end <= buf.len() {
        let s = data_start;
        let tt = s + offset_of!(DmTargetSpec, target_type);
        target = Some(Target {
            sector_start: get_u64(buf, s + offset_of!(DmTargetSpec, sector_start)),
            length: get_u64(buf, s + offset_of!(DmTargetSpec, length)),
            target_type: cstr(&buf[tt..tt + DM_MAX_TYPE_NAME]),
            params: cstr(&buf[spec_end..]),
        });
    }
    Ok(Decoded {
        version: [get_u32(buf, v), get_u32(buf, v + 4), get_u32(buf, v + 8)],
        name: cstr(&buf[name_at..name_at + DM_NAME_LEN]),
        flags: get_u32(buf, offset_of!(DmIoctl, flags)),
        dev: get_u64(buf, DM_DEV_OFFSET),
        target,
    })
}

/// Split the kernel's `dev` (huge_encode_dev) into major and minor.
pub fn dev_major_minor(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) as u32;
    let minor = ((dev & 0xff) | ((dev >> 12) & 0xfff00)) as u32;
    (major, minor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::align_of;

    #[test]
    fn layout_matches_linux_dm_ioctl_h() {
        assert_eq!(size_of::<DmIoctl>(), 312);
        assert_eq!(align_of::<DmIoctl>(), 8);
        assert_eq!(offset_of!(DmIoctl, data_size), 12);
        assert_eq!(offset_of!(DmIoctl, data_start), 16);
        assert_eq!(offset_of!(DmIoctl, target_count), 20);
        assert_eq!(offset_of!(DmIoctl, flags), 28);
        assert_eq!(offset_of!(DmIoctl, dev), 40);
        assert_eq!(offset_of!(DmIoctl, name), 48);
        assert_eq!(offset_of!(DmIoctl, uuid), 176);
        assert_eq!(offset_of!(DmIoctl, data), 305);
        assert_eq!(size_of::<DmTargetSpec>(), 40);
        assert_eq!(offset_of!(DmTargetSpec, target_type), 24);
    }

    #[test]
    fn request_numbers_match_the_kernel() {
        // Values from strace of `dmsetup` (x86_64): DM_VERSION, DM_DEV_CREATE, DM_TABLE_LOAD.
        assert_eq!(DmCmd::Version.request(), 0xc138_fd00);
        assert_eq!(DmCmd::DevCreate.request(), 0xc138_fd03);
        assert_eq!(DmCmd::DevSuspend.request(), 0xc138_fd06);
        assert_eq!(DmCmd::TableLoad.request(), 0xc138_fd09);
        assert_eq!(DmCmd::TableStatus.request(), 0xc138_fd0c);
        assert_eq!(DmCmd::from_request(0xc138_fd09), Some(DmCmd::TableLoad));
        assert_eq!(DmCmd::from_request(0x1234), None);
    }

    fn verity() -> Target {
        Target {
            sector_start: 0,
            length: 8000,
            target_type: "verity".into(),
            params: format!(
                "1 /dev/vda /dev/vda 4096 4096 1000 1001 sha256 {} -",
                "ab".repeat(32)
            ),
        }
    }

    #[test]
    fn table_load_round_trips_and_is_laid_out() {
        let t = verity();
        let buf = encode("pyre-root", DM_READONLY_FLAG, Some(&t)).unwrap();
        assert_eq!(buf.len(), DM_BUFFER_SIZE);
        assert_eq!(get_u32(&buf, 12) as usize, DM_BUFFER_SIZE);
        assert_eq!(get_u32(&buf, 16), 312);
        assert_eq!(get_u32(&buf, 20), 1);
        assert_eq!(&buf[48..57], b"pyre-root");
        assert_eq!(&buf[312 + 24..312 + 30], b"verity");
        assert_eq!(&buf[352..352 + t.params.len()], t.params.as_bytes());
        assert_eq!(buf[352 + t.params.len()], 0);
        let next = get_u32(&buf, 312 + 20) as usize;
        assert_eq!(next % 8, 0);
        assert!(
            next > 40 + t.params.len(),
            "room for the params and their NUL"
        );
        let d = decode(&buf).unwrap();
        assert_eq!(d.version, DM_VERSION);
        assert_eq!(d.name, "pyre-root");
        assert_eq!(d.flags, DM_READONLY_FLAG);
        assert_eq!(d.target, Some(t));
    }

    #[test]
    fn bad_names_and_short_replies_are_refused() {
        assert_eq!(encode("a/b", 0, None), Err(DmError::BadName("a/b".into())));
        assert!(encode(&"x".repeat(128), 0, None).is_err());
        assert_eq!(decode(&[0u8; 100]), Err(DmError::ShortReply(100)));
        let bad = Target {
            params: "a\0b".into(),
            ..verity()
        };
        assert!(encode("pyre-root", 0, Some(&bad)).is_err());
    }

    #[test]
    fn dev_is_split_like_huge_encode_dev() {
        assert_eq!(dev_major_minor((254 << 8) | 3), (254, 3));
        // minor 0x12345: low byte in bits 0-7, the rest from bit 20
        let dev = 0x45 | (253 << 8) | (0x123 << 20);
        assert_eq!(dev_major_minor(dev), (253, 0x12345));
    }

    #[test]
    fn typed_requests_encode_their_command_and_name() {
        let name = "pyre-root".to_string();
        let load = DmRequest::LoadTable {
            name: name.clone(),
            read_only: true,
            target: verity(),
        };
        let cases = [
            (DmRequest::Version, DmCmd::Version, "", 0),
            (
                DmRequest::Create { name: name.clone() },
                DmCmd::DevCreate,
                "pyre-root",
                0,
            ),
            (load, DmCmd::TableLoad, "pyre-root", DM_READONLY_FLAG),
            (
                DmRequest::Resume { name: name.clone() },
                DmCmd::DevSuspend,
                "pyre-root",
                0,
            ),
            (
                DmRequest::Status { name },
                DmCmd::TableStatus,
                "pyre-root",
                0,
            ),
        ];
        for (req, cmd, name, flags) in cases {
            assert_eq!(req.cmd(), cmd);
            let d = decode(&req.encode().unwrap()).unwrap();
            assert_eq!((d.name.as_str(), d.flags), (name, flags), "{req:?}");
            assert_eq!(d.target.is_some(), cmd == DmCmd::TableLoad);
        }
        let bad = DmRequest::Create { name: "a/b".into() };
        assert_eq!(bad.encode(), Err(DmError::BadName("a/b".into())));
        assert_eq!(
            DmReply {
                dev: (254 << 8) | 3,
                status: None,
            }
            .major_minor(),
            (254, 3)
        );
    }
}
