//! On-access scanning of untrusted files: `watch` says when a file that became untrusted
//! was closed after a write; a bounded pool of scan threads reads it once (capped by
//! `max_file_bytes`), hashes it and runs every configured engine on the same bytes; the
//! verdicts go to the event loop, which records them and responds (`respond`).
//!
//! Nothing waits on a scan: a full queue keeps the file by name for a later try (counted),
//! a clamd that is down keeps it for a rescan (counted, in `status`).
pub mod config;
pub mod engines;
pub mod hold;
pub mod marks;
pub mod watch;

use std::{
    collections::{HashMap, VecDeque},
    io::Read,
    os::unix::fs::MetadataExt,
    path::PathBuf,
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicU64, Ordering},
        mpsc::{Receiver, SyncSender, TrySendError, sync_channel},
    },
    time::Duration,
};

use sensor_common::{graph::Detection, maps::InodeKey};
use tracing::{info, warn};

use crate::host::procfs;
use config::ScanConfig;
use engines::{clamd::{Clamd, ClamdAnswer, ClamdError}, yara::{RuleSource, Yara, YaraError}};

/// Files kept by name for a later try (queue full, clamd down), at most.
const RETRY_LIMIT: usize = 65_536;
/// How often kept files are tried again.
const RETRY_EVERY: Duration = Duration::from_secs(2);
/// Verdicts remembered, by file identity (a rescan of an unchanged file is not repeated).
const CACHE_LIMIT: usize = 100_000;

/// A file to scan: its fd (opened by fanotify at the close), what the kernel calls it, and
/// the path it had then (for the record: the fd is what is read).
pub struct Job {
    pub file: std::fs::File,
    pub key: InodeKey,
    pub path: Option<PathBuf>,
}

/// A file's identity and content version: a verdict holds while these do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Version {
    dev: u32,
    ino: u64,
    size: u64,
    /// The modification time: a write changes it, a chmod, rename or unlink does not (the
    /// ctime would make a file removed or made executable right after its close look
    /// changed). Forged by `utimensat` it buys nothing: every close drops the verdict.
    mtime_s: i64,
    mtime_ns: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Clean,
    Detected(Vec<Detection>),
    /// Not scanned, and why (too large, unreadable, changed while read, an engine error).
    NotScanned(String),
}

/// What the scan of one file found.
#[derive(Clone, Debug)]
pub struct Verdict {
    pub key: InodeKey,
    /// The path, as the graph stores paths.
    pub path: Option<String>,
    pub size: u64,
    pub sha256: Option<String>,
    pub outcome: Outcome,
    /// The engines that looked at it.
    pub engines: Vec<String>,
    pub ts_ns: u64,
}

/// Counters for `status` and the metrics.
#[derive(Default)]
pub struct ScanStats {
    pub closes_seen: AtomicU64,
    pub queued: AtomicU64,
    pub scanned: AtomicU64,
    pub clean: AtomicU64,
    pub detected: AtomicU64,
    pub not_scanned: AtomicU64,
    pub too_large: AtomicU64,
    pub cache_hits: AtomicU64,
    pub queue_full: AtomicU64,
    pub clamd_unavailable: AtomicU64,
    /// Files that could be kept for a later try no more (the retry list was full).
    pub lost: AtomicU64,
    /// Kept files no longer under their name at the retry (renamed or removed).
    pub gone: AtomicU64,
    pub watch_overflows: AtomicU64,
    /// Untrusted files given an inode mark (their closes reported).
    pub watched: AtomicU64,
    /// Untrusted files gone before they could be marked (removed, or replaced under
    /// their name with no writer holding them).
    pub watch_gone: AtomicU64,
    /// Marks refused (fanotify max_user_marks...): scanned once, not at a rewrite.
    pub watch_mark_failures: AtomicU64,
    /// Requests the full marking queue dropped.
    pub watch_queue_full: AtomicU64,
}

/// The engines a scan runs, as configured (and as `apply-rules` extended YARA's rules).
#[derive(Clone)]
pub struct Engines {
    pub yara: Option<Arc<Yara>>,
    pub clamd: Option<Arc<Clamd>>,
}

