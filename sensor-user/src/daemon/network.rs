//! Network monitoring (issue 3, kernel and attribution half): TC classifiers on the
//! configured interfaces, quarantine of remote hosts, and attribution of files that land
//! on disk to the remote node that sent them.
//!
//! | module | what |
//! |---|---|
//! | [`tc`] | attach/detach clsact + the `tc_ingress`/`tc_egress` filters; the `BLOCKED` map |
//! | [`events`] | `NetEvent` ring-buffer records decoded (addresses, UTF-16 names) |
//! | [`attribution`] | SMB2/FTP transfers matched to port-program writes -> `received_from`/`sent_to` |
//! | [`reassembly`] | CREATE names cut by a segment end, completed from the next segment |
//! | [`peers`] | remote peers of a process, from its socket fds and `/proc/PID/net/tcp*` |
//! | [`testrun`] | `BPF_PROG_TEST_RUN` of the loaded classifier on crafted packets (tests, bench) |

use crate::correlate::attribution;
use crate::decode::{net as events, reassembly};
use crate::kernel::tc;

use std::net::IpAddr;

use anyhow::{Result, bail};
use tracing::{error, info, warn};
use serde_json::json;

use crate::{
    config::Config,
    control::{
        Request,
        status::{NetworkStatus, Status},
    },
    decode::events::SensorEvent,
    graph::{GraphStore, GraphWriter},
    host::procfs::WallClock,
    kernel::Sensor,
};

/// Who a block from `blocked_hosts` is recorded as made by.
pub const CONFIG_ACTOR: &str = "config";

/// What `Monitor::start` did.
pub enum Started {
    /// `network_monitoring = false`.
    Off,
    /// On but watching nothing, allowed by `network_degraded_ok`: why.
    Degraded(String),
    On(Box<Monitor>),
}

/// The daemon's network half: classifiers, quarantine, attribution.
pub struct Monitor {
    classifier: tc::Classifier,
    attribution: attribution::Attribution,
    reassembly: reassembly::Reassembly,
    decode_errors: u64,
}

impl Monitor {
    /// None when `network_monitoring = false`. When it is on, a sensor that watches
    /// nothing (the programs do not load, no configured interface could be attached) is
    /// an error: the quarantine would not be enforced and no upload attributed, while the
    /// rest looked healthy. `network_degraded_ok = true` runs on without it (logged).
    pub fn start(sensor: &mut Sensor, config: &Config) -> Result<Started> {
        if !config.network_monitoring {
            info!("network monitoring off (network_monitoring = false)");
            tc::remove_leftovers(config);
            return Ok(Started::Off);
        }
        let degraded = |why: String| -> Result<Started> {
            if config.network_degraded_ok {
                error!("network monitoring NOT running (network_degraded_ok = true): {why}");
                tc::remove_leftovers(config);
                Ok(Started::Degraded(why))
            } else {
                bail!("network monitoring cannot run: {why}. Fix the cause, or set network_monitoring = false (or network_degraded_ok = true) to run without it")
            }
        };
        let classifier = match tc::Classifier::start(sensor.ebpf_mut(), config) {
            Ok(c) => c,
            Err(e) => return degraded(format!("{e:#}")),
        };
        let health = classifier.health();
        if health.blind() {
            let why = if health.failures.is_empty() { "none of the configured interfaces exists".to_string() } else { health.failures.join("; ") };
            let mut classifier = classifier;
            classifier.stop(sensor.ebpf_mut());
            return degraded(format!("no interface attached ({why})"));
        }
        if !health.failures.is_empty() {
            warn!(
                "network monitoring is NOT on every interface: {}. Uploads through those are not attributed and blocks are not enforced there; see `vtrail-sensor status`",
                health.failures.join("; ")
            );
        }
        if health.interfaces.is_empty() {
            warn!("network monitoring: no interface to attach to yet (interfaces = [] and none but lo); new interfaces are picked up every 5 s");
        }
        let conf = config.smb_conf.clone().unwrap_or_else(|| "/etc/samba/smb.conf".into());
        let text = std::fs::read_to_string(&conf).unwrap_or_default();
        let roots = crate::host::smb_conf::share_roots(&text);
        info!("network monitoring on {:?}; {} SMB share roots from {}", classifier.interfaces(), roots.len(), conf.display());
        let namer = crate::correlate::naming::RemoteNamer::new(config.dns_server, &config.dns_zones);
        if !namer.enabled() {
            info!("remote hosts named by IP only: set dns_server and dns_zones to resolve them to node ids");
        }
        let attribution = attribution::Attribution::new(roots)
            .with_shares(crate::host::smb_conf::shares(&text))
            .with_naming(crate::correlate::naming::Naming::new(namer));
        Ok(Started::On(Box::new(Self { classifier, attribution, reassembly: Default::default(), decode_errors: 0 })))
    }

