//! The throw-away initramfs: a newc cpio written here, holding busybox, the binary with
//! the libraries `ldd` lists, extra files, the modules and the `/init` script.


use anyhow::{Context, Result, anyhow, bail, ensure};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;


use super::modules::resolve_modules;
use super::{EXIT_MARKER, GUEST_BIN_DIR, HOST_BUSYBOX, INSMOD_FAILED_MARKER, KernelFiles};
pub(super) fn build_initramfs(
    kernel: &KernelFiles,
    binary: &Path,
    args: &[&str],
    extra_files: &[(PathBuf, &str)],
    modules: &[&str],
    out: &Path,
) -> Result<()> {
    let mut image = Image::new()?;
    let guest_binary = image.add_binary(binary)?;
    for (host, guest) in extra_files {
        image.add_host_path(host, guest)?;
    }
    image.add_modules(kernel, modules)?;
    let command: Vec<String> = std::iter::once(guest_binary.as_str())
        .chain(args.iter().copied())
        .map(shell_quote)
        .collect();
    image.write(&command.join(" "), out)
}

/// A guest's initramfs being put together: busybox with its applet links, `/etc` basics,
/// binaries with their libraries, files, modules; [`Image::write`] adds `/init`, which runs
/// one shell command line and powers off.
pub struct Image {
    tree: Tree,
    insmods: String,
}

impl Image {
    pub fn new() -> Result<Self> {
        let mut tree = Tree::default();
        for dir in [
            "bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "run", "tmp", "root",
            "var/lib", "var/log", "var/tmp", "opt/vtrail",
        ] {
            tree.dir(dir);
        }
        tree.insert("dev/console", Node::CharDev(5, 1))?;
        tree.insert("dev/null", Node::CharDev(1, 3))?;
        tree.insert("etc/passwd", Node::bytes(b"root:x:0:0:root:/root:/bin/sh\n".to_vec(), 0o644))?;
        tree.insert("etc/group", Node::bytes(b"root:x:0:\n".to_vec(), 0o644))?;
        tree.insert("etc/hosts", Node::bytes(b"127.0.0.1 localhost\n::1 localhost\n".to_vec(), 0o644))?;

        // busybox and one symlink per applet, at the paths busybox itself lists.
        tree.insert("bin/busybox", Node::host(HOST_BUSYBOX, 0o755))?;
        let list = Command::new(HOST_BUSYBOX).arg("--list-full").output()?;
        ensure!(list.status.success(), "{HOST_BUSYBOX} --list-full failed");
        for applet in String::from_utf8_lossy(&list.stdout).lines().map(str::trim) {
            if !applet.is_empty() && applet != "bin/busybox" {
                tree.insert(applet, Node::Symlink("/bin/busybox".into()))?;
            }
        }
        Ok(Self { tree, insmods: String::new() })
    }

