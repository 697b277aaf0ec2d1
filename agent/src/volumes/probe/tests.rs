//! Signatures written byte by byte from each format's specification, probed from a Cursor.
use std::io::{self, Cursor, Read, Seek, SeekFrom};

use super::gpt::{guid, partitions};
use super::*;

const MIB: usize = 1 << 20;

fn put(img: &mut [u8], at: usize, bytes: &[u8]) {
    img[at..at + bytes.len()].copy_from_slice(bytes);
}

fn probe_img(img: &[u8]) -> Probe {
    probe(&mut Cursor::new(img)).unwrap()
}

fn kinds(img: &[u8]) -> Vec<Kind> {
    probe_img(img).found.iter().map(|s| s.kind).collect()
}

fn ext_image(incompat: u32, compat: u32, ro: u32) -> Vec<u8> {
    let mut img = vec![0; 8 * MIB];
    let sb = 1024;
    put(&mut img, sb + 4, &2048u32.to_le_bytes()); // blocks
    put(&mut img, sb + 0x18, &2u32.to_le_bytes()); // 4 KiB blocks
    put(&mut img, sb + 0x38, &0xEF53u16.to_le_bytes());
    put(&mut img, sb + 0x5C, &compat.to_le_bytes());
    put(&mut img, sb + 0x60, &incompat.to_le_bytes());
    put(&mut img, sb + 0x64, &ro.to_le_bytes());
    put(&mut img, sb + 0x68, &[0x11; 16]);
    put(&mut img, sb + 0x78, b"data\0");
    img
}

#[test]
fn blank_device_is_blank_and_reads_both_ends() {
    let p = probe_img(&vec![0; 8 * MIB]);
    assert!(p.is_blank());
    assert_eq!(p.describe(), "blank");
    assert_eq!(p.bytes_read, 2 * (1 << 20) + 3 * 4096);
    assert_eq!(p.size, 8 << 20);
}

#[test]
fn read_plan_covers_small_and_large_devices() {
    assert_eq!(plan(0), vec![]);
    assert_eq!(plan(4096), vec![(0, 4096)]);
    assert_eq!(
        plan(3 << 20),
        vec![(0, 1 << 20), (1 << 20, 4096), (2 << 20, 1 << 20)]
    );
    let g = 1u64 << 30;
    assert_eq!(
        plan(g),
        vec![
            (0, 1 << 20),
            (1 << 20, 4096),
            (2 << 20, 4096),
            (4 << 20, 4096),
            (g - (1 << 20), 1 << 20)
        ]
    );
}

#[test]
fn any_non_zero_byte_in_a_read_region_is_not_blank() {
    for at in [
        0,
        511,
        70_000,
        (1 << 20) + 100,
        (2 << 20) + 5,
        (8 * MIB) - 1,
        (8 * MIB) - (1 << 20),
    ] {
        let mut img = vec![0; 8 * MIB];
        img[at] = 1;
        let p = probe_img(&img);
        assert!(!p.is_blank(), "byte {at}");
        assert_eq!(p.first_nonzero, Some(at as u64));
        assert_eq!(
            p.describe(),
            format!("no known signature, non-zero data at byte {at}")
        );
    }
}

#[test]
fn ext_flavours_by_features() {
    let cases = [
        (0, 0, 0, Kind::Ext2),
        (0x2, 0x4, 0x3, Kind::Ext3),
        (0x2 | 0x40, 0x4, 0x3, Kind::Ext4), // extents
        (0x2, 0x4, 0x8, Kind::Ext4),        // huge_file
        (0x8, 0, 0, Kind::Jbd),
    ];
    for (incompat, compat, ro, want) in cases {
        let p = probe_img(&ext_image(incompat, compat, ro));
        assert_eq!(p.found.len(), 1);
        let s = &p.found[0];
        assert_eq!(s.kind, want, "{incompat:#x}/{compat:#x}/{ro:#x}");
        assert_eq!(s.label.as_deref(), Some("data"));
        assert_eq!(
            s.uuid.as_deref(),
            Some("11111111-1111-1111-1111-111111111111")
        );
        assert_eq!(s.fs_size, Some(2048 * 4096));
        assert_eq!(s.offset, 1080);
    }
    let p = probe_img(&ext_image(0x40, 0, 0));
    assert_eq!(
        p.describe(),
        "ext4 (label \"data\", uuid 11111111-1111-1111-1111-111111111111, at byte 1080)"
    );
}

