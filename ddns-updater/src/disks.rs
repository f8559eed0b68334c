//! Whole-disk discovery from sysfs and udev data, the way udev and lsblk see disks.
//!
//! Everything is read below a root directory (`/` on a live system, a fixture tree in
//! tests): `<root>/sys/block/*` lists block devices, `<root>/run/udev/data/b<maj>:<min>`
//! holds udev's properties for them.
//!
//! | device | serial from | model from |
//! |---|---|---|
//! | NVMe namespace `nvmeXnY` | `device/serial` (the controller, = `/sys/class/nvme/nvmeX/serial`), `_<nsid>` appended for nsid > 1 | `device/model` |
//! | virtio `vdX` | `serial` (empty = none) | `"virtio"` |
//! | SCSI/SATA/other | udev `ID_SERIAL_SHORT`, then `ID_SCSI_SERIAL`, then `device/vpd_pg80` | `device/model`, then udev `ID_MODEL` |
//!
//! Skipped, with the reason recorded: partitions, `loop*`, `ram*`, `zram*`, removable media.
//! `dm-*` and `md*` are not disks: they are reported as [`VirtualDevice`]s with the whole
//! disks under them (`slaves/`, followed through nested dm/md and partitions).
//! A disk without a serial is listed with `serial: None` and no ID. Two disks with the same
//! ID (same model and serial: multipath, or a vendor that ships one serial for all units)
//! are both listed; the second gets `duplicate_of` naming the first, and only the first
//! counts as a node ID.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::id::node_id;

/// What kind of device a disk is, from its kernel name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskKind {
    Nvme,
    Virtio,
    Scsi,
    Other,
}

/// Where a serial was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SerialSource {
    NvmeSysfs,
    VirtioSysfs,
    UdevIdSerialShort,
    UdevIdScsiSerial,
    VpdPage80,
}

/// One whole disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disk {
    /// Kernel name, e.g. `nvme0n1`, `sda`, `vdb`.
    pub name: String,
    pub kind: DiskKind,
    pub model: String,
    pub serial: Option<String>,
    pub serial_source: Option<SerialSource>,
    /// Node ID (see [`crate::id`]); `None` when the disk has no serial.
    pub id: Option<String>,
    /// Name of an earlier disk with the same ID, when this one repeats it.
    pub duplicate_of: Option<String>,
}

/// A dm or md device and the whole disks under it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VirtualDevice {
    pub name: String,
    pub members: Vec<String>,
}

/// A block device that is not a disk, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub name: String,
    pub reason: String,
}

/// Everything discovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Discovery {
    pub disks: Vec<Disk>,
    pub virtual_devices: Vec<VirtualDevice>,
    pub skipped: Vec<Skipped>,
}

impl Discovery {
    /// The distinct node IDs (disks with a serial, first of each duplicate group), in
    /// discovery order.
    pub fn ids(&self) -> Vec<String> {
        self.disks
            .iter()
            .filter(|d| d.duplicate_of.is_none())
            .filter_map(|d| d.id.clone())
            .collect()
    }
}

/// Discovery failed as a whole (single unreadable attributes only degrade one disk).
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("cannot list block devices in {path}: {source} (is --sysfs-root right?)")]
    ListBlock { path: PathBuf, source: io::Error },
}

/// The whole disks under `root`, with IDs. See the module docs.
pub fn discover(root: &Path) -> Result<Vec<Disk>, DiscoverError> {
    Ok(discover_all(root)?.disks)
}

/// Disks, dm/md devices and skipped devices under `root`.
pub fn discover_all(root: &Path) -> Result<Discovery, DiscoverError> {
    let block = root.join("sys/block");
    let entries = fs::read_dir(&block).map_err(|source| DiscoverError::ListBlock {
        path: block.clone(),
        source,
    })?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort_by_key(|a| natural_key(a));

    let mut out = Discovery::default();
    for name in &names {
        let dev = block.join(name);
        if let Some(reason) = skip_reason(name, &dev) {
            out.skipped.push(Skipped {
                name: name.clone(),
                reason,
            });
            continue;
        }
        if name.starts_with("dm-") || name.starts_with("md") {
            let mut members = Vec::new();
            resolve_members(&block, name, &mut members, 0);
            members.sort();
            members.dedup();
            out.virtual_devices.push(VirtualDevice {
                name: name.clone(),
                members,
            });
            continue;
        }
        out.disks.push(read_disk(root, name, &dev));
    }

    let mut first: HashMap<String, String> = HashMap::new();
    for disk in &mut out.disks {
        if let Some(id) = &disk.id {
            match first.get(id) {
                Some(owner) => disk.duplicate_of = Some(owner.clone()),
                None => {
                    first.insert(id.clone(), disk.name.clone());
                }
            }
        }
    }
    Ok(out)
}