impl Engines {
    /// Compiles the YARA rules of `scan.yara_rules` and the `applied` ones; a bad rule is an
    /// error naming its file (or applied rule) and line.
    pub fn from_config(config: &ScanConfig, applied: &[RuleSource]) -> Result<Self, YaraError> {
        let yara = Yara::compile(config.yara_rules.as_deref(), applied)?;
        match (&yara, &config.yara_rules) {
            (Some(y), _) => info!(
                "scan: YARA-X with {} rules from {} sources ({} applied by apply-rules; directory {})",
                y.rules_count,
                y.files,
                applied.len(),
                config.yara_rules.as_ref().map_or("none".into(), |d| d.display().to_string())
            ),
            (None, Some(dir)) => warn!("scan: {} holds no *.yar or *.yara file (or does not exist): YARA-X is off until it does and the sensor restarts", dir.display()),
            (None, None) => {}
        }
        let clamd = config.clamd_socket.as_ref().map(|s| Arc::new(Clamd::new(s.clone(), Duration::from_millis(config.clamd_timeout_ms))));
        if let Some(c) = &clamd {
            match c.ping() {
                Ok(()) => info!("scan: clamd at {} answers", c.socket().display()),
                Err(e) => warn!("scan: {e}: files are kept for a rescan until it answers"),
            }
        }
        Ok(Self { yara: yara.map(Arc::new), clamd })
    }

    pub fn any(&self) -> bool {
        self.yara.is_some() || self.clamd.is_some()
    }

    /// The engines' names, as verdicts and detections give them.
    pub fn names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if self.yara.is_some() {
            names.push("yara-x".to_owned());
        }
        if self.clamd.is_some() {
            names.push("clamav".to_owned());
        }
        names
    }
}

/// A file kept by name for a later try.
struct Kept {
    key: InodeKey,
    path: PathBuf,
}

pub struct Scanner {
    jobs: SyncSender<Job>,
    pub stats: ScanStats,
    retry: Mutex<VecDeque<Kept>>,
    /// The latest verdict of each file, for the content version it was reached on.
    cache: Mutex<HashMap<(u32, u64), (Version, Outcome)>>,
    /// Signalled at each verdict cached (held execs wait on it).
    cached: Condvar,
    max_file_bytes: u64,
    /// Swapped whole when `apply-rules` adds a YARA rule.
    engines: std::sync::RwLock<Arc<Engines>>,
    verdicts: tokio::sync::mpsc::Sender<Verdict>,
}

impl Scanner {
    /// Starts `config.workers` scan threads; verdicts are sent on `verdicts`.
    pub fn start(config: &ScanConfig, engines: Engines, verdicts: tokio::sync::mpsc::Sender<Verdict>) -> std::io::Result<Arc<Self>> {
        let (jobs, rx) = sync_channel::<Job>(config.queue);
        let scanner = Arc::new(Self {
            jobs,
            stats: ScanStats::default(),
            retry: Mutex::new(VecDeque::new()),
            cache: Mutex::new(HashMap::new()),
            cached: Condvar::new(),
            max_file_bytes: config.max_file_bytes,
            engines: std::sync::RwLock::new(Arc::new(engines)),
            verdicts,
        });
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..config.workers {
            let (s, rx) = (scanner.clone(), rx.clone());
            std::thread::Builder::new().name(format!("vtrail-scan-{n}")).spawn(move || s.work(&rx))?;
        }
        let s = scanner.clone();
        std::thread::Builder::new().name("vtrail-scan-retry".into()).spawn(move || loop {
            std::thread::sleep(RETRY_EVERY);
            s.retry_kept();
        })?;
        Ok(scanner)
    }

