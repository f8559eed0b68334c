//! `vtrail-analysis bench --db URL`: the same incidents imported into PostgreSQL with
//! `vtrail-collect import`, then `trace --db` and `spread --db` timed, each in a fresh
//! child process (`bench-db`) so that its peak memory is its own.
//!
//! Each size gets a database of its own on the server `URL` names (`vtrail_bench_<edges>`,
//! created by the bench and dropped after it unless `--keep`), so that sizes never mix.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use postgres::{Client, NoTls};
use serde::{Deserialize, Serialize};

use super::{io, peak_rss_kib, read_truth};
use crate::error::AnalysisError;
use crate::load::{LoadOptions, Question, Walk, load_central};
use crate::select::Selector;
use crate::time::NS_PER_SEC;

/// One question answered from the database, measured in its own process.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DbRow {
    pub question: String,
    /// Connect, walk, build and answer: what a user waits for.
    pub seconds: f64,
    pub load_seconds: f64,
    pub edge_rows: u64,
    pub node_rows: u64,
    pub rounds: u64,
    pub queries: u64,
    pub peak_rss_mib: f64,
    /// spread: patient zero as the truth says; trace: the flagged file found.
    pub correct: bool,
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}

fn usage(what: String) -> AnalysisError {
    AnalysisError::Usage(what)
}

fn admin(url: &str, sql: &str) -> Result<(), AnalysisError> {
    let mut client = Client::connect(url, NoTls).map_err(|e| usage(format!("bench --db {url}: cannot connect: {e}")))?;
    client.batch_execute(sql).map_err(|e| usage(format!("bench --db: `{sql}`: {e}")))
}

/// Imports the incident in `dir` into a fresh database; returns its URL and the seconds taken.
pub fn import(server_url: &str, collect: &Path, dir: &Path, edges: u64) -> Result<(String, f64), AnalysisError> {
    let name = format!("vtrail_bench_{edges}");
    admin(server_url, &format!("DROP DATABASE IF EXISTS {name}"))?;
    admin(server_url, &format!("CREATE DATABASE {name}"))?;
    let url = with_database(server_url, &name);
    let truth = read_truth(dir)?;
    let started = Instant::now();
    let output = Command::new(collect)
        .args(["import", "--db", &url])
        .args(truth.dumps.iter().map(|d| dir.join(d)))
        .output()
        .map_err(io(format!("running {}", collect.display())))?;
    if !output.status.success() {
        return Err(usage(format!(
            "{} import failed: {}",
            collect.display(),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    // ANALYZE, as autovacuum would soon after a bulk load: the planner's row counts.
    admin(&url, "ANALYZE")?;
    Ok((url, started.elapsed().as_secs_f64()))
}

pub fn drop_database(server_url: &str, edges: u64) -> Result<(), AnalysisError> {
    admin(server_url, &format!("DROP DATABASE IF EXISTS vtrail_bench_{edges}"))
}

/// Runs `bench-db` for each question in a child of `exe`.
pub fn measure(exe: &Path, url: &str, dir: &Path) -> Result<Vec<DbRow>, AnalysisError> {
    ["trace", "spread"]
        .into_iter()
        .map(|question| {
            let output = Command::new(exe)
                .args(["bench-db", question, url])
                .arg(dir)
                .output()
                .map_err(io("running bench-db".into()))?;
            if !output.status.success() {
                return Err(usage(format!(
                    "bench-db {question} failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                )));
            }
            serde_json::from_slice(&output.stdout).map_err(|e| usage(format!("bench-db printed something unexpected: {e}")))
        })
        .collect()
}

/// The child's half: one question over the database, as the command line asks it.
pub fn query(question: &str, url: &str, dir: &Path) -> Result<DbRow, AnalysisError> {
    let truth = read_truth(dir)?;
    let options = LoadOptions {
        skew_allowance_ns: 2 * NS_PER_SEC,
    };
    let started = Instant::now();
    let (walk, selector, host) = match question {
        "trace" => (
            Walk::Trace,
            Some(Selector::Path("/var/tmp/.sysupdate".into())),
            truth.patient_zero.first().cloned(),
        ),
        "spread" => (Walk::Spread, None, None),
        other => return Err(usage(format!("bench-db: no question `{other}` (trace or spread)"))),
    };
    let (graph, report) = load_central(
        url,
        &Question {
            selector: selector.clone(),
            host: host.clone(),
            walk,
        },
        options,
    )?;
    let correct = match walk {
        Walk::Trace => {
            let host = host.and_then(|h| graph.host_by_id(&h));
            let selector = selector.unwrap_or(Selector::Path(String::new()));
            !crate::trace::trace(&graph, &selector, host)?.flagged.is_empty()
        }
        _ => crate::spread::spread(&graph, None, None, None)?.patient_zeros == truth.patient_zero,
    };
    let seconds = started.elapsed().as_secs_f64();
    let fetched = report.database.unwrap_or_default();
    Ok(DbRow {
        question: question.to_owned(),
        seconds,
        load_seconds: report.load_seconds,
        edge_rows: fetched.edge_rows,
        node_rows: fetched.node_rows,
        rounds: fetched.rounds,
        queries: fetched.queries,
        peak_rss_mib: peak_rss_kib() as f64 / 1024.0,
        correct,
    })
}

/// Where `vtrail-collect` is by default: beside this binary (one cargo target directory).
pub fn default_collect() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.with_file_name("vtrail-collect"))
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_name_only() {
        assert_eq!(with_database("postgres://u@h:5/postgres", "b"), "postgres://u@h:5/b");
        assert_eq!(with_database("postgres://u@h:5", "b"), "postgres://u@h:5/b");
        assert_eq!(with_database("postgres://u:p@h/x?sslmode=disable", "b"), "postgres://u:p@h/b?sslmode=disable");
    }
}
