//! `cargo xtask package`: the release build as a Debian package,
//! `TARGET/debian/vtrail_<version>_<arch>.deb`, for `apt install ./vtrail_*.deb`.
//!
//! The files are the ones `cargo xtask install --prefix /usr` puts in place (the same code),
//! staged under `debian/vtrail` as debhelper stages a package; the control file and the
//! maintainer scripts are `packaging/debian/`. The same binaries and commit give the same
//! bytes: every mtime is the commit's time (SOURCE_DATE_EPOCH, which dpkg-deb also uses for
//! its ar headers), dpkg-deb sorts the entries and makes them root's, and directory modes are
//! set rather than left to the umask.
use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime},
};

use anyhow::{Context, Result, bail};

use crate::{capture, install, run};

/// The maintainer scripts, from `packaging/debian/`.
const SCRIPTS: [&str; 3] = ["postinst", "prerm", "postrm"];

/// The workspace's version (`[workspace.package]`, which xtask inherits).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Builds the package from `bins` (the release build's directory) and `root` (the
/// workspace) in `out`, with every file dated `epoch`; returns the .deb's path.
pub fn package(bins: &Path, root: &Path, out: &Path, epoch: u64) -> Result<PathBuf> {
    let work = out.join("vtrail");
    if work.exists() {
        fs::remove_dir_all(&work).with_context(|| format!("removing the previous staging {}", work.display()))?;
    }
    let stage = work.join("debian/vtrail");
    let layout = install::Layout { prefix: "/usr".into(), destdir: stage.clone() };
    let installed = install::install(&layout, bins, root)?;

    let control_dir = stage.join("DEBIAN");
    fs::create_dir_all(&control_dir)?;
    // Every file under /etc is the admin's to edit: dpkg keeps their version on upgrade.
    let mut conffiles: Vec<String> = installed.files.iter().filter(|f| f.starts_with("/etc")).map(|f| format!("{}\n", f.display())).collect();
    conffiles.sort();
    fs::write(control_dir.join("conffiles"), conffiles.concat())?;
    for script in SCRIPTS {
        let to = control_dir.join(script);
        fs::copy(root.join("packaging/debian").join(script), &to).with_context(|| format!("packaging/debian/{script}"))?;
        fs::set_permissions(&to, fs::Permissions::from_mode(0o755))?;
    }

    let binaries: Vec<PathBuf> = installed.files.iter().filter(|f| f.starts_with(layout.bindir())).map(|f| layout.staged(f)).collect();
    let depends = shlib_depends(&work, &binaries)?;
    let arch = capture(Command::new("dpkg").arg("--print-architecture"))?.trim().to_string();
    let template = fs::read_to_string(root.join("packaging/debian/control")).context("packaging/debian/control")?;
    let control = template
        .replace("@VERSION@", VERSION)
        .replace("@ARCH@", &arch)
        .replace("@DEPENDS@", &depends)
        .replace("@INSTALLED_SIZE@", &installed_size_kib(&stage)?.to_string());
    fs::write(control_dir.join("control"), control)?;

    normalise(&stage, SystemTime::UNIX_EPOCH + Duration::from_secs(epoch))?;
    let deb = out.join(format!("vtrail_{VERSION}_{arch}.deb"));
    // zstd, not dpkg-deb's default xz: 0.2 s instead of 18 s for the 48 MB of binaries
    // (14 MB instead of 10). Every dpkg that can run them reads it: they need glibc 2.34
    // (bookworm), and dpkg reads zstd from 1.21.18 (bookworm's is 1.21.22).
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zzstd", "--build"])
        .arg(&stage)
        .arg(&deb)
        .env("SOURCE_DATE_EPOCH", epoch.to_string()))
    .context("dpkg-deb (Debian package dpkg) could not build the package")?;
    Ok(deb)
}

/// The shared libraries the binaries link, as dpkg-shlibdeps words them from the installed
/// packages' symbols files (`libc6 (>= 2.34), libgcc-s1 (>= 4.2)`). It reads `debian/control` in
/// its working directory, so `work` gets a minimal one beside the staging root.
fn shlib_depends(work: &Path, binaries: &[PathBuf]) -> Result<String> {
    fs::write(work.join("debian/control"), "Source: vtrail\n\nPackage: vtrail\nArchitecture: any\n")?;
    let relative: Vec<&Path> = binaries.iter().map(|b| b.strip_prefix(work).unwrap_or(b)).collect();
    let out = capture(Command::new("dpkg-shlibdeps").arg("-O").args(&relative).current_dir(work))
        .context("dpkg-shlibdeps (Debian package dpkg-dev) could not work out the package's Depends")?;
    match out.lines().find_map(|l| l.strip_prefix("shlibs:Depends=")) {
        Some(depends) if !depends.trim().is_empty() => Ok(depends.trim().to_string()),
        _ => bail!("dpkg-shlibdeps found no shared library in {binaries:?} (output: {out:?}): a static build needs its own Depends"),
    }
}

