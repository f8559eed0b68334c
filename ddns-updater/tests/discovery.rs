//! Disk discovery on fixture sysfs trees generated here (NVMe, virtio with and without
//! serial, SATA via udev data, VPD page 0x80, partitions, dm/md, removable, loop/ram/zram,
//! duplicate serials, garbage attributes), through the library and the `ids` command.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use ddns_updater::disks::{DiskKind, SerialSource, discover, discover_all};
use ddns_updater::id::{is_valid_id, node_id};

struct Tree(PathBuf);

impl Tree {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("vtrail-sysfs-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(p.join("sys/block")).unwrap();
        Tree(p)
    }
    fn file(&self, rel: &str, content: impl AsRef<[u8]>) -> &Self {
        let p = self.0.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
        self
    }
    fn dir(&self, rel: &str) -> &Self {
        fs::create_dir_all(self.0.join(rel)).unwrap();
        self
    }
    fn disk(&self, name: &str, dev: &str) -> &Self {
        self.file(&format!("sys/block/{name}/dev"), format!("{dev}\n"))
            .file(&format!("sys/block/{name}/removable"), "0\n")
    }
    fn root(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The fixture host: every case of the issue in one tree.
fn fixture_host(tag: &str) -> Tree {
    let t = Tree::new(tag);
    // NVMe: controller attributes through device/ (as the sysfs symlink shows them), padded
    t.disk("nvme0n1", "259:0")
        .file("sys/block/nvme0n1/device/serial", "S5GXNF0R123456A     \n")
        .file(
            "sys/block/nvme0n1/device/model",
            "Samsung SSD 980 PRO 1TB                 \n",
        )
        .file("sys/block/nvme0n1/nvme0n1p1/partition", "1\n");
    // second namespace of the same controller: only /sys/class/nvme has the serial
    t.disk("nvme0n2", "259:2")
        .file("sys/class/nvme/nvme0/serial", "S5GXNF0R123456A\n")
        .file(
            "sys/block/nvme0n2/device/model",
            "Samsung SSD 980 PRO 1TB\n",
        );
    // virtio with and without serial
    t.disk("vda", "252:0")
        .file("sys/block/vda/serial", "VIRT-SER-1\n");
    t.disk("vdb", "252:16").file("sys/block/vdb/serial", "");
    // SATA via udev data; partition sda1 is used by dm-0
    t.disk("sda", "8:0")
        .file("sys/block/sda/device/model", "WDC WD40EFRX-68N\n")
        .file("run/udev/data/b8:0", "S:disk/by-id/ata-WDC\nE:ID_SERIAL=WDC_WD40EFRX-68N_WD-WCC4E1234567\nE:ID_SERIAL_SHORT=WD-WCC4E1234567\nE:ID_MODEL=WDC_WD40EFRX-68N\n")
        .file("sys/block/sda/sda1/partition", "1\n");
    // SCSI serial only (no ID_SERIAL_SHORT), model only in udev
    t.disk("sdb", "8:16").file(
        "run/udev/data/b8:16",
        "E:ID_SCSI_SERIAL=SCSI0042\nE:ID_MODEL=LOGICAL_VOLUME\n",
    );
    // VPD page 0x80 only
    let mut vpd = vec![0x00, 0x80, 0x00, 0x0c];
    vpd.extend_from_slice(b"  VPD777    ");
    t.disk("sdc", "8:32")
        .file("sys/block/sdc/device/model", "ST4000NM\n")
        .file("sys/block/sdc/device/vpd_pg80", vpd);
    // the same disk seen twice (multipath): duplicate serials
    for (n, dev) in [("sdd", "8:48"), ("sde", "8:64")] {
        t.disk(n, dev)
            .file(&format!("sys/block/{n}/device/model"), "MPATH DISK\n")
            .file(
                &format!("run/udev/data/b{dev}"),
                "E:ID_SERIAL_SHORT=DUP123\n",
            );
    }
    // removable USB stick, loop, ram, zram, a stray partition entry
    t.disk("sdf", "8:80")
        .file("sys/block/sdf/removable", "1\n")
        .file("run/udev/data/b8:80", "E:ID_SERIAL_SHORT=USB1\n");
    t.disk("loop0", "7:0")
        .disk("ram0", "1:0")
        .disk("zram0", "251:0");
    t.disk("sdz1", "8:241")
        .file("sys/block/sdz1/partition", "1\n");
    // dm-0 on sda1 (a partition) and sdb; md127 on dm-0 and sdc
    t.disk("dm-0", "254:0")
        .dir("sys/block/dm-0/slaves/sda1")
        .dir("sys/block/dm-0/slaves/sdb");
    t.disk("md127", "9:127")
        .dir("sys/block/md127/slaves/dm-0")
        .dir("sys/block/md127/slaves/sdc");
    t
}

#[test]
fn fixture_host_disks() {
    let t = fixture_host("host");
    let d = discover_all(t.root()).unwrap();
    let names: Vec<&str> = d.disks.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "nvme0n1", "nvme0n2", "sda", "sdb", "sdc", "sdd", "sde", "vda", "vdb"
        ]
    );
    let by = |n: &str| d.disks.iter().find(|d| d.name == n).unwrap().clone();

