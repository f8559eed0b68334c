//! Run a binary inside Debian's 6.1 kernel (`linux-image-6.1.0-47-amd64`) under QEMU.
//!
//! The host kernel lacks kprobes and fentry, so the sensor's kernel-side tests boot
//! Debian's kernel under `qemu-system-x86_64` (TCG: `-enable-kvm` hangs on this host)
//! with a throw-away busybox initramfs:
//!
//! * `ensure_prerequisites` installs `qemu-system-x86`, `cpio` and `busybox-static` with
//!   apt-get if one is missing, and fetches and unpacks the kernel package into the cache
//!   (`$HOME/.cache/vtrail/qemu/`). A second call finds everything there and does nothing.
//! * `run_in_guest` writes an initramfs (newc cpio, written here in Rust) holding the
//!   static busybox and its applet links, the binary at `/opt/vtrail/<file name>` with
//!   every library `ldd` lists at the same path as on the host (the dynamic loader
//!   included), the extra files, and the requested kernel modules with their
//!   dependencies. Its `/init` mounts proc, sysfs, devtmpfs, tracefs, debugfs, bpffs,
//!   cgroup2 and securityfs, brings `lo` up, insmods the modules, runs the binary,
//!   prints `VTRAIL-GUEST-EXIT=<code>` and powers off.
//!
//! Debian ships the 6.1 modules as plain `.ko` files (no compression) and the package has
//! no `modules.dep` (depmod runs in its postinst), so dependencies are read from each
//! module's `.modinfo` section (`depends=`); `.ko.xz`/`.ko.zst`/`.ko.gz` would be
//! decompressed on the host with `xz`/`zstd`/`gzip`, since busybox `insmod` loads only
//! plain ELF objects.


use anyhow::{Context, Result, anyhow, bail, ensure};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The guest kernel release (`uname -r` inside the guest).
pub const KERNEL_RELEASE: &str = "6.1.0-47-amd64";
/// The Debian package that ships it.
pub const KERNEL_PACKAGE: &str = "linux-image-6.1.0-47-amd64";
/// Printed on the guest console, followed by the binary's exit status, after it ends.
pub const EXIT_MARKER: &str = "VTRAIL-GUEST-EXIT=";
/// Printed instead of running the binary when a requested module fails to load.
pub const INSMOD_FAILED_MARKER: &str = "VTRAIL-GUEST-INSMOD-FAILED=";
/// Where the binary is placed inside the guest (as `/opt/vtrail/<its file name>`).
pub const GUEST_BIN_DIR: &str = "/opt/vtrail";
/// The static busybox that `busybox-static` installs.
const HOST_BUSYBOX: &str = "/bin/busybox";
/// How many lines of console output an error message carries.
const TAIL_LINES: usize = 40;

/// What a guest run printed.
#[derive(Debug, Clone)]
pub struct GuestRun {
    /// Everything QEMU wrote to its serial console (the kernel's messages, init's and the
    /// binary's stdout and stderr), `\r` removed, followed by QEMU's own stderr if any.
    pub console: String,
    /// The binary's exit status as the guest reported it (`128 + n` when killed by signal
    /// `n`); `None` when the guest stopped without reporting (e.g. a kernel panic).
    pub exit_marker: Option<i32>,
}

/// The unpacked Debian kernel.
#[derive(Debug, Clone)]
pub struct KernelFiles {
    /// `uname -r` of the kernel, `6.1.0-47-amd64`.
    pub release: String,
    /// The root the package was unpacked into.
    pub root: PathBuf,
    /// `boot/vmlinuz-6.1.0-47-amd64`.
    pub vmlinuz: PathBuf,
    /// `boot/config-6.1.0-47-amd64`.
    pub config: PathBuf,
    /// `lib/modules/6.1.0-47-amd64`.
    pub modules_dir: PathBuf,
}

/// `$HOME/.cache/vtrail/qemu`.
pub fn default_cache_dir() -> Result<PathBuf> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| anyhow!("HOME is not set; cannot place the QEMU cache"))?;
    Ok(PathBuf::from(home).join(".cache/vtrail/qemu"))
}

