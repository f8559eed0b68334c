//! What a detection needs from the store: where a file came from (its latest
//! `received_from` edge, indexed by file as it is written) and the alerts raised.
use std::sync::atomic::{AtomicU32, Ordering};

use sensor_common::graph::{Edge, alert::Alert, trees};

use super::{GraphStore, StoreError, json_err};

/// Tells alerts of the same nanosecond apart (their key is ts ++ seq).
static ALERT_SEQ: AtomicU32 = AtomicU32::new(0);

impl GraphStore {
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
