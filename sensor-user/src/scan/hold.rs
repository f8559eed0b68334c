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

/// Execs held at once, at most; past it the timeout answer is given at once (counted).
const MAX_HELD: usize = 64;

/// The verdict of `file`'s content as it is now, scanned here (in a thread of its own, so
/// that the wait ends at `deadline` whatever the engines do): no verdict was cached for it
/// (a chmod after the scan changes the ctime the cache is keyed by; its scan may still be
/// queued). None if none came in time.
fn scan_before(scanner: &Arc<Scanner>, file: &std::fs::File, key: InodeKey, deadline: Instant) -> Option<Outcome> {
    let job = super::Job { file: file.try_clone().ok()?, key, path: None };
    let (tx, rx) = std::sync::mpsc::channel();
    let s = scanner.clone();
    std::thread::Builder::new().name("vtrail-hold-scan".into()).spawn(move || {
        let _ = tx.send(s.scan_now(job));
    }).ok()?;
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
}

pub struct Hold {
    fanotify: Fanotify,
    pub enabled: AtomicBool,
    timeout_ms: AtomicU64,
    deny_on_timeout: AtomicBool,
    in_flight: AtomicUsize,
    pub stats: HoldStats,
}

impl Hold {
    pub fn start() -> anyhow::Result<Arc<Self>> {
        let fanotify = Fanotify::init(
            InitFlags::FAN_CLASS_CONTENT | InitFlags::FAN_CLOEXEC,
            EventFFlags::O_RDONLY | EventFFlags::O_LARGEFILE | EventFFlags::O_CLOEXEC,
        )
        .map_err(|e| anyhow::anyhow!("fanotify_init (permission events): {e}"))?;
        Ok(Arc::new(Self {
            fanotify,
            enabled: AtomicBool::new(false),
            timeout_ms: AtomicU64::new(5000),
            deny_on_timeout: AtomicBool::new(true),
            in_flight: AtomicUsize::new(0),
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
            warn!("scan: cannot hold execs of an untrusted file ({e}): it may run before its verdict");
        }
    }

    /// Answers permission events until the process ends (its own thread; each held exec
    /// waits in a thread of its own, at most `MAX_HELD`).
    pub fn run(self: Arc<Self>, scanner: Arc<Scanner>, decisions: tokio::sync::mpsc::Sender<HoldDecision>) {
        while let Some(events) = super::watch::next_events(&self.fanotify, "held execs are no longer answered by vtrail") {
            for event in events {
                if event.fd().is_none() {
                    continue;
                }
                let (hold, scanner, decisions) = (self.clone(), scanner.clone(), decisions.clone());
                if self.in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_HELD {
                    self.stats.too_many.fetch_add(1, Ordering::Relaxed);
                    let allowed = !self.deny_on_timeout.load(Ordering::Relaxed);
                    self.answer(&event, allowed);
                    self.in_flight.fetch_sub(1, Ordering::AcqRel);
                    continue;
                }
                let spawned = std::thread::Builder::new().name("vtrail-hold".into()).spawn(move || {
                    hold.decide(&event, &scanner, &decisions);
                    hold.in_flight.fetch_sub(1, Ordering::AcqRel);
                });
                if let Err(e) = spawned {
                    // (The event went with the closure: the kernel answers for a closed group
                    // only when it goes away, so this must not happen silently.)
                    warn!("scan: cannot start a hold thread ({e})");
                    self.in_flight.fetch_sub(1, Ordering::AcqRel);
                }
            }
        }
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
        let (key, verdict) = if self.enabled.load(Ordering::Relaxed) {
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
