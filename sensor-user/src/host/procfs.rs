//! What userspace learns from /proc and stat(2): process identity and names, inode keys
//! in the kernel's encoding, paths relative to a process's cwd or a descriptor.
use std::{
    ffi::OsStr,
    fs,
    os::unix::{
        ffi::{OsStrExt, OsStringExt},
        fs::MetadataExt,
    },
    path::{Path, PathBuf},
};

use sensor_common::{
    graph::path_text,
    maps::{GENERATION_ANY, InodeKey},
};

/// `AT_FDCWD`.
pub const AT_FDCWD: i32 = -100;

pub fn clock_ticks_per_sec() -> u64 {
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as u64 } else { 100 }
}

/// Process start in clock ticks since boot, from a kernel `start_boottime` in ns: the same
/// unit as `/proc/PID/stat` field 22, so both sides name a process the same way.
pub fn boot_ns_to_ticks(ns: u64) -> u64 {
    ns / (1_000_000_000 / clock_ticks_per_sec())
}

pub fn ticks_to_boot_ns(ticks: u64) -> u64 {
    ticks * (1_000_000_000 / clock_ticks_per_sec())
}

/// Field 22 of `/proc/PID/stat` (start time in clock ticks since boot).
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_start_ticks(&stat)
}

/// Parses `/proc/PID/stat`; the comm field may hold spaces and parentheses, so fields are
/// counted after its last ')'.
pub fn parse_stat_start_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After ')' come fields 3.. ; start time is field 22 -> index 19 here.
    rest.split_whitespace().nth(19)?.parse().ok()
}

pub fn exe(pid: u32) -> Option<String> {
    fs::read_link(format!("/proc/{pid}/exe")).ok().map(|p| p.to_string_lossy().into_owned())
}

pub fn comm(pid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm")).ok().map(|s| s.trim_end().to_string())
}

pub fn pids() -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()
}

/// Kernel-internal `dev_t` (`MAJOR << 20 | MINOR`) from a userspace `st_dev`.
pub fn kernel_dev(st_dev: u64) -> u32 {
    let major = libc::major(st_dev as libc::dev_t);
    let minor = libc::minor(st_dev as libc::dev_t);
    (major << 20) | (minor & 0xfffff)
}

/// The `INODES` key of a path, and its generation if the filesystem reports one.
pub fn inode_of(path: &Path) -> std::io::Result<(InodeKey, u32)> {
    let meta = fs::metadata(path)?;
    let key = InodeKey::new(kernel_dev(meta.dev()), meta.ino());
    Ok((key, generation_of(path).unwrap_or(GENERATION_ANY)))
}

/// `FS_IOC_GETVERSION` (ext2/3/4, btrfs, xfs...): the inode generation.
/// Opened without blocking (a FIFO under the name would stall the caller, the event loop
/// for `taint PATH`) and without taking a terminal.
fn generation_of(path: &Path) -> Option<u32> {
    use std::os::unix::fs::OpenOptionsExt;
    generation_of_file(&fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path).ok()?)
}

/// The inode generation of an open file (`FS_IOC_GETVERSION`), where the file system
/// keeps one.
pub fn generation_of_file(file: &fs::File) -> Option<u32> {
    use std::os::fd::AsRawFd;
    const FS_IOC_GETVERSION: libc::c_ulong = 0x8008_7601;
    let mut generation: libc::c_long = 0;
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), FS_IOC_GETVERSION, &mut generation) };
    (rc == 0).then_some(generation as u32)
}

/// A path as stored in the graph (`graph::path_text`: exact bytes, escaped).
pub fn text(path: &Path) -> String {
    path_text(path.as_os_str().as_bytes())
}