fn skip_reason(name: &str, dev: &Path) -> Option<String> {
    for prefix in ["loop", "ram", "zram", "nbd", "sr", "fd"] {
        if name.starts_with(prefix) {
            return Some(format!("{prefix} device"));
        }
    }
    if dev.join("partition").exists() {
        return Some("partition".into());
    }
    if read_trimmed(&dev.join("removable")).as_deref() == Some("1") {
        return Some("removable media".into());
    }
    None
}

/// Collects the whole disks under a dm/md device through `slaves/`, following nested
/// virtual devices and mapping partitions to their disk.
fn resolve_members(block: &Path, name: &str, out: &mut Vec<String>, depth: u32) {
    if depth > 16 {
        return; // a loop in a broken tree
    }
    let Ok(entries) = fs::read_dir(block.join(name).join("slaves")) else {
        return;
    };
    for slave in entries.filter_map(|e| e.ok()) {
        let Ok(slave) = slave.file_name().into_string() else {
            continue;
        };
        if block.join(&slave).is_dir() {
            if slave.starts_with("dm-") || slave.starts_with("md") {
                resolve_members(block, &slave, out, depth + 1);
            } else {
                out.push(slave);
            }
        } else if let Some(parent) = partition_parent(block, &slave) {
            out.push(parent);
        } else {
            out.push(slave);
        }
    }
}

/// The whole disk that has a partition called `part` (`sys/block/<disk>/<part>`).
fn partition_parent(block: &Path, part: &str) -> Option<String> {
    let entries = fs::read_dir(block).ok()?;
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .find(|disk| block.join(disk).join(part).is_dir())
}

fn read_disk(root: &Path, name: &str, dev: &Path) -> Disk {
    let kind = kind_of(name);
    let udev = read_dev(dev)
        .and_then(|(maj, min)| {
            fs::read_to_string(root.join(format!("run/udev/data/b{maj}:{min}"))).ok()
        })
        .map(|s| parse_udev_data(&s))
        .unwrap_or_default();
    let sysfs_model = read_trimmed(&dev.join("device/model")).filter(|m| !m.is_empty());
    let udev_model = udev.get("ID_MODEL").map(|m| m.replace('_', " "));

    let (model, found) = match kind {
        DiskKind::Nvme => {
            let ctrl = nvme_controller(name);
            let serial = read_trimmed(&dev.join("device/serial"))
                .or_else(|| {
                    ctrl.and_then(|c| {
                        read_trimmed(&root.join("sys/class/nvme").join(c).join("serial"))
                    })
                })
                .and_then(|s| clean_serial(&s))
                .map(|s| match nvme_nsid(name) {
                    Some(n) if n > 1 => format!("{s}_{n}"),
                    _ => s,
                });
            (
                sysfs_model.or(udev_model).unwrap_or_default(),
                serial.map(|s| (s, SerialSource::NvmeSysfs)),
            )
        }
        DiskKind::Virtio => {
            let serial = read_trimmed(&dev.join("serial")).and_then(|s| clean_serial(&s));
            (
                "virtio".to_string(),
                serial.map(|s| (s, SerialSource::VirtioSysfs)),
            )
        }
        DiskKind::Scsi | DiskKind::Other => {
            let serial = udev
                .get("ID_SERIAL_SHORT")
                .and_then(|s| clean_serial(s))
                .map(|s| (s, SerialSource::UdevIdSerialShort))
                .or_else(|| {
                    udev.get("ID_SCSI_SERIAL")
                        .and_then(|s| clean_serial(s))
                        .map(|s| (s, SerialSource::UdevIdScsiSerial))
                })
                .or_else(|| {
                    fs::read(dev.join("device/vpd_pg80"))
                        .ok()
                        .and_then(|b| parse_vpd_pg80(&b))
                        .map(|s| (s, SerialSource::VpdPage80))
                });
            (sysfs_model.or(udev_model).unwrap_or_default(), serial)
        }
    };
    let (serial, serial_source) = match found {
        Some((s, src)) => (Some(s), Some(src)),
        None => (None, None),
    };
    let id = serial.as_ref().map(|s| node_id(&model, s));
    Disk {
        name: name.to_string(),
        kind,
        model,
        serial,
        serial_source,
        id,
        duplicate_of: None,
    }
}

fn kind_of(name: &str) -> DiskKind {
    if nvme_nsid(name).is_some() {
        DiskKind::Nvme
    } else if name.starts_with("vd") {
        DiskKind::Virtio
    } else if name.starts_with("sd") {
        DiskKind::Scsi
    } else {
        DiskKind::Other
    }
}

/// `nvme0n2` -> `Some(2)`; not an NVMe namespace name -> `None`.
fn nvme_nsid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("nvme")?;
    let (ctrl, ns) = rest.split_once('n')?;
    if ctrl.is_empty() || !ctrl.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    ns.parse().ok()
}

/// `nvme0n2` -> `nvme0`.
fn nvme_controller(name: &str) -> Option<String> {
    let rest = name.strip_prefix("nvme")?;
    let (ctrl, _) = rest.split_once('n')?;
    Some(format!("nvme{ctrl}"))
}

fn read_dev(dev: &Path) -> Option<(u32, u32)> {
    parse_dev(&fs::read_to_string(dev.join("dev")).ok()?)
}