/// Installs what a guest run needs unless it is already there: `qemu-system-x86_64`,
/// `cpio` and a static `/bin/busybox` (apt-get), and Debian's kernel package, downloaded
/// into `cache` and unpacked there with `dpkg -x`. Idempotent: when everything is
/// present it runs no command. Safe to call from concurrent processes (file lock).
pub fn ensure_prerequisites(cache: &Path) -> Result<KernelFiles> {
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

    let root = cache.join(KERNEL_PACKAGE);
    let files = KernelFiles {
        release: KERNEL_RELEASE.to_string(),
        vmlinuz: root.join(format!("boot/vmlinuz-{KERNEL_RELEASE}")),
        config: root.join(format!("boot/config-{KERNEL_RELEASE}")),
        modules_dir: root.join(format!("lib/modules/{KERNEL_RELEASE}")),
        root: root.clone(),
    };
    let stamp = root.join(".vtrail-unpacked");
    if stamp.is_file() && files.vmlinuz.is_file() && files.modules_dir.is_dir() {
        return Ok(files);
    }

    let deb = match find_deb(cache)? {
        Some(deb) => deb,
        None => {
            apt(&["download", KERNEL_PACKAGE], Some(cache))?;
            find_deb(cache)?.ok_or_else(|| {
                anyhow!(
                    "apt-get download {KERNEL_PACKAGE} left no .deb in {}",
                    cache.display()
                )
            })?
        }
    };
    let tmp = cache.join(format!("{KERNEL_PACKAGE}.unpacking"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    run_checked(Command::new("dpkg").arg("-x").arg(&deb).arg(&tmp))?;
    if root.exists() {
        fs::remove_dir_all(&root)?;
    }
    fs::rename(&tmp, &root)?;
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
    fs::write(&stamp, format!("{}\n", deb.display()))?;
    // The unpacked tree is what is used; the 70 MB archive is not needed any more.
    let _ = fs::remove_file(&deb);
    Ok(files)
}

/// Boots Debian's `linux-image-6.1.0-47-amd64` under `qemu-system-x86_64` (TCG,
/// `-cpu max`, `-m 2048`, `-nographic`, `-no-reboot`, no network card) with a busybox
/// initramfs that mounts proc/sys/tracefs/bpffs/debugfs, insmods `modules` (and what
/// they depend on; built-in ones are skipped), runs `binary args...` as root from `/`
/// with stdin `/dev/null`, prints `VTRAIL-GUEST-EXIT=<code>` and powers off.
///
/// The binary is placed at `/opt/vtrail/<file name>`; `extra_files` are `(host path,
/// absolute guest path)` pairs (a host directory is copied recursively). QEMU is killed
/// after `timeout` and an error carrying the last console lines is returned; a module
/// that fails to load is an error too.
pub fn run_in_guest(
    binary: &Path,
    args: &[&str],
    extra_files: &[(PathBuf, &str)],
    modules: &[&str],
    timeout: Duration,
) -> Result<GuestRun> {
    let cache = default_cache_dir()?;
    let kernel = ensure_prerequisites(&cache)?;

    static RUN: AtomicU64 = AtomicU64::new(0);
    let work = cache.join("runs").join(format!(
        "{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    if work.exists() {
        fs::remove_dir_all(&work)?;
    }
    fs::create_dir_all(&work)?;
    let result = (|| {
        let initrd = work.join("initrd.cpio");
        build_initramfs(&kernel, binary, args, extra_files, modules, &initrd)?;
        boot(&kernel, &initrd, timeout)
    })();
    let _ = fs::remove_dir_all(&work);
    result
}

// ---------------------------------------------------------------------------------------
// Booting

fn boot(kernel: &KernelFiles, initrd: &Path, timeout: Duration) -> Result<GuestRun> {
    let smp = std::env::var("VTRAIL_QEMU_SMP").unwrap_or_else(|_| "2".to_string());
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", "tcg", "-cpu", "max", "-m", "2048", "-smp", &smp])
        .args(["-nographic", "-no-reboot", "-nic", "none"])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 quiet panic=-1 rdinit=/init"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());

    let started = Instant::now();
    let mut child = cmd.spawn().context("starting qemu-system-x86_64")?;
    let out = Arc::new(Mutex::new(Vec::<u8>::new()));
    let err = Arc::new(Mutex::new(Vec::<u8>::new()));
    let readers = [
        pump(child.stdout.take().expect("piped stdout"), out.clone()),
        pump(child.stderr.take().expect("piped stderr"), err.clone()),
    ];

    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if started.elapsed() >= timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for r in readers {
        let _ = r.join();
    }
    let elapsed = started.elapsed();

    let mut console = clean_console(&out.lock().unwrap());
    let stderr = clean_console(&err.lock().unwrap());
    if !stderr.trim().is_empty() {
        console.push_str("\n--- qemu stderr ---\n");
        console.push_str(&stderr);
    }

    let Some(status) = status else {
        bail!(
            "guest did not finish within {timeout:?}; QEMU killed. Last console lines:\n{}",
            tail(&console, TAIL_LINES)
        );
    };
    if let Some(module) = find_marker(&console, INSMOD_FAILED_MARKER) {
        bail!(
            "insmod {module} failed in the guest. Last console lines:\n{}",
            tail(&console, TAIL_LINES)
        );
    }
    let exit_marker = find_marker(&console, EXIT_MARKER).and_then(|v| v.parse::<i32>().ok());
    if exit_marker.is_none() && !status.success() {
        bail!(
            "qemu-system-x86_64 exited with {status} after {elapsed:.1?}. Last console lines:\n{}",
            tail(&console, TAIL_LINES)
        );
    }
    eprintln!(
        "qemu: guest {KERNEL_RELEASE} booted, ran and powered off in {:.1} s (exit marker {exit_marker:?})",
        elapsed.as_secs_f64()
    );
    Ok(GuestRun {
        console,
        exit_marker,
    })
}

fn pump(
    mut src: impl Read + Send + 'static,
    dst: Arc<Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match src.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => dst.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
    })
}

fn clean_console(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).replace('\r', "")
}

