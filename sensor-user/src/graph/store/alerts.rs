//! What a detection needs from the store: where a file came from (its latest
//! `received_from` edge, indexed by file as it is written) and the alerts raised.
use std::sync::atomic::{AtomicU32, Ordering};

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

/// Tells alerts of the same nanosecond apart (their key is ts ++ seq).
static ALERT_SEQ: AtomicU32 = AtomicU32::new(0);

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

    /// Stores an alert (durable at the next flush, as edges are).
    pub fn add_alert(&self, alert: &Alert) -> Result<(), StoreError> {
        let json = serde_json::to_vec(alert).map_err(|e| json_err(trees::ALERTS, e))?;
        let mut key = [0u8; 12];
        key[..8].copy_from_slice(&alert.ts_ns.to_be_bytes());
        key[8..].copy_from_slice(&ALERT_SEQ.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        self.alerts.insert(key, json)?;
        Ok(())
    }

    /// Alerts at or after `since_ns`, oldest first.
    pub fn alerts_since(&self, since_ns: u64) -> Result<Vec<Alert>, StoreError> {
        let mut out = Vec::new();
        for r in self.alerts.range(since_ns.to_be_bytes()..) {
            let (_, v) = r?;
            out.push(serde_json::from_slice(&v).map_err(|e| json_err(trees::ALERTS, e))?);
        }
        Ok(out)
    }
}
