//! The decision table: what to do with a selected device, given what probing found and the
//! volume's `filesystem` and `format`. Only a device found blank is ever formatted.
use super::discover::BlockDevice;
use super::probe::Probe;
use super::spec::FormatPolicy;

/// Stable message ids of the volume stage's security events, for alerting.
pub const FORMAT_REFUSED: &str = "PYRE_FORMAT_REFUSED";
pub const WRONG_TYPE: &str = "PYRE_VOLUME_WRONG_TYPE";
pub const IN_USE: &str = "PYRE_VOLUME_IN_USE";
pub const FORMATTED: &str = "PYRE_VOLUME_FORMATTED";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The configured filesystem is there: mount it.
    Mount,
    /// The device is blank and the config allows it: mkfs (after a re-probe), then mount.
    FormatAndMount,
}

/// Why a device is not used; `id` is the stable message id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Refusal {
    pub id: &'static str,
    pub reason: String,
}

fn refuse(id: &'static str, reason: String) -> Result<Action, Refusal> {
    Err(Refusal { id, reason })
}

pub fn decide(
    want: &str,
    format: FormatPolicy,
    device: &BlockDevice,
    probe: &Probe,
) -> Result<Action, Refusal> {
    let node = device.node.display();
    if !device.holders.is_empty() {
        let by = device.holders.join(", ");
        return refuse(IN_USE, format!("{node} is in use by {by}: not touching it"));
    }
    let found = probe.describe();
    let if_blank = format == FormatPolicy::IfBlank;
    let has_want = probe.found.iter().any(|s| s.kind.name() == want);
    match (probe.found.len(), has_want) {
        (1, true) => return Ok(Action::Mount),
        (_, true) => {
            return refuse(
                WRONG_TYPE,
                format!("{node} holds {found}: more than one signature, not mounting it as {want}"),
            )
        }
        _ => {}
    }
    if probe.is_blank() {
        return match format {
            FormatPolicy::IfBlank if device.read_only => refuse(
                FORMAT_REFUSED,
                format!("{node} is blank but read-only: cannot format it"),
            ),
            FormatPolicy::IfBlank => Ok(Action::FormatAndMount),
            FormatPolicy::Never => refuse(
                FORMAT_REFUSED,
                format!("{node} is blank and format is never: not formatting it"),
            ),
        };
    }
    if if_blank {
        refuse(
            FORMAT_REFUSED,
            format!("{node} is not blank ({found}): not formatting it, not mounting it as {want}"),
        )
    } else {
        refuse(
            WRONG_TYPE,
            format!("{node} holds {found}, not {want}: not mounting it"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volumes::probe::{Kind, Signature};

    fn dev(holders: &[&str], ro: bool) -> BlockDevice {
        BlockDevice {
            name: "vdb".into(),
            node: "/dev/vdb".into(),
            devnum: (254, 16),
            size: 1 << 30,
            partition: None,
            parent: None,
            serial: None,
            wwid: None,
            model: None,
            holders: holders.iter().map(|s| s.to_string()).collect(),
            partitions: vec![],
            read_only: ro,
            diskseq: None,
        }
    }

    fn probe(kinds: &[Kind], nonzero: Option<u64>) -> Probe {
        let found = kinds
            .iter()
            .map(|k| Signature {
                kind: *k,
                offset: 0,
                label: None,
                uuid: None,
                fs_size: None,
                note: None,
            })
            .collect();
        Probe {
            size: 1 << 30,
            bytes_read: 0,
            found,
            first_nonzero: nonzero.or(if kinds.is_empty() { None } else { Some(0) }),
        }
    }

    #[test]
    fn decision_table() {
        use FormatPolicy::{IfBlank, Never};
        let ok = |a: Action| Ok::<_, (&str, &str)>(a);
        let no = |id, text| Err::<Action, _>((id, text));
        type Expected = Result<Action, (&'static str, &'static str)>;
        type Case = (
            &'static str,
            FormatPolicy,
            &'static [Kind],
            Option<u64>,
            &'static [&'static str],
            bool,
            Expected,
        );
        let cases: Vec<Case> = vec![
            ("ext4", Never, &[Kind::Ext4], None, &[], false, ok(Action::Mount)),
            ("ext4", IfBlank, &[Kind::Ext4], None, &[], false, ok(Action::Mount)),
            ("ext4", IfBlank, &[], None, &[], false, ok(Action::FormatAndMount)),
            ("xfs", IfBlank, &[], None, &[], false, ok(Action::FormatAndMount)),
            ("ext4", Never, &[], None, &[], false, no(FORMAT_REFUSED, "/dev/vdb is blank and format is never: not formatting it")),
            ("ext4", IfBlank, &[], None, &[], true, no(FORMAT_REFUSED, "/dev/vdb is blank but read-only: cannot format it")),
            ("ext4", IfBlank, &[], Some(4096), &[], false, no(FORMAT_REFUSED, "/dev/vdb is not blank (no known signature, non-zero data at byte 4096): not formatting it, not mounting it as ext4")),
            ("ext4", Never, &[], Some(4096), &[], false, no(WRONG_TYPE, "/dev/vdb holds no known signature, non-zero data at byte 4096, not ext4: not mounting it")),
            ("ext4", IfBlank, &[Kind::Xfs], None, &[], false, no(FORMAT_REFUSED, "/dev/vdb is not blank (xfs): not formatting it, not mounting it as ext4")),
            ("ext4", Never, &[Kind::Xfs], None, &[], false, no(WRONG_TYPE, "/dev/vdb holds xfs, not ext4: not mounting it")),
            ("ext4", Never, &[Kind::Ext3], None, &[], false, no(WRONG_TYPE, "/dev/vdb holds ext3, not ext4: not mounting it")),
            ("ext4", IfBlank, &[Kind::Ext4, Kind::GptBackup], None, &[], false, no(WRONG_TYPE, "/dev/vdb holds ext4 and gpt-backup: more than one signature, not mounting it as ext4")),
            ("ext4", IfBlank, &[Kind::Luks2], None, &[], false, no(FORMAT_REFUSED, "/dev/vdb is not blank (luks2): not formatting it, not mounting it as ext4")),
            ("ext4", IfBlank, &[], None, &["dm-0"], false, no(IN_USE, "/dev/vdb is in use by dm-0: not touching it")),
            ("ext4", Never, &[Kind::Ext4], None, &["md127"], false, no(IN_USE, "/dev/vdb is in use by md127: not touching it")),
        ];
        for (want, format, kinds, nonzero, holders, ro, expected) in cases {
            let got = decide(want, format, &dev(holders, ro), &probe(kinds, nonzero))
                .map_err(|r| (r.id, r.reason));
            let expected = expected.map_err(|(id, text)| (id, text.to_string()));
            assert_eq!(
                got, expected,
                "{want} {format:?} {kinds:?} {nonzero:?} {holders:?}"
            );
        }
    }
}