/// The value after the last `marker` that starts a line (or, failing that, the last
/// occurrence anywhere: kernel messages can land mid-line).
fn find_marker<'a>(console: &'a str, marker: &str) -> Option<&'a str> {
    let value = |rest: &'a str| {
        let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
        &rest[..end]
    };
    console
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(marker))
        .map(value)
        .or_else(|| {
            console
                .rfind(marker)
                .map(|i| value(&console[i + marker.len()..]))
        })
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---------------------------------------------------------------------------------------
// The initramfs

fn build_initramfs(
    kernel: &KernelFiles,
    binary: &Path,
    args: &[&str],
    extra_files: &[(PathBuf, &str)],
    modules: &[&str],
    out: &Path,
) -> Result<()> {
    let mut tree = Tree::default();
    for dir in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc",
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "root",
        "var/lib",
        "var/log",
        "var/tmp",
        "opt/vtrail",
    ] {
        tree.dir(dir);
    }
    tree.insert("dev/console", Node::CharDev(5, 1))?;
    tree.insert("dev/null", Node::CharDev(1, 3))?;
    tree.insert(
        "etc/passwd",
        Node::bytes(b"root:x:0:0:root:/root:/bin/sh\n".to_vec(), 0o644),
    )?;
    tree.insert("etc/group", Node::bytes(b"root:x:0:\n".to_vec(), 0o644))?;
    tree.insert(
        "etc/hosts",
        Node::bytes(b"127.0.0.1 localhost\n::1 localhost\n".to_vec(), 0o644),
    )?;

    // busybox and one symlink per applet, at the paths busybox itself lists.
    tree.insert("bin/busybox", Node::host(HOST_BUSYBOX, 0o755))?;
    let list = Command::new(HOST_BUSYBOX).arg("--list-full").output()?;
    ensure!(list.status.success(), "{HOST_BUSYBOX} --list-full failed");
    for applet in String::from_utf8_lossy(&list.stdout).lines().map(str::trim) {
        if !applet.is_empty() && applet != "bin/busybox" {
            tree.insert(applet, Node::Symlink("/bin/busybox".into()))?;
        }
    }

    // The binary and its libraries.
    let name = binary
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow!("binary path {} has no file name", binary.display()))?;
    let guest_binary = format!("{GUEST_BIN_DIR}/{name}");
    ensure!(
        binary.is_file(),
        "binary {} does not exist",
        binary.display()
    );
    tree.insert(&guest_binary, Node::host(binary, 0o755))?;
    for lib in ldd(binary)? {
        let guest = lib.to_string_lossy().into_owned();
        tree.insert(&guest, Node::host(&lib, 0o755))?;
    }

    for (host, guest) in extra_files {
        ensure!(
            guest.starts_with('/'),
            "guest path {guest:?} must be absolute"
        );
        tree.add_host_path(host, guest)?;
    }

    let loads = resolve_modules(&kernel.modules_dir, modules)?;
    let mut insmods = String::new();
    for (name, bytes) in loads {
        let guest = format!("lib/modules/{KERNEL_RELEASE}/{name}.ko");
        tree.insert(&guest, Node::bytes(bytes, 0o644))?;
        insmods.push_str(&format!(
            "insmod /{guest} || {{ echo {INSMOD_FAILED_MARKER}{name}; sync; poweroff -f; }}\n"
        ));
    }

    let command: Vec<String> = std::iter::once(guest_binary.as_str())
        .chain(args.iter().copied())
        .map(shell_quote)
        .collect();
    let init = INIT_SCRIPT
        .replace("@INSMODS@", &insmods)
        .replace("@COMMAND@", &command.join(" "))
        .replace("@EXIT_MARKER@", EXIT_MARKER);
    tree.insert("init", Node::bytes(init.into_bytes(), 0o755))?;

    let mut w =
        BufWriter::new(File::create(out).with_context(|| format!("creating {}", out.display()))?);
    tree.write_cpio(&mut w)?;
    w.flush()?;
    Ok(())
}