    fn current_engines(&self) -> Arc<Engines> {
        self.engines.read().map(|e| e.clone()).unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// New YARA rules (`apply-rules`): later scans use them, and every cached verdict is
    /// forgotten, so a file judged clean by the old rules is scanned again at its next
    /// close or held exec.
    pub fn replace_yara(&self, yara: Yara) {
        let mut engines = (*self.current_engines()).clone();
        engines.yara = Some(Arc::new(yara));
        match self.engines.write() {
            Ok(mut e) => *e = Arc::new(engines),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(engines),
        }
        if let Ok(mut cache) = self.cache.lock() {
            cache.clear();
        }
    }

    /// Queues `job`; a full queue keeps the file by name for a later try.
    pub fn submit(&self, job: Job) {
        match self.jobs.try_send(job) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => {
                self.stats.queue_full.fetch_add(1, Ordering::Relaxed);
                self.keep(job);
            }
        }
    }

    fn keep(&self, job: Job) {
        let Some(path) = job.path else {
            self.stats.lost.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let mut retry = self.retry.lock().unwrap_or_else(|e| e.into_inner());
        if retry.len() >= RETRY_LIMIT {
            self.stats.lost.fetch_add(1, Ordering::Relaxed);
            warn!("scan: {} files already wait for a retry; {} will be scanned only when written again", RETRY_LIMIT, path.display());
            return;
        }
        retry.push_back(Kept { key: job.key, path });
    }

    /// Drops the file's verdict: it was written again, or trusted by hand.
    pub fn forget(&self, key: &InodeKey) {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).remove(&(key.dev, key.ino));
    }

    /// The kernel's name for the file.
    pub fn key_of(&self, file: &std::fs::File) -> Option<InodeKey> {
        file.metadata().ok().map(|m| InodeKey::new(procfs::kernel_dev(m.dev()), m.ino()))
    }

