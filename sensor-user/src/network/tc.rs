//! Attaches the TC classifiers (clsact qdisc + netlink filters, which every kernel since
//! 4.5 has; TCX would leave nothing to clean up but needs 6.6) and detaches them on exit,
//! deleting the clsact qdisc too when this process added it. Filters left behind by a
//! sensor that was killed are removed at the next start.
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
use log::{info, warn};
use sensor_common::maps::{BlockedKey, names, net_counter};

use super::key_bytes;
use crate::config::Config;

pub const INGRESS: &str = "tc_ingress";
pub const EGRESS: &str = "tc_egress";
pub const SMB_STEP: &str = "tc_smb_step";

/// Loads the SMB walk's step program and installs it in `TC_JUMP` (the classifiers
/// tail-call it; without it they count `no_step_program` and pass SMB packets unparsed).
pub fn load_step_program(ebpf: &mut Ebpf) -> Result<()> {
    let p: &mut SchedClassifier = ebpf.program_mut(SMB_STEP).context("program tc_smb_step missing")?.try_into()?;
    p.load().context("cannot load TC program tc_smb_step (the verifier refused it?)")?;
    let fd = p.fd()?.try_clone()?;
    let mut jump = aya::maps::ProgramArray::try_from(ebpf.map_mut(names::TC_JUMP).context("TC_JUMP map")?)?;
    jump.set(0, &fd, 0)?;
    Ok(())
}

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
        let added_qdisc = match tc::qdisc_add_clsact(iface) {
            Ok(()) => true,
            Err(e) if e.to_string().contains("exists") || e.to_string().contains("EEXIST") || e.to_string().contains("os error 17") => false,
            Err(e) => {
                let msg = format!("{iface}: cannot add clsact qdisc: {e} (kernel without sch_ingress/clsact?)");
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
        info!("TC classifiers attached to {iface} (clsact {})", if added_qdisc { "added" } else { "already there" });
        self.attached.push(a);
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
        for a in self.attached.drain(..) {
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
                match Command::new("tc").args(["qdisc", "del", "dev", &a.iface, "clsact"]).output() {
                    Ok(o) if o.status.success() => {}
                    Ok(o) => warn!("{}: `tc qdisc del clsact` failed: {}", a.iface, String::from_utf8_lossy(&o.stderr).trim()),
                    Err(e) => warn!("{}: cannot run tc to delete the clsact qdisc: {e}", a.iface),
                }
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

pub fn read_counters(counters: &PerCpuArray<MapData, u64>) -> BTreeMap<String, u64> {
    (0..net_counter::SLOTS)
        .map(|slot| {
            let total = counters.get(&slot, 0).map(|v| v.iter().sum()).unwrap_or(0);
            (net_counter::NAMES[slot as usize].to_string(), total)
        })
        .collect()
}