#[test]
fn each_format_is_recognised_by_its_magic() {
    type Writer = fn(&mut Vec<u8>);
    let cases: Vec<(Writer, Kind, u64)> = vec![
        (|i| put(i, 0, b"XFSB"), Kind::Xfs, 0),
        (|i| put(i, 0x10040, b"_BHRfS_M"), Kind::Btrfs, 0x10040),
        (|i| put(i, 4086, b"SWAPSPACE2"), Kind::Swap, 4086),
        (|i| put(i, 65526, b"SWAP-SPACE"), Kind::Swap, 65526),
        (|i| put(i, 4086, b"S1SUSPEND"), Kind::Swap, 4086),
        (|i| put(i, 0, b"LUKS\xba\xbe\x00\x01"), Kind::Luks1, 0),
        (|i| put(i, 0, b"LUKS\xba\xbe\x00\x02"), Kind::Luks2, 0),
        (
            |i| put(i, 0x4000, b"SKUL\xba\xbe\x00\x02"),
            Kind::Luks2,
            0x4000,
        ),
        (
            |i| put(i, 4 << 20, b"SKUL\xba\xbe\x00\x02"),
            Kind::Luks2,
            4 << 20,
        ),
        (
            |i| {
                put(i, 512, b"LABELONE");
                put(i, 536, b"LVM2 001")
            },
            Kind::Lvm2Pv,
            512,
        ),
        (
            |i| {
                put(i, 4096, &0xA92B_4EFCu32.to_le_bytes());
                put(i, 4100, &1u32.to_le_bytes())
            },
            Kind::Mdraid1,
            4096,
        ),
        (
            |i| {
                put(i, 0, &0xA92B_4EFCu32.to_le_bytes());
                put(i, 4, &1u32.to_le_bytes())
            },
            Kind::Mdraid1,
            0,
        ),
        (
            |i| {
                let at = i.len() - 8192;
                put(i, at, &0xA92B_4EFCu32.to_le_bytes());
                put(i, at + 4, &1u32.to_le_bytes())
            },
            Kind::Mdraid1,
            (8 << 20) - 8192,
        ),
        (
            |i| {
                let at = i.len() - 65536;
                put(i, at, &0xA92B_4EFCu32.to_le_bytes())
            },
            Kind::Mdraid090,
            (8 << 20) - 65536,
        ),
        (
            |i| {
                let at = i.len() - 65536;
                put(i, at, &0xA92B_4EFCu32.to_be_bytes())
            },
            Kind::Mdraid090,
            (8 << 20) - 65536,
        ),
        (|i| put(i, 32769, b"CD001"), Kind::Iso9660, 32769),
        (|i| put(i, 0, b"hsqs"), Kind::Squashfs, 0),
        (|i| put(i, 0, b"sqsh"), Kind::Squashfs, 0),
        (
            |i| put(i, 1024, &0xE0F5_E1E2u32.to_le_bytes()),
            Kind::Erofs,
            1024,
        ),
        (|i| put(i, 3, b"NTFS    "), Kind::Ntfs, 3),
        (
            |i| put(i, (128 << 10) + 3072, &0x00BA_B10Cu64.to_le_bytes()),
            Kind::ZfsMember,
            0,
        ),
        (
            |i| {
                let at = i.len() - (128 << 10);
                put(i, at, &0x00BA_B10Cu64.to_be_bytes())
            },
            Kind::ZfsMember,
            (8 << 20) - (256 << 10),
        ),
    ];
    for (write, kind, offset) in cases {
        let mut img = vec![0; 8 * MIB];
        write(&mut img);
        let p = probe_img(&img);
        assert_eq!(p.found.len(), 1, "{kind}: {:?}", p.found);
        assert_eq!((p.found[0].kind, p.found[0].offset), (kind, offset));
        assert!(!p.is_blank());
    }
}

#[test]
fn vfat_needs_a_plausible_boot_sector() {
    let mut img = vec![0; 8 * MIB];
    put(&mut img, 0, &[0xEB, 0x3C, 0x90]);
    put(&mut img, 11, &512u16.to_le_bytes());
    img[13] = 4;
    put(&mut img, 14, &1u16.to_le_bytes());
    img[16] = 2;
    img[21] = 0xF8;
    put(&mut img, 22, &8u16.to_le_bytes());
    put(&mut img, 0x27, &0x1234_ABCDu32.to_le_bytes());
    put(&mut img, 0x2B, b"BOOT       ");
    put(&mut img, 0x36, b"FAT16   ");
    put(&mut img, 510, &[0x55, 0xAA]);
    let p = probe_img(&img);
    assert_eq!(
        p.found.len(),
        1,
        "a FAT boot sector is not also a DOS table"
    );
    assert_eq!(p.found[0].kind, Kind::Vfat);
    assert_eq!(p.found[0].label.as_deref(), Some("BOOT"));
    assert_eq!(p.found[0].uuid.as_deref(), Some("1234-ABCD"));
    img[21] = 0x12; // implausible media byte: not FAT, but still not blank
    assert_eq!(kinds(&img), vec![]);
    assert!(!probe_img(&img).is_blank());
}

fn gpt_image(sector: usize) -> Vec<u8> {
    super::tests_support::gpt_sized(8 * MIB, sector, "data")
}

