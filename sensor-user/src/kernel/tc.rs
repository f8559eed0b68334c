//! Attaches the TC classifiers (clsact qdisc + netlink filters, which every kernel since
//! 4.5 has; TCX would leave nothing to clean up but needs 6.6) and detaches them on exit,
//! deleting the clsact qdisc too when this process added it. Filters left behind by a
//! sensor that was killed are removed at the next start (they are ours: found by program
//! name), and a clsact qdisc it added is recognised as ours by the record it left in the
//! runtime directory (`QDISC_RECORD`), so the next clean stop deletes it too.
use std::{collections::BTreeMap, net::IpAddr, process::Command};

use anyhow::{Context, Result};
use aya::{
    Ebpf,
    maps::{HashMap, MapData, PerCpuArray},
    programs::{
        SchedClassifier, TcAttachType,
        tc::{self, NlOptions, SchedClassifierLinkId, TcAttachOptions},
    },
};
use tracing::{info, warn};
use sensor_common::maps::{BlockedKey, names, net_counter};

use crate::config::Config;

pub const INGRESS: &str = "tc_ingress";
pub const EGRESS: &str = "tc_egress";
pub const SMB_STEP: &str = "tc_smb_step";
pub const FTP_BLOCKED: &str = "tc_ftp_blocked";

/// Loads the programs the classifiers tail-call and installs them in `TC_JUMP`: the SMB
/// walk's step (slot 0; without it SMB packets pass unparsed, counted `no_step_program`)
/// and the judge of a quarantined sender's FTP commands (slot 1; without it they are
/// dropped, counted likewise).
pub fn load_step_program(ebpf: &mut Ebpf) -> Result<()> {
    for (slot, name) in [(0u32, SMB_STEP), (1, FTP_BLOCKED)] {
        let p: &mut SchedClassifier = ebpf.program_mut(name).with_context(|| format!("program {name} missing"))?.try_into()?;
        p.load().with_context(|| format!("cannot load TC program {name} (the verifier refused it?)"))?;
        let fd = p.fd()?.try_clone()?;
        let mut jump = aya::maps::ProgramArray::try_from(ebpf.map_mut(names::TC_JUMP).context("TC_JUMP map")?)?;
        jump.set(slot, &fd, 0)?;
    }
    Ok(())
}

/// Interfaces on which a vtrail sensor added the clsact qdisc, one name per line, next to
/// the control socket (a runtime directory: qdiscs do not survive a reboot either).
pub const QDISC_RECORD: &str = "tc-qdiscs-added";

struct Attached {
    iface: String,
    added_qdisc: bool,
    ingress: Option<SchedClassifierLinkId>,
    egress: Option<SchedClassifierLinkId>,
}

pub struct Classifier {
    attached: Vec<Attached>,
    blocked: HashMap<MapData, BlockedKey, u32>,
    counters: PerCpuArray<MapData, u64>,
    /// Interfaces from the config (empty = every non-loopback one, rescanned).
    wanted: Vec<String>,
    include_loopback: bool,
    /// Where `QDISC_RECORD` is kept.
    record: std::path::PathBuf,
    /// clsact qdiscs this sensor added where no filter could be attached: deleted at stop.
    orphan_qdiscs: Vec<String>,
    pub failures: Vec<String>,
}

/// Interfaces in /sys/class/net, loopback only if asked.
pub fn all_interfaces(include_loopback: bool) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.retain(|i| include_loopback || i != "lo");
    v.sort();
    v
}

impl Classifier {
    /// Loads both programs and attaches them to the configured interfaces. Failing
    /// interfaces are logged and listed in `status`, not fatal.
    pub fn start(ebpf: &mut Ebpf, config: &Config) -> Result<Self> {
        load_step_program(ebpf)?;
        for name in [INGRESS, EGRESS] {
            let p: &mut SchedClassifier = ebpf.program_mut(name).with_context(|| format!("program {name} missing"))?.try_into()?;
            p.load().with_context(|| format!("cannot load TC program {name} (the verifier refused it?)"))?;
        }
        let blocked = HashMap::try_from(ebpf.take_map(names::BLOCKED).context("BLOCKED map")?)?;
        let counters = PerCpuArray::try_from(ebpf.take_map(names::NET_COUNTERS).context("NET_COUNTERS map")?)?;
        let mut c = Self {
            attached: Vec::new(),
            blocked,
            counters,
            wanted: config.interfaces.clone(),
            include_loopback: config.include_loopback,
            record: qdisc_record(config),
            orphan_qdiscs: Vec::new(),
            failures: Vec::new(),
        };
        let mut ifaces = if c.wanted.is_empty() { all_interfaces(c.include_loopback) } else { c.wanted.clone() };
        if c.include_loopback && !ifaces.iter().any(|i| i == "lo") {
            ifaces.push("lo".into());
        }
        for iface in ifaces {
            c.attach(ebpf, &iface);
        }
        Ok(c)
    }