/// Absolute form (stored text) of a path a process passed to a syscall relative to
/// `dirfd`, or the name as given (relative) when that cannot be known: the process may
/// have exited or closed the descriptor since, or the directory's path may be longer than
/// the kernel's `readlink` gives (PATH_MAX). A name through `/proc/<pid>/fd/N` (Samba
/// reopens files so) is the file the descriptor names, never the `/proc` path itself;
/// None when that cannot be read.
pub fn resolve(pid: u32, dirfd: i32, name: &[u8]) -> Option<String> {
    let joined = if name.first() == Some(&b'/') || name.is_empty() {
        name.to_vec()
    } else {
        let base = if dirfd == AT_FDCWD {
            fs::read_link(format!("/proc/{pid}/cwd")).ok()
        } else if dirfd >= 0 {
            fs::read_link(format!("/proc/{pid}/fd/{dirfd}")).ok()
        } else {
            None
        };
        match base {
            Some(base) => base.join(OsStr::from_bytes(name)).into_os_string().into_vec(),
            None => return Some(path_text(name)),
        }
    };
    let normal = normalize(&joined);
    match proc_fd(&normal, pid) {
        Some((link, after)) => {
            let target = fs::read_link(link).ok().filter(|p| !p.as_os_str().as_bytes().ends_with(b" (deleted)"))?;
            let mut full = target.into_os_string().into_vec();
            full.extend_from_slice(&after);
            Some(path_text(&normalize(&full)))
        }
        None => Some(path_text(&normal)),
    }
}

/// `/proc/self/fd/N`, `/proc/thread-self/fd/N`, `/proc/<pid>/fd/N` or `/dev/fd/N`, and
/// what follows N (`/sub/name` below a directory descriptor): the `/proc/<pid>/fd/N` link
/// to read as seen from this process, and the rest. None for any other path, and for
/// `N` followed by anything but `/` or the end (`/proc/self/fd/3abc` is no descriptor).
fn proc_fd(path: &[u8], pid: u32) -> Option<(String, Vec<u8>)> {
    let (owner, rest) = if let Some(rest) = path.strip_prefix(b"/dev/fd/") {
        (pid.to_string(), rest)
    } else {
        let rest = path.strip_prefix(b"/proc/")?;
        let slash = rest.iter().position(|&b| b == b'/')?;
        let (who, rest) = rest.split_at(slash);
        let owner = match who {
            b"self" | b"thread-self" => pid.to_string(),
            digits if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) => std::str::from_utf8(digits).ok()?.to_string(),
            _ => return None,
        };
        (owner, rest.strip_prefix(b"/fd/")?)
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let (fd, after) = rest.split_at(digits);
    if fd.is_empty() || !(after.is_empty() || after[0] == b'/') {
        return None;
    }
    Some((format!("/proc/{owner}/fd/{}", std::str::from_utf8(fd).ok()?), after.to_vec()))
}

/// The file-system path of a stored path text (`graph::path_text`); None for text that is
/// no stored path.
pub fn fs_path(text: &str) -> Option<PathBuf> {
    sensor_common::graph::path_bytes(text).map(|b| PathBuf::from(OsStr::from_bytes(&b)))
}

/// Does the file at `path` (stored text) start with `#!`?
pub fn is_script(path: &str) -> bool {
    use std::io::Read;
    let mut head = [0u8; 2];
    fs_path(path).and_then(|p| fs::File::open(p).ok()).is_some_and(|mut f| f.read_exact(&mut head).is_ok() && &head == b"#!")
}

/// Does `path` (stored text) name the inode `key` now?
pub fn names_inode(path: &str, key: &InodeKey) -> bool {
    sensor_common::graph::path_bytes(path)
        .and_then(|b| fs::metadata(OsStr::from_bytes(&b)).ok())
        .is_some_and(|m| kernel_dev(m.dev()) == key.dev && m.ino() == key.ino)
}

/// The path behind descriptor `fd` of `pid`, or any descriptor of `pid` open on `key`.
pub fn path_of_fd(pid: u32, fd: i32, key: &InodeKey) -> Option<String> {
    let matches = |p: &Path| {
        fs::metadata(p).is_ok_and(|m| kernel_dev(m.dev()) == key.dev && m.ino() == key.ino)
    };
    if fd >= 0 {
        let link = PathBuf::from(format!("/proc/{pid}/fd/{fd}"));
        if matches(&link) {
            return fs::read_link(link).ok().map(|p| text(&p));
        }
    }
    open_files(pid).into_iter().find(|(_, k)| k == key).map(|(path, _)| path)
}

