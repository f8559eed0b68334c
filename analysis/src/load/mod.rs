//! Reading inputs: JSON-lines dumps (plain or gzip) and sensor sled databases, merged into
//! one `Graph`. Parsing is streaming - one record in memory at a time - so memory is the
//! compact index plus one line buffer, whatever the input size.

mod central;
mod dump;
mod sled_db;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::error::LoadError;
use crate::index::{Graph, GraphBuilder};

pub use central::{CentralFetch, Question, Walk, load_central};
pub use dump::{DumpRecord, read_dump};

#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// See `Graph::skew_allowance_ns`.
    pub skew_allowance_ns: u64,
}

/// What was read from one input, and what could not be.
#[derive(Clone, Debug, Default, Serialize)]
pub struct InputSummary {
    pub path: String,
    pub format: &'static str,
    pub host: String,
    pub nodes: u64,
    pub edges: u64,
    /// Lines (dumps) or records (databases) that did not parse and were skipped.
    pub bad_records: u64,
    /// Line numbers of the first few skipped lines.
    pub first_bad_lines: Vec<u64>,
    /// What was wrong with each of them: `line 4: expected value at line 1 column 10`.
    pub first_bad_reasons: Vec<String>,
    /// Set when the input ends early (cut last line, cut gzip stream, read error).
    pub truncated: Option<String>,
}

impl InputSummary {
    /// What this input lost, one sentence each: a cut, then the records skipped.
    pub fn damage(&self) -> Vec<String> {
        let mut damage = Vec::new();
        if let Some(truncated) = &self.truncated {
            damage.push(format!("{}: truncated: {truncated}", self.path));
        }
        if self.bad_records > 0 {
            let unlisted = self.bad_records - self.first_bad_reasons.len() as u64;
            damage.push(format!(
                "{}: skipped {} malformed record(s): {}{}",
                self.path,
                self.bad_records,
                self.first_bad_reasons.join("; "),
                if unlisted > 0 {
                    format!("; and {unlisted} more")
                } else {
                    String::new()
                }
            ));
        }
        damage
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadReport {
    pub inputs: Vec<InputSummary>,
    pub hosts: usize,
    pub nodes: usize,
    pub edges: usize,
    pub duplicate_edges: u64,
    /// Nodes named by edges whose own record was never loaded.
    pub unknown_nodes: u64,
    pub load_seconds: f64,
    pub index_bytes: usize,
    /// Records were lost: an input was cut or had records that did not parse. Every answer
    /// is then from what could be read, and may lack what was lost (an entry point, a hop).
    pub partial: bool,
    /// Everything a reader of partial results should know, one sentence each.
    pub warnings: Vec<String>,
    /// Set when the input was the central database: what the walk fetched from it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<CentralFetch>,
}

impl LoadReport {
    /// What the inputs lost (the first of `warnings`; empty unless `partial`).
    pub fn damage(&self) -> Vec<String> {
        self.inputs.iter().flat_map(InputSummary::damage).collect()
    }
}

pub fn load(paths: &[PathBuf], options: LoadOptions) -> Result<(Graph, LoadReport), LoadError> {
    if paths.is_empty() {
        return Err(LoadError::NoInputs);
    }
    let started = Instant::now();
    let mut builder = GraphBuilder::default();
    // An edge line is about 110 bytes: reserving once for all plain dumps avoids growing the
    // edge array by doubling, which would briefly hold up to three times the edges.
    let plain_bytes: u64 = paths
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    builder.reserve_edges((plain_bytes / 110) as usize);
    let mut report = LoadReport::default();
    for path in paths {
        let summary = load_one(path, &mut builder)?;
        report.inputs.push(summary);
    }
    Ok(finish(builder, report, options, started))
}

/// Builds the graph from what was read and completes `report` with what the merge found.
fn finish(
    builder: GraphBuilder,
    mut report: LoadReport,
    options: LoadOptions,
    started: Instant,
) -> (Graph, LoadReport) {
    let bad_hashes = builder.bad_hashes;
    let (graph, notes) = builder.finish(options.skew_allowance_ns);

    report.warnings = report.damage();
    report.partial = !report.warnings.is_empty();
    if notes.unknown_nodes > 0 {
        report.warnings.push(format!(
            "{} node(s) are named by edges but have no node record (cut dump or missing host): \
             they are shown by id only",
            notes.unknown_nodes
        ));
    }
    for (ip, ids) in notes.missing_hosts.iter().take(20) {
        report.warnings.push(format!(
            "missing host: {ip} is node {} by DNS, but no dump or database of that host was loaded; \
             what it sent or received is not followed past it",
            ids.join(" / ")
        ));
    }
    if notes.missing_hosts.len() > 20 {
        report.warnings.push(format!(
            "... and {} more missing hosts",
            notes.missing_hosts.len() - 20
        ));
    }
    if !notes.unresolved_remotes.is_empty() {
        report.warnings.push(format!(
            "{} remote address(es) were never resolved to a node id by any loaded host \
             (treated as outside the loaded set), e.g. {}",
            notes.unresolved_remotes.len(),
            notes
                .unresolved_remotes
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for host in &graph.hosts {
        if !host.has_info {
            report.warnings.push(format!(
                "host {} appears only inside records (no dump header or database meta for it)",
                host.id
            ));
        }
    }
    if bad_hashes > 0 {
        report.warnings.push(format!(
            "{bad_hashes} sha256 field(s) were not 64 hex digits and were ignored"
        ));
    }
    report.hosts = graph.hosts.len();
    report.nodes = graph.node_count();
    report.edges = graph.edge_count();
    report.duplicate_edges = notes.duplicate_edges;
    report.unknown_nodes = notes.unknown_nodes;
    report.index_bytes = graph.heap_bytes();
    report.load_seconds = started.elapsed().as_secs_f64();
    (graph, report)
}

fn load_one(path: &Path, builder: &mut GraphBuilder) -> Result<InputSummary, LoadError> {
    let metadata = std::fs::metadata(path).map_err(|source| LoadError::Io {
        path: path.into(),
        source,
    })?;
    if metadata.is_dir() {
        return sled_db::load_database(path, builder);
    }
    let mut summary = InputSummary {
        path: path.display().to_string(),
        ..InputSummary::default()
    };
    let mut failure = None;
    let header = read_dump(path, &mut summary, |record| {
        let result = match record {
            DumpRecord::Header(header) => builder
                .add_host_info(&header.host, Some(&path.display().to_string()))
                .map(drop),
            DumpRecord::Node(node) => builder.add_node(node),
            DumpRecord::Edge(edge) => builder.add_edge(edge),
        };
        match result {
            Ok(()) => true,
            Err(error) => {
                failure = Some(error);
                false
            }
        }
    })?;
    if let Some(error) = failure {
        return Err(error);
    }
    summary.host = header.host.id;
    Ok(summary)
}