const INIT_SCRIPT: &str = r#"#!/bin/sh
export PATH=/opt/vtrail:/sbin:/bin:/usr/sbin:/usr/bin HOME=/root TERM=dumb RUST_BACKTRACE=1
m() { mkdir -p "$3"; mount -t "$1" "$2" "$3" || echo "vtrail-init: mounting $1 on $3 failed"; }
m proc proc /proc
m sysfs sysfs /sys
m devtmpfs devtmpfs /dev
m devpts devpts /dev/pts
m tmpfs tmpfs /dev/shm
m tmpfs tmpfs /run
[ -z "$(ls -A /tmp)" ] && m tmpfs tmpfs /tmp
chmod 1777 /tmp /var/tmp
m tracefs tracefs /sys/kernel/tracing
m debugfs debugfs /sys/kernel/debug
m securityfs securityfs /sys/kernel/security
m bpf bpf /sys/fs/bpf
m cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up || echo "vtrail-init: bringing lo up failed"
hostname vtrail-guest
@INSMODS@
cd /
echo "vtrail-init: running the binary"
@COMMAND@ </dev/null
rc=$?
echo
echo "@EXIT_MARKER@$rc"
sync
poweroff -f
"#;

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The libraries `ldd` lists for `binary`, the dynamic loader included; none for a
/// static binary.
fn ldd(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .context("running ldd")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if text.contains("not a dynamic executable") || text.contains("statically linked") {
        return Ok(Vec::new());
    }
    ensure!(
        out.status.success(),
        "ldd {} failed: {text}",
        binary.display()
    );
    parse_ldd(&text)
}

fn parse_ldd(text: &str) -> Result<Vec<PathBuf>> {
    let mut libs = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let target = match line.split_once("=>") {
            Some((name, rest)) => {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    bail!("ldd: library {} not found", name.trim());
                }
                rest
            }
            None => line,
        };
        let path = target.split(" (").next().unwrap_or("").trim();
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

// ---------------------------------------------------------------------------------------
// Kernel modules

