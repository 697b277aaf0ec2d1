//! Which discovered device a selector names: exactly one, or an error naming every
//! candidate seen and what each was.
use super::discover::{human, BlockDevice, ProbeCache, EBS_MODEL};
use super::host::VolumeHost;
use super::probe::Probe;
use super::spec::DeviceSelector;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("no device matches {selector}; seen: {seen}")]
    None { selector: String, seen: String },
    #[error("{count} devices match {selector}: {matches}")]
    Many {
        selector: String,
        count: usize,
        matches: String,
    },
}

/// What matched, with the identity it was matched on.
#[derive(Debug, Clone)]
pub struct Selected {
    pub device: BlockDevice,
    /// `serial "vol0abc…" (EBS vol-0abc…)`, `label "data"`: how it was recognised.
    pub matched_by: String,
}

/// One device and what is known about it for this selector.
struct Seen<'a> {
    d: &'a BlockDevice,
    probe: Option<Result<Probe, String>>,
    part: Option<(Option<String>, String)>,
}

impl Seen<'_> {
    fn describe(&self) -> String {
        let d = self.d;
        let mut words = vec![human(d.size)];
        if let Some(s) = &d.serial {
            words.push(format!("serial {s:?}"));
        }
        if let Some(w) = &d.wwid {
            words.push(format!("wwid {w:?}"));
        }
        if let Some(m) = &d.model {
            words.push(format!("model {m:?}"));
        }
        if let Some((label, uuid)) = &self.part {
            if let Some(l) = label {
                words.push(format!("partlabel {l:?}"));
            }
            words.push(format!("partuuid {uuid}"));
        }
        match &self.probe {
            Some(Ok(p)) => words.push(p.describe()),
            Some(Err(e)) => words.push(format!("unreadable: {e}")),
            None => {}
        }
        format!("{} ({})", d.name, words.join(", "))
    }
}

/// The EBS form of a volume id as the NVMe serial shows it: `vol-0abc` -> `vol0abc`.
fn ebs_serial(volume_id: &str) -> Option<String> {
    volume_id
        .strip_prefix("vol-")
        .map(|rest| format!("vol{rest}"))
}

fn serial_match(d: &BlockDevice, want: &str) -> Option<String> {
    if d.partition.is_some() {
        return None;
    }
    if d.serial.as_deref() == Some(want) {
        return Some(format!("serial {want:?}"));
    }
    if d.wwid.as_deref() == Some(want) {
        return Some(format!("wwid {want:?}"));
    }
    let ebs = ebs_serial(want)?;
    (d.model.as_deref() == Some(EBS_MODEL) && d.serial.as_deref() == Some(ebs.as_str()))
        .then(|| format!("serial {ebs:?} (EBS {want})"))
}

/// Pick the one device `selector` names among `devices`. `Ok(None)`: nothing matches (yet).
pub fn select(
    host: &dyn VolumeHost,
    devices: &[BlockDevice],
    selector: &DeviceSelector,
    cache: &mut ProbeCache,
) -> Result<Option<Selected>, SelectError> {
    let path_devnum = match selector {
        DeviceSelector::Path(p) => host.block_devnum(p).ok(),
        _ => None,
    };
    let mut hits = vec![];
    for d in devices.iter().filter(|d| d.size > 0) {
        let mut s = Seen {
            d,
            probe: None,
            part: None,
        };
        let hit = match selector {
            DeviceSelector::Path(p) => (path_devnum == Some(d.devnum))
                .then(|| format!("path {} ({}:{})", p.display(), d.devnum.0, d.devnum.1)),
            DeviceSelector::Serial(want) => serial_match(d, want),
            DeviceSelector::Label(want) | DeviceSelector::Uuid(want) => {
                let p = cache.probe(host, d);
                let is_label = matches!(selector, DeviceSelector::Label(_));
                let hit = p.as_ref().ok().and_then(|p| {
                    p.found
                        .iter()
                        .filter(|s| s.kind.is_filesystem())
                        .find_map(|s| {
                            let v = if is_label { &s.label } else { &s.uuid };
                            let v = v.as_deref()?;
                            let same = if is_label {
                                v == want
                            } else {
                                v.eq_ignore_ascii_case(want)
                            };
                            same.then(|| format!("{} {selector}", s.kind))
                        })
                });
                s.probe = Some(p);
                hit
            }
            DeviceSelector::Partlabel(want) | DeviceSelector::Partuuid(want) => {
                let entry = cache.gpt_entry(host, devices, d);
                s.part = entry.map(|e| (e.partlabel, e.partuuid));
                s.part.as_ref().and_then(|(label, uuid)| {
                    let same = match selector {
                        DeviceSelector::Partlabel(_) => label.as_deref() == Some(want.as_str()),
                        _ => uuid.eq_ignore_ascii_case(want),
                    };
                    same.then(|| selector.to_string())
                })
            }
        };
        if let Some(by) = hit {
            let found = Selected {
                device: d.clone(),
                matched_by: by,
            };
            hits.push((s.describe(), found));
        }
    }
    if hits.len() > 1 {
        return Err(SelectError::Many {
            selector: selector.to_string(),
            count: hits.len(),
            matches: hits.into_iter().map(|h| h.0).collect::<Vec<_>>().join("; "),
        });
    }
    Ok(hits.pop().map(|h| h.1))
}

/// The "nothing matched" error, naming what was seen.
pub fn none_error(
    host: &dyn VolumeHost,
    devices: &[BlockDevice],
    selector: &DeviceSelector,
    cache: &mut ProbeCache,
) -> SelectError {
    let seen: Vec<String> = devices
        .iter()
        .filter(|d| d.size > 0)
        .map(|d| {
            let mut s = Seen {
                d,
                probe: None,
                part: None,
            };
            match selector {
                DeviceSelector::Label(_) | DeviceSelector::Uuid(_) => {
                    s.probe = Some(cache.probe(host, d))
                }
                DeviceSelector::Partlabel(_) | DeviceSelector::Partuuid(_) => {
                    s.part = cache
                        .gpt_entry(host, devices, d)
                        .map(|e| (e.partlabel, e.partuuid))
                }
                _ => {}
            }
            s.describe()
        })
        .collect();
    SelectError::None {
        selector: selector.to_string(),
        seen: if seen.is_empty() {
            "no block devices".into()
        } else {
            seen.join("; ")
        },
    }
}