/// Installed-Size as dpkg-gencontrol counts it: KiB per file, rounded up, and one per
/// directory. `DEBIAN/` is not installed, so it is not counted.
fn installed_size_kib(stage: &Path) -> Result<u64> {
    let mut kib = 0;
    walk(stage, &mut |path, meta| {
        if !path.starts_with(stage.join("DEBIAN")) && path != stage {
            kib += if meta.is_dir() { 1 } else { meta.len().div_ceil(1024) };
        }
        Ok(())
    })?;
    Ok(kib)
}

/// Directories 0755 whatever the umask, every entry dated `mtime`.
fn normalise(stage: &Path, mtime: SystemTime) -> Result<()> {
    walk(stage, &mut |path, meta| {
        if meta.is_dir() {
            fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
        }
        fs::File::open(path)?.set_modified(mtime).with_context(|| format!("dating {}", path.display()))
    })
}

/// `f` on `dir` and everything below it, depth first.
fn walk(dir: &Path, f: &mut dyn FnMut(&Path, &fs::Metadata) -> Result<()>) -> Result<()> {
    let meta = fs::symlink_metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    if meta.is_dir() {
        for entry in fs::read_dir(dir)? {
            walk(&entry?.path(), f)?;
        }
    }
    f(dir, &meta)
}

/// SOURCE_DATE_EPOCH if set (the reproducible-builds convention), else the time of the
/// commit checked out, so that a rebuild of the same commit is dated the same.
pub fn source_date_epoch(root: &Path) -> Result<u64> {
    if let Some(set) = std::env::var_os("SOURCE_DATE_EPOCH") {
        return set.to_str().and_then(|s| s.parse().ok()).with_context(|| format!("SOURCE_DATE_EPOCH={set:?} is not a number of seconds"));
    }
    let out = capture(Command::new("git").args(["log", "-1", "--format=%ct"]).current_dir(root))
        .context("no git history to date the package by: set SOURCE_DATE_EPOCH")?;
    out.trim().parse().with_context(|| format!("git log printed {out:?}, not a commit time"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real ELF binaries (copies of true(1)), so that dpkg-shlibdeps has something to read.
    fn fake_build(dir: &Path) {
        fs::create_dir_all(dir).unwrap();
        for bin in install::BINARIES {
            fs::copy("/usr/bin/true", dir.join(bin)).unwrap();
        }
    }

    /// `dpkg-deb OPTION DEB [MEMBER]`, dates in UTC.
    fn dpkg_deb(option: &str, deb: &Path, member: &[&str]) -> String {
        capture(Command::new("dpkg-deb").arg(option).arg(deb).args(member).env("TZ", "UTC")).unwrap()
    }

    #[test]
    fn a_rebuild_is_byte_for_byte_the_same_package() {
        let tmp = std::env::temp_dir().join(format!("vtrail-xtask-package-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let bins = tmp.join("bins");
        fake_build(&bins);
        let root = crate::workspace_root();
        let first = package(&bins, &root, &tmp.join("one"), 1_700_000_000).unwrap();
        // Past the second, so that anything dated "now" (an mtime, an ar header) differs.
        std::thread::sleep(Duration::from_millis(1100));
        fake_build(&bins);
        let second = package(&bins, &root, &tmp.join("two"), 1_700_000_000).unwrap();
        assert_eq!(first.file_name(), second.file_name());
        assert!(fs::read(&first).unwrap() == fs::read(&second).unwrap(), "{} and {} differ", first.display(), second.display());

        let name = first.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(&format!("vtrail_{VERSION}_")) && name.ends_with(".deb"), "{name}");
        let control = dpkg_deb("--field", &first, &[]);
        assert!(control.contains("Depends: libc6 (>= ") && control.contains(&format!("Version: {VERSION}\n")), "{control}");
        assert_eq!(dpkg_deb("--info", &first, &["conffiles"]), "/etc/vtrail/config.toml\n");
        let listing = dpkg_deb("--contents", &first, &[]);
        for path in ["./usr/bin/vtrail-sensor", "./usr/lib/systemd/system/vtrail-sensor.service", "./etc/vtrail/config.toml"] {
            let line = listing.lines().find(|l| l.ends_with(path)).unwrap_or_else(|| panic!("{path} not in\n{listing}"));
            assert!(line.contains("root/root") && line.contains("2023-11-14"), "{line}");
        }
        let _ = fs::remove_dir_all(&tmp);
    }
}
