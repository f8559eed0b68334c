//! `vtrail-analysis bench`: generate incidents of 10^5, 10^6, 10^7 edges with `simulate`,
//! then load and query each in a fresh child process (`bench-load`), so that the peak
//! memory read from /proc/self/status (VmHWM) belongs to that size alone. With `--db`, the
//! same incidents are also answered from the central database (`central`).

pub mod central;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::AnalysisError;
use crate::load::{LoadOptions, load};
use crate::select::Selector;
use crate::simulate::{Shape, SimConfig, Truth, simulate};
use crate::time::NS_PER_SEC;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchRow {
    pub edges: usize,
    pub nodes: usize,
    pub hosts: usize,
    pub generate_seconds: f64,
    pub load_seconds: f64,
    pub spread_seconds: f64,
    pub trace_seconds: f64,
    pub rules_seconds: f64,
    pub peak_rss_mib: f64,
    pub index_mib: f64,
    pub patient_zero_correct: bool,
}

pub struct BenchConfig {
    pub sizes: Vec<u64>,
    pub hosts: usize,
    pub dir: PathBuf,
    pub keep: bool,
    pub seed: u64,
    /// A PostgreSQL server (any database on it) to also answer from, and the
    /// `vtrail-collect` that imports into it.
    pub db: Option<(String, PathBuf)>,
}

pub(crate) fn read_truth(dir: &Path) -> Result<Truth, AnalysisError> {
    serde_json::from_slice(&std::fs::read(dir.join("truth.json")).map_err(io("reading truth.json".into()))?)
        .map_err(|e| AnalysisError::Usage(format!("truth.json: {e}")))
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> AnalysisError {
    move |source| AnalysisError::Io { context, source }
}

pub fn run(config: &BenchConfig) -> Result<Vec<BenchRow>, AnalysisError> {
    let exe = std::env::current_exe().map_err(io("finding vtrail-analysis itself".into()))?;
    let mut rows = Vec::new();
    println!(
        "{:>10} {:>9} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>9} {:>6}",
        "edges",
        "nodes",
        "hosts",
        "gen s",
        "load s",
        "spread s",
        "trace s",
        "rules s",
        "peak MiB",
        "index MiB",
        "p0 ok"
    );
    for &size in &config.sizes {
        let dir = config.dir.join(format!("edges-{size}"));
        let started = Instant::now();
        let reuse = dir.join("truth.json").exists();
        if !reuse {
            simulate(&SimConfig {
                seed: config.seed,
                hosts: config.hosts,
                shape: Shape::ScaleFree,
                out: dir.clone(),
                target_edges: size,
                gzip: false,
            })
            .map_err(io(format!("generating {}", dir.display())))?;
        }
        let generate_seconds = if reuse {
            0.0
        } else {
            started.elapsed().as_secs_f64()
        };
        let output = Command::new(&exe)
            .arg("bench-load")
            .arg(&dir)
            .output()
            .map_err(io("running bench-load".into()))?;
        if !output.status.success() {
            return Err(AnalysisError::Usage(format!(
                "bench-load {} failed: {}",
                dir.display(),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        let mut row: BenchRow = serde_json::from_slice(&output.stdout).map_err(|e| {
            AnalysisError::Usage(format!("bench-load printed something unexpected: {e}"))
        })?;
        row.generate_seconds = generate_seconds;
        println!(
            "{:>10} {:>9} {:>6} {:>9.1} {:>9.2} {:>9.3} {:>9.3} {:>9.3} {:>10.0} {:>9.0} {:>6}",
            row.edges,
            row.nodes,
            row.hosts,
            row.generate_seconds,
            row.load_seconds,
            row.spread_seconds,
            row.trace_seconds,
            row.rules_seconds,
            row.peak_rss_mib,
            row.index_mib,
            row.patient_zero_correct
        );
        if let Some((url, collect)) = &config.db {
            from_database(&exe, url, collect, &dir, size, config.keep)?;
        }
        if !config.keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Imports the incident, answers `trace --db` and `spread --db`, prints their rows.
fn from_database(exe: &Path, url: &str, collect: &Path, dir: &Path, size: u64, keep: bool) -> Result<(), AnalysisError> {
    let (db_url, import_seconds) = central::import(url, collect, dir, size)?;
    let rows = central::measure(exe, &db_url, dir);
    if !keep {
        central::drop_database(url, size)?;
    }
    for row in rows? {
        println!(
            "{:>10}   --db {:<6} {:>7.3} s (walk+load {:.3} s), {} edge rows + {} node rows in {} levels, {} queries, peak {:.0} MiB, correct {}; import took {:.1} s",
            size,
            row.question,
            row.seconds,
            row.load_seconds,
            row.edge_rows,
            row.node_rows,
            row.rounds,
            row.queries,
            row.peak_rss_mib,
            row.correct,
            import_seconds
        );
    }
    Ok(())
}

/// The child's half: load every dump in `dir`, time the three questions, print one JSON row.
pub fn load_and_query(dir: &Path) -> Result<BenchRow, AnalysisError> {
    let truth = read_truth(dir)?;
    let inputs: Vec<PathBuf> = truth.dumps.iter().map(|d| dir.join(d)).collect();
    let (graph, report) = load(
        &inputs,
        LoadOptions {
            skew_allowance_ns: 2 * NS_PER_SEC,
        },
    )?;

    let started = Instant::now();
    let spread = crate::spread::spread(&graph, None, None, None)?;
    let spread_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let zero = graph
        .host_by_id(&truth.patient_zero[0])
        .ok_or_else(|| AnalysisError::Usage("patient zero not loaded".into()))?;
    crate::trace::trace(
        &graph,
        &Selector::Path("/var/tmp/.sysupdate".into()),
        Some(zero),
    )?;
    let trace_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    crate::rules::rules(
        &graph,
        Some(&Selector::Sha256(truth.worm_sha256.clone())),
        None,
    )?;
    let rules_seconds = started.elapsed().as_secs_f64();

    Ok(BenchRow {
        edges: report.edges,
        nodes: report.nodes,
        hosts: report.hosts,
        generate_seconds: 0.0,
        load_seconds: report.load_seconds,
        spread_seconds,
        trace_seconds,
        rules_seconds,
        peak_rss_mib: peak_rss_kib() as f64 / 1024.0,
        index_mib: report.index_bytes as f64 / (1024.0 * 1024.0),
        patient_zero_correct: spread.patient_zeros == truth.patient_zero,
    })
}

/// VmHWM from /proc/self/status, in KiB (0 where /proc is not there).
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
