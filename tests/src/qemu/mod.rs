//! Run a binary inside a Debian kernel (6.1 by default; the matrix in `kernels`) under QEMU.
//!
//! The host kernel lacks kprobes and fentry, so the sensor's kernel-side tests boot
//! Debian's kernel under `qemu-system-x86_64` (TCG: `-enable-kvm` hangs on this host)
//! with a throw-away busybox initramfs:
//!
//! * `ensure_kernel` installs `qemu-system-x86`, `cpio` and `busybox-static` with apt-get
//!   if one is missing, and fetches (deb.debian.org, checked against the sha256 pinned in
//!   `kernels`) and unpacks the kernel package into the cache (`$HOME/.cache/vtrail/qemu/`).
//!   A second call finds everything there and does nothing.
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

mod host;
mod initramfs;
pub mod kernels;
mod modules;
#[cfg(test)]
mod tests;

pub use host::{default_cache_dir, ensure_kernel, ensure_prerequisites};
pub use kernels::GuestKernel;
use initramfs::build_initramfs;
pub use initramfs::Image;


use anyhow::{Context, Result, bail};
use std::fs::{self};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The kernel guests boot unless told otherwise (`uname -r` inside the guest).
pub const KERNEL_RELEASE: &str = kernels::BOOKWORM.release;
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

/// Boots Debian's 6.1 kernel ([`kernels::BOOKWORM`]) under `qemu-system-x86_64` (TCG,
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
    run_in_kernel(&kernels::BOOKWORM, binary, args, extra_files, modules, timeout)
}

/// [`run_in_guest`] on another kernel of the matrix ([`kernels::MATRIX`]).
pub fn run_in_kernel(
    guest: &GuestKernel,
    binary: &Path,
    args: &[&str],
    extra_files: &[(PathBuf, &str)],
    modules: &[&str],
    timeout: Duration,
) -> Result<GuestRun> {
    let cache = default_cache_dir()?;
    let kernel = ensure_kernel(&cache, guest)?;

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
    let options = BootOptions { qemu_args: vec!["-nic".into(), "none".into()], ..BootOptions::default() };
    RunningGuest::spawn(kernel, initrd, &options)?.wait(timeout)
}

/// How a guest is started, besides its kernel and initramfs.
#[derive(Clone, Debug)]
pub struct BootOptions {
    /// Named in messages.
    pub name: String,
    pub memory_mib: u32,
    /// `-smp`; default `$VTRAIL_QEMU_SMP` or 2.
    pub smp: Option<u32>,
    /// Further QEMU arguments: network cards, disks, serial ports after the console
    /// (`ttyS0` is QEMU's standard output).
    pub qemu_args: Vec<String>,
    /// Run QEMU inside this network namespace (where its tap devices are).
    pub netns: Option<String>,
}

impl Default for BootOptions {
    fn default() -> Self {
        Self { name: "guest".into(), memory_mib: 2048, smp: None, qemu_args: Vec::new(), netns: None }
    }
}

/// A QEMU guest running in the background: its console is read as it comes, QEMU is
/// killed when this is dropped.
pub struct RunningGuest {
    name: String,
    /// `uname -r` of its kernel.
    release: String,
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    started: Instant,
}

impl RunningGuest {
    /// Starts `qemu-system-x86_64` (TCG, `-cpu max`, no display, no reboot, console on
    /// `ttyS0` = standard output) with `kernel` and `initrd`.
    pub fn spawn(kernel: &KernelFiles, initrd: &Path, options: &BootOptions) -> Result<Self> {
        let smp = match options.smp {
            Some(n) => n.to_string(),
            None => std::env::var("VTRAIL_QEMU_SMP").unwrap_or_else(|_| "2".to_string()),
        };
        let mut cmd = match &options.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "qemu-system-x86_64"]);
                c
            }
            None => Command::new("qemu-system-x86_64"),
        };
        cmd.args(["-accel", "tcg", "-cpu", "max", "-m", &options.memory_mib.to_string(), "-smp", &smp])
            .args(["-display", "none", "-monitor", "none", "-no-reboot", "-serial", "stdio"])
            .args(&options.qemu_args)
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
        let readers = vec![
            pump(child.stdout.take().expect("piped stdout"), out.clone()),
            pump(child.stderr.take().expect("piped stderr"), err.clone()),
        ];
        Ok(Self { name: options.name.clone(), release: kernel.release.clone(), child, out, err, readers, started })
    }

    /// The console so far (`\r` removed).
    pub fn console(&self) -> String {
        clean_console(&self.out.lock().unwrap())
    }

    /// What QEMU itself wrote to its standard error.
    pub fn stderr(&self) -> String {
        clean_console(&self.err.lock().unwrap())
    }

    /// QEMU's exit status, once it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits for the guest to power off (killing QEMU after `timeout`) and returns what
    /// it printed; an error names a timeout, a module that failed to load, or QEMU failing.
    pub fn wait(mut self, timeout: Duration) -> Result<GuestRun> {
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break Some(status);
            }
            if self.started.elapsed() >= timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        for r in std::mem::take(&mut self.readers) {
            let _ = r.join();
        }
        let elapsed = self.started.elapsed();
        let name = &self.name;

        let mut console = self.console();
        let stderr = clean_console(&self.err.lock().unwrap());
        if !stderr.trim().is_empty() {
            console.push_str("\n--- qemu stderr ---\n");
            console.push_str(&stderr);
        }

        let Some(status) = status else {
            bail!(
                "{name}: guest did not finish within {timeout:?}; QEMU killed. Last console lines:\n{}",
                tail(&console, TAIL_LINES)
            );
        };
        if let Some(module) = find_marker(&console, INSMOD_FAILED_MARKER) {
            bail!("{name}: insmod {module} failed in the guest. Last console lines:\n{}", tail(&console, TAIL_LINES));
        }
        let exit_marker = find_marker(&console, EXIT_MARKER).and_then(|v| v.parse::<i32>().ok());
        if exit_marker.is_none() && !status.success() {
            bail!(
                "{name}: qemu-system-x86_64 exited with {status} after {elapsed:.1?}. Last console lines:\n{}",
                tail(&console, TAIL_LINES)
            );
        }
        eprintln!(
            "qemu: {name} ({}) booted, ran and powered off in {:.1} s (exit marker {exit_marker:?})",
            self.release,
            elapsed.as_secs_f64()
        );
        Ok(GuestRun { console, exit_marker })
    }
}

impl Drop for RunningGuest {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
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

/// The last `n` lines of `text`, for error messages.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---------------------------------------------------------------------------------------
// The initramfs

