//! Wires on-access scanning into the daemon: the engines (a bad YARA rule stops the
//! start), the scan threads, the fanotify watch, and the responder the event loop feeds.
use std::sync::{Arc, atomic::Ordering};

use anyhow::{Context, Result};
use tokio::sync::mpsc;

use crate::{
    config::Config,
    control::status::ScanStatus,
    respond::Responder,
    scan::{Engines, Scanner, Verdict, watch::Watch},
};

/// Verdicts waiting for the event loop, at most (past it the scan threads wait).
const VERDICTS_QUEUED: usize = 1024;

pub struct Scanning {
    scanner: Arc<Scanner>,
    engines: Vec<String>,
    watched: Vec<String>,
    pub verdicts: mpsc::Receiver<Verdict>,
    pub responder: Responder,
}

impl Scanning {
    /// None when no engine is configured (or the configured ones are absent).
    pub fn start(config: &Config) -> Result<Option<Self>> {
        let engines = Engines::from_config(&config.scan)?;
        if !engines.any() {
            return Ok(None);
        }
        let mut names = Vec::new();
        if let Some(y) = &engines.yara {
            names.push(format!("yara-x ({} rules)", y.rules_count));
        }
        if let Some(c) = &engines.clamd {
            names.push(format!("clamav ({})", c.socket().display()));
        }
        let watch = Watch::start(&config.kernel_state).context("on-access scanning is configured ([scan]) but cannot watch file closes")?;
        let watched = watch.watched.iter().map(|p| p.display().to_string()).collect();
        let (tx, verdicts) = mpsc::channel(VERDICTS_QUEUED);
        let scanner = Scanner::start(&config.scan, engines, tx)?;
        let s = scanner.clone();
        std::thread::Builder::new().name("vtrail-watch".into()).spawn(move || watch.run(s))?;
        Ok(Some(Self { scanner, engines: names, watched, verdicts, responder: Responder::default() }))
    }

    pub fn status(&self) -> ScanStatus {
        let s = &self.scanner.stats;
        let n = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        ScanStatus {
            enabled: true,
            engines: self.engines.clone(),
            watched: self.watched.clone(),
            closes_seen: n(&s.closes_seen),
            queued: n(&s.queued),
            scanned: n(&s.scanned),
            clean: n(&s.clean),
            detected: n(&s.detected),
            not_scanned: n(&s.not_scanned),
            too_large: n(&s.too_large),
            cache_hits: n(&s.cache_hits),
            queue_full: n(&s.queue_full),
            waiting: self.scanner.waiting() as u64,
            lost: n(&s.lost),
            clamd_unavailable: n(&s.clamd_unavailable),
            watch_overflows: n(&s.watch_overflows),
            alerts: self.responder.alerts,
            responses_failed: self.responder.responses_failed,
        }
    }
}