    /// Adds `binary` at `/opt/vtrail/<file name>` and every library `ldd` lists at its host
    /// path; returns the guest path.
    pub fn add_binary(&mut self, binary: &Path) -> Result<String> {
        let name = binary
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| anyhow!("binary path {} has no file name", binary.display()))?;
        let guest = format!("{GUEST_BIN_DIR}/{name}");
        self.add_binary_at(binary, &guest)?;
        Ok(guest)
    }

    /// Adds `binary` at `guest` (absolute) and every library `ldd` lists at its host path.
    pub fn add_binary_at(&mut self, binary: &Path, guest: &str) -> Result<()> {
        ensure!(binary.is_file(), "binary {} does not exist", binary.display());
        self.tree.insert(guest, Node::host(binary, 0o755))?;
        for lib in ldd(binary)? {
            let guest = lib.to_string_lossy().into_owned();
            self.tree.insert(&guest, Node::host(&lib, 0o755))?;
        }
        Ok(())
    }

    /// A host file or directory (copied recursively) at the absolute `guest` path.
    pub fn add_host_path(&mut self, host: &Path, guest: &str) -> Result<()> {
        ensure!(guest.starts_with('/'), "guest path {guest:?} must be absolute");
        self.tree.add_host_path(host, guest)
    }

    /// A file with these bytes at `guest` (replacing what the base image put there).
    pub fn add_bytes(&mut self, guest: &str, bytes: impl Into<Vec<u8>>, mode: u32) -> Result<()> {
        self.tree.insert(guest, Node::bytes(bytes.into(), mode))
    }

    /// An empty directory.
    pub fn add_dir(&mut self, guest: &str) {
        self.tree.dir(guest);
    }

    /// The modules `/init` loads before the command (dependencies first; built-in ones are
    /// skipped). A module that fails to load powers the guest off with a marker.
    pub fn add_modules(&mut self, kernel: &KernelFiles, modules: &[&str]) -> Result<()> {
        for (name, bytes) in resolve_modules(kernel, modules)? {
            let guest = format!("lib/modules/{}/{name}.ko", kernel.release);
            if self.tree.nodes.contains_key(&guest) {
                continue;
            }
            self.tree.insert(&guest, Node::bytes(bytes, 0o644))?;
            self.insmods.push_str(&format!(
                "insmod /{guest} || {{ echo {INSMOD_FAILED_MARKER}{name}; sync; poweroff -f; }}\n"
            ));
        }
        Ok(())
    }

    /// Writes the newc cpio to `out`, with an `/init` that mounts the pseudo filesystems,
    /// loads the modules, runs `command` (a shell command line) and powers off.
    pub fn write(mut self, command: &str, out: &Path) -> Result<()> {
        let init = INIT_SCRIPT
            .replace("@INSMODS@", &self.insmods)
            .replace("@COMMAND@", command)
            .replace("@EXIT_MARKER@", EXIT_MARKER);
        self.tree.insert("init", Node::bytes(init.into_bytes(), 0o755))?;
        let mut w = BufWriter::new(File::create(out).with_context(|| format!("creating {}", out.display()))?);
        self.tree.write_cpio(&mut w)?;
        w.flush()?;
        Ok(())
    }
}

pub(super) const INIT_SCRIPT: &str = r#"#!/bin/sh
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

pub(super) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The libraries `ldd` lists for `binary`, the dynamic loader included; none for a
/// static binary.
pub(super) fn ldd(binary: &Path) -> Result<Vec<PathBuf>> {
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

pub(super) fn parse_ldd(text: &str) -> Result<Vec<PathBuf>> {
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

// ---------------------------------------------------------------------------------------
// A newc cpio archive, written in Rust (no staging directory, device nodes without mknod).

pub(super) enum Node {
    Dir,
    File { source: Source, mode: u32 },
    Symlink(String),
    CharDev(u32, u32),
}

pub(super) enum Source {
    Host(PathBuf),
    Bytes(Vec<u8>),
}

impl Node {
    pub(super) fn host(path: impl AsRef<Path>, mode: u32) -> Node {
        Node::File {
            source: Source::Host(path.as_ref().to_path_buf()),
            mode,
        }
    }
    pub(super) fn bytes(bytes: Vec<u8>, mode: u32) -> Node {
        Node::File {
            source: Source::Bytes(bytes),
            mode,
        }
    }
}

#[derive(Default)]
pub(super) struct Tree {
    /// Paths without a leading `/`; sorted order puts every parent before its children.
    pub(super) nodes: BTreeMap<String, Node>,
}

impl Tree {
    pub(super) fn dir(&mut self, path: &str) {
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
    pub(super) fn insert(&mut self, path: &str, node: Node) -> Result<()> {
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

    pub(super) fn add_host_path(&mut self, host: &Path, guest: &str) -> Result<()> {
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

    pub(super) fn write_cpio(&self, w: &mut impl Write) -> Result<()> {
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

pub(super) fn cpio_entry(
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

pub(super) fn cpio_header(
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

pub(super) fn pad4(w: &mut impl Write, len: usize) -> Result<()> {
    let pad = (4 - len % 4) % 4;
    w.write_all(&[0u8; 3][..pad])?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Host helpers

