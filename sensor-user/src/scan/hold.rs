//! `hold_until_scanned`: no untrusted file runs before its verdict. Each untrusted file is
//! given an inode mark for `FAN_OPEN_EXEC_PERM` when its close is seen (its own inode only:
//! nothing else is ever gated); an exec of it waits here until the scan of its current
//! content has a verdict - clean runs, malicious is refused - or until the timeout, when
//! the configured answer is given. Every wait is bounded, and so are the waits at once.
use std::{
    os::fd::{AsFd, BorrowedFd},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use nix::sys::fanotify::{EventFFlags, Fanotify, FanotifyResponse, InitFlags, MarkFlags, MaskFlags, Response};
use sensor_common::maps::InodeKey;
use tracing::{info, warn};

use super::{Outcome, Scanner};
use crate::host::procfs;

/// Execs waiting for a hold thread, at most; past it the timeout answer is given at once
/// (counted).
const MAX_HELD: usize = 64;
/// Threads that wait on held execs.
const HOLD_THREADS: usize = 16;
/// Scans started by held execs at once (each reads up to `max_file_bytes`); past it a held
/// exec waits for the scan threads' verdict only.
const MAX_HOLD_SCANS: usize = 4;

static HOLD_SCANS: AtomicUsize = AtomicUsize::new(0);

/// The verdict of `file`'s content as it is now, scanned here (in a thread of its own, so
/// that the wait ends at `deadline` whatever the engines do): no verdict was cached for it
/// (its scan may still be queued). None if none came in time.
fn scan_before(scanner: &Arc<Scanner>, file: &std::fs::File, key: InodeKey, deadline: Instant) -> Option<Outcome> {
    if HOLD_SCANS.fetch_add(1, Ordering::AcqRel) >= MAX_HOLD_SCANS {
        HOLD_SCANS.fetch_sub(1, Ordering::AcqRel);
        return scanner.wait_verdict(file, deadline).1;
    }
    let Ok(copy) = file.try_clone() else {
        HOLD_SCANS.fetch_sub(1, Ordering::AcqRel);
        return None;
    };
    let job = super::Job { file: copy, key, path: None };
    let (tx, rx) = std::sync::mpsc::channel();
    let s = scanner.clone();
    let spawned = std::thread::Builder::new().name("vtrail-hold-scan".into()).spawn(move || {
        let _ = tx.send(s.scan_now(job));
        HOLD_SCANS.fetch_sub(1, Ordering::AcqRel);
    });
    if spawned.is_err() {
        HOLD_SCANS.fetch_sub(1, Ordering::AcqRel);
        return None;
    }
    match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(Some(outcome)) => Some(outcome),
        // Known meanwhile (cached by another scan of the same content).
        Ok(None) => scanner.wait_verdict(file, deadline).1,
        Err(_) => None,
    }
}

/// What the hold decided about one exec (for the graph: a denied exec is `prevented`).
#[derive(Clone, Debug)]
pub struct HoldDecision {
    pub key: InodeKey,
    pub pid: u32,
    /// Read while the process waited in exec (it may be gone once refused).
    pub start_ticks: Option<u64>,
    pub path: Option<String>,
    pub allowed: bool,
    pub why: &'static str,
}

#[derive(Default)]
pub struct HoldStats {
    pub held: AtomicU64,
    pub allowed_clean: AtomicU64,
    pub denied_malicious: AtomicU64,
    pub timed_out: AtomicU64,
    pub too_many: AtomicU64,
    /// Untrusted files whose execs could not be held (the mark failed: max_user_marks...).
    pub mark_failures: AtomicU64,
}

pub struct Hold {
    fanotify: Fanotify,
    /// The kernel's pinned `INODES` map: a file trusted since its mark runs unheld.
    inodes: std::sync::Mutex<aya::maps::HashMap<aya::maps::MapData, InodeKey, sensor_common::maps::InodeState>>,
    pub enabled: AtomicBool,
    timeout_ms: AtomicU64,
    deny_on_timeout: AtomicBool,
    pub stats: HoldStats,
}

impl Hold {
    pub fn start(kernel_state: &std::path::Path) -> anyhow::Result<Arc<Self>> {
        let pin = kernel_state.join(sensor_common::maps::names::INODES);
        let map = aya::maps::MapData::from_pin(&pin).map_err(|e| anyhow::anyhow!("scan: cannot open the pinned {}: {e}", pin.display()))?;
        let inodes = std::sync::Mutex::new(aya::maps::HashMap::try_from(aya::maps::Map::HashMap(map))?);
        let fanotify = Fanotify::init(
            InitFlags::FAN_CLASS_CONTENT | InitFlags::FAN_CLOEXEC,
            EventFFlags::O_RDONLY | EventFFlags::O_LARGEFILE | EventFFlags::O_CLOEXEC,
        )
        .map_err(|e| anyhow::anyhow!("fanotify_init (permission events): {e}"))?;
        Ok(Arc::new(Self {
            fanotify,
            inodes,
            enabled: AtomicBool::new(false),
            timeout_ms: AtomicU64::new(5000),
            deny_on_timeout: AtomicBool::new(true),
            stats: HoldStats::default(),
        }))
    }

    /// The `[response]` settings, live.
    pub fn configure(&self, enabled: bool, timeout_ms: u64, deny_on_timeout: bool) {
        if enabled != self.enabled.swap(enabled, Ordering::Relaxed) {
            info!("scan: hold_until_scanned {}", if enabled { "on: untrusted files run only once scanned clean" } else { "off" });
        }
        self.timeout_ms.store(timeout_ms, Ordering::Relaxed);
        self.deny_on_timeout.store(deny_on_timeout, Ordering::Relaxed);
    }

