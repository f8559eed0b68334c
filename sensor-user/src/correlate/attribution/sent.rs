//! Which local file a transfer moved: what a local client sends (`sent_out`) and what a
//! remote client read from this host (`sent`), found from the process that sends or
//! serves it, where the server resolves the name, or the one untrusted file of that name.
use anyhow::Result;
use sensor_common::graph::{EdgeData, MatchedBy, Protocol, TransferAttrs, TransferDirection};

use super::{Attribution, MAX_PENDING, READS_PER_PROCESS, SentHit, Transfer, path_matches};
use crate::{correlate::peers, decode::events::SensorEvent, graph::GraphWriter};

impl Attribution {
    /// An upload by a local client to a remote server (egress CREATE with write intent,
    /// STOR/APPE/STOU once the server accepted it): the untrusted files the sending process
    /// holds open for reading (not its stdin, stdout or stderr: an inherited log is not
    /// what it sends), asked of /proc while it runs; failing that, the one untrusted file
    /// known by the name sent (none when several have it).
    pub(super) fn sent_out(&mut self, graph: &GraphWriter, t: &Transfer) -> Result<()> {
        self.stats.uploads_out += 1;
        let hits = match &t.sending {
            Some(hits) => hits.clone(),
            None => self.being_sent(graph, t),
        };
        // One edge per file and transfer (an SMB2 CREATE and its first WRITE both land here).
        let transfer = format!("{}:{}:{}:{}", t.server, t.client_port, t.session_id, t.norm);
        for (path, file, matched_by, process) in hits {
            if !self.done.insert((file.clone(), transfer.clone(), "sent_to")) {
                continue;
            }
            let (remote, node_ids) = self.remote(graph, t.ts_ns, t.server)?;
            let attrs = TransferAttrs {
                port: Some(t.server_port),
                local_port: Some(t.client_port),
                path: Some(path),
                direction: Some(TransferDirection::Upload),
                matched_by: Some(matched_by),
                process,
                node_ids,
                ..t.attrs(t.server)
            };
            graph.edge(t.ts_ns, &file, &remote, EdgeData::SentTo(attrs))?;
            self.stats.sent_to += 1;
        }
        Ok(())
    }

    /// The untrusted files a local client's upload `t` sends (see `sent_out`): those its
    /// process holds open (asked of /proc), else those the one tainted process connected
    /// to that server opened for reading (kernel `read` records: the uploader may have
    /// exited already), else the one untrusted file of the name sent.
    pub(super) fn being_sent(&mut self, graph: &GraphWriter, t: &Transfer) -> Vec<SentHit> {
        let mut hits: Vec<SentHit> = Vec::new();
        let base = t.norm.rsplit('/').next().unwrap_or("");
        if let Some(pid) = peers::socket_owner(t.client, t.client_port) {
            let open: Vec<_> = crate::host::procfs::readable_files(pid)
                .into_iter()
                .filter_map(|(path, key)| Some((path, graph.store().untrusted_file(&key).ok()??.node)))
                .collect();
            hits.extend(prefer_named(open, base).into_iter().map(|(path, node)| (path, node, MatchedBy::OpenFile, Some(pid))));
        }
        if hits.is_empty() {
            let server = std::net::SocketAddr::new(t.server, t.server_port);
            let senders: Vec<(u32, u64)> = self.connects.keys().filter(|(_, to)| *to == server).map(|(p, _)| *p).collect();
            if let [sender] = senders.as_slice()
                && let Some(read) = self.reads.get(sender)
            {
                let chosen = prefer_named(read.clone(), base);
                hits.extend(chosen.into_iter().map(|(path, node)| (path, node, MatchedBy::SenderRead, Some(sender.0))));
            }
        }
        if hits.is_empty() {
            match self.untrusted_by_name.get(base).map(Vec::as_slice) {
                Some([(path, file)]) => hits.push((path.clone(), file.clone(), MatchedBy::Name, None)),
                Some([_, _, ..]) => self.stats.sent_to_ambiguous += 1,
                _ => {}
            }
        }
        hits
    }

    /// A kernel `read` record: a tainted process opened the untrusted `file` for reading.
    pub(super) fn note_read(&mut self, ev: &SensorEvent, file: &str) {
        let Some(path) = ev.path.clone() else { return };
        let key = (ev.tgid, ev.start_ticks);
        if self.reads.len() >= MAX_PENDING && !self.reads.contains_key(&key) {
            self.reads.clear();
        }
        let read = self.reads.entry(key).or_default();
        read.retain(|(_, f)| f != file);
        if read.len() >= READS_PER_PROCESS {
            read.remove(0);
        }
        read.push((path, file.to_string()));
    }

