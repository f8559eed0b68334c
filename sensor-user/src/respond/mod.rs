//! What happens when a scan flags a file: the file is marked malicious with a `detected`
//! edge, its origin is looked up (its `received_from` edge), the `[response]` policy acts
//! (the sender quarantined), and one alert document is stored, logged and sent to
//! followers. A verdict that reaches the event loop before the transfer that brought the
//! file has been ingested waits for it, a few seconds at most.
pub mod apply;
pub mod known;
pub mod protect;
pub mod webhook;

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use anyhow::Result;
use std::os::unix::fs::MetadataExt;

use sensor_common::{
    graph::{
        DetectedAttrs, Detection, EdgeData, FileScan, Node, NodeData, PreventedAction, PreventedAttrs, ScanVerdict,
        alert::{ALERT_SCHEMA, Alert, AlertFile, Origin, ResponseTaken},
    },
    maps::{GENERATION_ANY, INODE_FLAGGED, INODE_UNTRUSTED, InodeKey},
};
use tracing::{error, warn};

use crate::{
    daemon::network::Monitor,
    graph::GraphWriter,
    host::procfs,
    kernel::sensor::Sensor,
    scan::{Outcome, Verdict},
    scan::config::ResponseConfig,
};

/// How long a detection waits for the transfer that brought its file to be recorded.
pub const ORIGIN_WAIT: Duration = Duration::from_secs(15);
/// How long an alert waits for the sender's node ids when their lookup is under way (the
/// block does not wait; a lookup fails well before this).
pub const NAMING_WAIT: Duration = Duration::from_secs(5);

/// Detections whose origin is not in the graph yet.
#[derive(Default)]
pub struct Responder {
    waiting: Vec<(Instant, Alert)>,
    /// Alerts answered (the sender blocked) whose sender's node ids are being looked up.
    naming: Vec<(Instant, Alert)>,
    pub alerts: u64,
    pub responses_failed: u64,
    /// Detections of content already flagged (no second alert).
    pub repeated: u64,
}

impl Responder {
    /// Records a verdict; a detection is answered now if its origin is known, else once it
    /// is (or `ORIGIN_WAIT` has passed).
    pub fn on_verdict(
        &mut self,
        verdict: Verdict,
        graph: &GraphWriter,
        net: Option<&mut Monitor>,
        sensor: &mut Sensor,
        policy: &ResponseConfig,
    ) -> Result<Option<Alert>> {
        let Outcome::Detected(detections) = verdict.outcome.clone() else {
            record_scan(graph, &verdict)?;
            return Ok(None);
        };
        let sha256 = verdict.sha256.clone().unwrap_or_default();
        // The same content flagged again (two closes scanned at once, a rescan): one alert.
        if already_flagged(graph, &verdict.key, &sha256) {
            self.repeated += 1;
            return Ok(None);
        }
        let host = graph.store().host().ok().flatten().unwrap_or_else(crate::daemon::host_info);
        let mut alert = Alert {
            schema: ALERT_SCHEMA.into(),
            seq: 0,
            ts_ns: verdict.ts_ns,
            scanned_ns: verdict.ts_ns,
            host: host.id,
            hostname: host.hostname,
            file: AlertFile { node: graph.file_id(&verdict.key), path: verdict.path.clone(), dev: verdict.key.dev, ino: verdict.key.ino, size: verdict.size, sha256: sha256.clone() },
            detections: detections.clone(),
            origin: None,
            responses: Vec::new(),
            known: None,
        };
        // What stops the file from running comes first, and is done whatever the database
        // says; only the sender's block waits for the origin.
        if policy.deny_exec {
            let taken = match sensor.add_inode_flags(verdict.key, INODE_UNTRUSTED | INODE_FLAGGED, GENERATION_ANY) {
                Ok(()) => ResponseTaken { action: "deny_exec".into(), target: target_of(&alert), ok: true, detail: "later execs are killed in the kernel before they run".into() },
                Err(e) => ResponseTaken { action: "deny_exec".into(), target: target_of(&alert), ok: false, detail: format!("{e:#}") },
            };
            self.count(&taken);
            alert.responses.push(taken);
        }
        if policy.kill {
            for taken in kill_running(graph, &verdict, &alert.file.node) {
                self.count(&taken);
                alert.responses.push(taken);
            }
        }
        if let Err(e) = mark_malicious(graph, &verdict, &sha256, &detections) {
            let taken = ResponseTaken { action: "record".into(), target: alert.file.node.clone(), ok: false, detail: format!("the detection is not in the graph: {e:#}") };
            self.count(&taken);
            alert.responses.push(taken);
        }
        // A file a port program wrote (or one whose write is not ingested yet) may be an
        // arrival whose transfer is not recorded yet: that waits. A tainted process's
        // own file is not an arrival: it is answered now.
        let marked = graph.store().untrusted_file(&verdict.key)?;
        let may_arrive = marked.is_none_or(|t| t.by_port_program);
        match origin(graph, &alert.file.node)? {
            None if may_arrive => {
                self.waiting.push((Instant::now(), alert));
                Ok(None)
            }
            found => self.respond(alert, found, graph, net, policy),
        }
    }

