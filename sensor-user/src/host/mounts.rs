//! tracefs and bpffs must be mounted for tracepoints and pinned objects.
use std::path::Path;

use anyhow::{Result, bail};

pub fn ensure_mounted() -> Result<()> {
    for (fstype, target, probe) in [
        ("tracefs", "/sys/kernel/tracing", "/sys/kernel/tracing/events"),
        ("bpf", "/sys/fs/bpf", ""),
    ] {
        if is_mounted(target, fstype) || (!probe.is_empty() && Path::new(probe).exists()) {
            continue;
        }
        let status = std::process::Command::new("mount").args(["-t", fstype, fstype, target]).status();
        if !matches!(status, Ok(s) if s.success()) {
            bail!("{fstype} is not mounted at {target} and `mount -t {fstype} {fstype} {target}` failed: mount it and start again");
        }
    }
    Ok(())
}

fn is_mounted(target: &str, fstype: &str) -> bool {
    std::fs::read_to_string("/proc/mounts")
        .map(|m| m.lines().any(|l| {
            let mut f = l.split_whitespace();
            let (_, mnt, ty) = (f.next(), f.next(), f.next());
            mnt == Some(target) && ty == Some(fstype)
        }))
        .unwrap_or(false)
}
