//! Installs what building and testing vtrail needs, once: the nightly's `rust-src`, a
//! `bpf-linker` linked to the nightly's own LLVM, the Debian packages of the test peers,
//! cargo-fuzz. Every step checks first, so a second run does no work.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use crate::{capture, run};

/// Debian packages of the real peers the tests start and of the tools they use.
pub const TEST_PACKAGES: &[&str] = &[
    "bind9", "bind9-utils", "bind9-dnsutils", "iproute2", "samba", "smbclient", "vsftpd", "lftp",
    "curl", "iperf3", "qemu-system-x86", "cpio", "busybox-static", "util-linux", "procps", "strace",
    "nats-server", "postgresql", "systemd", "binutils",
    // on-access scanning: clamd and sigtool (the tests write their own signatures)
    "clamav-daemon", "clamav",
    // dpkg-shlibdeps, for the .deb's Depends (cargo xtask package)
    "dpkg-dev",
];

pub fn cache_dir() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    Ok(PathBuf::from(home).join(".cache/vtrail"))
}

pub fn bpf_linker_bin_dir() -> Result<PathBuf> {
    Ok(cache_dir()?.join("bpf-linker/bin"))
}

/// PATH with bpf-linker's directory first.
pub fn path_with_linker() -> Result<std::ffi::OsString> {
    let mut paths = vec![bpf_linker_bin_dir()?];
    paths.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    Ok(std::env::join_paths(paths)?)
}

pub fn toolchain() -> Result<()> {
    let toolchains = capture(Command::new("rustup").args(["toolchain", "list"]))?;
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        eprintln!("xtask: installing the nightly toolchain (the eBPF crate needs -Z build-std)");
        run(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))?;
    }
    let components = capture(Command::new("rustup").args(["component", "list", "--toolchain", "nightly", "--installed"]))?;
    if !components.lines().any(|l| l.starts_with("rust-src")) {
        eprintln!("xtask: adding rust-src to the nightly toolchain");
        run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))?;
    }
    Ok(())
}

/// bpf-linker built against the nightly's LLVM (`cargo install bpf-linker` alone wants a
/// system LLVM of another version). The symlinks must outlive the build: the binary keeps
/// their folder as its rpath.
pub fn bpf_linker() -> Result<()> {
    let cache = cache_dir()?;
    let linker = cache.join("bpf-linker/bin/bpf-linker");
    if linker.exists() && linker_resolves(&linker) {
        return Ok(());
    }
    let sysroot = capture(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?;
    let sysroot_lib = Path::new(sysroot.trim()).join("lib");
    let lib_name = std::fs::read_dir(&sysroot_lib)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|n| n.starts_with("libLLVM") && n.contains(".so"))
        .with_context(|| format!("no libLLVM*.so in {}: is the nightly toolchain complete?", sysroot_lib.display()))?;
    let version = capture(Command::new("rustc").args(["+nightly", "-vV"]))?;
    let major = version
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .context("cannot read the nightly's LLVM version from `rustc +nightly -vV`")?
        .to_string();
    let prefix = cache.join("llvm");
    let lib = prefix.join("lib");
    std::fs::create_dir_all(&lib)?;
    for name in ["libLLVM.so", lib_name.as_str()] {
        let link = lib.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(sysroot_lib.join(&lib_name), &link)?;
    }
    eprintln!("xtask: building bpf-linker against the nightly's LLVM {major} (about 90 s, once)");
    run(Command::new("cargo")
        .args(["install", "bpf-linker", "--version", "0.13.0", "--no-default-features", "--features"])
        .arg(format!("llvm-{major}"))
        .arg("--root")
        .arg(cache.join("bpf-linker"))
        .env("LLVM_PREFIX", &prefix))?;
    if !linker_resolves(&linker) {
        bail!("bpf-linker was built but `ldd {}` shows unresolved libraries", linker.display());
    }
    Ok(())
}

fn linker_resolves(linker: &Path) -> bool {
    capture(Command::new("ldd").arg(linker)).is_ok_and(|out| !out.contains("not found"))
}

pub fn mounts() -> Result<()> {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    for (fstype, target) in [("tracefs", "/sys/kernel/tracing"), ("bpf", "/sys/fs/bpf")] {
        if !mounts.lines().any(|l| l.split_whitespace().nth(1) == Some(target)) {
            run(Command::new("mount").args(["-t", fstype, fstype, target]))
                .with_context(|| format!("cannot mount {fstype} at {target} (are you root?)"))?;
        }
    }
    Ok(())
}

/// Installs the missing ones among `packages` with apt-get.
pub fn debian_packages(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            capture(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]))
                .map_or(true, |s| !s.contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing Debian packages: {}", missing.join(" "));
    run(Command::new("apt-get").args(["update", "-q"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .context("apt-get install failed: the tests need these peers (run as root on Debian)")?;
    // Packaged daemons start themselves; the tests run their own instances.
    for service in ["named", "smbd", "nmbd", "vsftpd"] {
        let _ = Command::new("systemctl").args(["disable", "--now", service]).output();
    }
    Ok(())
}

pub fn cargo_fuzz() -> Result<()> {
    if Command::new("rustup").args(["run", "nightly", "cargo", "fuzz", "--version"]).output().is_ok_and(|o| o.status.success()) {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-fuzz (once)");
    run(Command::new("cargo").args(["install", "cargo-fuzz", "--version", "0.13.2"]))
}
