//! When to scan: fanotify reports every close of a file opened for writing on the watched
//! file systems (`FAN_CLOSE_WRITE`, a notification: no writer ever waits for it); the
//! kernel's `INODES` map (pinned, so this thread reads it without the event loop) says
//! whether the file is untrusted. Only those are queued, with the fd fanotify opened:
//! the scan reads the very file that was closed, whatever its name is by then.
use std::{
    os::fd::{AsFd, AsRawFd},
    path::{Path, PathBuf},
    sync::{Arc, atomic::Ordering},
};

use aya::maps::{HashMap, Map, MapData};
use nix::sys::fanotify::{EventFFlags, Fanotify, InitFlags, MarkFlags, MaskFlags};
use sensor_common::maps::{INODE_UNTRUSTED, InodeKey, InodeState, names};
use tracing::{info, warn};

use super::{Job, Scanner};
use crate::host::procfs::kernel_dev;

/// File systems whose closes are watched: the local ones files arrive on and run from.
/// Not btrfs: `stat` there gives the subvolume's device number, not the file system's the
/// kernel map is keyed by, so its files would never be found untrusted (docs/scanning.md).
const WATCHED_TYPES: &[&str] = &["ext2", "ext3", "ext4", "xfs", "f2fs", "zfs", "tmpfs", "vfat", "exfat", "ntfs3", "jfs", "reiserfs", "nilfs2"];

/// The mount points of the watched file systems (one per file system), from
/// /proc/self/mountinfo.
pub fn local_filesystems() -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else { return Vec::new() };
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for line in text.lines() {
        // id parent major:minor root mountpoint options ... - fstype source superoptions
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else { continue };
        let (Some(dev), Some(mount), Some(fstype)) = (fields.get(2), fields.get(4), fields.get(dash + 1)) else { continue };
        if WATCHED_TYPES.contains(fstype) && seen.insert(dev.to_string()) {
            out.push(PathBuf::from(unescape(mount)));
        }
    }
    out
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// After a short read the thread waits this long before reading again, so that closes
/// queue up and are read in batches: a reader blocked in `read` is woken by every close,
/// and on a VM that wake-up (an IPI, a VM exit) is paid by the process closing its file,
/// trusted or not. It adds at most this much to a scan's start.
const COALESCE: std::time::Duration = std::time::Duration::from_millis(1);
/// A read of at least this many events leaves more queued: read again at once. (nix reads
/// into 4 KiB, 170 events of 24 bytes.)
const FULL_READ: usize = 128;

pub struct Watch {
    fanotify: Fanotify,
    inodes: HashMap<MapData, InodeKey, InodeState>,
    pub watched: Vec<PathBuf>,
}

impl Watch {
    /// Marks every local file system; `kernel_state` holds the pinned `INODES` map.
    pub fn start(kernel_state: &Path) -> anyhow::Result<Self> {
        let fanotify = Fanotify::init(
            InitFlags::FAN_CLASS_NOTIF | InitFlags::FAN_CLOEXEC,
            EventFFlags::O_RDONLY | EventFFlags::O_LARGEFILE | EventFFlags::O_CLOEXEC | EventFFlags::O_NOATIME,
        )
        .map_err(|e| anyhow::anyhow!("fanotify_init: {e} (scanning needs CAP_SYS_ADMIN)"))?;
        let mut watched = Vec::new();
        for mount in local_filesystems() {
            match fanotify.mark(MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_FILESYSTEM, MaskFlags::FAN_CLOSE_WRITE, nix::fcntl::AT_FDCWD, Some(&mount)) {
                Ok(()) => watched.push(mount),
                Err(e) => warn!("scan: cannot watch closes on {} ({e}): files written there are scanned only before they run", mount.display()),
            }
        }
        if watched.is_empty() {
            anyhow::bail!("scan: no local file system could be watched");
        }
        let pin = kernel_state.join(names::INODES);
        let map = MapData::from_pin(&pin).map_err(|e| anyhow::anyhow!("scan: cannot open the pinned {}: {e}", pin.display()))?;
        let inodes = HashMap::try_from(Map::HashMap(map))?;
        info!("scan: watching closes after writes on {}", watched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
        Ok(Self { fanotify, inodes, watched })
    }

    /// Reads events until the process ends (a blocking read: its own thread).
    pub fn run(self, scanner: Arc<Scanner>, hold: Arc<super::hold::Hold>) {
        let me = std::process::id() as i32;
        while let Some(events) = next_events(&self.fanotify, "closes are no longer watched") {
            let short_read = events.len() < FULL_READ;
            for event in events {
                let Some(fd) = event.fd() else {
                    // The kernel's queue overflowed: closes were lost. Counted; the files
                    // are still scanned before they run.
                    scanner.stats.watch_overflows.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                if event.pid() == me {
                    continue;
                }
                scanner.stats.closes_seen.fetch_add(1, Ordering::Relaxed);
                let Ok(meta) = nix::sys::stat::fstat(fd) else { continue };
                if meta.st_mode & libc::S_IFMT != libc::S_IFREG {
                    continue;
                }
                let key = InodeKey::new(kernel_dev(meta.st_dev), meta.st_ino);
                let untrusted = self.inodes.get(&key, 0).is_ok_and(|s| s.flags & INODE_UNTRUSTED != 0);
                if !untrusted {
                    continue;
                }
                // Written again: whatever verdict it had is for other content (a write through
                // a shared mapping need not change the mtime, so the cache's key cannot tell).
                scanner.forget(&key);
                // Its execs wait for the verdict (hold_until_scanned), from now on.
                hold.mark(fd);
                // The event's fd closes with the event: the job gets its own.
                let Ok(own) = nix::unistd::dup(fd.as_fd()) else { continue };
                let file = std::fs::File::from(own);
                // A file already deleted has no name: readlink says "PATH (deleted)". Read the
                // link first, then the link count: a removal between them leaves no name
                // rather than that text.
                let link = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok();
                let path = link.filter(|_| nix::sys::stat::fstat(&file).is_ok_and(|m| m.st_nlink > 0));
                scanner.submit(Job { file, key, path });
            }
            if short_read {
                std::thread::sleep(COALESCE);
            }
        }
    }
}

/// The next events of a fanotify group (blocking); None once it cannot be read (said
/// with `then_what`).
pub(super) fn next_events(fanotify: &Fanotify, then_what: &str) -> Option<Vec<nix::sys::fanotify::FanotifyEvent>> {
    use nix::errno::Errno;
    loop {
        match fanotify.read_events() {
            Ok(e) => return Some(e),
            Err(Errno::EINTR | Errno::EAGAIN) => continue,
            // No descriptor or memory for the event now (the kernel keeps it): try again.
            Err(e @ (Errno::EMFILE | Errno::ENFILE | Errno::ENOMEM)) => {
                warn!("scan: fanotify read: {e}; trying again in 100 ms");
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => {
                warn!("scan: fanotify read failed ({e}); {then_what}");
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape("/srv/my\\040share"), "/srv/my share");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/end\\04"), "/end\\04");
    }
}
