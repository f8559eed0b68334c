//! The one place that names this host's nodes and writes nodes and edges. Every stage
//! that records (ingest, network attribution, naming answers, operator relabels) writes
//! through a `GraphWriter`, so node ids are built here and nowhere else.
use std::net::IpAddr;

use anyhow::Result;
use sensor_common::{
    graph::{
        Edge, EdgeData, FileScan, HostInfo, Node, NodeData, file_node_id, host_node_id, process_node_id, remote_node_id, user_node_id,
    },
    maps::InodeKey,
};

use super::GraphStore;

#[derive(Clone)]
pub struct GraphWriter<'a> {
    store: &'a GraphStore,
    /// This host's id (`HostInfo.id`).
    host: String,
}

/// What a process node says about the process.
pub struct ProcessFacts<'a> {
    pub tgid: u32,
    pub start_ticks: u64,
    pub exe: String,
    pub comm: &'a str,
    pub uid: u32,
    pub tainted: bool,
}

impl<'a> GraphWriter<'a> {
    pub fn new(store: &'a GraphStore, host: &str) -> Self {
        Self { store, host: host.into() }
    }

    pub fn store(&self) -> &'a GraphStore {
        self.store
    }

    pub fn host_id(&self) -> &str {
        &self.host
    }

    pub fn host_node(&self) -> String {
        host_node_id(&self.host)
    }

    /// Upserts this host's own node.
    pub fn host(&self, ts_ns: u64, info: &HostInfo) -> Result<String> {
        let id = self.host_node();
        self.node(&id, ts_ns, NodeData::Host { hostname: info.hostname.clone(), disk_ids: info.disk_ids.clone() })?;
        Ok(id)
    }

    pub fn process_id(&self, tgid: u32, start_ticks: u64) -> String {
        process_node_id(&self.host, tgid, start_ticks)
    }

    pub fn file_id(&self, key: &InodeKey) -> String {
        file_node_id(&self.host, key.dev, key.ino)
    }

    /// Upserts the process node (flags only go up, see `GraphStore::upsert_node`); a
    /// tainted one is also remembered for restarts.
    pub fn process(&self, ts_ns: u64, p: ProcessFacts) -> Result<String> {
        let id = self.process_id(p.tgid, p.start_ticks);
        self.node(&id, ts_ns, NodeData::Process {
            tgid: p.tgid,
            start_ticks: p.start_ticks,
            exe: p.exe,
            comm: p.comm.to_owned(),
            uid: p.uid,
            tainted: p.tainted,
        })?;
        if p.tainted {
            self.store.set_tainted_proc(p.tgid, p.start_ticks, &id)?;
        }
        Ok(id)
    }

    /// Upserts the file node; `path` joins the paths it was seen under.
    pub fn file(&self, ts_ns: u64, key: &InodeKey, path: Option<&str>, untrusted: bool, executable: bool) -> Result<String> {
        let id = self.file_id(key);
        self.node(&id, ts_ns, NodeData::File {
            dev: key.dev,
            ino: key.ino,
            paths: path.map(|p| vec![p.to_string()]).unwrap_or_default(),
            untrusted,
            executable,
            sha256: None,
            malicious: false,
            scan: None,
        })?;
        Ok(id)
    }

    /// Upserts the file node with the verdict of its latest scan (`malicious`: a scan
    /// flagged it, and the scanned content's hash becomes the file's).
    pub fn scanned_file(&self, ts_ns: u64, key: &InodeKey, path: Option<&str>, scan: FileScan, malicious: bool) -> Result<String> {
        let id = self.file_id(key);
        self.node(&id, ts_ns, NodeData::File {
            dev: key.dev,
            ino: key.ino,
            paths: path.map(|p| vec![p.to_string()]).unwrap_or_default(),
            untrusted: true,
            executable: false,
            sha256: if malicious { scan.sha256.clone() } else { None },
            malicious,
            scan: Some(scan),
        })?;
        Ok(id)
    }

    /// Upserts the `remote:<ip>` node; `node_ids` (what the address resolved to) merge
    /// with those it had.
    pub fn remote(&self, ts_ns: u64, ip: IpAddr, node_ids: Vec<String>) -> Result<String> {
        let id = remote_node_id(&ip.to_string());
        self.node(&id, ts_ns, NodeData::Remote { ip: ip.to_string(), node_ids })?;
        Ok(id)
    }

    /// Upserts the node of an operator (`name(uid N)`).
    pub fn user(&self, ts_ns: u64, name: &str) -> Result<String> {
        let id = user_node_id(name);
        self.node(&id, ts_ns, NodeData::User { name: name.into() })?;
        Ok(id)
    }

    pub fn edge(&self, ts_ns: u64, src: &str, dst: &str, data: EdgeData) -> Result<()> {
        self.store.add_edge(&Edge { ts_ns, src: src.into(), dst: dst.into(), host: self.host.clone(), data })?;
        Ok(())
    }

    fn node(&self, id: &str, first_seen_ns: u64, data: NodeData) -> Result<()> {
        self.store.upsert_node(Node { id: id.into(), host: self.host.clone(), first_seen_ns, data })?;
        Ok(())
    }
}
