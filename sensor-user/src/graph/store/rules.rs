//! What `apply-rules` added, kept across restarts: protected paths and YARA rules. (The
//! block list it applies is the quarantine, kept in `blocked_hosts` like any block.)
use sensor_common::{graph::trees, rules::ProtectPath};
use serde::{Deserialize, Serialize};

use super::{GraphStore, StoreError, json_err};

/// A rule as applied: what it is, who applied it, from which file, when.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Applied<T> {
    pub rule: T,
    pub by: String,
    pub source: String,
    pub ts_ns: u64,
}

const PROTECT: &str = "protect:";
const YARA: &str = "yara:";

impl GraphStore {
    /// Adds a protected path (replacing an earlier record of the same path).
    pub fn add_protected(&self, applied: &Applied<ProtectPath>) -> Result<(), StoreError> {
        let json = serde_json::to_vec(applied).map_err(|e| json_err(trees::APPLIED_RULES, e))?;
        self.applied_rules.insert(format!("{PROTECT}{}", applied.rule.path).as_bytes(), json)?;
        Ok(())
    }

    pub fn remove_protected(&self, path: &str) -> Result<bool, StoreError> {
        Ok(self.applied_rules.remove(format!("{PROTECT}{path}").as_bytes())?.is_some())
    }

    pub fn protected_paths(&self) -> Result<Vec<Applied<ProtectPath>>, StoreError> {
        self.applied(PROTECT)
    }

    /// Adds a YARA rule source, keyed by its sha256 (the same rule applied twice is one).
    /// Returns that key.
    pub fn add_yara_rule(&self, applied: &Applied<String>) -> Result<String, StoreError> {
        let sha = crate::host::procfs::sha256_hex(applied.rule.as_bytes());
        let json = serde_json::to_vec(applied).map_err(|e| json_err(trees::APPLIED_RULES, e))?;
        self.applied_rules.insert(format!("{YARA}{sha}").as_bytes(), json)?;
        Ok(sha)
    }

    pub fn yara_rules(&self) -> Result<Vec<Applied<String>>, StoreError> {
        self.applied(YARA)
    }

    fn applied<T: for<'de> Deserialize<'de>>(&self, prefix: &str) -> Result<Vec<Applied<T>>, StoreError> {
        let mut out = Vec::new();
        for r in self.applied_rules.scan_prefix(prefix.as_bytes()) {
            let (_, v) = r?;
            out.push(serde_json::from_slice(&v).map_err(|e| json_err(trees::APPLIED_RULES, e))?);
        }
        Ok(out)
    }
}