    /// Is a detection waiting for its origin, or an alert for its sender's name?
    pub fn has_waiting(&self) -> bool {
        !self.waiting.is_empty() || !self.naming.is_empty()
    }

    /// Answers the detections whose origin has been recorded since, or that waited long
    /// enough.
    pub fn poll(&mut self, graph: &GraphWriter, mut net: Option<&mut Monitor>, policy: &ResponseConfig) -> Vec<Alert> {
        let mut done = Vec::new();
        let waiting = std::mem::take(&mut self.waiting);
        for (since, alert) in waiting {
            let found = origin(graph, &alert.file.node).unwrap_or_else(|e| {
                error!("detection of {}: cannot read its origin: {e:#}", alert.file.node);
                None
            });
            // (Still worth waiting for? The write may not have been ingested when the
            // verdict came; once it is, a tainted process's own file is answered at once.)
            let key = InodeKey::new(alert.file.dev, alert.file.ino);
            let may_arrive = graph.store().untrusted_file(&key).ok().flatten().is_none_or(|t| t.by_port_program);
            if found.is_none() && may_arrive && since.elapsed() < ORIGIN_WAIT {
                self.waiting.push((since, alert));
                continue;
            }
            match self.respond(alert, found, graph, net.as_deref_mut(), policy) {
                Ok(Some(a)) => done.push(a),
                Ok(None) => {}
                Err(e) => error!("cannot record an alert: {e:#}"),
            }
        }
        let naming = std::mem::take(&mut self.naming);
        for (since, mut alert) in naming {
            let pending = alert.origin.as_ref().and_then(|o| o.ip.parse().ok()).is_some_and(|ip| net_pending(net.as_deref(), ip));
            if pending && since.elapsed() < NAMING_WAIT {
                self.naming.push((since, alert));
                continue;
            }
            if let Some(o) = alert.origin.as_mut() {
                o.node_ids = remote_ids(graph, &o.remote);
            }
            match self.raise(alert, graph) {
                Ok(a) => done.push(a),
                Err(e) => error!("cannot record an alert: {e:#}"),
            }
        }
        done
    }

