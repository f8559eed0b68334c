//! Helpers shared by the integration tests: temporary directories, simulated incidents and
//! hand-written dumps.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use analysis::simulate::{Shape, SimConfig, Truth, simulate};
use sensor_common::graph::{
    DUMP_FORMAT, DumpHeader, DumpLine, Edge, EdgeData, EdgeKind, HostInfo, Node, NodeData, SCHEMA_VERSION,
};

const NS: u64 = 1_000_000_000;

/// A directory under the target dir, emptied first; removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let base = std::env::var_os("CARGO_TARGET_TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("vtrail-analysis-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn simulated(
    name: &str,
    seed: u64,
    hosts: usize,
    shape: Shape,
    gzip: bool,
) -> (TempDir, Truth, Vec<PathBuf>) {
    let dir = TempDir::new(name);
    let truth = simulate(&SimConfig {
        seed,
        hosts,
        shape,
        out: dir.path().to_owned(),
        target_edges: 20_000,
        gzip,
    })
    .expect("simulate");
    let inputs = truth.dumps.iter().map(|d| dir.path().join(d)).collect();
    (dir, truth, inputs)
}

/// A hand-written dump of one host, for incidents the simulation does not produce.
pub struct Dump {
    host: String,
    lines: Vec<String>,
}

impl Dump {
    pub fn new(host: &str) -> Self {
        let header = DumpHeader {
            format: DUMP_FORMAT.into(),
            schema_version: SCHEMA_VERSION,
            host: HostInfo {
                id: host.into(),
                hostname: format!("name-{host}"),
                disk_ids: vec![host.into()],
            },
            exported_ns: 1_000 * NS,
            since_ns: None,
        };
        Dump {
            host: host.into(),
            lines: vec![serde_json::to_string(&header).unwrap()],
        }
    }

    fn node(&mut self, id: String, data: NodeData) -> String {
        let node = Node {
            id: id.clone(),
            host: self.host.clone(),
            first_seen_ns: NS,
            data,
        };
        self.lines
            .push(serde_json::to_string(&DumpLine::Node(node)).unwrap());
        id
    }

    pub fn remote(&mut self, ip: &str, node_ids: &[&str]) -> String {
        let data = NodeData::Remote {
            ip: ip.into(),
            node_ids: node_ids.iter().map(|&n| n.into()).collect(),
        };
        self.node(format!("remote:{ip}"), data)
    }

    /// An untrusted executable file; `sha` is repeated to 64 hex digits.
    pub fn file(&mut self, ino: u64, path: &str, sha: Option<&str>) -> String {
        let data = NodeData::File {
            dev: 1,
            ino,
            paths: vec![path.into()],
            untrusted: true,
            executable: true,
            sha256: sha.map(|s| s.repeat(64 / s.len())),
            malicious: false,
            scan: None,
        };
        self.node(format!("file:{}:1:{ino}", self.host), data)
    }

    pub fn process(&mut self, pid: u32, exe: &str, comm: &str) -> String {
        let data = NodeData::Process {
            tgid: pid,
            start_ticks: 1,
            exe: exe.into(),
            comm: comm.into(),
            uid: 0,
            tainted: true,
        };
        self.node(format!("proc:{}:{pid}:1", self.host), data)
    }

    pub fn edge(
        &mut self,
        seconds: u64,
        kind: EdgeKind,
        src: &str,
        dst: &str,
        attrs: &[(&str, &str)],
    ) {
        let edge = Edge {
            ts_ns: seconds * NS,
            src: src.into(),
            dst: dst.into(),
            host: self.host.clone(),
            data: edge_data(kind, attrs),
        };
        self.lines
            .push(serde_json::to_string(&DumpLine::Edge(edge)).unwrap());
    }

    /// The dump as written by the sensor: one JSON document per line.
    pub fn text(&self) -> String {
        self.lines.iter().map(|l| format!("{l}\n")).collect()
    }

    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.text()).expect("write dump");
    }
}

/// Typed attributes from a test's shorthand `[("protocol", "smb2"), ("port", "4444")]`:
/// read as the JSON a sensor writes (digits as numbers, `true`/`false` as booleans), so a
/// fixture that does not fit the schema fails here, loudly.
pub fn edge_data(kind: EdgeKind, attrs: &[(&str, &str)]) -> EdgeData {
    let json: serde_json::Map<String, serde_json::Value> = attrs
        .iter()
        .map(|&(k, v)| {
            let value = match v {
                "true" => serde_json::Value::Bool(true),
                "false" => serde_json::Value::Bool(false),
                digits if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                    serde_json::Value::Number(digits.parse::<u64>().expect("digits").into())
                }
                text => serde_json::Value::String(text.into()),
            };
            (k.to_owned(), value)
        })
        .collect();
    EdgeData::deserialize_attrs(kind, serde_json::Value::Object(json))
        .unwrap_or_else(|e| panic!("fixture {kind:?} {attrs:?} does not fit the schema: {e}"))
}

/// Characters a terminal acts on: C0 (but the line feed that ends each line), DEL, C1.
pub fn raw_controls(text: &str, allowed: &[char]) -> Vec<char> {
    text.chars()
        .filter(|&c| c.is_control() && c != '\n' && !allowed.contains(&c))
        .collect()
}
