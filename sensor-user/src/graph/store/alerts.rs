//! What a detection needs from the store: where a file came from (its latest
//! `received_from` edge, indexed by file as it is written) and the alerts raised.
use sensor_common::graph::{Edge, alert::Alert, trees};

use super::{GraphStore, StoreError, json_err};

/// `meta` key of the last alert the fleet acknowledged (its `alerts` key).
const PUBLISHED_KEY: &str = "alerts_published";
/// ... and of the last alert the webhook took (`[response] webhook`).
pub const WEBHOOK_KEY: &str = "alerts_webhook";

/// The alerts not yet acknowledged by the fleet, for its publisher task (sled trees are
/// shared handles: this outlives no borrow of the store).
#[derive(Clone)]
pub struct AlertsFeed {
    alerts: sled::Tree,
    meta: sled::Tree,
    /// The `meta` key this reader's cursor is kept under.
    cursor: &'static str,
}

impl AlertsFeed {
    /// Up to `limit` alerts after the last acknowledged one: (key, JSON).
    pub fn unpublished(&self, limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        let after = self.meta.get(self.cursor)?.map(|k| k.to_vec()).unwrap_or_default();
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
        self.meta.insert(self.cursor, key)?;
        Ok(())
    }

    /// A reader new to the feed starts after the alerts raised so far, not with the whole
    /// history; one that has a cursor keeps it. Returns how many alerts were skipped.
    pub fn start_at_the_end_if_new(&self) -> Result<usize, StoreError> {
        if self.meta.get(self.cursor)?.is_some() {
            return Ok(0);
        }
        let Some((last, _)) = self.alerts.last()? else { return Ok(0) };
        self.meta.insert(self.cursor, last.as_ref())?;
        Ok(self.alerts.len())
    }
}


impl GraphStore {
    /// The fleet publisher's reader.
    pub fn alerts_feed(&self) -> AlertsFeed {
        self.alerts_reader(PUBLISHED_KEY)
    }

    /// A reader with its own cursor (`WEBHOOK_KEY`, ...).
    pub fn alerts_reader(&self, cursor: &'static str) -> AlertsFeed {
        AlertsFeed { alerts: self.alerts.clone(), meta: self.meta.clone(), cursor }
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
