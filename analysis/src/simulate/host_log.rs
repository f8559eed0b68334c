//! One host's records as its sensor would write them, built up in memory during the run
//! (nodes by id, edges in any order) and written sorted by `dump`.

use std::collections::BTreeMap;

use sensor_common::graph::{
    ChmodAttrs, Edge, EdgeData, NoAttrs, Node, NodeData, Protocol, RelabelAttrs, TransferAttrs,
    Trust, file_node_id, process_node_id, remote_node_id,
};

use super::topology::SimHost;
use super::{CLOCK_TICKS_PER_SEC, DEV};
use crate::index::hex;
use crate::time::NS_PER_SEC;

#[derive(Default)]
pub(super) struct HostLog {
    pub nodes: BTreeMap<String, Node>,
    pub edges: Vec<Edge>,
    next_tgid: u32,
    next_ino: u64,
    /// Remote addresses recorded: (ip, host index if a simulated host).
    pub remotes: BTreeMap<String, Option<usize>>,
    base: Option<BaseProcesses>,
}

/// The processes and binaries every host has from boot on.
#[derive(Clone)]
pub(super) struct BaseProcesses {
    pub cron: String,
    pub smbd: String,
    pub ftpd: String,
    pub admin_shell: String,
    pub binaries: Vec<(String, String)>, // (file id, path)
}

impl HostLog {
    /// A file node first seen at `at` (true time); returns its id.
    pub fn file(
        &mut self,
        host: &SimHost,
        path: &str,
        untrusted: bool,
        executable: bool,
        sha256: Option<String>,
        at: u64,
    ) -> String {
        self.next_ino += 1;
        let id = file_node_id(&host.id, DEV, 100_000 + self.next_ino);
        let data = NodeData::File {
            dev: DEV,
            ino: 100_000 + self.next_ino,
            paths: vec![path.to_owned()],
            untrusted,
            executable,
            sha256,
            malicious: false,
            scan: None,
        };
        self.node(host, id, at, data)
    }

    /// A process node started at `at` (true time); returns its id.
    pub fn process(&mut self, host: &SimHost, exe: &str, uid: u32, tainted: bool, at: u64) -> String {
        self.next_tgid += 1;
        let tgid = 1000 + self.next_tgid;
        let ticks = (at.saturating_sub(host.boot_ns)) / (NS_PER_SEC / CLOCK_TICKS_PER_SEC);
        let id = process_node_id(&host.id, tgid, ticks);
        let comm: String = exe
            .rsplit('/')
            .next()
            .unwrap_or(exe)
            .chars()
            .take(15)
            .collect();
        let data = NodeData::Process {
            tgid,
            start_ticks: ticks,
            exe: exe.to_owned(),
            comm,
            uid,
            tainted,
        };
        self.node(host, id, at, data)
    }

    /// Records node `id` of `host`, first seen at `at` (true time); returns its id.
    fn node(&mut self, host: &SimHost, id: String, at: u64, data: NodeData) -> String {
        let node = Node {
            id: id.clone(),
            host: host.id.clone(),
            first_seen_ns: host.clock(at),
            data,
        };
        self.nodes.insert(id.clone(), node);
        id
    }

    /// The `remote:` node for `ip` (written with the dump, once per address).
    pub fn remote(&mut self, ip: &str, sim_host: Option<usize>) -> String {
        self.remotes.insert(ip.to_owned(), sim_host);
        remote_node_id(ip)
    }

    pub fn edge(&mut self, host: &SimHost, at: u64, src: &str, dst: &str, data: EdgeData) {
        self.edges.push(Edge {
            ts_ns: host.clock(at),
            src: src.to_owned(),
            dst: dst.to_owned(),
            host: host.id.clone(),
            data,
        });
    }

    /// The boot-time processes and binaries, recorded on first use.
    pub fn base(&mut self, host: &SimHost) -> BaseProcesses {
        if let Some(base) = &self.base {
            return base.clone();
        }
        let boot = host.boot_ns;
        let mut binaries = Vec::new();
        for path in [
            "/usr/bin/bash",
            "/usr/bin/sh",
            "/usr/bin/python3",
            "/usr/bin/tar",
            "/usr/bin/rsync",
            "/usr/sbin/logrotate",
            "/usr/bin/find",
            "/usr/bin/gzip",
        ] {
            // Same distribution everywhere: a trusted binary has the same hash on every host.
            let sha = hex(&path.bytes().cycle().take(32).collect::<Vec<_>>());
            binaries.push((
                self.file(host, path, false, true, Some(sha), boot),
                path.to_owned(),
            ));
        }
        let systemd = self.process(host, "/usr/lib/systemd/systemd", 0, false, boot);
        let daemon = |log: &mut HostLog, exe: &str, uid: u32| {
            let p = log.process(host, exe, uid, false, boot + 2 * NS_PER_SEC);
            log.edge(host, boot + 2 * NS_PER_SEC, &systemd, &p, EdgeData::Fork(NoAttrs {}));
            p
        };
        let base = BaseProcesses {
            cron: daemon(self, "/usr/sbin/cron", 0),
            smbd: daemon(self, "/usr/sbin/smbd", 0),
            ftpd: daemon(self, "/usr/sbin/vsftpd", 0),
            admin_shell: daemon(self, "/usr/bin/bash", 0),
            binaries,
        };
        self.base = Some(base.clone());
        base
    }
}

/// A `received_from` from `ip`: what a receiving sensor records (protocol, name sent).
pub(super) fn transfer_from(ip: &str, protocol: Protocol, name: &str) -> EdgeData {
    EdgeData::ReceivedFrom(TransferAttrs { name: Some(name.to_owned()), ..TransferAttrs::new(ip, protocol) })
}

/// A `sent_to` to `ip`.
pub(super) fn transfer_to(ip: &str, protocol: Protocol, name: &str) -> EdgeData {
    EdgeData::SentTo(TransferAttrs { name: Some(name.to_owned()), ..TransferAttrs::new(ip, protocol) })
}

/// The `chmod +x` before a run.
pub(super) fn executable_mode() -> ChmodAttrs {
    ChmodAttrs { mode: "755".into(), executable: true, ..Default::default() }
}

/// An operator's relabel by the admin's shell.
pub(super) fn relabel(to: Trust) -> EdgeData {
    EdgeData::Relabel(RelabelAttrs { to, by: "root(uid 0)".into(), path: None })
}
