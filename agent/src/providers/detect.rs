//! Provider names and detection from DMI (`/sys/class/dmi/id/*`, a parameter): what the
//! firmware says the machine is, read without touching the network. The provider names are
//! config's [`ProviderKind`] (the image policy lists them too), re-exported here.
use std::path::Path;

pub use crate::config::policy::{ProviderKind, ALL};

/// Azure's chassis asset tag on every Azure VM (Hyper-V alone does not mean Azure).
pub const AZURE_ASSET_TAG: &str = "7783-7084-3265-9085-8269-3286-77";

/// The DMI fields detection reads, trimmed (a missing file reads as empty).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dmi {
    pub sys_vendor: String,
    pub product_name: String,
    pub bios_vendor: String,
    pub chassis_asset_tag: String,
    pub board_vendor: String,
}

impl Dmi {
    pub fn read(dir: &Path) -> Dmi {
        let f = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        Dmi {
            sys_vendor: f("sys_vendor"),
            product_name: f("product_name"),
            bios_vendor: f("bios_vendor"),
            chassis_asset_tag: f("chassis_asset_tag"),
            board_vendor: f("board_vendor"),
        }
    }

    /// The decision table. Order matters: OpenStack and GCE guests also run on KVM/QEMU.
    pub fn provider(&self) -> Option<ProviderKind> {
        let vendor = |v: &str| self.sys_vendor == v || self.board_vendor == v;
        if vendor("Amazon EC2") || self.bios_vendor == "Amazon EC2" {
            Some(ProviderKind::Aws)
        } else if self.product_name == "Google Compute Engine" || vendor("Google") {
            Some(ProviderKind::Gcp)
        } else if vendor("Microsoft Corporation") && self.chassis_asset_tag == AZURE_ASSET_TAG {
            Some(ProviderKind::Azure)
        } else if self.product_name == "OpenStack Nova"
            || self.product_name == "OpenStack Compute"
            || vendor("OpenStack Foundation")
        {
            Some(ProviderKind::Openstack)
        } else if vendor("QEMU") || self.bios_vendor == "QEMU" {
            Some(ProviderKind::Qemu)
        } else {
            None
        }
    }
}

/// Detect the provider from the DMI files in `dir`; `None` when nothing matches.
pub fn detect(dir: &Path) -> Option<ProviderKind> {
    let dmi = Dmi::read(dir);
    let found = dmi.provider();
    log::debug!("dmi {dmi:?} -> {found:?}");
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dmi(sys: &str, product: &str, bios: &str, tag: &str) -> Dmi {
        Dmi {
            sys_vendor: sys.into(),
            product_name: product.into(),
            bios_vendor: bios.into(),
            chassis_asset_tag: tag.into(),
            board_vendor: String::new(),
        }
    }

    #[test]
    fn decision_table() {
        use ProviderKind::{Aws, Azure, Gcp, Openstack, Qemu};
        let cases = [
            (dmi("Amazon EC2", "m6i.large", "Amazon EC2", ""), Some(Aws)),
            (dmi("Xen", "HVM domU", "Amazon EC2", ""), Some(Aws)),
            (
                dmi("Google", "Google Compute Engine", "Google", ""),
                Some(Gcp),
            ),
            (
                dmi(
                    "Microsoft Corporation",
                    "Virtual Machine",
                    "Microsoft Corporation",
                    AZURE_ASSET_TAG,
                ),
                Some(Azure),
            ),
            // Plain Hyper-V, not Azure.
            (
                dmi("Microsoft Corporation", "Virtual Machine", "", "0000"),
                None,
            ),
            (
                dmi("OpenStack Foundation", "OpenStack Nova", "SeaBIOS", ""),
                Some(Openstack),
            ),
            (
                dmi("RDO", "OpenStack Compute", "SeaBIOS", ""),
                Some(Openstack),
            ),
            (
                dmi("QEMU", "Standard PC (i440FX + PIIX, 1996)", "SeaBIOS", ""),
                Some(Qemu),
            ),
            (dmi("Dell Inc.", "PowerEdge R650", "Dell Inc.", ""), None),
            (Dmi::default(), None),
        ];
        for (d, want) in cases {
            assert_eq!(d.provider(), want, "{d:?}");
        }
    }

    #[test]
    fn reads_a_dmi_directory() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("sys_vendor"), "Amazon EC2\n").unwrap();
        assert_eq!(detect(d.path()), Some(ProviderKind::Aws));
        assert_eq!(detect(&d.path().join("missing")), None);
    }

    #[test]
    fn names_round_trip() {
        for k in ALL {
            assert_eq!(k.as_str().parse::<ProviderKind>(), Ok(k));
        }
        assert!("ec2".parse::<ProviderKind>().is_err());
    }
}
