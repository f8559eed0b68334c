//! The lab's LAN: a bridge in network namespace `vtlab` with one tap device per guest; the
//! lab host's side (BIND, NATS) on a veth whose near end `vtlab0` (10.77.0.1) is in the
//! root namespace, as the network tests' `vtn0`; the outside host (the worm's source, no
//! sensor) in namespace `vtlabout` at 10.77.0.254. Only these addresses are used; all of
//! it is removed on drop (and stale leftovers of a killed run at the start).
use std::process::{Command, Output};

use anyhow::{Result, bail};

use super::scenario::{LAB_HOST_IP, LAN_BITS, OUTSIDE_IP, PlannedHost};

pub const NETNS: &str = "vtlab";
pub const OUTSIDE_NETNS: &str = "vtlabout";
const BRIDGE: &str = "vtlbr";
const HOST_IF: &str = "vtlab0";

pub struct LabNet;

fn ip(args: &str) -> Result<Output> {
    let out = Command::new("sh").arg("-c").arg(format!("ip {args}")).output()?;
    if !out.status.success() {
        bail!("ip {args} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out)
}

fn remove_all() {
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("ip netns del {NETNS} 2>/dev/null; ip netns del {OUTSIDE_NETNS} 2>/dev/null; ip link del {HOST_IF} 2>/dev/null"))
        .status();
}

impl LabNet {
    pub fn up(hosts: &[PlannedHost]) -> Result<Self> {
        remove_all();
        let net = LabNet;
        ip(&format!("netns add {NETNS}"))?;
        ip(&format!("-n {NETNS} link set lo up"))?;
        ip(&format!("-n {NETNS} link add {BRIDGE} type bridge"))?;
        ip(&format!("-n {NETNS} link set {BRIDGE} up"))?;
        for h in hosts {
            let tap = super::guest::tap_name(h);
            ip(&format!("-n {NETNS} tuntap add dev {tap} mode tap"))?;
            ip(&format!("-n {NETNS} link set {tap} master {BRIDGE} up"))?;
        }
        ip(&format!("link add {HOST_IF} type veth peer name vtlab0p"))?;
        ip(&format!("link set vtlab0p netns {NETNS}"))?;
        ip(&format!("-n {NETNS} link set vtlab0p master {BRIDGE} up"))?;
        ip(&format!("addr add {LAB_HOST_IP}/{LAN_BITS} dev {HOST_IF}"))?;
        ip(&format!("link set {HOST_IF} up"))?;

        ip(&format!("netns add {OUTSIDE_NETNS}"))?;
        ip(&format!("-n {OUTSIDE_NETNS} link set lo up"))?;
        ip(&format!("-n {NETNS} link add vtlabop type veth peer name eth0 netns {OUTSIDE_NETNS}"))?;
        ip(&format!("-n {NETNS} link set vtlabop master {BRIDGE} up"))?;
        ip(&format!("-n {OUTSIDE_NETNS} addr add {OUTSIDE_IP}/{LAN_BITS} dev eth0"))?;
        ip(&format!("-n {OUTSIDE_NETNS} link set eth0 up"))?;
        Ok(net)
    }

    /// An anonymous FTP upload from the outside host (busybox `ftpput`): `src` as
    /// `incoming/name` on `server`.
    pub fn outside_upload(&self, server: &str, src: &std::path::Path, name: &str) -> Result<()> {
        let out = Command::new("ip")
            .args(["netns", "exec", OUTSIDE_NETNS, "timeout", "60", "busybox", "ftpput", "-u", "anonymous", "-p", "outside@lab", server])
            .arg(format!("incoming/{name}"))
            .arg(src)
            .output()?;
        if !out.status.success() {
            bail!(
                "the outside host's upload of {name} to {server} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

impl Drop for LabNet {
    fn drop(&mut self) {
        remove_all();
    }
}
