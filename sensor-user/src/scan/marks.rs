//! Which closes fanotify reports: those of untrusted files only. When the event loop
//! records that a file became untrusted (a tainted or port-program write, a rename by a
//! tainted process, a descriptor a process held when it became tainted, `taint`), it asks
//! here for the file's closes; this thread finds the very inode again and gives it an inode
//! mark for `FAN_CLOSE_WRITE`. No other file has a mark, so a process that writes only
//! trusted files makes fanotify do nothing at all (a file-system-wide mark made it queue an
//! event, with a descriptor, for every close on the machine: +18 % on untainted creates).
//!
//! The mark comes after the event, so the writer may have closed the file already (a worm
//! writes and closes in microseconds; the event reaches userspace later): every mark is
//! followed by a scan of the file as it is then. A writer still writing is scanned again
//! at its close, which the mark now reports.
use std::{
    collections::{HashMap, VecDeque},
    os::{
        fd::{AsFd, AsRawFd},
        unix::fs::{MetadataExt, OpenOptionsExt},
    },
    path::PathBuf,
    sync::{
        Arc,
        atomic::Ordering,
        mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError, TrySendError, channel, sync_channel},
    },
    time::{Duration, Instant},
};

use nix::sys::fanotify::{Fanotify, MarkFlags, MaskFlags};
use sensor_common::maps::{GENERATION_ANY, InodeKey};
use tracing::warn;

use super::{Job, Scanner, hold::Hold};
use crate::host::procfs;

/// Requests queued for the marking thread, at most; past it a request is dropped (counted:
/// `scan.watch_queue_full`) and that file is scanned when it is run, or written again by a
/// tainted process or a port program.
const QUEUED_REQUESTS: usize = 65_536;
/// A file marked this recently is not marked (nor scanned) again for a second event of the
/// same write (a create, then the first write): its mark reports the close.
const MARKED_RECENTLY: Duration = Duration::from_secs(2);
/// Recently marked files remembered, at most (then forgotten: a repeat is only extra work).
const MARKED_LIMIT: usize = 65_536;
/// `FAN_MARK_EVICTABLE` (Linux 5.19): the mark does not pin the inode in memory, so
/// 200,000 untrusted files do not hold 200,000 inodes. An inode is evicted only when
/// nothing has it open, so no pending close is lost; a file evicted and later rewritten by
/// a process that is neither tainted nor a port program is not seen (docs/scanning.md).
const FAN_MARK_EVICTABLE: u32 = 0x200;

/// A file that became untrusted, as the event named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchRequest {
    pub key: InodeKey,
    pub generation: u32,
    /// The process that wrote it (its descriptors may still hold the file).
    pub pid: u32,
    /// Its path as recorded, when whole.
    pub path: Option<String>,
    /// Scanned once marked (its close may have come before the mark); not for the files a
    /// restart marks again, whose verdicts are recorded.
    pub scan: bool,
}

/// The event loop's end: queues requests without waiting.
#[derive(Clone)]
pub struct CloseWatch {
    requests: SyncSender<WatchRequest>,
    backlog: Sender<Vec<WatchRequest>>,
    scanner: Arc<Scanner>,
}

impl CloseWatch {
    /// Marks the untrusted files a start restored from the database again (and gates
    /// their execs again, with hold_until_scanned). They wait in a list of their own, taken
    /// only while no new file waits: a backlog of 200,000 neither delays nor crowds out the
    /// files arriving now.
    pub fn rewatch(&self, files: Vec<WatchRequest>) {
        if !files.is_empty() {
            let _ = self.backlog.send(files);
        }
    }

    pub fn request(&self, request: WatchRequest) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.requests.try_send(request)
            && self.scanner.stats.watch_queue_full.fetch_add(1, Ordering::Relaxed) == 0
        {
            warn!("scan: an untrusted file's closes could not be watched (the marking queue is full or stopped): it is scanned when it is run, or written again by a tainted process or a port program (counted: scan.watch_queue_full)");
        }
    }
}

/// The marking thread's end.
pub struct Marker {
    requests: Receiver<WatchRequest>,
    backlog_in: Receiver<Vec<WatchRequest>>,
    backlog: VecDeque<WatchRequest>,
    evictable: bool,
    recent: HashMap<InodeKey, Instant>,
}