    /// The verdict of `file`'s current content, waiting for it until `deadline`.
    pub fn wait_verdict(&self, file: &std::fs::File, deadline: std::time::Instant) -> (Option<InodeKey>, Option<Outcome>) {
        let Ok(m) = file.metadata() else { return (None, None) };
        let key = InodeKey::new(procfs::kernel_dev(m.dev()), m.ino());
        let version = Version { dev: key.dev, ino: key.ino, size: m.size(), mtime_s: m.mtime(), mtime_ns: m.mtime_nsec() };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some((v, outcome)) = cache.get(&(key.dev, key.ino))
                && *v == version
            {
                return (Some(key), Some(outcome.clone()));
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return (Some(key), None);
            }
            cache = self.cached.wait_timeout(cache, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// Scans `job` now, in the caller's thread (a held exec whose file has no verdict for
    /// its current content); the verdict also goes the usual way, to the event loop.
    /// None when its verdict is already known.
    pub fn scan_now(&self, job: Job) -> Option<Outcome> {
        let verdict = self.scan(job, &self.current_engines())?;
        let outcome = verdict.outcome.clone();
        // (Waits while the event loop's queue is full: a detection must reach it.)
        if self.verdicts.blocking_send(verdict).is_err() {
            warn!("scan: a verdict found for a held exec could not reach the event loop (it has stopped)");
        }
        Some(outcome)
    }

    /// Files kept waiting, for `status`.
    pub fn waiting(&self) -> usize {
        self.retry.lock().map(|r| r.len()).unwrap_or(0)
    }

    fn retry_kept(&self) {
        let kept: Vec<Kept> = std::mem::take(&mut *self.retry.lock().unwrap_or_else(|e| e.into_inner())).into();
        for k in kept {
            // Still the same regular file under that name? Opened without blocking (a FIFO
            // put in its place must not stall the retries) and without following a link.
            use std::os::unix::fs::OpenOptionsExt;
            let opened = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY)
                .open(&k.path);
            let same = opened.ok().filter(|f| {
                f.metadata().is_ok_and(|m| m.file_type().is_file() && InodeKey::new(procfs::kernel_dev(m.dev()), m.ino()) == k.key)
            });
            match same {
                Some(file) => self.submit(Job { file, key: k.key, path: Some(k.path) }),
                // Renamed or removed since: scanned at its next close (or held at its exec).
                None => {
                    self.stats.gone.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn work(&self, jobs: &Mutex<Receiver<Job>>) {
        loop {
            let job = match jobs.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                Ok(j) => j,
                Err(_) => return,
            };
            if let Some(verdict) = self.scan(job, &self.current_engines())
                && self.verdicts.blocking_send(verdict).is_err()
            {
                return;
            }
        }
    }

    /// Scans one file; None when its verdict is already known (unchanged since).
    fn scan(&self, job: Job, engines: &Engines) -> Option<Verdict> {
        let path = job.path.as_ref().map(|p| procfs::text(p));
        let engine_names = engines.names();
        let verdict = |size, sha256, outcome| Verdict {
            key: job.key,
            path: path.clone(),
            size,
            sha256,
            outcome,
            engines: engine_names.clone(),
            ts_ns: procfs::now_wall_ns(),
        };
        let not_scanned = |size, why: String| {
            self.stats.not_scanned.fetch_add(1, Ordering::Relaxed);
            Some(verdict(size, None, Outcome::NotScanned(why)))
        };
        let before = match job.file.metadata() {
            Ok(m) => m,
            Err(e) => return not_scanned(0, format!("cannot stat: {e}")),
        };
        let version = Version { dev: job.key.dev, ino: job.key.ino, size: before.size(), mtime_s: before.mtime(), mtime_ns: before.mtime_nsec() };
        if self.cache.lock().map(|c| c.get(&(version.dev, version.ino)).is_some_and(|(v, _)| *v == version)).unwrap_or(false) {
            self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if before.size() > self.max_file_bytes {
            self.stats.too_large.fetch_add(1, Ordering::Relaxed);
            return not_scanned(before.size(), format!("larger than scan.max_file_bytes ({} > {})", before.size(), self.max_file_bytes));
        }
        let mut data = Vec::with_capacity(before.size() as usize);
        // (From offset 0 whatever the fd's position: fanotify's fd is fresh.)
        if let Err(e) = (&job.file).take(self.max_file_bytes + 1).read_to_end(&mut data) {
            return not_scanned(before.size(), format!("cannot read: {e}"));
        }
        let changed = job.file.metadata().map(|m| m.size() != version.size || m.mtime() != version.mtime_s || m.mtime_nsec() != version.mtime_ns);
        if changed.unwrap_or(true) || data.len() as u64 != version.size {
            // Written again while read: that write's close brings it back.
            return not_scanned(data.len() as u64, "changed while it was read (scanned again at its next close)".into());
        }
        let sha256 = procfs::sha256_hex(&data);
        let mut detections = Vec::new();
        let mut problems = Vec::new();
        if let Some(yara) = &engines.yara {
            match yara.scan(&data) {
                Ok(names) if !names.is_empty() => detections.push(Detection { engine: "yara-x".into(), names }),
                Ok(_) => {}
                Err(e) => problems.push(e),
            }
        }
        let mut keep_for_rescan = false;
        if let Some(clamd) = &engines.clamd {
            match clamd.scan(&data) {
                Ok(ClamdAnswer::Found(name)) => detections.push(Detection { engine: "clamav".into(), names: vec![name] }),
                Ok(ClamdAnswer::Clean) => {}
                Err(e @ ClamdError::Unavailable { .. }) => {
                    self.stats.clamd_unavailable.fetch_add(1, Ordering::Relaxed);
                    keep_for_rescan = true;
                    problems.push(e.to_string());
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        self.stats.scanned.fetch_add(1, Ordering::Relaxed);
        let outcome = if !detections.is_empty() {
            self.stats.detected.fetch_add(1, Ordering::Relaxed);
            Outcome::Detected(detections)
        } else if !problems.is_empty() {
            self.stats.not_scanned.fetch_add(1, Ordering::Relaxed);
            Outcome::NotScanned(problems.join("; "))
        } else {
            self.stats.clean.fetch_add(1, Ordering::Relaxed);
            Outcome::Clean
        };
        if keep_for_rescan && !matches!(outcome, Outcome::Detected(_)) {
            self.keep(Job { file: job.file, key: job.key, path: job.path.clone() });
        } else if !matches!(outcome, Outcome::NotScanned(_)) {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert((version.dev, version.ino), (version, outcome.clone()));
            self.cached.notify_all();
        }
        Some(verdict(version.size, Some(sha256), outcome))
    }
}