    /// The sender blocked (by policy); the alert raised now, or once the sender is named.
    fn respond(&mut self, mut alert: Alert, origin: Option<Origin>, graph: &GraphWriter, mut net: Option<&mut Monitor>, policy: &ResponseConfig) -> Result<Option<Alert>> {
        if let Some(o) = &origin
            && policy.block_sender
        {
            let by = format!("detection: {} in {}", names(&alert), alert.file.path.as_deref().unwrap_or(&alert.file.node));
            let taken = match (o.ip.parse::<IpAddr>(), net.as_deref_mut()) {
                (Ok(ip), Some(m)) => match m.block_sender(graph, ip, &by) {
                    Ok(_) => ResponseTaken { action: "block_sender".into(), target: o.ip.clone(), ok: true, detail: by },
                    Err(e) => ResponseTaken { action: "block_sender".into(), target: o.ip.clone(), ok: false, detail: format!("{e:#}") },
                },
                (Err(_), _) => ResponseTaken { action: "block_sender".into(), target: o.ip.clone(), ok: false, detail: "not an IP address".into() },
                (_, None) => ResponseTaken {
                    action: "block_sender".into(),
                    target: o.ip.clone(),
                    ok: false,
                    detail: "network monitoring is off: the sender cannot be blocked".into(),
                },
            };
            self.count(&taken);
            alert.responses.push(taken);
        }
        // The sender's node ids, if their lookup is still under way, are worth a short wait:
        // an alert names the host by the id that outlives its address.
        let naming_pending = origin.as_ref().is_some_and(|o| o.node_ids.is_empty())
            && origin.as_ref().and_then(|o| o.ip.parse().ok()).is_some_and(|ip| net_pending(net.as_deref(), ip));
        alert.origin = origin;
        if naming_pending {
            self.naming.push((Instant::now(), alert));
            return Ok(None);
        }
        self.raise(alert, graph).map(Some)
    }

    /// Stores, logs and returns the alert, with what the graph knows of the file.
    fn raise(&mut self, mut alert: Alert, graph: &GraphWriter) -> Result<Alert> {
        alert.known = match known::known(graph.store(), &alert.file.node) {
            Ok(k) => Some(k),
            Err(e) => {
                warn!("alert on {}: what ran it and where it went cannot be read: {e:#}", target_of(&alert));
                None
            }
        };
        // Stored in the order raised: `alerts --follow` asks for what came after.
        alert.ts_ns = crate::host::procfs::now_wall_ns().max(alert.scanned_ns);
        graph.store().add_alert(&mut alert)?;
        self.alerts += 1;
        // One line per detection, the whole document: the journal is the manager's
        // channel of last resort.
        warn!(target: "vtrail::alert", "{}", serde_json::to_string(&alert)?);
        Ok(alert)
    }
}

impl Responder {
    fn count(&mut self, taken: &ResponseTaken) {
        if !taken.ok {
            self.responses_failed += 1;
            warn!("response {} on {} failed: {}", taken.action, taken.target, taken.detail);
        }
    }
}

fn target_of(alert: &Alert) -> String {
    alert.file.path.clone().unwrap_or_else(|| alert.file.node.clone())
}

/// Kills the processes whose image is the flagged file (by inode, whatever its name), each
/// recorded as a `prevented` edge from the file.
fn kill_running(graph: &GraphWriter, verdict: &Verdict, file: &str) -> Vec<ResponseTaken> {
    let me = std::process::id();
    let mut out = Vec::new();
    for pid in procfs::pids() {
        if pid == me || pid == 1 {
            continue;
        }
        let Ok(meta) = std::fs::metadata(format!("/proc/{pid}/exe")) else { continue };
        if InodeKey::new(procfs::kernel_dev(meta.dev()), meta.ino()) != verdict.key {
            continue;
        }
        let comm = procfs::comm(pid).unwrap_or_default();
        let target = format!("pid {pid} ({comm})");
        let start = procfs::start_ticks(pid);
        if unsafe { libc::kill(pid as i32, libc::SIGKILL) } != 0 {
            out.push(ResponseTaken { action: "kill".into(), target, ok: false, detail: std::io::Error::last_os_error().to_string() });
            continue;
        }
        if let Some(start) = start {
            let proc = graph.process_id(pid, start);
            let attrs = PreventedAttrs { action: PreventedAction::Kill, path: verdict.path.clone(), by: "kill".into() };
            if let Err(e) = graph.edge(verdict.ts_ns, file, &proc, EdgeData::Prevented(attrs)) {
                error!("cannot record the kill of {target}: {e:#}");
            }
        }
        out.push(ResponseTaken { action: "kill".into(), target, ok: true, detail: "SIGKILL".into() });
    }
    out
}