    /// Puts back the quarantine recorded in the database: a restart (or an upgrade) must
    /// not silently let a blocked host through again.
    pub fn restore_blocks(&mut self, store: &GraphStore) {
        let hosts = match store.blocked_hosts() {
            Ok(h) => h,
            Err(e) => {
                error!("cannot read the blocked hosts from the database, none restored: {e}");
                return;
            }
        };
        let mut restored = Vec::new();
        for host in hosts {
            match host.parse::<IpAddr>().map_err(anyhow::Error::from).and_then(|ip| self.classifier.block(ip)) {
                Ok(()) => restored.push(host),
                Err(e) => error!("cannot restore the block of {host}: {e:#}"),
            }
        }
        if !restored.is_empty() {
            info!("quarantine restored: {} blocked host(s): {}", restored.len(), restored.join(", "));
        }
    }

    /// Where background IP -> node id lookups answer (None when naming is off).
    pub fn take_naming_answers(&mut self) -> Option<tokio::sync::mpsc::UnboundedReceiver<crate::correlate::naming::Answer>> {
        self.attribution.naming.take_receiver()
    }

    /// Is `ip` being looked up for its node ids (an alert naming it waits for them)?
    pub fn naming_pending(&self, ip: std::net::IpAddr) -> bool {
        self.attribution.naming.is_pending(ip)
    }

    /// A lookup answered: the remote node gets its ids.
    pub fn on_named(&mut self, graph: &GraphWriter, answer: crate::correlate::naming::Answer) {
        let (ip, result) = answer;
        if let Err(e) = self.attribution.named(graph, ip, result) {
            error!("cannot record the node ids of {ip}: {e:#}");
        }
    }

    /// A `NetEvent` ring-buffer record: attributed once whole (see `reassembly`); returns
    /// the JSON lines of the records attributed, for followers.
    pub fn on_record(&mut self, bytes: &[u8], clock: &WallClock, graph: &GraphWriter) -> Vec<String> {
        let Some(raw) = events::parse(bytes) else {
            self.decode_errors += 1;
            return Vec::new();
        };
        let ready = self.reassembly.push(raw, std::time::Instant::now());
        self.attribute(ready, clock, graph)
    }

    /// Cut CREATEs whose continuation did not come in time, attributed as they are.
    pub fn release_held(&mut self, clock: &WallClock, graph: &GraphWriter) -> Vec<String> {
        let ready = self.reassembly.expire(std::time::Instant::now());
        self.attribute(ready, clock, graph)
    }

    /// Every cut CREATE still held, attributed as it is: the sensor is stopping.
    pub fn release_all_held(&mut self, clock: &WallClock, graph: &GraphWriter) {
        let ready = self.reassembly.release_all();
        self.attribute(ready, clock, graph);
    }

    fn attribute(&mut self, ready: Vec<sensor_common::event::NetEvent>, clock: &WallClock, graph: &GraphWriter) -> Vec<String> {
        ready
            .iter()
            .filter_map(|raw| {
                let ev = events::decode(raw, clock);
                if let Err(e) = self.attribution.on_net(graph, &ev) {
                    error!("cannot record network event {:?} {:?}: {e:#}", ev.proto, ev.verb);
                }
                serde_json::to_string(&ev).ok()
            })
            .collect()
    }

    /// After `Ingest` recorded a process event: file events and connections.
    pub fn on_event(&mut self, ev: &SensorEvent, graph: &GraphWriter) {
        if ev.kind == sensor_common::event::EventKind::Connection {
            if let Err(e) = self.attribution.on_connection(graph, ev) {
                error!("cannot record connection {:?}: {e:#}", ev.connection);
            }
            return;
        }
        let Some(f) = &ev.file else { return };
        let file = graph.file_id(&f.key());
        if let Err(e) = self.attribution.on_file(graph, ev, &file) {
            error!("cannot attribute {:?}: {e:#}", ev.path);
        }
    }

    pub fn tick(&mut self, sensor: &mut Sensor) {
        self.classifier.rescan(sensor.ebpf_mut());
    }

    pub fn stop(&mut self, sensor: &mut Sensor) {
        self.classifier.stop(sensor.ebpf_mut());
    }

