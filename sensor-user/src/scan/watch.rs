//! When to scan: fanotify reports the closes of files opened for writing
//! (`FAN_CLOSE_WRITE`, a notification: no writer ever waits for it) - of untrusted files
//! only, which `marks` gives an inode mark as they become untrusted. The kernel's `INODES`
//! map (pinned, so this thread reads it without the event loop) says whether the file is
//! still untrusted. Those are queued, with the fd fanotify opened: the scan reads the very
//! file that was closed, whatever its name is by then.
use std::{
    os::fd::{AsFd, AsRawFd},
    path::{Path, PathBuf},
    sync::{Arc, atomic::Ordering},
};

use aya::maps::{HashMap, Map, MapData};
use nix::sys::fanotify::{EventFFlags, Fanotify, InitFlags};
use sensor_common::maps::{INODE_UNTRUSTED, InodeKey, InodeState, names};
use tracing::{info, warn};

use super::{Job, Scanner, marks};
use crate::host::procfs::kernel_dev;

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
    marker: marks::Marker,
}

impl Watch {
    /// The fanotify group (no mark yet) and the pinned `INODES` map under `kernel_state`;
    /// the `CloseWatch` is how the event loop asks for an untrusted file's closes.
    pub fn start(kernel_state: &Path, scanner: Arc<Scanner>) -> anyhow::Result<(Self, marks::CloseWatch)> {
        let fanotify = Fanotify::init(
            InitFlags::FAN_CLASS_NOTIF | InitFlags::FAN_CLOEXEC,
            EventFFlags::O_RDONLY | EventFFlags::O_LARGEFILE | EventFFlags::O_CLOEXEC | EventFFlags::O_NOATIME,
        )
        .map_err(|e| anyhow::anyhow!("fanotify_init: {e} (scanning needs CAP_SYS_ADMIN)"))?;
        let pin = kernel_state.join(names::INODES);
        let map = MapData::from_pin(&pin).map_err(|e| anyhow::anyhow!("scan: cannot open the pinned {}: {e}", pin.display()))?;
        let inodes = HashMap::try_from(Map::HashMap(map))?;
        let (closes, marker) = marks::marking(scanner);
        info!("scan: watching the closes of untrusted files (an inode mark on each, as it becomes untrusted)");
        Ok((Self { fanotify, inodes, marker }, closes))
    }

    /// Marks the requested files (in a thread of its own) and reads close events until the
    /// process ends (a blocking read: this thread).
    pub fn run(self, scanner: Arc<Scanner>, hold: Arc<super::hold::Hold>) {
        let Self { fanotify, inodes, marker } = self;
        let fanotify = Arc::new(fanotify);
        let (f, s, h) = (fanotify.clone(), scanner.clone(), hold.clone());
        if let Err(e) = std::thread::Builder::new().name("vtrail-marks".into()).spawn(move || marker.run(&f, &s, &h)) {
            warn!("scan: cannot start the marking thread ({e}): untrusted files are scanned only before they run (hold_until_scanned)");
        }
        let me = std::process::id() as i32;
        while let Some(events) = next_events(&fanotify, "closes are no longer watched") {
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
                // (A file trusted since its mark, by `trust`, is not scanned.)
                let untrusted = inodes.get(&key, 0).is_ok_and(|s| s.flags & INODE_UNTRUSTED != 0);
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
                let path = name_of(&file);
                scanner.submit(Job { file, key, path });
            }
            if short_read {
                std::thread::sleep(COALESCE);
            }
        }
    }
}

/// The name an open file has now, if it has one. A file already deleted has none:
/// readlink says "PATH (deleted)". The link is read first, then the link count: a removal
/// between them leaves no name rather than that text.
pub(super) fn name_of(file: &std::fs::File) -> Option<PathBuf> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok();
    link.filter(|_| nix::sys::stat::fstat(file).is_ok_and(|m| m.st_nlink > 0))
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
