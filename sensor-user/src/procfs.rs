//! What userspace learns from /proc and stat(2): process identity and names, inode keys
//! in the kernel's encoding, paths relative to a process's cwd or a descriptor.
use std::{
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use sensor_common::maps::{GENERATION_ANY, InodeKey};

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
fn generation_of(path: &Path) -> Option<u32> {
    use std::os::fd::AsRawFd;
    const FS_IOC_GETVERSION: libc::c_ulong = 0x8008_7601;
    let file = fs::File::open(path).ok()?;
    let mut generation: libc::c_long = 0;
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), FS_IOC_GETVERSION, &mut generation) };
    (rc == 0).then_some(generation as u32)
}

/// Absolute form of a path a process passed to a syscall relative to `dirfd`.
/// Best effort: the process may have exited or closed the descriptor since.
pub fn resolve(pid: u32, dirfd: i32, name: &str) -> String {
    if name.starts_with('/') || name.is_empty() {
        return name.to_string();
    }
    let base = if dirfd == AT_FDCWD {
        fs::read_link(format!("/proc/{pid}/cwd")).ok()
    } else if dirfd >= 0 {
        fs::read_link(format!("/proc/{pid}/fd/{dirfd}")).ok()
    } else {
        None
    };
    match base {
        Some(base) => normalize(&base.join(name)),
        None => name.to_string(),
    }
}

/// The path behind descriptor `fd` of `pid`, or any descriptor of `pid` open on `key`.
pub fn path_of_fd(pid: u32, fd: i32, key: &InodeKey) -> Option<String> {
    let matches = |p: &Path| {
        fs::metadata(p).is_ok_and(|m| kernel_dev(m.dev()) == key.dev && m.ino() == key.ino)
    };
    if fd >= 0 {
        let link = PathBuf::from(format!("/proc/{pid}/fd/{fd}"));
        if matches(&link) {
            return fs::read_link(link).ok().map(|p| p.to_string_lossy().into_owned());
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
            let path = fs::read_link(e.path()).ok()?.to_string_lossy().into_owned();
            Some((path, InodeKey::new(kernel_dev(m.dev()), m.ino())))
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
    let path = path.to_string_lossy().into_owned();
    // A deleted file reads as "... (deleted)": no name to give.
    (!path.ends_with(" (deleted)")).then_some(path)
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
fn normalize(path: &Path) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.to_str().unwrap_or_default().split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
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
    Some(ctx.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect())
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
        assert_eq!(resolve(me, AT_FDCWD, "a/../b"), format!("{}/b", cwd.display()));
        assert_eq!(resolve(me, AT_FDCWD, "/abs"), "/abs");
    }
}