    /// Block/unblock requests; None for the others.
    pub fn handle(&mut self, request: &Request, graph: &GraphWriter) -> Option<Vec<u8>> {
        let (target, by, block) = match request {
            Request::Block { target, by } => (target, by, true),
            Request::Unblock { target, by } => (target, by, false),
            _ => return None,
        };
        let result: Result<Vec<u8>> = (|| {
            let ip = parse_target(target)?;
            let node = self.set_block(graph, ip, block, by)?;
            Ok(serde_json::to_vec(&json!({"ok": true, "ip": ip.to_string(), "node": node, "blocked": block}))?)
        })();
        Some(result.unwrap_or_else(|e| serde_json::to_vec(&json!({"error": format!("{e:#}")})).unwrap_or_default()))
    }

    /// Quarantines the sender of a flagged file (`[response] block_sender`); `by` names
    /// the detection.
    pub fn block_sender(&mut self, graph: &GraphWriter, ip: IpAddr, by: &str) -> Result<String> {
        self.set_block(graph, ip, true, by)
    }

    /// Blocks or lifts `ip` in the kernel, the graph (a quarantine edge) and the database.
    fn set_block(&mut self, graph: &GraphWriter, ip: IpAddr, block: bool, by: &str) -> Result<String> {
        if block {
            self.classifier.block(ip)?;
        } else if !self.classifier.unblock(ip)? {
            warn!("unblock {ip}: it was not blocked");
        }
        let node = self.attribution.quarantine_edge(graph, ip, block, by)?;
        graph.store().set_blocked(&ip.to_string(), block, by, crate::host::procfs::now_wall_ns())?;
        info!("{} {ip} (by {by})", if block { "blocked" } else { "unblocked" });
        Ok(node)
    }

    /// The quarantine the configuration asks for (`blocked_hosts`), at start and at each
    /// reload: its hosts blocked, hosts it blocked before and no longer lists lifted.
    /// Blocks an operator made (`vtrail-sensor block`, recorded with their name) are not
    /// touched, nor are hosts an operator blocked too. Returns the problems (for the caller
    /// to log), if any.
    pub fn sync_configured_blocks(&mut self, graph: &GraphWriter, configured: &[IpAddr]) -> Vec<String> {
        let mut problems = Vec::new();
        let configured: Vec<IpAddr> = configured.iter().map(|ip| ip.to_canonical()).collect();
        let recorded = graph.store().blocked_hosts().unwrap_or_else(|e| {
            problems.push(format!("cannot read the blocked hosts: {e}"));
            Vec::new()
        });
        for host in recorded {
            let Ok(ip) = host.parse::<IpAddr>() else { continue };
            if configured.contains(&ip) {
                continue;
            }
            match graph.store().blocked_by(&host) {
                Ok(Some(by)) if by == CONFIG_ACTOR => {
                    if let Err(e) = self.set_block(graph, ip, false, CONFIG_ACTOR) {
                        problems.push(format!("cannot lift the configured block of {ip}: {e:#}"));
                    }
                }
                Ok(_) => {}
                Err(e) => problems.push(format!("{e}")),
            }
        }
        for ip in configured {
            let already = graph.store().blocked_by(&ip.to_string()).ok().flatten().is_some() && self.classifier.is_blocked(ip);
            if !already && let Err(e) = self.set_block(graph, ip, true, CONFIG_ACTOR) {
                problems.push(format!("cannot block {ip} (blocked_hosts): {e:#}"));
            }
        }
        problems
    }

    /// The network and naming parts of a status answer.
    pub fn fill_status(&self, status: &mut Status) {
        status.network = NetworkStatus {
            enabled: true,
            failure: None,
            blocked_hosts: std::mem::take(&mut status.network.blocked_hosts),
            interfaces: self.classifier.interfaces(),
            attach_failures: self.classifier.failures.clone(),
            kernel_counters: self.classifier.counters(),
            attribution: Some(self.attribution.stats.clone()),
            reassembly: Some(self.reassembly.stats),
            decode_errors: self.decode_errors,
        };
        status.naming = self.attribution.naming.stats.clone();
    }
}

/// `vtrail-sensor block <ip|node-id>`: an address, or a `remote:<ip>` node id.
pub fn parse_target(target: &str) -> Result<IpAddr> {
    let t = target.trim();
    let t = t.strip_prefix("remote:").unwrap_or(t);
    let t = t.trim_start_matches('[').trim_end_matches(']');
    match t.parse::<IpAddr>() {
        Ok(ip) => Ok(ip.to_canonical()),
        Err(_) => bail!(
            "{target}: not an IP address or a remote:<ip> node id (host node ids are resolved to addresses once DNS naming lands; block an address for now)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(parse_target("10.1.2.3").unwrap().to_string(), "10.1.2.3");
        assert_eq!(parse_target("remote:fd00::2").unwrap().to_string(), "fd00::2");
        assert_eq!(parse_target("::ffff:10.0.0.1").unwrap().to_string(), "10.0.0.1");
        assert!(parse_target("host:abc").is_err());
    }
}