    let nvme = by("nvme0n1");
    assert_eq!(nvme.kind, DiskKind::Nvme);
    assert_eq!(nvme.serial.as_deref(), Some("S5GXNF0R123456A"));
    assert_eq!(nvme.model, "Samsung SSD 980 PRO 1TB");
    assert_eq!(
        nvme.id.as_deref(),
        Some(node_id("Samsung SSD 980 PRO 1TB", "S5GXNF0R123456A").as_str())
    );
    assert_eq!(by("nvme0n2").serial.as_deref(), Some("S5GXNF0R123456A_2"));
    assert_ne!(by("nvme0n2").id, nvme.id);

    assert_eq!(by("vda").serial.as_deref(), Some("VIRT-SER-1"));
    assert_eq!(by("vda").serial_source, Some(SerialSource::VirtioSysfs));
    let vdb = by("vdb");
    assert_eq!(
        (vdb.serial.as_deref(), vdb.id.as_deref()),
        (None, None),
        "no serial is reported, not invented"
    );

    let sda = by("sda");
    assert_eq!(sda.serial.as_deref(), Some("WD-WCC4E1234567"));
    assert_eq!(sda.serial_source, Some(SerialSource::UdevIdSerialShort));
    assert_eq!(sda.model, "WDC WD40EFRX-68N");
    assert_eq!(
        by("sdb").serial_source,
        Some(SerialSource::UdevIdScsiSerial)
    );
    assert_eq!(by("sdb").model, "LOGICAL VOLUME");
    assert_eq!(by("sdc").serial.as_deref(), Some("VPD777"));
    assert_eq!(by("sdc").serial_source, Some(SerialSource::VpdPage80));

    assert_eq!(by("sdd").duplicate_of, None);
    assert_eq!(by("sde").duplicate_of.as_deref(), Some("sdd"));
    assert_eq!(by("sdd").id, by("sde").id);

    for disk in &d.disks {
        if let Some(id) = &disk.id {
            assert!(is_valid_id(id), "{id}");
        }
    }
    // distinct IDs: 8 disks with serials, one of them a duplicate
    let ids = d.ids();
    assert_eq!(ids.len(), 7, "{ids:?}");

    let skipped: Vec<(&str, &str)> = d
        .skipped
        .iter()
        .map(|s| (s.name.as_str(), s.reason.as_str()))
        .collect();
    assert!(skipped.contains(&("sdf", "removable media")), "{skipped:?}");
    assert!(skipped.contains(&("sdz1", "partition")), "{skipped:?}");
    for n in ["loop0", "ram0", "zram0"] {
        assert!(
            skipped.iter().any(|(s, _)| *s == n),
            "{n} not skipped: {skipped:?}"
        );
    }
    let virt: Vec<(String, Vec<String>)> = d
        .virtual_devices
        .iter()
        .map(|v| (v.name.clone(), v.members.clone()))
        .collect();
    assert_eq!(
        virt,
        [
            (
                "dm-0".to_string(),
                vec!["sda".to_string(), "sdb".to_string()]
            ),
            (
                "md127".into(),
                vec!["sda".into(), "sdb".into(), "sdc".into()]
            )
        ]
    );

    // deterministic: same tree, same answer
    assert_eq!(discover(t.root()).unwrap(), d.disks);
}

#[test]
fn garbage_attributes_do_not_panic() {
    let t = Tree::new("garbage");
    t.disk("sda", "not-a-dev")
        .file("sys/block/sda/device/vpd_pg80", [0xffu8, 0x80, 0xff]);
    t.disk("sdb", "8:16")
        .file("run/udev/data/b8:16", [0xff, 0xfe, b'\n', b'E', b':']);
    t.disk("vda", "252:0")
        .file("sys/block/vda/serial", [0x00, 0x01, 0xff]);
    t.disk("nvme0n1", "259:0")
        .file("sys/block/nvme0n1/device/serial", "\u{0}\u{0}00000000");
    t.dir("sys/block/dm-9/slaves/dm-9"); // a loop
    let d = discover_all(t.root()).unwrap();
    assert_eq!(d.disks.len(), 4);
    assert!(
        d.disks.iter().all(|d| d.serial.is_none() && d.id.is_none()),
        "{:#?}",
        d.disks
    );
    assert!(d.ids().is_empty());
}

#[test]
fn missing_root_is_a_clear_error() {
    let e = discover(Path::new("/nonexistent/vtrail"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/nonexistent/vtrail/sys/block") && e.contains("--sysfs-root"),
        "{e}"
    );
}

#[test]
fn ids_command_table_and_json() {
    let t = fixture_host("cli");
    let bin = env!("CARGO_BIN_EXE_vtrail-ddns");
    let out = Command::new(bin)
        .args(["ids", "--json", "--sysfs-root"])
        .arg(t.root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["disks"].as_array().unwrap().len(), 9);
    assert_eq!(v["disks"][0]["name"], "nvme0n1");
    assert!(
        v["disks"][0]["id"]
            .as_str()
            .unwrap()
            .starts_with("samsung-ssd-980-pro-")
    );

    let out = Command::new(bin)
        .args(["ids", "--sysfs-root"])
        .arg(t.root())
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("vdb") && table.contains("no serial"),
        "{table}"
    );
    assert!(table.contains("duplicate of sdd"), "{table}");
    assert!(
        table.contains("md127") && table.contains("members: sda, sdb, sdc"),
        "{table}"
    );

    // no disk with a serial: exit code 4
    let empty = Tree::new("empty");
    let out = Command::new(bin)
        .args(["ids", "--sysfs-root"])
        .arg(empty.root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let out = Command::new(bin)
        .args(["ids", "--sysfs-root", "/nonexistent/vtrail"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
}
