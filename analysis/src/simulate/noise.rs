//! The noise around the incident: what a file server does anyway. Cron jobs running
//! trusted binaries that write logs (the bulk of the edges), benign document transfers
//! between hosts, untrusted downloads never executed, an installer relabeled trusted by an
//! admin and then run, files relabeled untrusted.

use sensor_common::graph::{EdgeData, ExecAttrs, FileWriteAttrs, NoAttrs, Protocol, ReadAttrs, Trust};

use super::host_log::{HostLog, relabel, transfer_from, transfer_to};
use super::rng::Rng;
use super::topology::SimHost;
use super::{EPOCH_NS, MS, OUTSIDE_DOWNLOAD_IP};
use crate::time::NS_PER_SEC;

/// Benign transfers, untrusted downloads never run, a relabeled-and-run installer, relabels.
pub(super) fn benign_incidents(
    hosts: &[SimHost],
    adjacency: &[Vec<usize>],
    logs: &mut [HostLog],
    rng: &mut Rng,
    horizon: u64,
) {
    let n = hosts.len();
    for from in 0..n {
        for k in 0..3 {
            let Some(&to) =
                adjacency[from].get(rng.below(adjacency[from].len().max(1) as u64) as usize)
            else {
                continue;
            };
            let sent_at =
                EPOCH_NS + rng.range(60, (horizon - EPOCH_NS) / NS_PER_SEC - 60) * NS_PER_SEC;
            let received_at = sent_at + rng.range(20, 300) * MS;
            let (sender, receiver) = (&hosts[from], &hosts[to]);
            let name = format!("report-{from}-{k}.pdf");
            let protocol = if rng.chance(0.5) { Protocol::Smb2 } else { Protocol::Ftp };
            let doc = logs[from].file(
                sender,
                &format!("/srv/samba/share/docs/{name}"),
                false,
                false,
                Some(rng.sha()),
                EPOCH_NS,
            );
            let remote = logs[from].remote(&receiver.ip, Some(to));
            logs[from].edge(sender, sent_at, &doc, &remote, transfer_to(&receiver.ip, protocol, &name));
            let copy = logs[to].file(
                receiver,
                &format!("/srv/samba/share/{name}"),
                true,
                false,
                Some(rng.sha()),
                received_at,
            );
            let remote = logs[to].remote(&sender.ip, Some(from));
            logs[to].edge(receiver, received_at, &remote, &copy, transfer_from(&sender.ip, protocol, &name));
        }
    }
    for (i, host) in hosts.iter().enumerate() {
        let log = &mut logs[i];
        let base = log.base(host);
        // An untrusted download that nobody runs.
        let at = EPOCH_NS + rng.range(60, 7000) * NS_PER_SEC;
        let download = log.file(
            host,
            &format!("/root/Downloads/tool-{i}.tar.gz"),
            true,
            false,
            Some(rng.sha()),
            at,
        );
        let remote = log.remote(OUTSIDE_DOWNLOAD_IP, None);
        log.edge(host, at, &remote, &download, transfer_from(OUTSIDE_DOWNLOAD_IP, Protocol::Http, &format!("tool-{i}.tar.gz")));
        if i % 5 == 0 {
            // An installer the admin vouches for, then runs: not an infection.
            let at = EPOCH_NS + rng.range(60, 7000) * NS_PER_SEC;
            let installer = log.file(
                host,
                "/root/Downloads/agent-installer.sh",
                true,
                false,
                Some(rng.sha()),
                at,
            );
            log.edge(host, at, &remote, &installer, transfer_from(OUTSIDE_DOWNLOAD_IP, Protocol::Http, "agent-installer.sh"));
            log.edge(host, at + 30 * NS_PER_SEC, &base.admin_shell, &installer, relabel(Trust::Trusted));
            let run = log.process(host, "/usr/bin/sh", 0, false, at + 40 * NS_PER_SEC);
            log.edge(host, at + 40 * NS_PER_SEC, &base.admin_shell, &run, EdgeData::Fork(NoAttrs {}));
            log.edge(host, at + 40 * NS_PER_SEC + MS, &installer, &run, EdgeData::Read(ReadAttrs::default()));
            let agent = log.file(
                host,
                "/opt/agent/agent.conf",
                false,
                false,
                None,
                at + 41 * NS_PER_SEC,
            );
            log.edge(host, at + 41 * NS_PER_SEC, &run, &agent, EdgeData::Create(FileWriteAttrs::default()));
        }
        if i % 7 == 3 {
            // A file the admin distrusts by hand but never runs; and one from a USB stick.
            let at = EPOCH_NS + rng.range(60, 7000) * NS_PER_SEC;
            let odd = log.file(
                host,
                "/srv/samba/share/old-macro.xlsm",
                false,
                false,
                Some(rng.sha()),
                EPOCH_NS,
            );
            log.edge(host, at, &base.admin_shell, &odd, relabel(Trust::Untrusted));
            log.file(
                host,
                "/media/usb/photos.zip",
                true,
                false,
                Some(rng.sha()),
                at,
            );
        }
    }
}

/// Cron jobs running trusted binaries that append to logs: the bulk of a real graph.
pub(super) fn background(host: &SimHost, log: &mut HostLog, rng: &mut Rng, budget: u64, horizon: u64) {
    let base = log.base(host);
    let logs: Vec<String> = (0..12)
        .map(|k| {
            log.file(
                host,
                &format!("/var/log/job-{k}.log"),
                false,
                false,
                None,
                host.boot_ns,
            )
        })
        .collect();
    let mut spent = 0u64;
    let span = (horizon - EPOCH_NS) / NS_PER_SEC;
    while spent < budget {
        let start = EPOCH_NS + rng.below(span) * NS_PER_SEC + rng.below(1000) * MS;
        let (binary, path) = &base.binaries[rng.below(base.binaries.len() as u64) as usize];
        let job = log.process(host, path, 0, false, start);
        log.edge(host, start, &base.cron, &job, EdgeData::Fork(NoAttrs {}));
        log.edge(host, start + MS, binary, &job, EdgeData::Exec(ExecAttrs::default()));
        let target = &logs[rng.below(logs.len() as u64) as usize];
        let writes = rng
            .range(5, 60)
            .min(budget.saturating_sub(spent + 2).max(1));
        for w in 0..writes {
            log.edge(host, start + (w + 2) * 10 * MS, &job, target, EdgeData::Write(FileWriteAttrs::default()));
        }
        spent += 2 + writes;
    }
}