fn read_trimmed(path: &Path) -> Option<String> {
    let bytes = fs::read(path).ok()?;
    Some(String::from_utf8_lossy(&bytes).trim().to_string())
}

/// Sort key comparing digit runs as numbers: `nvme2n1` before `nvme10n1`.
fn natural_key(name: &str) -> Vec<(String, u64)> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut num = String::new();
    for c in name.chars() {
        if c.is_ascii_digit() {
            num.push(c);
        } else {
            if !num.is_empty() {
                parts.push((std::mem::take(&mut text), num.parse().unwrap_or(u64::MAX)));
                num.clear();
            }
            text.push(c);
        }
    }
    parts.push((text, num.parse().unwrap_or(0)));
    parts
}

// ---- parsers (no I/O) ----

/// Parses a sysfs `dev` attribute, `"8:0\n"` -> `(8, 0)`.
pub fn parse_dev(s: &str) -> Option<(u32, u32)> {
    let (maj, min) = s.trim().split_once(':')?;
    Some((maj.parse().ok()?, min.parse().ok()?))
}

/// Parses a udev database file (`/run/udev/data/b8:0`): the `E:KEY=VALUE` property lines.
/// Other lines (`S:`, `I:`, `G:`, ...) and malformed lines are ignored.
pub fn parse_udev_data(s: &str) -> BTreeMap<String, String> {
    s.lines()
        .filter_map(|l| l.strip_prefix("E:"))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Parses SCSI VPD page 0x80 (Unit Serial Number): byte 1 is the page code 0x80, bytes
/// 2..4 the big-endian length, then the serial in ASCII, possibly space padded.
pub fn parse_vpd_pg80(b: &[u8]) -> Option<String> {
    if b.len() < 4 || b[1] != 0x80 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([b[2], b[3]]));
    let body = b.get(4..4 + len).unwrap_or(&b[4..]);
    let text: String = body
        .iter()
        .filter(|c| c.is_ascii_graphic() || **c == b' ')
        .map(|&c| c as char)
        .collect();
    clean_serial(&text)
}

/// Trims a serial and rejects the placeholders firmware reports for "no serial".
pub fn clean_serial(s: &str) -> Option<String> {
    let s = s.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    if s.is_empty() || s.chars().any(|c| c.is_control()) {
        return None;
    }
    if s.chars()
        .all(|c| c == '0' || c == ' ' || c == '-' || c == '_')
    {
        return None;
    }
    Some(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dev() {
        assert_eq!(parse_dev("8:16\n"), Some((8, 16)));
        assert_eq!(parse_dev("8-16"), None);
        assert_eq!(parse_dev("x:1"), None);
        assert_eq!(parse_dev(""), None);
    }

    #[test]
    fn parses_udev_data() {
        let m = parse_udev_data(
            "S:disk/by-id/x\nE:ID_SERIAL_SHORT=WD-123\nE:BROKEN\nE:ID_MODEL=WDC_X\nI:1\n",
        );
        assert_eq!(m.get("ID_SERIAL_SHORT").map(String::as_str), Some("WD-123"));
        assert_eq!(m.get("ID_MODEL").map(String::as_str), Some("WDC_X"));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn parses_vpd_pg80() {
        let mut page = vec![0x00, 0x80, 0x00, 0x0a];
        page.extend_from_slice(b"  ABC123  ");
        assert_eq!(parse_vpd_pg80(&page).as_deref(), Some("ABC123"));
        assert_eq!(parse_vpd_pg80(&[0, 0x80]), None);
        assert_eq!(parse_vpd_pg80(&[0, 0x83, 0, 1, b'x']), None);
        // length larger than the data: use what is there, never panic
        assert_eq!(
            parse_vpd_pg80(&[0, 0x80, 0xff, 0xff, b'Z', b'9']).as_deref(),
            Some("Z9")
        );
        assert_eq!(parse_vpd_pg80(&[0, 0x80, 0, 4, b' ', b' ', 0, 0]), None);
    }

    #[test]
    fn cleans_serials() {
        assert_eq!(clean_serial("  S1 \n").as_deref(), Some("S1"));
        assert_eq!(clean_serial(""), None);
        assert_eq!(clean_serial("00000000"), None);
        assert_eq!(clean_serial("a\u{1}b"), None);
    }

    #[test]
    fn nvme_names() {
        assert_eq!(nvme_nsid("nvme0n1"), Some(1));
        assert_eq!(nvme_nsid("nvme10n3"), Some(3));
        assert_eq!(nvme_nsid("nvme0"), None);
        assert_eq!(nvme_nsid("nvmexn1"), None);
        assert_eq!(nvme_controller("nvme10n3").as_deref(), Some("nvme10"));
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["sdaa", "sdb", "nvme10n1", "nvme2n1"];
        v.sort_by_key(|a| natural_key(a));
        assert_eq!(v, ["nvme2n1", "nvme10n1", "sdaa", "sdb"]);
    }
}
