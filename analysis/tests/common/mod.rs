//! Helpers shared by the integration tests: temporary directories and simulated incidents.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use analysis::simulate::{Shape, SimConfig, Truth, simulate};

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