    fn attach(&mut self, ebpf: &mut Ebpf, iface: &str) {
        if self.attached.iter().any(|a| a.iface == iface) {
            return;
        }
        if !std::path::Path::new("/sys/class/net").join(iface).exists() {
            let msg = format!("{iface}: no such network interface (check `interfaces` in the config; `ip link` lists them)");
            warn!("{msg}");
            self.failures.push(msg);
            return;
        }
        // The classifiers read Ethernet frames (loopback has an Ethernet header too): on a
        // tun, WireGuard or GRE device the IP header is where they expect the MAC header,
        // so nothing would be read and nothing blocked there.
        let kind = std::fs::read_to_string(format!("/sys/class/net/{iface}/type")).ok().and_then(|t| t.trim().parse::<u32>().ok());
        if !matches!(kind, Some(ARPHRD_ETHER) | Some(ARPHRD_LOOPBACK)) {
            let msg = format!(
                "{iface}: not an Ethernet interface (type {}): not attached, its traffic is not watched and blocks are not enforced on it",
                kind.map_or("unknown".into(), |k| k.to_string())
            );
            warn!("{msg}");
            self.failures.push(msg);
            return;
        }
        let added_qdisc = match tc::qdisc_add_clsact(iface) {
            Ok(()) => {
                self.remember_qdisc(iface, true);
                true
            }
            // The kernel answers EEXIST ("Exclusivity flag on, cannot modify") when a
            // clsact qdisc is there: an admin's, or one a killed sensor added.
            Err(tc::TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::EEXIST) => self.qdisc_was_ours(iface),
            Err(tc::TcError::AlreadyAttached) => self.qdisc_was_ours(iface),
            Err(e) => {
                let msg = format!("{iface}: cannot add clsact qdisc: {e} (kernel without sch_ingress/clsact? `modprobe sch_ingress`)");
                warn!("{msg}");
                self.failures.push(msg);
                return;
            }
        };
        let mut a = Attached { iface: iface.into(), added_qdisc, ingress: None, egress: None };
        for (name, kind) in [(INGRESS, TcAttachType::Ingress), (EGRESS, TcAttachType::Egress)] {
            // A previous sensor killed before detaching left its filter: remove it first.
            let _ = tc::qdisc_detach_program(iface, kind, name);
            let Some(p) = ebpf.program_mut(name) else { continue };
            let Ok(p): Result<&mut SchedClassifier, _> = p.try_into() else { continue };
            match p.attach_with_options(iface, kind, TcAttachOptions::Netlink(NlOptions::default())) {
                Ok(id) => {
                    if kind == TcAttachType::Ingress { a.ingress = Some(id) } else { a.egress = Some(id) }
                }
                Err(e) => {
                    let msg = format!("{iface}: cannot attach {name}: {e}");
                    warn!("{msg}");
                    self.failures.push(msg);
                }
            }
        }
        if a.ingress.is_none() && a.egress.is_none() {
            if added_qdisc {
                self.orphan_qdiscs.push(a.iface);
            }
            return;
        }
        info!("TC classifiers attached to {iface} (clsact {})", if added_qdisc { "added" } else { "already there" });
        self.attached.push(a);
    }

    /// Was the clsact qdisc already on `iface` added by a vtrail sensor (one that was
    /// killed before it could delete it)? Then it is ours to delete at stop.
    fn qdisc_was_ours(&self, iface: &str) -> bool {
        let ours = std::fs::read_to_string(&self.record).is_ok_and(|t| t.lines().any(|l| l == iface));
        if ours {
            info!("{iface}: the clsact qdisc left by an earlier vtrail sensor is reused");
        }
        ours
    }

    fn remember_qdisc(&self, iface: &str, added: bool) {
        remember_qdisc(&self.record, iface, added);
    }

    /// The interfaces asked for or found, and what failed: whether traffic is watched.
    pub fn health(&self) -> Health {
        Health { interfaces: self.interfaces(), failures: self.failures.clone(), explicit: !self.wanted.is_empty() }
    }

    /// With `interfaces = []`, attach to interfaces that appeared since start-up.
    pub fn rescan(&mut self, ebpf: &mut Ebpf) {
        if !self.wanted.is_empty() {
            return;
        }
        for iface in all_interfaces(self.include_loopback) {
            if !self.attached.iter().any(|a| a.iface == iface) && !self.failures.iter().any(|f| f.starts_with(&format!("{iface}:"))) {
                self.attach(ebpf, &iface);
            }
        }
        // Interfaces that went away (a deleted veth) take their filters with them.
        self.attached.retain(|a| std::path::Path::new("/sys/class/net").join(&a.iface).exists());
    }

    pub fn interfaces(&self) -> Vec<String> {
        self.attached.iter().map(|a| a.iface.clone()).collect()
    }

