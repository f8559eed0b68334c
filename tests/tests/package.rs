//! The Debian package, installed on this machine with apt as an admin would: its binaries
//! run, the default configuration is a conffile (an admin's edit survives a reinstall), the
//! sensor's unit verifies, is enabled and is not started, and a purge leaves nothing behind
//! (the database directory, the enablement links). `cargo xtask test` builds the package
//! first (`cargo xtask package`).
//!
//! When PID 1 is not systemd (this VM: `ps -p 1 -o comm=` is `process_api`), "enabled" is
//! the link deb-systemd-helper makes for the next boot, read with `systemctl is-enabled`
//! (which reads the files when no manager answers), and "not started" means no
//! /usr/bin/vtrail-sensor process; under systemd the manager is asked as well.
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use tests::sensor::{bin_dir, require_root};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const BINARIES: [&str; 4] = ["vtrail-sensor", "vtrail-analysis", "vtrail-ddns", "vtrail-collect"];
const UNITS: [&str; 3] = ["vtrail-sensor.service", "vtrail-ddns.service", "vtrail-collect.service"];
const CONFIG: &str = "/etc/vtrail/config.toml";
const STATE: &str = "/var/lib/vtrail";
/// The default `kernel_state` (bpffs): pinned maps, and the pinned links of a sensor that
/// died without a clean stop.
const KERNEL_STATE: &str = "/sys/fs/bpf/vtrail";
const WANTS_LINK: &str = "/etc/systemd/system/multi-user.target.wants/vtrail-sensor.service";

/// Runs a command with no terminal and no stdin (a dpkg prompt fails instead of waiting);
/// returns its exit success and stdout + stderr.
fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.stdin(Stdio::null()).env("DEBIAN_FRONTEND", "noninteractive").output().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn must(cmd: &mut Command) -> String {
    let (ok, text) = run(cmd);
    assert!(ok, "{cmd:?} failed:\n{text}");
    text
}

fn apt(args: &[&str]) -> String {
    must(Command::new("apt-get").args(["-y", "-q"]).args(args))
}

/// dpkg's status of vtrail: `install ok installed`, `deinstall ok config-files`, or "" when
/// it is not on the machine (never installed, or purged: dpkg forgets it or says
/// `not-installed`).
fn dpkg_status() -> String {
    let (known, text) = run(Command::new("dpkg-query").args(["-W", "-f=${Status}", "vtrail"]));
    if known && !text.ends_with("not-installed") { text } else { String::new() }
}

/// `systemctl is-enabled UNIT`'s answer (it reads the links itself when PID 1 is not systemd).
fn is_enabled(unit: &str) -> String {
    run(Command::new("systemctl").args(["is-enabled", unit])).1.trim().to_string()
}

fn systemd_is_pid1() -> bool {
    // sd_booted(3)'s test, the one the maintainer scripts make.
    Path::new("/run/systemd/system").is_dir()
}

/// PIDs of processes running the installed sensor.
fn installed_sensors() -> Vec<String> {
    let procs = std::fs::read_dir("/proc").unwrap();
    procs
        .filter_map(|e| e.ok())
        .filter(|e| std::fs::read_link(e.path().join("exe")).is_ok_and(|exe| exe == Path::new("/usr/bin/vtrail-sensor")))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// The package `cargo xtask package` built beside this test's target directory.
fn built_package() -> PathBuf {
    let arch = must(Command::new("dpkg").arg("--print-architecture"));
    let target = bin_dir().parent().expect("target/<profile> has a parent").to_path_buf();
    let deb = target.join("debian").join(format!("vtrail_{VERSION}_{}.deb", arch.trim()));
    assert!(deb.is_file(), "{} is missing: build it first with `cargo xtask package` (`cargo xtask test` does)", deb.display());
    deb
}

/// Purges vtrail when the test ends, passed or not, so that the machine is left as it was.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        if !dpkg_status().is_empty() {
            let (ok, text) = run(Command::new("dpkg").args(["--purge", "vtrail"]));
            if !ok {
                eprintln!("cleaning up: dpkg --purge vtrail failed:\n{text}");
            }
        }
    }
}