    /// Gates the execs of the file `fd` refers to (its inode only).
    pub fn mark(&self, fd: BorrowedFd) {
        if !self.enabled.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = self.fanotify.mark(MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_INODE, MaskFlags::FAN_OPEN_EXEC_PERM, fd, None::<&str>) {
            if self.stats.mark_failures.fetch_add(1, Ordering::Relaxed) == 0 {
                warn!("scan: cannot hold execs of an untrusted file ({e}): it may run before its verdict (counted: scan.hold_mark_failures)");
            }
        }
    }

    /// Answers permission events until the process ends: a fixed pool of `HOLD_THREADS`
    /// waits on held execs, `MAX_HELD` at most queued for it; past that the timeout answer
    /// is given at once (counted). Every event read is answered on every path.
    pub fn run(self: Arc<Self>, scanner: Arc<Scanner>, decisions: tokio::sync::mpsc::Sender<HoldDecision>) {
        let (tx, rx) = std::sync::mpsc::sync_channel::<nix::sys::fanotify::FanotifyEvent>(MAX_HELD);
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for n in 0..HOLD_THREADS {
            let (hold, scanner, decisions, rx) = (self.clone(), scanner.clone(), decisions.clone(), rx.clone());
            let spawned = std::thread::Builder::new().name(format!("vtrail-hold-{n}")).spawn(move || loop {
                let Ok(event) = rx.lock().unwrap_or_else(|e| e.into_inner()).recv() else { return };
                hold.decide(&event, &scanner, &decisions);
            });
            if let Err(e) = spawned {
                warn!("scan: cannot start hold thread {n} ({e})");
            }
        }
        while let Some(events) = super::watch::next_events(&self.fanotify, "held execs are no longer answered by vtrail") {
            for event in events {
                if event.fd().is_none() {
                    continue;
                }
                if let Err(std::sync::mpsc::TrySendError::Full(event) | std::sync::mpsc::TrySendError::Disconnected(event)) = tx.try_send(event) {
                    self.stats.too_many.fetch_add(1, Ordering::Relaxed);
                    self.answer(&event, !self.deny_on_timeout.load(Ordering::Relaxed));
                }
            }
        }
        // Nobody reads the group any more: no exec may wait on it. Its marks go.
        if let Err(e) = self.fanotify.mark(MarkFlags::FAN_MARK_FLUSH, MaskFlags::empty(), nix::fcntl::AT_FDCWD, None::<&str>) {
            warn!("scan: cannot remove the hold's marks ({e})");
        }
        self.enabled.store(false, Ordering::Relaxed);
    }

    fn decide(&self, event: &nix::sys::fanotify::FanotifyEvent, scanner: &Arc<Scanner>, decisions: &tokio::sync::mpsc::Sender<HoldDecision>) {
        let Some(fd) = event.fd() else { return };
        let file = match fd.try_clone_to_owned() {
            Ok(owned) => std::fs::File::from(owned),
            Err(_) => {
                self.answer(event, !self.deny_on_timeout.load(Ordering::Relaxed));
                return;
            }
        };
        self.stats.held.fetch_add(1, Ordering::Relaxed);
        let untrusted = scanner.key_of(&file).is_none_or(|k| {
            let inodes = self.inodes.lock().unwrap_or_else(|e| e.into_inner());
            inodes.get(&k, 0).is_ok_and(|s| s.flags & sensor_common::maps::INODE_UNTRUSTED != 0)
        });
        let (key, verdict) = if !untrusted {
            // Trusted since it was marked (`trust`): not held.
            (scanner.key_of(&file), Some(Outcome::Clean))
        } else if self.enabled.load(Ordering::Relaxed) {
            let deadline = Instant::now() + Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed));
            match scanner.wait_verdict(&file, Instant::now()) {
                (Some(key), None) => (Some(key), scan_before(scanner, &file, key, deadline)),
                known => known,
            }
        } else {
            // Turned off since the mark: run as without it.
            (scanner.key_of(&file), Some(Outcome::Clean))
        };
        let (allowed, why) = match verdict {
            Some(Outcome::Clean) => {
                self.stats.allowed_clean.fetch_add(1, Ordering::Relaxed);
                (true, "scanned clean")
            }
            Some(Outcome::Detected(_)) => {
                self.stats.denied_malicious.fetch_add(1, Ordering::Relaxed);
                (false, "flagged by a scan")
            }
            Some(Outcome::NotScanned(_)) | None => {
                self.stats.timed_out.fetch_add(1, Ordering::Relaxed);
                let allowed = !self.deny_on_timeout.load(Ordering::Relaxed);
                (allowed, if allowed { "no verdict (in time, or at all): allowed (hold_on_timeout = \"allow\")" } else { "no verdict (in time, or at all): refused (hold_on_timeout = \"deny\")" })
            }
        };
        let start_ticks = procfs::start_ticks(event.pid() as u32);
        self.answer(event, allowed);
        if let Some(key) = key {
            let path = std::fs::read_link(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&file))).ok().map(|p| procfs::text(&p));
            if !allowed {
                warn!("scan: refused an exec of {} by pid {}: {why}", path.as_deref().unwrap_or("?"), event.pid());
            }
            let _ = decisions.try_send(HoldDecision { key, pid: event.pid() as u32, start_ticks, path, allowed, why });
        }
    }

    fn answer(&self, event: &nix::sys::fanotify::FanotifyEvent, allowed: bool) {
        let Some(fd) = event.fd() else { return };
        let response = if allowed { Response::FAN_ALLOW } else { Response::FAN_DENY };
        if let Err(e) = self.fanotify.write_response(FanotifyResponse::new(fd.as_fd(), response)) {
            warn!("scan: cannot answer a held exec ({e})");
        }
    }
}