    /// Detaches every filter and deletes the clsact qdiscs this sensor added.
    pub fn stop(&mut self, ebpf: &mut Ebpf) {
        for iface in std::mem::take(&mut self.orphan_qdiscs) {
            delete_qdisc(&iface, &self.record);
        }
        for a in std::mem::take(&mut self.attached) {
            for (name, id) in [(INGRESS, a.ingress), (EGRESS, a.egress)] {
                let Some(id) = id else { continue };
                if let Some(p) = ebpf.program_mut(name)
                    && let Ok(p) = <&mut SchedClassifier>::try_from(p)
                    && let Err(e) = p.detach(id)
                {
                    warn!("{}: cannot detach {name}: {e}", a.iface);
                }
            }
            if a.added_qdisc && std::path::Path::new("/sys/class/net").join(&a.iface).exists() {
                delete_qdisc(&a.iface, &self.record);
            }
            info!("TC classifiers detached from {}", a.iface);
        }
    }

    pub fn block(&mut self, ip: IpAddr) -> Result<()> {
        self.blocked.insert(BlockedKey { addr: key_bytes(ip) }, 1, 0).context("BLOCKED map is full")?;
        Ok(())
    }

    pub fn unblock(&mut self, ip: IpAddr) -> Result<bool> {
        Ok(self.blocked.remove(&BlockedKey { addr: key_bytes(ip) }).is_ok())
    }

    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        self.blocked.get(&BlockedKey { addr: key_bytes(ip) }, 0).is_ok()
    }

    pub fn counters(&self) -> BTreeMap<String, u64> {
        read_counters(&self.counters)
    }
}

const ARPHRD_ETHER: u32 = 1;
const ARPHRD_LOOPBACK: u32 = 772;

fn qdisc_record(config: &Config) -> std::path::PathBuf {
    config.socket.parent().unwrap_or(std::path::Path::new("/run/vtrail")).join(QDISC_RECORD)
}

/// Adds `iface` to (or, `added = false`, removes it from) `QDISC_RECORD`.
fn remember_qdisc(record: &std::path::Path, iface: &str, added: bool) {
    let text = std::fs::read_to_string(record).unwrap_or_default();
    let mut lines: Vec<&str> = text.lines().filter(|l| *l != iface && !l.is_empty()).collect();
    if added {
        lines.push(iface);
    }
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    if let Err(e) = std::fs::write(record, body) {
        warn!("cannot write {}: {e} (a clsact qdisc left by a crash will not be recognised as vtrail's)", record.display());
    }
}

/// Deletes the clsact qdisc a vtrail sensor added on `iface` (and its record).
fn delete_qdisc(iface: &str, record: &std::path::Path) {
    match Command::new("tc").args(["qdisc", "del", "dev", iface, "clsact"]).output() {
        Ok(o) if o.status.success() => remember_qdisc(record, iface, false),
        Ok(o) => warn!("{iface}: `tc qdisc del clsact` failed: {}", String::from_utf8_lossy(&o.stderr).trim()),
        Err(e) => warn!("{iface}: cannot run tc to delete the clsact qdisc: {e}"),
    }
}

/// With network monitoring off or not running: the filters a killed vtrail sensor left
/// would go on enforcing its old block list, which `unblock` could no longer lift. They
/// are removed (found by program name), with the qdiscs it recorded adding.
pub fn remove_leftovers(config: &Config) {
    let record = qdisc_record(config);
    let ours = std::fs::read_to_string(&record).unwrap_or_default();
    for iface in all_interfaces(true) {
        let mut removed = false;
        for (name, kind) in [(INGRESS, TcAttachType::Ingress), (EGRESS, TcAttachType::Egress)] {
            removed |= tc::qdisc_detach_program(&iface, kind, name).is_ok();
        }
        if removed {
            warn!("{iface}: removed the TC filters an earlier vtrail sensor left (network monitoring is not running now)");
        }
        if ours.lines().any(|l| l == iface) {
            delete_qdisc(&iface, &record);
        }
    }
}

pub fn read_counters(counters: &PerCpuArray<MapData, u64>) -> BTreeMap<String, u64> {
    (0..net_counter::SLOTS)
        .map(|slot| {
            let total = counters.get(&slot, 0).map(|v| v.iter().sum()).unwrap_or(0);
            (net_counter::NAMES[slot as usize].to_string(), total)
        })
        .collect()
}

/// Whether the classifiers watch anything, for the daemon's start-up check and `status`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Health {
    pub interfaces: Vec<String>,
    pub failures: Vec<String>,
    /// `interfaces` was set in the config (not "every interface").
    pub explicit: bool,
}

impl Health {
    /// Nothing is watched although something was asked for or tried: the quarantine is
    /// not enforced and no upload is attributed.
    pub fn blind(&self) -> bool {
        self.interfaces.is_empty() && (self.explicit || !self.failures.is_empty())
    }
}

/// The 16-byte key the kernel uses (`BlockedKey`, `FlowKey`): IPv4 mapped into IPv6.
pub fn key_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}