/// What `pid`'s descriptors point at: (path, inode key), for every descriptor that can be
/// stat'ed (files, but also pipes and sockets, whose keys match no file).
pub fn open_files(pid: u32) -> Vec<(String, InodeKey)> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| {
            let m = fs::metadata(e.path()).ok()?;
            let path = text(&fs::read_link(e.path()).ok()?);
            Some((path, InodeKey::new(kernel_dev(m.dev()), m.ino())))
        })
        .collect()
}

/// The files `pid` holds open for reading (read-only or read-write), stdin, stdout and
/// stderr left out: what a process can be sending. An inherited log on fd 2 is not.
pub fn readable_files(pid: u32) -> Vec<(String, InodeKey)> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| {
            let fd: u32 = e.file_name().to_str()?.parse().ok()?;
            if fd <= 2 {
                return None;
            }
            let info = fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
            let flags = info.lines().find_map(|l| l.strip_prefix("flags:"))?.trim();
            let flags = u32::from_str_radix(flags, 8).ok()?;
            if flags & libc::O_ACCMODE as u32 == libc::O_WRONLY as u32 {
                return None;
            }
            let m = fs::metadata(e.path()).ok()?;
            if !m.is_file() {
                return None;
            }
            Some((text(&fs::read_link(e.path()).ok()?), InodeKey::new(kernel_dev(m.dev()), m.ino())))
        })
        .collect()
}

/// A path of the inode `key` when no process holds it open any more: opened by file handle
/// (`open_by_handle_at`, handle type `FILEID_INO32_GEN` = inode + generation, as ext2/3/4
/// and xfs encode them) on the mount of its device, then named through /proc/self/fd.
pub fn path_of_inode(key: &InodeKey, generation: u32) -> Option<String> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    const FILEID_INO32_GEN: libc::c_int = 1;
    let ino = u32::try_from(key.ino).ok()?;
    let mount = mount_point_of(key.dev)?;
    let mount_dir = fs::File::open(&mount).ok()?;
    #[repr(C)]
    struct Handle {
        bytes: libc::c_uint,
        kind: libc::c_int,
        data: [u32; 2],
    }
    let mut handle = Handle { bytes: 8, kind: FILEID_INO32_GEN, data: [ino, generation] };
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            mount_dir.as_raw_fd(),
            &mut handle as *mut Handle,
            libc::O_PATH | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let path = fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
    // A deleted file reads as "... (deleted)": no name to give.
    (!path.as_os_str().as_bytes().ends_with(b" (deleted)")).then(|| text(&path))
}

/// The mount point of the filesystem whose kernel `dev_t` is `dev` (/proc/self/mountinfo).
fn mount_point_of(dev: u32) -> Option<PathBuf> {
    let (major, minor) = (dev >> 20, dev & 0xfffff);
    let wanted = format!("{major}:{minor}");
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let mut f = line.split(' ');
        let (_id, _parent, devno, _root, mount) = (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
        (devno == wanted).then(|| PathBuf::from(mount.replace("\\040", " ")))
    })
}

/// Lexical `.`/`..` removal (no symlink resolution: the name is what the process used).
/// `.`, `..` and repeated slashes resolved in an absolute path, on its bytes.
fn normalize(path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let mut out = Vec::with_capacity(path.len());
    for p in parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// Files larger than this are not hashed (a sensor must not read gigabytes per exec).
pub const HASH_LIMIT_BYTES: u64 = 256 << 20;

/// Hex SHA-256 of a file, None if unreadable or over `HASH_LIMIT_BYTES`.
pub fn sha256_file(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut file = fs::File::open(path).ok()?;
    if file.metadata().ok()?.len() > HASH_LIMIT_BYTES {
        return None;
    }
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = file.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Some(hex(ctx.finish().as_ref()))
}

/// sha256 of `data`, as the graph stores hashes (lowercase hex).
pub fn sha256_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Converts kernel boot-clock time stamps to wall-clock ns since the epoch.
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    offset_ns: i128,
}