pub fn marking(scanner: Arc<Scanner>) -> (CloseWatch, Marker) {
    let (tx, rx) = sync_channel(QUEUED_REQUESTS);
    let (backlog_tx, backlog_rx) = channel();
    let marker = Marker { requests: rx, backlog_in: backlog_rx, backlog: VecDeque::new(), evictable: true, recent: HashMap::new() };
    (CloseWatch { requests: tx, backlog: backlog_tx, scanner }, marker)
}

impl Marker {
    /// Marks and scans the requested files until every `CloseWatch` is gone.
    pub fn run(mut self, fanotify: &Fanotify, scanner: &Scanner, hold: &Hold) {
        loop {
            while let Ok(more) = self.backlog_in.try_recv() {
                self.backlog.extend(more);
            }
            let request = match self.requests.try_recv() {
                Ok(r) => r,
                Err(TryRecvError::Disconnected) => return,
                Err(TryRecvError::Empty) => match self.backlog.pop_front() {
                    Some(r) => r,
                    // (Woken now and then to take a backlog sent meanwhile.)
                    None => match self.requests.recv_timeout(Duration::from_secs(1)) {
                        Ok(r) => r,
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => return,
                    },
                },
            };
            self.handle(&request, fanotify, scanner, hold);
        }
    }

