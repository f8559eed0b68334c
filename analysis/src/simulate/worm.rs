//! What the worm does on a host it has just infected: it persists in cron (and sometimes a
//! shell rc file), leaves an executable copy of itself in /var/tmp (the copy it uploads to
//! neighbours), and starts a shell that collects host information.

use sensor_common::graph::{EdgeData, ExecAttrs, FileWriteAttrs, NoAttrs, Severity};

use super::MS;
use super::host_log::{BaseProcesses, HostLog, executable_mode};
use super::rng::Rng;
use super::topology::SimHost;
use crate::time::NS_PER_SEC;

/// Records the first run of process `worm` at `at`; returns the id of the copy it left.
pub(super) fn first_run(
    host: &SimHost,
    log: &mut HostLog,
    worm: &str,
    base: &BaseProcesses,
    at: u64,
    worm_sha: &str,
    rng: &mut Rng,
) -> String {
    let cron_file = log.file(
        host,
        "/etc/cron.d/sysupdate",
        false,
        false,
        None,
        at + 2 * NS_PER_SEC,
    );
    let persist = FileWriteAttrs { activation_point: Some("cron".into()), severity: Some(Severity::High), ..Default::default() };
    log.edge(host, at + 2 * NS_PER_SEC, worm, &cron_file, EdgeData::Create(persist.clone()));
    log.edge(host, at + 2 * NS_PER_SEC + MS, worm, &cron_file, EdgeData::Write(persist.clone()));
    if rng.chance(0.5) {
        let rc = log.file(host, "/root/.bashrc", false, false, None, host.boot_ns);
        let attrs = FileWriteAttrs { activation_point: Some("shell-rc".into()), severity: Some(Severity::High), ..Default::default() };
        log.edge(host, at + 2500 * MS, worm, &rc, EdgeData::Write(attrs));
    }
    let copy = log.file(
        host,
        "/var/tmp/.sysupdate",
        true,
        true,
        Some(worm_sha.to_owned()),
        at + 3 * NS_PER_SEC,
    );
    log.edge(host, at + 3 * NS_PER_SEC, worm, &copy, EdgeData::Create(FileWriteAttrs::default()));
    log.edge(host, at + 3 * NS_PER_SEC + MS, worm, &copy, EdgeData::Write(FileWriteAttrs::default()));
    log.edge(host, at + 3 * NS_PER_SEC + 2 * MS, worm, &copy, EdgeData::Chmod(executable_mode()));
    // A shell child that collects host information.
    let child = log.process(host, "/usr/bin/sh", 0, true, at + 4 * NS_PER_SEC);
    log.edge(host, at + 4 * NS_PER_SEC, worm, &child, EdgeData::Fork(NoAttrs {}));
    let sh = base
        .binaries
        .iter()
        .find(|b| b.1 == "/usr/bin/sh")
        .map(|b| b.0.clone())
        .unwrap_or_default();
    log.edge(host, at + 4 * NS_PER_SEC + MS, &sh, &child, EdgeData::Exec(ExecAttrs::default()));
    let loot = log.file(
        host,
        "/tmp/.hostinfo",
        true,
        false,
        None,
        at + 5 * NS_PER_SEC,
    );
    log.edge(host, at + 5 * NS_PER_SEC, &child, &loot, EdgeData::Create(FileWriteAttrs::default()));
    copy
}
