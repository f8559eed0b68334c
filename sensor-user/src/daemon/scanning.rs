//! Wires on-access scanning into the daemon: the engines (a bad YARA rule stops the
//! start), the scan threads, the fanotify watch, and the responder the event loop feeds.
use std::sync::{Arc, atomic::Ordering};

use anyhow::{Context, Result};
use tokio::sync::mpsc;

use crate::{
    config::Config,
    control::status::ScanStatus,
    graph::store::GraphStore,
    respond::Responder,
    scan::{engines::yara::{RuleSource, Yara}, Engines, Scanner, Verdict, config::{OnTimeout, ResponseConfig}, hold::{Hold, HoldDecision}, marks::{CloseWatch, WatchRequest}, watch::Watch},
};

/// The YARA rules `apply-rules` stored, as compiler sources.
fn applied_yara(store: &GraphStore) -> Result<Vec<RuleSource>> {
    let rules = store.yara_rules().context("cannot read the applied YARA rules from the database")?;
    Ok(rules.into_iter().map(|a| RuleSource { origin: format!("rule applied from {} by {}", a.source, a.by), text: a.rule }).collect())
}

/// Verdicts waiting for the event loop, at most (past it the scan threads wait).
const VERDICTS_QUEUED: usize = 1024;

pub struct Scanning {
    scanner: Arc<Scanner>,
    engines: Vec<String>,
    closes: CloseWatch,
    hold: Arc<Hold>,
    pub responder: Responder,
}

/// What the scan threads send the event loop: verdicts, and the execs the hold decided.
pub struct Receivers {
    pub verdicts: mpsc::Receiver<Verdict>,
    pub held: mpsc::Receiver<HoldDecision>,
}

impl Scanning {
    /// The engines compiled: before anything is loaded into the kernel, so a bad rule stops
    /// the start with nothing to undo.
    /// The YARA rules `apply-rules` stored are compiled with the directory's.
    pub fn engines(config: &Config, store: &GraphStore) -> Result<Engines> {
        Ok(Engines::from_config(&config.scan, &applied_yara(store)?)?)
    }

    /// Compiles the rules again with every applied one (`apply-rules` just stored one) and
    /// swaps them in. Returns the rule count now in force. On an error the rules in force
    /// stay.
    pub fn reload_yara(&mut self, config: &Config, store: &GraphStore) -> Result<usize> {
        let yara = Yara::compile(config.scan.yara_rules.as_deref(), &applied_yara(store)?)?
            .context("internal: no YARA source after a rule was applied")?;
        let count = yara.rules_count;
        self.scanner.replace_yara(yara);
        self.engines.retain(|e| !e.starts_with("yara-x"));
        self.engines.insert(0, format!("yara-x ({count} rules)"));
        Ok(count)
    }

    /// None when no engine is configured (or the configured ones are absent). The kernel
    /// maps must be pinned by now (the watch and the hold read them).
    pub fn start(config: &Config, engines: Engines) -> Result<Option<(Self, Receivers)>> {
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
        let (tx, verdicts) = mpsc::channel(VERDICTS_QUEUED);
        let scanner = Scanner::start(&config.scan, engines, tx)?;
        let (watch, closes) = Watch::start(&config.kernel_state, scanner.clone()).context("on-access scanning is configured ([scan]) but cannot watch file closes")?;
        let hold = Hold::start(&config.kernel_state)?;
        let (decided, held) = mpsc::channel(VERDICTS_QUEUED);
        let (s, h) = (scanner.clone(), hold.clone());
        std::thread::Builder::new().name("vtrail-hold-events".into()).spawn(move || h.run(s, decided))?;
        let (s, h) = (scanner.clone(), hold.clone());
        std::thread::Builder::new().name("vtrail-watch".into()).spawn(move || watch.run(s, h))?;
        let scanning = Self { scanner, engines: names, closes, hold, responder: Responder::default() };
        scanning.configure(&config.response);
        Ok(Some((scanning, Receivers { verdicts, held })))
    }

    /// The event loop's way to have an untrusted file's closes reported (and the file
    /// scanned as it is now).
    pub fn closes(&self) -> &CloseWatch {
        &self.closes
    }

    /// A file marked untrusted by hand (`taint`): scanned now (no close may ever come) and
    /// at its later closes.
    pub fn scan_path(&self, key: sensor_common::maps::InodeKey, generation: u32, path: &std::path::Path) {
        let path = Some(crate::host::procfs::text(path));
        self.closes.request(WatchRequest { key, generation, pid: std::process::id(), path, scan: true });
    }

    /// Forgets the verdict of a file trusted by hand (`trust --force`): its next exec is
    /// not refused on the old verdict.
    pub fn forget(&self, key: &sensor_common::maps::InodeKey) {
        self.scanner.forget(key);
    }

    /// The live `[response]` settings the scan threads read (the hold's).
    pub fn configure(&self, response: &ResponseConfig) {
        self.hold.configure(response.hold_until_scanned, response.hold_timeout_ms, response.hold_on_timeout == OnTimeout::Deny);
    }

    pub fn status(&self) -> ScanStatus {
        let s = &self.scanner.stats;
        let n = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        ScanStatus {
            enabled: true,
            engines: self.engines.clone(),
            watched: n(&s.watched),
            watch_gone: n(&s.watch_gone),
            watch_mark_failures: n(&s.watch_mark_failures),
            watch_queue_full: n(&s.watch_queue_full),
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
            gone: n(&s.gone),
            clamd_unavailable: n(&s.clamd_unavailable),
            watch_overflows: n(&s.watch_overflows),
            alerts: self.responder.alerts,
            responses_failed: self.responder.responses_failed,
            repeated_detections: self.responder.repeated,
            hold_enabled: self.hold.enabled.load(Ordering::Relaxed),
            held_execs: n(&self.hold.stats.held),
            held_allowed_clean: n(&self.hold.stats.allowed_clean),
            held_denied_malicious: n(&self.hold.stats.denied_malicious),
            held_timed_out: n(&self.hold.stats.timed_out),
            held_over_limit: n(&self.hold.stats.too_many),
            hold_mark_failures: n(&self.hold.stats.mark_failures),
            // (Filled by the daemon, which runs the webhook.)
            ..ScanStatus::default()
        }
    }
}