    fn handle(&mut self, request: &WatchRequest, fanotify: &Fanotify, scanner: &Scanner, hold: &Hold) {
        let now = Instant::now();
        if self.recent.get(&request.key).is_some_and(|at| now.duration_since(*at) < MARKED_RECENTLY) {
            return;
        }
        let Some(file) = open_exact(request) else {
            // Removed (or replaced) before it could be found: nothing left to scan under it.
            scanner.stats.watch_gone.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if let Err(e) = self.mark(fanotify, &file) {
            if scanner.stats.watch_mark_failures.fetch_add(1, Ordering::Relaxed) == 0 {
                warn!("scan: cannot watch the closes of an untrusted file ({e}; fanotify max_user_marks?): it is scanned now, not at a later rewrite (counted: scan.watch_mark_failures)");
            }
        } else {
            scanner.stats.watched.fetch_add(1, Ordering::Relaxed);
        }
        if self.recent.len() >= MARKED_LIMIT {
            self.recent.retain(|_, at| now.duration_since(*at) < MARKED_RECENTLY);
            if self.recent.len() >= MARKED_LIMIT {
                self.recent.clear();
            }
        }
        self.recent.insert(request.key, now);
        // Its execs wait for the verdict (hold_until_scanned), from now on.
        hold.mark(file.as_fd());
        if !request.scan {
            return;
        }
        // The close may have come before the mark: the content as it is now is scanned (an
        // unchanged file is a cache hit).
        let path = super::watch::name_of(&file);
        scanner.submit(Job { file, key: request.key, path });
    }

    fn mark(&mut self, fanotify: &Fanotify, file: &std::fs::File) -> nix::Result<()> {
        let flags = MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_INODE;
        if self.evictable {
            match fanotify.mark(flags | MarkFlags::from_bits_retain(FAN_MARK_EVICTABLE), MaskFlags::FAN_CLOSE_WRITE, file.as_fd(), None::<&str>) {
                // Older kernels (Debian 5.10) know no evictable marks: plain ones from now on.
                Err(nix::errno::Errno::EINVAL) => self.evictable = false,
                done => return done,
            }
        }
        fanotify.mark(flags, MaskFlags::FAN_CLOSE_WRITE, file.as_fd(), None::<&str>)
    }
}

/// The file `request` names, opened for reading, if that inode can still be found: by its
/// recorded path, else through a descriptor the writer still holds on it, else by file
/// handle (inode and generation). Each candidate is opened `O_PATH` first and must be a
/// regular file with the request's key: a name swapped meanwhile for a FIFO, a device or
/// another file is never opened for reading.
fn open_exact(request: &WatchRequest) -> Option<std::fs::File> {
    let by_path = || request.path.as_deref().and_then(procfs::fs_path).and_then(|p| open_if(&p, request, Link::Refuse));
    let by_fd = || held_by(request);
    let by_handle = || procfs::path_of_inode(&request.key, request.generation).and_then(|p| procfs::fs_path(&p)).and_then(|p| open_if(&p, request, Link::Refuse));
    by_path().or_else(by_fd).or_else(by_handle)
}

/// `pid`'s running image or a descriptor of `pid` open on `key`, reopened for reading
/// (through /proc: the very file, whatever its name is now, even removed).
fn held_by(request: &WatchRequest) -> Option<std::fs::File> {
    let exe = PathBuf::from(format!("/proc/{}/exe", request.pid));
    open_if(&exe, request, Link::Follow).or_else(|| {
        let dir = std::fs::read_dir(format!("/proc/{}/fd", request.pid)).ok()?;
        dir.flatten().find_map(|entry| open_if(&entry.path(), request, Link::Follow))
    })
}

/// Whether the last component of a path may be a symbolic link: a recorded name must not
/// be (the file was written under it), a /proc descriptor entry always is.
#[derive(Clone, Copy)]
enum Link {
    Refuse,
    Follow,
}

/// `path` opened for reading if it is a regular file with the request's inode (and, where
/// both are known, its generation: ext4 gives a freed inode number to the next new file).
fn open_if(path: &std::path::Path, request: &WatchRequest, link: Link) -> Option<std::fs::File> {
    let key = &request.key;
    let nofollow = match link {
        Link::Refuse => libc::O_NOFOLLOW,
        Link::Follow => 0,
    };
    let handle = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_PATH | nofollow).open(path).ok()?;
    let meta = handle.metadata().ok()?;
    if !meta.is_file() || procfs::kernel_dev(meta.dev()) != key.dev || meta.ino() != key.ino {
        return None;
    }
    let reopen = PathBuf::from(format!("/proc/self/fd/{}", handle.as_raw_fd()));
    let open = |flags| std::fs::OpenOptions::new().read(true).custom_flags(flags).open(&reopen);
    // Without touching its access time where the owner's rights allow it.
    let file = open(libc::O_NOATIME | libc::O_NONBLOCK | libc::O_NOCTTY).or_else(|_| open(libc::O_NONBLOCK | libc::O_NOCTTY)).ok()?;
    let other_generation = request.generation != GENERATION_ANY && procfs::generation_of_file(&file).is_some_and(|g| g != request.generation);
    (!other_generation).then_some(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(path: &std::path::Path) -> InodeKey {
        let m = std::fs::metadata(path).unwrap();
        InodeKey::new(procfs::kernel_dev(m.dev()), m.ino())
    }

    fn request(path: &std::path::Path) -> WatchRequest {
        let (key, generation) = procfs::inode_of(path).unwrap();
        WatchRequest { key, generation, pid: std::process::id(), path: Some(path.to_string_lossy().into()), scan: true }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vtrail-marks-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn finds_the_inode_by_name_and_refuses_another_file_under_it() {
        let dir = scratch("name");
        let path = dir.join("dropped");
        std::fs::write(&path, b"x").unwrap();
        let dropped = request(&path);
        assert!(open_exact(&dropped).is_some());
        // Removed, and another file under the same name: ext4 may give it the same inode
        // number, not the same generation.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"other").unwrap();
        assert!(open_if(&path, &dropped, Link::Refuse).is_none(), "another file taken for the removed one");
        // A FIFO under the name is not opened (it would block), whatever its inode.
        std::fs::remove_file(&path).unwrap();
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU).unwrap();
        // (Its key by stat: opening it to read its generation would block.)
        let fifo = WatchRequest { key: key_of(&path), generation: GENERATION_ANY, pid: 0, path: None, scan: true };
        assert!(open_if(&path, &fifo, Link::Refuse).is_none());
        // Nor a link to the file, under the recorded name.
        std::fs::remove_file(&path).unwrap();
        let target = dir.join("target");
        std::fs::write(&target, b"t").unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let linked = WatchRequest { path: Some(path.to_string_lossy().into()), ..request(&target) };
        assert!(open_if(&path, &linked, Link::Refuse).is_none());
        assert!(open_if(&target, &linked, Link::Refuse).is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn finds_a_renamed_file_through_its_writers_descriptor() {
        let dir = scratch("renamed");
        let path = dir.join("a");
        let held = std::fs::File::create(&path).unwrap();
        let renamed = request(&path);
        let key = renamed.key;
        std::fs::rename(&path, dir.join("b")).unwrap();
        let found = open_exact(&renamed).expect("found through /proc/self/fd");
        assert_eq!(key_of(&PathBuf::from(format!("/proc/self/fd/{}", found.as_raw_fd()))), key);
        drop(held);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