/// An exec `hold_until_scanned` refused: a `prevented` edge from the file to the process.
pub fn record_refused_exec(graph: &GraphWriter, decision: &crate::scan::hold::HoldDecision) -> Result<()> {
    let now = procfs::now_wall_ns();
    let file = graph.file(now, &decision.key, decision.path.as_deref(), true, false)?;
    let Some(start) = decision.start_ticks else { return Ok(()) };
    let proc = graph.process_id(decision.pid, start);
    let attrs = PreventedAttrs { action: PreventedAction::Exec, path: decision.path.clone(), by: format!("hold_until_scanned: {}", decision.why) };
    graph.edge(now, &file, &proc, EdgeData::Prevented(attrs))?;
    Ok(())
}

fn names(alert: &Alert) -> String {
    alert.detections.iter().map(|d| format!("{} {}", d.engine, d.names.join(","))).collect::<Vec<_>>().join("; ")
}

/// The file node marked malicious (with the scanned content's hash), and a `detected` edge
/// from this host to it. Returns the node id.
fn mark_malicious(graph: &GraphWriter, verdict: &Verdict, sha256: &str, detections: &[Detection]) -> Result<String> {
    let id = graph.scanned_file(verdict.ts_ns, &verdict.key, verdict.path.as_deref(), file_scan(verdict, ScanVerdict::Malicious, None), true)?;
    let attrs = DetectedAttrs { path: verdict.path.clone(), sha256: sha256.to_owned(), size: verdict.size, detections: detections.to_vec() };
    graph.edge(verdict.ts_ns, &graph.host_node(), &id, EdgeData::Detected(attrs))?;
    Ok(id)
}

/// Is the file already flagged for this very content?
fn already_flagged(graph: &GraphWriter, key: &InodeKey, sha256: &str) -> bool {
    match graph.store().node(&graph.file_id(key)) {
        Ok(Some(node)) => matches!(node.data, NodeData::File { malicious: true, scan: Some(FileScan { verdict: ScanVerdict::Malicious, sha256: Some(ref h), .. }), .. } if h == sha256),
        _ => false,
    }
}

fn file_scan(verdict: &Verdict, result: ScanVerdict, reason: Option<String>) -> FileScan {
    FileScan { verdict: result, reason, engines: verdict.engines.clone(), sha256: verdict.sha256.clone(), size: verdict.size, ts_ns: verdict.ts_ns }
}

/// A clean or not-scanned verdict, kept on the file node (the reason says why not).
fn record_scan(graph: &GraphWriter, verdict: &Verdict) -> Result<()> {
    let (result, reason) = match &verdict.outcome {
        Outcome::Clean => (ScanVerdict::Clean, None),
        Outcome::NotScanned(why) => (ScanVerdict::NotScanned, Some(why.clone())),
        Outcome::Detected(_) => return Ok(()),
    };
    graph.scanned_file(verdict.ts_ns, &verdict.key, verdict.path.as_deref(), file_scan(verdict, result, reason), false)?;
    Ok(())
}

/// Where the file came from, by its latest `received_from` edge.
fn origin(graph: &GraphWriter, file: &str) -> Result<Option<Origin>> {
    let Some(edge) = graph.store().arrival(file)? else { return Ok(None) };
    let EdgeData::ReceivedFrom(t) = &edge.data else { return Ok(None) };
    let Some(ip) = t.ip.clone().or_else(|| edge.src.strip_prefix("remote:").map(str::to_owned)) else {
        warn!("the arrival of {file} names no address");
        return Ok(None);
    };
    let node_ids = remote_ids(graph, &edge.src);
    let protocol = t.protocol.map(|p| p.name().to_owned()).unwrap_or_default();
    Ok(Some(Origin { remote: edge.src.clone(), ip, node_ids, protocol, name: t.name.clone(), inferred: t.inferred, ts_ns: edge.ts_ns }))
}

/// The node ids the graph holds for a `remote:` node (none if it cannot be read).
fn remote_ids(graph: &GraphWriter, remote: &str) -> Vec<String> {
    match graph.store().node(remote) {
        Ok(Some(Node { data: NodeData::Remote { node_ids, .. }, .. })) => node_ids,
        _ => Vec::new(),
    }
}

fn net_pending(net: Option<&Monitor>, ip: IpAddr) -> bool {
    net.is_some_and(|m| m.naming_pending(ip))
}