    /// A remote client read an untrusted file of this host (SMB2 READ, FTP RETR once the
    /// server answered 150/125). The file is the one the serving process has open under
    /// the name asked for; else the name resolved where the server resolves it (the FTP
    /// session's working directory, the SMB share roots); else the one untrusted file
    /// known by that name. Several candidates and no way to tell: no edge (counted in
    /// `sent_to_ambiguous`), rather than one to a file that was not served.
    pub(super) fn sent(&mut self, graph: &GraphWriter, t: &Transfer) -> Result<()> {
        if t.outbound {
            // A local client fetching from a remote server: what it writes is followed by
            // the taint rules if it is a port program (`port_programs`).
            return Ok(());
        }
        let Some((path, file, matched_by)) = self.served_file(graph, t) else { return Ok(()) };
        let key = (file.clone(), format!("{}:{}:{}", t.client, t.client_port, t.norm), "sent_to");
        if !self.done.insert(key) {
            return Ok(());
        }
        let (remote, node_ids) = self.remote(graph, t.ts_ns, t.client)?;
        let attrs = TransferAttrs {
            port: Some(t.client_port),
            server_port: Some(t.server_port),
            path: Some(path),
            matched_by: Some(matched_by),
            node_ids,
            ..t.attrs(t.client)
        };
        graph.edge(t.ts_ns, &file, &remote, EdgeData::SentTo(attrs))?;
        self.stats.sent_to += 1;
        Ok(())
    }

    /// (path, file node, how it was found) of the untrusted file a read of `t` served.
    fn served_file(&mut self, graph: &GraphWriter, t: &Transfer) -> Option<(String, String, MatchedBy)> {
        let untrusted = |path: &str| -> Option<String> {
            let (key, _) = crate::host::procfs::inode_of(&crate::host::procfs::fs_path(path)?).ok()?;
            Some(graph.store().untrusted_file(&key).ok()??.node)
        };
        let owners = peers::connection_owners((t.server, t.server_port), (t.client, t.client_port));
        // 1. Open in the serving process under that name.
        let mut open: Vec<(String, String)> = owners
            .iter()
            .flat_map(|&pid| crate::host::procfs::readable_files(pid))
            .filter(|(p, _)| path_matches(p, &t.norm))
            .filter_map(|(p, key)| Some((p, graph.store().untrusted_file(&key).ok()??.node)))
            .collect();
        open.dedup_by(|a, b| a.1 == b.1);
        if let [(p, f)] = open.as_slice() {
            return Some((p.clone(), f.clone(), MatchedBy::OpenFile));
        }
        // 2. Where the server resolves the name: in the share the TreeId names, if known.
        if let Some(root) = t.share.as_ref().and_then(|s| self.shares.get(s)) {
            let candidate = format!("{root}/{}", t.norm);
            return untrusted(&candidate).map(|f| (candidate, f, MatchedBy::Share));
        }
        let mut found: Vec<(String, String)> = Vec::new();
        if t.proto == Protocol::Ftp {
            for pid in &owners {
                let base = if t.name.starts_with('/') { format!("/proc/{pid}/root") } else { format!("/proc/{pid}/cwd") };
                if let Ok(dir) = std::fs::read_link(&base) {
                    let candidate = format!("{}/{}", crate::host::procfs::text(&dir).trim_end_matches('/'), t.name.trim_start_matches('/'));
                    if let Some(f) = untrusted(&candidate) {
                        found.push((candidate, f));
                    }
                }
            }
        } else {
            for root in &self.share_roots {
                let candidate = format!("{root}/{}", t.norm);
                if let Some(f) = untrusted(&candidate) {
                    found.push((candidate, f));
                }
            }
            found.sort();
            found.dedup_by(|a, b| a.1 == b.1);
            // The same name in several shares: smbd works in the share it serves (its
            // working directory is that share's root).
            if found.len() > 1 {
                let cwds: Vec<String> = owners.iter().filter_map(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).ok()).map(|p| crate::host::procfs::text(&p)).collect();
                let rel = format!("/{}", t.norm);
                found.retain(|(p, _)| p.strip_suffix(&rel).is_some_and(|root| cwds.iter().any(|c| c == root)));
            }
        }
        found.sort();
        found.dedup_by(|a, b| a.1 == b.1);
        match found.as_slice() {
            [(p, f)] => return Some((p.clone(), f.clone(), MatchedBy::Resolved)),
            [_, _, ..] => {
                self.stats.sent_to_ambiguous += 1;
                return None;
            }
            [] => {}
        }
        // 3. Known by name (files restored from the database are not in this index).
        let base = t.norm.rsplit('/').next().unwrap_or("");
        let named: Vec<(String, String)> =
            self.untrusted_by_name.get(base).into_iter().flatten().filter(|(p, _)| path_matches(p, &t.norm)).cloned().collect();
        match named.as_slice() {
            [(p, f)] => Some((p.clone(), f.clone(), MatchedBy::Name)),
            [] => None,
            _ => {
                self.stats.sent_to_ambiguous += 1;
                None
            }
        }
    }
}

/// Several untrusted files a sender held or read: the ones with the base name sent, if
/// any has it (a worm may hold its log and its copy; it sends the copy).
fn prefer_named(files: Vec<(String, String)>, base: &str) -> Vec<(String, String)> {
    let named: Vec<_> = files.iter().filter(|(p, _)| !base.is_empty() && p.rsplit('/').next() == Some(base)).cloned().collect();
    if named.is_empty() { files } else { named }
}
