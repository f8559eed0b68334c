//! `cargo xtask install [--prefix DIR] [--destdir DIR]`: the binaries, a default
//! configuration (never over one that exists), the systemd units and the docs, laid out as
//! a package would (`DESTDIR` for staging, as `make install DESTDIR=` does).
use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

/// The binaries installed, from the release build.
pub const BINARIES: [&str; 4] = ["vtrail-sensor", "vtrail-analysis", "vtrail-ddns", "vtrail-collect"];
/// The units, from `packaging/systemd/`.
pub const UNITS: [&str; 3] = ["vtrail-sensor.service", "vtrail-ddns.service", "vtrail-collect.service"];

pub struct Layout {
    /// `/usr/local` or `/usr`.
    pub prefix: PathBuf,
    /// Staging root ("" for the live system).
    pub destdir: PathBuf,
}

impl Layout {
    /// `path` (absolute, as the installed system sees it) under the staging root.
    pub fn staged(&self, path: &Path) -> PathBuf {
        self.destdir.join(path.strip_prefix("/").unwrap_or(path))
    }

    pub fn bindir(&self) -> PathBuf {
        self.prefix.join("bin")
    }

    pub fn docdir(&self) -> PathBuf {
        self.prefix.join("share/doc/vtrail")
    }

    /// systemd reads units from `/usr/local/lib/systemd/system` and `/usr/lib/systemd/system`.
    pub fn unitdir(&self) -> PathBuf {
        self.prefix.join("lib/systemd/system")
    }

    pub fn config(&self) -> PathBuf {
        PathBuf::from("/etc/vtrail/config.toml")
    }
}

/// What `install` did, for the summary it prints.
#[derive(Debug, Default)]
pub struct Installed {
    pub files: Vec<PathBuf>,
    /// An existing configuration left as it was.
    pub kept_config: Option<PathBuf>,
}

/// Installs from `bins` (the release build's directory) and `root` (the workspace).
pub fn install(layout: &Layout, bins: &Path, root: &Path) -> Result<Installed> {
    let mut done = Installed::default();
    let mut put = |to: &Path, bytes: &[u8], mode: u32| -> Result<()> {
        let staged = layout.staged(to);
        fs::create_dir_all(staged.parent().context("no parent")?)?;
        // Written aside and renamed: a running binary is replaced, not overwritten in place.
        let tmp = staged.with_extension("vtrail-new");
        fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
        fs::rename(&tmp, &staged).with_context(|| format!("installing {}", staged.display()))?;
        done.files.push(to.to_path_buf());
        Ok(())
    };
    for bin in BINARIES {
        let from = bins.join(bin);
        let bytes = fs::read(&from).with_context(|| format!("{}: build it first (`cargo xtask build --release`)", from.display()))?;
        put(&layout.bindir().join(bin), &bytes, 0o755)?;
    }
    let config = layout.config();
    if layout.staged(&config).exists() {
        done.kept_config = Some(config);
    } else {
        let text = fs::read(root.join("sensor-user/src/default-config.toml")).context("the embedded default configuration")?;
        put(&config, &text, 0o644)?;
    }
    for unit in UNITS {
        let text = fs::read_to_string(root.join("packaging/systemd").join(unit)).with_context(|| format!("packaging/systemd/{unit}"))?;
        let text = text.replace("@BINDIR@", &layout.bindir().display().to_string()).replace("@DOCDIR@", &layout.docdir().display().to_string());
        put(&layout.unitdir().join(unit), text.as_bytes(), 0o644)?;
    }
    let mut docs = vec![(root.join("README.md"), layout.docdir().join("README.md"))];
    docs.push((root.join("ddns-updater/README.md"), layout.docdir().join("ddns-updater/README.md")));
    for entry in fs::read_dir(root.join("docs"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "md") {
            let name = path.file_name().context("doc without a name")?.to_owned();
            docs.push((path, layout.docdir().join("docs").join(name)));
        }
    }
    for (from, to) in docs {
        put(&to, &fs::read(&from).with_context(|| format!("reading {}", from.display()))?, 0o644)?;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vtrail-xtask-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn installs_binaries_units_and_config_without_replacing_an_admins_config() {
        let root = crate::workspace_root();
        let bins = tempdir("bins");
        for bin in BINARIES {
            fs::write(bins.join(bin), format!("#!/bin/sh\necho {bin}\n")).unwrap();
        }
        let dest = tempdir("dest");
        let layout = Layout { prefix: "/usr/local".into(), destdir: dest.clone() };
        let done = install(&layout, &bins, &root).unwrap();
        assert!(done.kept_config.is_none());
        let sensor = dest.join("usr/local/bin/vtrail-sensor");
        assert_eq!(fs::metadata(&sensor).unwrap().permissions().mode() & 0o777, 0o755);
        let unit = fs::read_to_string(dest.join("usr/local/lib/systemd/system/vtrail-sensor.service")).unwrap();
        assert!(unit.contains("ExecStart=/usr/local/bin/vtrail-sensor --config /etc/vtrail/config.toml run"), "{unit}");
        // A placeholder is `@NAME@` (`@system-service`, a systemd syscall set, is not one).
        let between: Vec<&str> = unit.split('@').collect();
        let placeholder = between[1..between.len().saturating_sub(1).max(1)]
            .iter()
            .any(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_'));
        assert!(!placeholder, "a placeholder left: {unit}");
        let config = dest.join("etc/vtrail/config.toml");
        assert_eq!(fs::read(&config).unwrap(), fs::read(root.join("sensor-user/src/default-config.toml")).unwrap());
        assert!(dest.join("usr/local/share/doc/vtrail/docs/lab.md").is_file());

        // Again, over an admin's own configuration: kept byte for byte.
        fs::write(&config, "database = \"/srv/vtrail\"\n").unwrap();
        let again = install(&layout, &bins, &root).unwrap();
        assert_eq!(again.kept_config.as_deref(), Some(Path::new("/etc/vtrail/config.toml")));
        assert_eq!(fs::read_to_string(&config).unwrap(), "database = \"/srv/vtrail\"\n");
        let _ = fs::remove_dir_all(&bins);
        let _ = fs::remove_dir_all(&dest);
    }

    #[test]
    fn a_missing_build_is_named() {
        let dest = tempdir("nobuild");
        let layout = Layout { prefix: "/usr".into(), destdir: dest.clone() };
        let err = install(&layout, &dest.join("nothing"), &crate::workspace_root()).unwrap_err();
        assert!(format!("{err:#}").contains("vtrail-sensor: build it first"), "{err:#}");
        let _ = fs::remove_dir_all(&dest);
    }
}
