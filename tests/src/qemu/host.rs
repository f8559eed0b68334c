//! What a guest run needs on the host: qemu, cpio and a static busybox from apt, and
//! Debian's kernel package fetched and unpacked into the cache.


use anyhow::{Context, Result, anyhow, ensure};
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;


use super::{HOST_BUSYBOX, KernelFiles, kernels::{self, GuestKernel}};
/// `$HOME/.cache/vtrail/qemu`.
pub fn default_cache_dir() -> Result<PathBuf> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| anyhow!("HOME is not set; cannot place the QEMU cache"))?;
    Ok(PathBuf::from(home).join(".cache/vtrail/qemu"))
}

/// [`ensure_kernel`] for the default kernel (bookworm's 6.1).
pub fn ensure_prerequisites(cache: &Path) -> Result<KernelFiles> {
    ensure_kernel(cache, &kernels::BOOKWORM)
}

/// Installs what a guest run needs unless it is already there: `qemu-system-x86_64`,
/// `cpio` and a static `/bin/busybox` (apt-get), and the Debian kernel package of `guest`,
/// downloaded from deb.debian.org into `cache`, checked against its pinned sha256 and
/// unpacked there with `dpkg -x`. Idempotent: when everything is present it runs no
/// command. Safe to call from concurrent processes (file lock).
pub fn ensure_kernel(cache: &Path, guest: &GuestKernel) -> Result<KernelFiles> {
    fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    let lock = File::create(cache.join(".lock"))
        .with_context(|| format!("creating lock file in {}", cache.display()))?;
    lock.lock().context("locking the QEMU cache")?;

    let busybox_ok = is_static_elf(Path::new(HOST_BUSYBOX)).unwrap_or(false);
    if find_in_path("qemu-system-x86_64").is_none() || find_in_path("cpio").is_none() || !busybox_ok
    {
        apt(
            &[
                "install",
                "-y",
                "--no-install-recommends",
                "qemu-system-x86",
                "cpio",
                "busybox-static",
            ],
            None,
        )?;
        ensure!(
            find_in_path("qemu-system-x86_64").is_some(),
            "qemu-system-x86_64 still missing after apt-get install"
        );
        ensure!(
            is_static_elf(Path::new(HOST_BUSYBOX)).unwrap_or(false),
            "{HOST_BUSYBOX} is not a static binary after installing busybox-static"
        );
    }

    let release = guest.release;
    let root = cache.join(guest.package);
    // trixie's packages put the modules under /usr (merged /usr), older ones under /lib:
    // asked again once the package is unpacked.
    let kernel_files = || {
        let merged_usr = root.join(format!("usr/lib/modules/{release}"));
        KernelFiles {
            release: release.to_string(),
            vmlinuz: root.join(format!("boot/vmlinuz-{release}")),
            config: root.join(format!("boot/config-{release}")),
            modules_dir: if merged_usr.is_dir() { merged_usr } else { root.join(format!("lib/modules/{release}")) },
            root: root.clone(),
        }
    };
    let stamp = root.join(".vtrail-unpacked");
    let unpacked = kernel_files();
    if stamp.is_file() && unpacked.vmlinuz.is_file() && unpacked.modules_dir.is_dir() {
        return Ok(unpacked);
    }

    let deb = download(cache, guest)?;
    let tmp = cache.join(format!("{}.unpacking", guest.package));
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    run_checked(Command::new("dpkg").arg("-x").arg(&deb).arg(&tmp))?;
    if root.exists() {
        fs::remove_dir_all(&root)?;
    }
    fs::rename(&tmp, &root)?;
    let files = kernel_files();
    ensure!(
        files.vmlinuz.is_file(),
        "{} missing from {}",
        files.vmlinuz.display(),
        deb.display()
    );
    ensure!(
        files.modules_dir.is_dir(),
        "{} missing from {}",
        files.modules_dir.display(),
        deb.display()
    );
    fs::write(&stamp, format!("{}\n", guest.url()))?;
    // The unpacked tree is what is used; the archive (55-110 MB) is not needed any more.
    let _ = fs::remove_file(&deb);
    Ok(files)
}

/// The package file of `guest` in `cache`, fetched (curl, bounded in time) and checked
/// against its pinned sha256 unless a checked copy is there.
fn download(cache: &Path, guest: &GuestKernel) -> Result<PathBuf> {
    let name = guest.pool_path.rsplit('/').next().unwrap_or(guest.package);
    let deb = cache.join(name);
    // (256 MiB cap: the largest of these packages is 110 MB.)
    let checked = |path: &Path| sensor_user::host::procfs::sha256_file(path).is_some_and(|h| h == guest.sha256);
    if deb.is_file() && checked(&deb) {
        return Ok(deb);
    }
    let part = cache.join(format!("{name}.part"));
    let url = guest.url();
    let status = Command::new("curl")
        .args(["-fsSL", "--retry", "3", "--connect-timeout", "20", "--max-time", "900", "-o"])
        .arg(&part)
        .arg(&url)
        .status()
        .context("running curl (Debian package curl) to fetch a kernel package")?;
    ensure!(
        status.success(),
        "cannot fetch {} ({url}): curl {status}. If Debian superseded this build, move the pin in tests/src/qemu/kernels.rs to the suite's current one",
        guest.package
    );
    ensure!(
        checked(&part),
        "{url}: sha256 is not the pinned {} (tests/src/qemu/kernels.rs)",
        guest.sha256
    );
    fs::rename(&part, &deb)?;
    Ok(deb)
}

pub(super) fn find_in_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/usr/sbin", "/bin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// True for an ELF executable without a program interpreter (PT_INTERP).
pub(super) fn is_static_elf(path: &Path) -> Result<bool> {
    let mut head = vec![0u8; 4096];
    let n = File::open(path)?.read(&mut head)?;
    head.truncate(n);
    if !head.starts_with(b"\x7fELF\x02\x01") || head.len() < 64 {
        return Ok(false);
    }
    let phoff = u64::from_le_bytes(head[0x20..0x28].try_into()?) as usize;
    let phentsize = u16::from_le_bytes(head[0x36..0x38].try_into()?) as usize;
    let phnum = u16::from_le_bytes(head[0x38..0x3a].try_into()?) as usize;
    for i in 0..phnum {
        let h = phoff + i * phentsize;
        let Some(t) = head.get(h..h + 4) else {
            return Ok(false);
        };
        if u32::from_le_bytes(t.try_into()?) == 3 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `apt-get ARGS`, retried once after `apt-get update` (the package lists may be absent
/// or stale on a fresh machine).
pub(super) fn apt(args: &[&str], cwd: Option<&Path>) -> Result<()> {
    let run = || {
        let mut cmd = Command::new("apt-get");
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        run_checked(&mut cmd)
    };
    if run().is_ok() {
        return Ok(());
    }
    run_checked(
        Command::new("apt-get")
            .arg("update")
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    run().with_context(|| format!("apt-get {}", args.join(" ")))
}

pub(super) fn run_checked(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------