impl WallClock {
    pub fn now() -> Self {
        let real = clock_ns(libc::CLOCK_REALTIME);
        let boot = clock_ns(libc::CLOCK_BOOTTIME);
        Self { offset_ns: real as i128 - boot as i128 }
    }
    pub fn wall_ns(&self, boot_ns: u64) -> u64 {
        (boot_ns as i128 + self.offset_ns).max(0) as u64
    }
}

pub fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub fn now_wall_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_stat_ed_without_blocking() {
        // (`taint FIFO` asks for its inode in the event loop: a blocking open froze it.)
        let dir = std::env::temp_dir().join(format!("vtrail-procfs-fifo-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let f = fifo.clone();
        std::thread::spawn(move || tx.send(inode_of(&f).is_ok()).unwrap());
        let answered = rx.recv_timeout(std::time::Duration::from_secs(5));
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(answered, Ok(true), "inode_of blocked on a FIFO");
    }

    #[test]
    fn sha256_of_known_content() {
        let p = std::env::temp_dir().join(format!("vtrail-sha-{}", std::process::id()));
        fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        fs::remove_file(p).unwrap();
    }

    #[test]
    fn inode_resolves_to_its_path_by_handle() {
        // A file on the filesystem of the current directory (ext4 on vtrail's machines).
        let p = std::env::current_dir().unwrap().join(format!("target-handle-test-{}", std::process::id()));
        fs::write(&p, b"x").unwrap();
        let (key, generation) = inode_of(&p).unwrap();
        let found = path_of_inode(&key, generation);
        fs::remove_file(&p).unwrap();
        assert_eq!(found.as_deref(), Some(p.to_str().unwrap()), "generation {generation:#x}");
    }

    #[test]
    fn stat_with_hostile_comm() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 12345 0 0";
        assert_eq!(parse_stat_start_ticks(stat), Some(12345));
        assert_eq!(parse_stat_start_ticks("garbage"), None);
    }

    #[test]
    fn own_start_ticks_match_kernel_units() {
        let me = std::process::id();
        assert!(start_ticks(me).is_some());
    }

    #[test]
    fn resolve_relative_to_cwd() {
        let me = std::process::id();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(resolve(me, AT_FDCWD, b"a/../b").unwrap(), format!("{}/b", cwd.display()));
        assert_eq!(resolve(me, AT_FDCWD, b"/abs").unwrap(), "/abs");
        assert_eq!(resolve(me, AT_FDCWD, b"/srv/caf\xe9").unwrap(), "/srv/caf\\xe9");
        // Unknown base (no such process): the name as given, relative.
        assert_eq!(resolve(u32::MAX, AT_FDCWD, b"x/y").unwrap(), "x/y");
    }

    #[test]
    fn proc_fd_names_are_the_files_they_point_at() {
        use std::os::fd::AsRawFd;
        let me = std::process::id();
        let dir = std::env::temp_dir().join(format!("vtrail-procfd-{me}"));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("target.txt");
        fs::write(&file, "x").unwrap();
        let f = fs::File::open(&file).unwrap();
        let fd = f.as_raw_fd();
        for name in [format!("/proc/self/fd/{fd}"), format!("/proc/{me}/fd/{fd}"), format!("/proc/thread-self/fd/{fd}")] {
            assert_eq!(resolve(me, AT_FDCWD, name.as_bytes()).as_deref(), Some(file.to_str().unwrap()), "{name}");
        }
        // A closed descriptor: no path rather than a /proc one.
        assert_eq!(resolve(me, AT_FDCWD, b"/proc/self/fd/999999"), None);
        assert_eq!(proc_fd(b"/proc/self/status", me), None);
        assert_eq!(proc_fd(b"/proc/self/fd/3abc", me), None);
        // Below a directory descriptor, and /dev/fd.
        let d = fs::File::open(&dir).unwrap();
        let dfd = d.as_raw_fd();
        assert_eq!(resolve(me, AT_FDCWD, format!("/proc/self/fd/{dfd}/target.txt").as_bytes()).as_deref(), Some(file.to_str().unwrap()));
        assert_eq!(resolve(me, AT_FDCWD, format!("/dev/fd/{fd}").as_bytes()).as_deref(), Some(file.to_str().unwrap()));
        fs::remove_dir_all(&dir).ok();
    }
}
