//! The dm-verity table of the root: geometry from the kernel command line, one `verity`
//! target for device-mapper (requests are typed in [`crate::host::dm`]).
use crate::host::dm::Target;

/// The verity geometry from the kernel command line (4096-byte blocks, sha256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerityParams {
    /// The verity superblock's UUID (`veritysetup format --uuid`): which device is the root.
    pub uuid: [u8; 16],
    pub data_blocks: u64,
    /// Byte offset of the hash area, where `veritysetup format --hash-offset` put its
    /// 4096-byte superblock; the hash tree starts one block later.
    pub hash_offset: u64,
    pub root_hash: String,
    pub salt: String,
}

pub const VERITY_BLOCK: u64 = 4096;

/// The single `verity` target covering the data area of `device` (a path or `major:minor`;
/// data and hash tree are on the same device).
pub fn verity_target(p: &VerityParams, device: &str) -> Target {
    let hash_start_block = p.hash_offset / VERITY_BLOCK + 1;
    let salt = if p.salt.is_empty() { "-" } else { &p.salt };
    Target {
        sector_start: 0,
        length: p.data_blocks * (VERITY_BLOCK / 512),
        target_type: "verity".to_string(),
        params: format!(
            "1 {dev} {dev} {b} {b} {n} {h} sha256 {root} {salt}",
            dev = device,
            b = VERITY_BLOCK,
            n = p.data_blocks,
            h = hash_start_block,
            root = p.root_hash,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> VerityParams {
        VerityParams {
            uuid: [7; 16],
            data_blocks: 1000,
            hash_offset: 4096 * 1000,
            root_hash: "ab".repeat(32),
            salt: "cd".repeat(32),
        }
    }

    #[test]
    fn verity_target_line() {
        let t = verity_target(&params(), "254:16");
        assert_eq!(t.length, 8000);
        assert_eq!(t.target_type, "verity");
        let want = format!(
            "1 254:16 254:16 4096 4096 1000 1001 sha256 {} {}",
            "ab".repeat(32),
            "cd".repeat(32)
        );
        assert_eq!(t.params, want);
        let no_salt = verity_target(
            &VerityParams {
                salt: String::new(),
                ..params()
            },
            "/dev/vda",
        );
        assert!(no_salt.params.ends_with(" -"), "{}", no_salt.params);
    }
}