/// The modules to insmod, dependencies first, each as (name, plain ELF bytes). Modules
/// built into the kernel are left out.
fn resolve_modules(modules_dir: &Path, wanted: &[&str]) -> Result<Vec<(String, Vec<u8>)>> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let mut index = HashMap::new();
    index_modules(&modules_dir.join("kernel"), &mut index)?;
    let builtin: BTreeSet<String> = fs::read_to_string(modules_dir.join("modules.builtin"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| module_name(l.rsplit('/').next()?))
        .collect();

    struct Resolver<'a> {
        index: &'a HashMap<String, PathBuf>,
        builtin: &'a BTreeSet<String>,
        visiting: BTreeSet<String>,
        done: BTreeSet<String>,
        order: Vec<(String, Vec<u8>)>,
    }
    impl Resolver<'_> {
        fn visit(&mut self, name: &str) -> Result<()> {
            let name = name.replace('-', "_");
            if self.done.contains(&name) || self.builtin.contains(&name) {
                return Ok(());
            }
            ensure!(
                self.visiting.insert(name.clone()),
                "module dependency cycle through {name}"
            );
            let path = self.index.get(&name).ok_or_else(|| {
                anyhow!("kernel module {name} is neither built into {KERNEL_RELEASE} nor shipped as a module")
            })?;
            let bytes = read_module(path)?;
            let info = modinfo(&bytes)
                .with_context(|| format!("reading .modinfo of {}", path.display()))?;
            if let Some(vermagic) = info.get("vermagic") {
                ensure!(
                    vermagic.starts_with(KERNEL_RELEASE),
                    "{} has vermagic {vermagic:?}, not {KERNEL_RELEASE}",
                    path.display()
                );
            }
            let deps = info.get("depends").cloned().unwrap_or_default();
            for dep in deps.split(',').map(str::trim).filter(|d| !d.is_empty()) {
                self.visit(dep)?;
            }
            self.visiting.remove(&name);
            self.done.insert(name.clone());
            self.order.push((name, bytes));
            Ok(())
        }
    }
    let mut r = Resolver {
        index: &index,
        builtin: &builtin,
        visiting: BTreeSet::new(),
        done: BTreeSet::new(),
        order: Vec::new(),
    };
    for name in wanted {
        r.visit(name)?;
    }
    Ok(r.order)
}

/// `foo-bar.ko[.xz|.zst|.gz]` -> `foo_bar`.
fn module_name(file: &str) -> Option<String> {
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))?;
    Some(stem.replace('-', "_"))
}

fn index_modules(dir: &Path, index: &mut HashMap<String, PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            index_modules(&path, index)?;
        } else if let Some(name) = path
            .file_name()
            .and_then(|f| f.to_str())
            .and_then(module_name)
        {
            index.insert(name, path);
        }
    }
    Ok(())
}

/// A module as a plain ELF object (what busybox `insmod` loads), decompressed if needed.
fn read_module(path: &Path) -> Result<Vec<u8>> {
    let s = path.to_string_lossy();
    let tool = if s.ends_with(".ko.xz") {
        "xz"
    } else if s.ends_with(".ko.zst") {
        "zstd"
    } else if s.ends_with(".ko.gz") {
        "gzip"
    } else {
        return fs::read(path).with_context(|| format!("reading {}", path.display()));
    };
    let out = Command::new(tool)
        .arg("-dc")
        .arg(path)
        .output()
        .with_context(|| format!("running {tool} -dc {}", path.display()))?;
    ensure!(out.status.success(), "{tool} -dc {} failed", path.display());
    Ok(out.stdout)
}

/// The key=value strings of an ELF64 module's `.modinfo` section.
fn modinfo(elf: &[u8]) -> Result<BTreeMap<String, String>> {
    let u16_at = |o: usize| -> Result<usize> {
        Ok(u16::from_le_bytes(
            elf.get(o..o + 2)
                .ok_or_else(|| anyhow!("truncated ELF"))?
                .try_into()?,
        ) as usize)
    };
    let u32_at = |o: usize| -> Result<usize> {
        Ok(u32::from_le_bytes(
            elf.get(o..o + 4)
                .ok_or_else(|| anyhow!("truncated ELF"))?
                .try_into()?,
        ) as usize)
    };
    let u64_at = |o: usize| -> Result<usize> {
        Ok(u64::from_le_bytes(
            elf.get(o..o + 8)
                .ok_or_else(|| anyhow!("truncated ELF"))?
                .try_into()?,
        ) as usize)
    };
    ensure!(
        elf.starts_with(b"\x7fELF\x02\x01"),
        "not a little-endian ELF64 object"
    );
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(0x28)?, u16_at(0x3a)?, u16_at(0x3c)?, u16_at(0x3e)?);
    let section = |i: usize| -> Result<(usize, usize, usize)> {
        let h = shoff + i * shentsize;
        Ok((u32_at(h)?, u64_at(h + 24)?, u64_at(h + 32)?))
    };
    let (_, stroff, strsize) = section(shstrndx)?;
    let strtab = elf
        .get(stroff..stroff + strsize)
        .ok_or_else(|| anyhow!("bad section string table"))?;
    for i in 0..shnum {
        let (name_off, off, size) = section(i)?;
        let name = strtab.get(name_off..).unwrap_or_default();
        if name.starts_with(b".modinfo\0") {
            let data = elf
                .get(off..off + size)
                .ok_or_else(|| anyhow!("bad .modinfo bounds"))?;
            return Ok(data
                .split(|&b| b == 0)
                .filter_map(|kv| {
                    let kv = std::str::from_utf8(kv).ok()?;
                    let (k, v) = kv.split_once('=')?;
                    Some((k.to_string(), v.to_string()))
                })
                .collect());
        }
    }
    bail!("no .modinfo section")
}