#[test]
fn gpt_primary_and_backup_with_partitions() {
    for sector in [512, 4096] {
        let img = gpt_image(sector);
        assert_eq!(kinds(&img), vec![Kind::Gpt, Kind::GptBackup], "{sector}");
        let parts = partitions(&read_regions(&mut Cursor::new(&img)).unwrap()).unwrap();
        assert_eq!(
            parts,
            vec![gpt::GptPart {
                number: 1,
                partuuid: "04030201-0605-0807-090a-0b0c0d0e0f10".into(),
                partlabel: Some("data".into()),
            }]
        );
        // Primary wiped: the backup alone is recognised and still gives the entries.
        let mut img = img;
        img[sector..sector + 8].fill(0);
        assert_eq!(kinds(&img), vec![Kind::GptBackup]);
        let parts = partitions(&read_regions(&mut Cursor::new(&img)).unwrap()).unwrap();
        assert_eq!(parts[0].partlabel.as_deref(), Some("data"));
    }
}

#[test]
fn gpt_with_a_bad_checksum_is_still_a_signature() {
    let mut img = gpt_image(512);
    img[512 + 56] ^= 1;
    let p = probe_img(&img);
    assert_eq!(p.found[0].note.as_deref(), Some("header checksum mismatch"));
    assert_eq!(guid(&[0x42; 16]), "42424242-4242-4242-4242-424242424242");
}

#[test]
fn dos_table_needs_sane_entries() {
    let mut img = vec![0; 8 * MIB];
    put(&mut img, 440, &0xDEAD_BEEFu32.to_le_bytes());
    img[446] = 0x80;
    img[446 + 4] = 0x83;
    put(&mut img, 510, &[0x55, 0xAA]);
    let p = probe_img(&img);
    assert_eq!(p.found[0].kind, Kind::Dos);
    assert_eq!(p.found[0].uuid.as_deref(), Some("deadbeef"));
    img[446] = 0x12; // bad boot flag: not a table, still not blank
    let p = probe_img(&img);
    assert!(p.found.is_empty() && !p.is_blank());
}

#[test]
fn zfs_pool_name_from_the_label_nvlist() {
    let mut img = vec![0; 8 * MIB];
    let mut nv = vec![1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let pair = |name: &str, kind: u32, value: &[u8]| {
        let mut p = vec![];
        p.extend((name.len() as u32).to_be_bytes());
        p.extend(name.as_bytes());
        p.resize(p.len().div_ceil(4) * 4, 0);
        p.extend(kind.to_be_bytes());
        p.extend(1u32.to_be_bytes());
        p.extend(value);
        let mut out = vec![];
        out.extend((p.len() as u32 + 8).to_be_bytes());
        out.extend(0u32.to_be_bytes());
        out.extend(p);
        out
    };
    nv.extend(pair("name", 9, &[0, 0, 0, 4, b't', b'a', b'n', b'k']));
    nv.extend(pair("pool_guid", 8, &42u64.to_be_bytes()));
    nv.extend([0; 8]);
    put(&mut img, 16 << 10, &nv);
    put(&mut img, 128 << 10, &0x00BA_B10Cu64.to_le_bytes());
    let p = probe_img(&img);
    assert_eq!(
        p.found[0].to_string(),
        "zfs-member (label \"tank\", uuid 42)"
    );
}

#[test]
fn labels_are_made_printable() {
    let mut img = vec![0; 8 * MIB];
    put(&mut img, 0, b"XFSB");
    put(&mut img, 108, b"a\x1b[2Jb   ");
    assert_eq!(probe_img(&img).found[0].label.as_deref(), Some("a?[2Jb"));
}

struct Failing;
impl Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::from_raw_os_error(libc::EIO))
    }
}
impl Seek for Failing {
    fn seek(&mut self, p: SeekFrom) -> io::Result<u64> {
        Ok(if let SeekFrom::End(_) = p { 1 << 30 } else { 0 })
    }
}

#[test]
fn read_errors_name_the_range() {
    let e = probe(&mut Failing).unwrap_err();
    assert_eq!(
        e.to_string(),
        "reading 1048576 bytes at byte 0: Input/output error (os error 5)"
    );
    // A device shorter than it claims.
    struct Short(Cursor<Vec<u8>>);
    impl Read for Short {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            self.0.read(b)
        }
    }
    impl Seek for Short {
        fn seek(&mut self, p: SeekFrom) -> io::Result<u64> {
            match p {
                SeekFrom::End(_) => Ok(4 << 20),
                p => self.0.seek(p),
            }
        }
    }
    let e = probe(&mut Short(Cursor::new(vec![0; 2 << 20]))).unwrap_err();
    assert_eq!(
        e.to_string(),
        "reading 4096 bytes at byte 2097152: failed to fill whole buffer"
    );
}

#[test]
fn tiny_inputs_do_not_panic() {
    for n in 0..2100 {
        let p = probe_img(&vec![0xFF; n]);
        assert_eq!(p.size, n as u64);
        assert!(n == 0 || !p.is_blank());
    }
}

#[test]
fn kinds_serialise_as_their_names() {
    for k in [
        Kind::Mdraid090,
        Kind::Mdraid1,
        Kind::ZfsMember,
        Kind::GptBackup,
        Kind::Lvm2Pv,
    ] {
        assert_eq!(serde_json::to_value(k).unwrap(), k.name());
    }
}
