//! What a detection needs from the store: where a file came from (its latest
//! `received_from` edge, indexed by file as it is written) and the alerts raised.
use sensor_common::graph::{Edge, alert::Alert, trees};

use super::{GraphStore, StoreError, json_err};

/// `meta` key of the last alert the fleet acknowledged (its `alerts` key).
const PUBLISHED_KEY: &str = "alerts_published";

/// The alerts not yet acknowledged by the fleet, for its publisher task (sled trees are
/// shared handles: this outlives no borrow of the store).
#[derive(Clone)]
pub struct AlertsFeed {
    alerts: sled::Tree,
    meta: sled::Tree,
}

impl AlertsFeed {
    /// Up to `limit` alerts after the last acknowledged one: (key, JSON).
    pub fn unpublished(&self, limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        let after = self.meta.get(PUBLISHED_KEY)?.map(|k| k.to_vec()).unwrap_or_default();
        let mut out = Vec::new();
        for r in self.alerts.range(after.clone()..) {
            let (k, v) = r?;
            if k.as_ref() == after.as_slice() {
                continue;
            }
            out.push((k.to_vec(), v.to_vec()));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    pub fn acknowledge(&self, key: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(PUBLISHED_KEY, key)?;
        Ok(())
    }
}


impl GraphStore {
    pub fn alerts_feed(&self) -> AlertsFeed {
        AlertsFeed { alerts: self.alerts.clone(), meta: self.meta.clone() }
    }

    /// The latest `received_from` edge into `file` (a node id), if one was recorded.
    pub fn arrival(&self, file: &str) -> Result<Option<Edge>, StoreError> {
        self.arrivals
            .get(file.as_bytes())?
            .map(|v| serde_json::from_slice(&v).map_err(|e| json_err(trees::ARRIVALS, e)))
            .transpose()
    }

    /// Stores an alert (durable at the next flush, as edges are), numbering it: its key is
    /// its `seq` (big-endian), from sled's id generator, so keys only grow.
    pub fn add_alert(&self, alert: &mut Alert) -> Result<(), StoreError> {
        alert.seq = self.db.generate_id()? + 1;
        let json = serde_json::to_vec(alert).map_err(|e| json_err(trees::ALERTS, e))?;
        self.alerts.insert(alert.seq.to_be_bytes(), json)?;
        Ok(())
    }

    /// Alerts raised at or after `since_ns`, or numbered above `after_seq`, in the order raised.
    pub fn alerts_since(&self, since_ns: u64, after_seq: u64) -> Result<Vec<Alert>, StoreError> {
        let mut out = Vec::new();
        for r in self.alerts.range((after_seq + 1).to_be_bytes()..) {
            let (_, v) = r?;
            let alert: Alert = serde_json::from_slice(&v).map_err(|e| json_err(trees::ALERTS, e))?;
            if alert.ts_ns >= since_ns {
                out.push(alert);
            }
        }
        Ok(out)
    }
}