// ---------------------------------------------------------------------------------------
// A newc cpio archive, written in Rust (no staging directory, device nodes without mknod).

enum Node {
    Dir,
    File { source: Source, mode: u32 },
    Symlink(String),
    CharDev(u32, u32),
}

enum Source {
    Host(PathBuf),
    Bytes(Vec<u8>),
}

impl Node {
    fn host(path: impl AsRef<Path>, mode: u32) -> Node {
        Node::File {
            source: Source::Host(path.as_ref().to_path_buf()),
            mode,
        }
    }
    fn bytes(bytes: Vec<u8>, mode: u32) -> Node {
        Node::File {
            source: Source::Bytes(bytes),
            mode,
        }
    }
}

#[derive(Default)]
struct Tree {
    /// Paths without a leading `/`; sorted order puts every parent before its children.
    nodes: BTreeMap<String, Node>,
}

impl Tree {
    fn dir(&mut self, path: &str) {
        let mut prefix = String::new();
        for part in path.trim_matches('/').split('/').filter(|p| !p.is_empty()) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            self.nodes.entry(prefix.clone()).or_insert(Node::Dir);
        }
    }

    /// Adds `node` at `path`, creating its parent directories; a later node replaces an
    /// earlier one at the same path.
    fn insert(&mut self, path: &str, node: Node) -> Result<()> {
        let path = path.trim_matches('/');
        ensure!(
            !path.is_empty() && !path.split('/').any(|p| p == ".." || p == "."),
            "bad guest path {path:?}"
        );
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.nodes.insert(path.to_string(), node);
        Ok(())
    }

    fn add_host_path(&mut self, host: &Path, guest: &str) -> Result<()> {
        let meta = fs::metadata(host).with_context(|| format!("extra file {}", host.display()))?;
        if meta.is_dir() {
            self.dir(guest);
            for entry in fs::read_dir(host)? {
                let entry = entry?;
                let name = entry.file_name();
                let child = format!("{}/{}", guest.trim_end_matches('/'), name.to_string_lossy());
                self.add_host_path(&entry.path(), &child)?;
            }
            Ok(())
        } else {
            use std::os::unix::fs::PermissionsExt;
            self.insert(guest, Node::host(host, meta.permissions().mode() & 0o7777))
        }
    }

    fn write_cpio(&self, w: &mut impl Write) -> Result<()> {
        let mut ino = 1u32;
        for (path, node) in &self.nodes {
            ino += 1;
            match node {
                Node::Dir => cpio_entry(w, ino, path, 0o040755, 2, &[], (0, 0))?,
                Node::Symlink(target) => {
                    cpio_entry(w, ino, path, 0o120777, 1, target.as_bytes(), (0, 0))?
                }
                Node::CharDev(major, minor) => {
                    cpio_entry(w, ino, path, 0o020600, 1, &[], (*major, *minor))?
                }
                Node::File {
                    source: Source::Bytes(b),
                    mode,
                } => cpio_entry(w, ino, path, 0o100000 | mode, 1, b, (0, 0))?,
                Node::File {
                    source: Source::Host(host),
                    mode,
                } => {
                    // Follows symlinks: a library listed as a link is stored as a file.
                    let mut f =
                        File::open(host).with_context(|| format!("opening {}", host.display()))?;
                    let len = f.metadata()?.len();
                    ensure!(
                        len < u32::MAX as u64,
                        "{} is too large for newc cpio",
                        host.display()
                    );
                    cpio_header(w, ino, path, 0o100000 | mode, 1, len as u32, (0, 0))?;
                    let copied = io::copy(&mut f, w)?;
                    ensure!(
                        copied == len,
                        "{} changed while being copied",
                        host.display()
                    );
                    pad4(w, len as usize)?;
                }
            }
        }
        cpio_entry(w, 0, "TRAILER!!!", 0, 1, &[], (0, 0))?;
        Ok(())
    }
}