#[test]
fn apt_installs_the_package_enabled_not_started_keeps_an_edited_config_and_purges_clean() {
    require_root();
    let deb = built_package();
    let deb = deb.to_str().expect("a UTF-8 target path");
    // Purging at the end deletes /etc/vtrail and /var/lib/vtrail: refuse to run where they
    // are someone's.
    assert_eq!(dpkg_status(), "", "vtrail is already installed here; the test installs and purges its own: `apt-get purge vtrail` first");
    for path in ["/etc/vtrail", STATE, KERNEL_STATE] {
        assert!(!Path::new(path).exists(), "{path} exists (an earlier `cargo xtask install`?): the test would purge it; move it away first");
    }
    let _purge = Purge;

    apt(&["install", "--no-install-recommends", deb]);
    assert_eq!(dpkg_status(), "install ok installed");
    let fields = must(Command::new("dpkg-query").args(["-W", "-f=${Version} ${Depends}", "vtrail"]));
    assert!(fields.starts_with(&format!("{VERSION} ")) && fields.contains("libc6 (>= "), "version and Depends: {fields}");

    for bin in BINARIES {
        let out = must(Command::new(Path::new("/usr/bin").join(bin)).arg("--version"));
        assert_eq!(out.trim(), format!("{bin} {VERSION}"), "/usr/bin/{bin} --version");
    }
    let default = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../sensor-user/src/default-config.toml")).unwrap();
    assert_eq!(std::fs::read_to_string(CONFIG).unwrap(), default, "{CONFIG} is the embedded default");

    let unit = Path::new("/usr/lib/systemd/system/vtrail-sensor.service");
    let text = std::fs::read_to_string(unit).unwrap_or_else(|e| panic!("{}: {e}", unit.display()));
    assert!(text.contains("ExecStart=/usr/bin/vtrail-sensor --config /etc/vtrail/config.toml run"), "{text}");
    for name in UNITS {
        let path = unit.with_file_name(name);
        let (ok, out) = run(Command::new("systemd-analyze").arg("verify").arg(&path));
        assert!(ok && out.trim().is_empty(), "systemd-analyze verify {}:\n{out}", path.display());
    }

    // Enabled for the next boot: the link, and systemctl's own reading of it.
    let link = std::fs::canonicalize(WANTS_LINK).unwrap_or_else(|e| panic!("{WANTS_LINK}: {e} (the postinst did not enable the unit)"));
    assert_eq!(link, std::fs::canonicalize(unit).unwrap());
    assert_eq!(is_enabled("vtrail-sensor.service"), "enabled");
    // Not these two: they cannot start before their .env files and keys exist.
    assert_eq!(is_enabled("vtrail-ddns.service"), "disabled");
    assert_eq!(is_enabled("vtrail-collect.service"), "disabled");
    // Not started.
    assert_eq!(installed_sensors(), Vec::<String>::new(), "a /usr/bin/vtrail-sensor runs after the install");
    if systemd_is_pid1() {
        let (_, active) = run(Command::new("systemctl").args(["is-active", "vtrail-sensor.service"]));
        assert_eq!(active.trim(), "inactive", "systemctl is-active vtrail-sensor");
    }

    // A reinstall (the upgrade path: prerm upgrade, postinst configure <old version>) keeps
    // an admin's configuration and their choice to disable the sensor.
    let edited = format!("{default}\n# edited by the admin\n");
    std::fs::write(CONFIG, &edited).unwrap();
    must(Command::new("systemctl").args(["disable", "vtrail-sensor.service"]));
    apt(&["install", "--reinstall", deb]);
    assert_eq!(std::fs::read_to_string(CONFIG).unwrap(), edited, "the reinstall replaced the edited {CONFIG}");
    assert_eq!(is_enabled("vtrail-sensor.service"), "disabled", "the reinstall enabled a unit the admin had disabled");
    // Enabled again, so that the purge below has a link to remove.
    must(Command::new("systemctl").args(["enable", "vtrail-sensor.service"]));
    assert!(Path::new(WANTS_LINK).is_symlink());

    // Removed: the binaries go, the configuration stays.
    // As a sensor killed before the removal leaves its kernel state (a directory of link
    // pins keeps its programs attached; the maps are kept for a reinstall).
    let crashed_links = Path::new(KERNEL_STATE).join("links/4242");
    std::fs::create_dir_all(&crashed_links).unwrap();
    apt(&["remove", "vtrail"]);
    assert_eq!(dpkg_status(), "deinstall ok config-files");
    assert!(!crashed_links.parent().unwrap().exists() && Path::new(KERNEL_STATE).exists(), "remove detaches a dead sensor's programs and keeps the maps");
    assert!(!Path::new("/usr/bin/vtrail-sensor").exists());
    assert_eq!(std::fs::read_to_string(CONFIG).unwrap(), edited);

    // Purged, with a database as a sensor would have left it: nothing of vtrail remains.
    std::fs::create_dir_all(Path::new(STATE).join("db")).unwrap();
    std::fs::write(Path::new(STATE).join("db/conf"), "as sled leaves it").unwrap();
    apt(&["purge", "vtrail"]);
    assert_eq!(dpkg_status(), "");
    let left: Vec<&str> = ["/etc/vtrail", STATE, KERNEL_STATE, WANTS_LINK, "/etc/systemd/system/vtrail-sensor.service", "/var/lib/systemd/deb-systemd-helper-enabled/vtrail-sensor.service.dsh-also"]
        .into_iter()
        .filter(|p| Path::new(p).symlink_metadata().is_ok())
        .collect();
    assert!(left.is_empty(), "left after the purge: {left:?}");
}