fn cpio_entry(
    w: &mut impl Write,
    ino: u32,
    name: &str,
    mode: u32,
    nlink: u32,
    data: &[u8],
    rdev: (u32, u32),
) -> Result<()> {
    cpio_header(w, ino, name, mode, nlink, data.len() as u32, rdev)?;
    w.write_all(data)?;
    pad4(w, data.len())?;
    Ok(())
}

fn cpio_header(
    w: &mut impl Write,
    ino: u32,
    name: &str,
    mode: u32,
    nlink: u32,
    size: u32,
    rdev: (u32, u32),
) -> Result<()> {
    let namesize = name.len() + 1;
    // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
    // rdevmajor, rdevminor, namesize, check
    write!(
        w,
        "070701{ino:08x}{mode:08x}{:08x}{:08x}{nlink:08x}{:08x}{size:08x}{:08x}{:08x}{:08x}{:08x}{namesize:08x}{:08x}",
        0, 0, 0, 0, 0, rdev.0, rdev.1, 0
    )?;
    w.write_all(name.as_bytes())?;
    w.write_all(&[0])?;
    pad4(w, 110 + namesize)?;
    Ok(())
}

fn pad4(w: &mut impl Write, len: usize) -> Result<()> {
    let pad = (4 - len % 4) % 4;
    w.write_all(&[0u8; 3][..pad])?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Host helpers

fn find_in_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/usr/sbin", "/bin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// True for an ELF executable without a program interpreter (PT_INTERP).
fn is_static_elf(path: &Path) -> Result<bool> {
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

fn find_deb(cache: &Path) -> Result<Option<PathBuf>> {
    let prefix = format!("{KERNEL_PACKAGE}_");
    for entry in fs::read_dir(cache)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name.ends_with("_amd64.deb") {
            return Ok(Some(cache.join(name)));
        }
    }
    Ok(None)
}

/// `apt-get ARGS`, retried once after `apt-get update` (the package lists may be absent
/// or stale on a fresh machine).
fn apt(args: &[&str], cwd: Option<&Path>) -> Result<()> {
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

fn run_checked(cmd: &mut Command) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f41)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f41)\n";
        assert_eq!(
            parse_ldd(text).unwrap(),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
        assert!(parse_ldd("\tlibfoo.so.1 => not found\n").is_err());
    }

    #[test]
    fn finds_markers() {
        let console = "boot\nhello VTRAIL-GUEST-EXIT=9 no\nVTRAIL-GUEST-EXIT=3\n[ 1.0] reboot\n";
        assert_eq!(find_marker(console, EXIT_MARKER), Some("3"));
        assert_eq!(
            find_marker("x VTRAIL-GUEST-EXIT=7\n", EXIT_MARKER),
            Some("7")
        );
        assert_eq!(find_marker("nothing\n", EXIT_MARKER), None);
    }

    #[test]
    fn quotes_for_the_shell() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn module_names() {
        assert_eq!(
            module_name("sch_ingress.ko").as_deref(),
            Some("sch_ingress")
        );
        assert_eq!(
            module_name("amd-uncore.ko.xz").as_deref(),
            Some("amd_uncore")
        );
        assert_eq!(module_name("README"), None);
    }

    #[test]
    fn cpio_is_newc_and_aligned() {
        let mut tree = Tree::default();
        tree.insert("a/b/c", Node::bytes(b"hello".to_vec(), 0o644))
            .unwrap();
        tree.insert("a/link", Node::Symlink("/a/b/c".into()))
            .unwrap();
        let mut out = Vec::new();
        tree.write_cpio(&mut out).unwrap();
        assert!(out.starts_with(b"070701"));
        assert_eq!(out.len() % 4, 0);
        // Parents come before children.
        let names: Vec<&str> = tree.nodes.keys().map(String::as_str).collect();
        assert_eq!(names, ["a", "a/b", "a/b/c", "a/link"]);
        if find_in_path("cpio").is_some() {
            let dir = std::env::temp_dir().join(format!("vtrail-cpio-test-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            let mut child = Command::new("cpio")
                .args(["-t", "--quiet"])
                .current_dir(&dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(&out).unwrap();
            let listed = child.wait_with_output().unwrap();
            let _ = fs::remove_dir_all(&dir);
            assert_eq!(
                String::from_utf8_lossy(&listed.stdout),
                "a\na/b\na/b/c\na/link\n"
            );
        }
    }

    /// Boots the guest: a dynamically linked host binary (`env`, exercising the `ldd`
    /// copy and the loader) runs a busybox shell script that checks the kernel release,
    /// BTF, tracefs's kprobe-able functions, bpffs and the TC modules.
    #[test]
    fn boots_debian_kernel_and_runs_a_binary() {
        let script = r#"
set -e
echo "uname-r=$(uname -r)"
test -e /sys/kernel/btf/vmlinux && echo "btf-vmlinux=present"
echo "vfs_write-functions=$(grep -c vfs_write /sys/kernel/tracing/available_filter_functions)"
echo 'p:vtrail_probe vfs_write' >> /sys/kernel/tracing/kprobe_events && echo "kprobe-vfs_write=created"
echo "lockdown=$(cat /sys/kernel/security/lockdown)"
echo "bpffs=$(grep -c ' /sys/fs/bpf bpf ' /proc/mounts)"
echo "lsm=$(cat /sys/kernel/security/lsm)"
echo "modules=$(cut -d' ' -f1 /proc/modules | sort | tr '\n' ',')"
echo "extra=$(cat /etc/vtrail-extra.txt)"
exit 7
"#;
        let extra = std::env::temp_dir().join(format!("vtrail-extra-{}.txt", std::process::id()));
        fs::write(&extra, "extra-file-ok\n").unwrap();
        let started = Instant::now();
        let run = run_in_guest(
            Path::new("/usr/bin/env"),
            &["sh", "-c", script],
            &[(extra.clone(), "/etc/vtrail-extra.txt")],
            &["sch_ingress", "cls_bpf", "act_bpf", "veth"],
            Duration::from_secs(240),
        );
        let _ = fs::remove_file(&extra);
        let run = run.unwrap();
        eprintln!(
            "boot-run-poweroff took {:.1} s; console:\n{}",
            started.elapsed().as_secs_f64(),
            run.console
        );
        assert_eq!(run.exit_marker, Some(7), "console:\n{}", run.console);
        assert!(run.console.contains(&format!("uname-r={KERNEL_RELEASE}")));
        assert!(run.console.contains("btf-vmlinux=present"));
        let n: u32 = find_marker(&run.console, "vfs_write-functions=")
            .unwrap()
            .parse()
            .unwrap();
        assert!(n > 0, "vfs_write not in available_filter_functions");
        assert!(run.console.contains("kprobe-vfs_write=created"));
        assert!(run.console.contains("bpffs=1"));
        assert!(run.console.contains("extra=extra-file-ok"));
        for m in ["sch_ingress", "cls_bpf", "act_bpf", "veth"] {
            assert!(
                find_marker(&run.console, "modules=").unwrap().contains(m),
                "{m} not loaded"
            );
        }
    }

    /// Runs this very test binary (a Rust binary needing libgcc_s, libc and the loader)
    /// in the guest, filtered to one host-independent test: the way kernel-side tests
    /// can be shipped into the guest.
    #[test]
    fn runs_a_rust_test_binary_in_the_guest() {
        let me = std::env::current_exe().unwrap();
        let run = run_in_guest(
            &me,
            &["--exact", "qemu::tests::finds_markers", "--test-threads=1"],
            &[],
            &[],
            Duration::from_secs(240),
        )
        .unwrap();
        assert_eq!(run.exit_marker, Some(0), "console:\n{}", run.console);
        assert!(
            run.console.contains("test result: ok. 1 passed"),
            "console:\n{}",
            run.console
        );
    }

    /// A guest that never finishes is killed at the timeout, and the error carries the
    /// console's last lines. Boots a guest for 30 s, so it is not run by default.
    #[test]
    #[ignore]
    fn kills_the_guest_at_the_timeout() {
        let err = run_in_guest(
            Path::new(HOST_BUSYBOX),
            &["sh", "-c", "echo still-running; sleep 1000"],
            &[],
            &[],
            Duration::from_secs(30),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("did not finish"), "{err}");
        assert!(err.contains("still-running"), "{err}");
    }
}
