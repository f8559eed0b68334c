//! The durable outbox: every record the sensor stores locally is also appended here, under
//! this host's next sequence number, in the same sled database. The publisher sends it
//! from there and removes what JetStream acknowledged, so a NATS outage, a cut network or
//! a sensor restart loses nothing: the backlog waits on disk, oldest first.
//!
//! Sequence numbers only grow, even after a crash or a new database: they are handed out
//! from a block whose upper end is flushed to disk before the first number in it is used
//! (as sled's own `generate_id` does), and a run never starts below the wall clock in
//! microseconds, so a database moved aside, restored from a backup or rolled back with a
//! VM snapshot does not number its records again from where the collector has already
//! been (which would make the store take them for repeats). Numbers are increasing, not
//! contiguous: a crash skips the rest of a block, a restart jumps to the clock.
use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use sensor_common::graph::fleet::MAX_BATCH_RECORDS;
use tokio::sync::Notify;

use crate::graph::store::StoreError;

/// Tree: seq (u64 BE) -> appended wall ns (u64 BE) ++ one `FleetRecord` JSON line.
pub const OUTBOX_TREE: &str = "fleet_outbox";
/// meta: highest sequence JetStream acknowledged (u64 BE).
const ACKED_KEY: &str = "fleet_acked_seq";
/// meta: sequence numbers below this may have been used (u64 BE).
const RESERVED_KEY: &str = "fleet_reserved_seq";
/// meta: present once the records that existed before the fleet was enabled were queued.
const BACKFILLED_KEY: &str = "fleet_backfilled";
/// meta: the first sequence number of a backfill in progress (u64 BE).
const BACKFILL_FROM_KEY: &str = "fleet_backfill_from";
/// Tree: records larger than the server accepts, set aside (same layout as the outbox).
pub const OVERSIZED_TREE: &str = "fleet_oversized";
/// Sequence numbers reserved per flush: the ingest loop waits for one database flush per
/// block, and a crash skips at most one block of numbers.
const RESERVE_BLOCK: u64 = 1 << 16;

/// One record waiting to be sent.
pub struct Pending {
    pub seq: u64,
    pub appended_ns: u64,
    pub line: Vec<u8>,
}

#[derive(Clone)]
pub struct Outbox {
    db: sled::Db,
    tree: sled::Tree,
    meta: sled::Tree,
    next: Arc<AtomicU64>,
    reserved: Arc<AtomicU64>,
    /// Entries in the tree (sled's `len` walks the whole tree).
    pending: Arc<AtomicU64>,
    notify: Arc<Notify>,
}

fn u64_value(v: Option<sled::IVec>) -> u64 {
    v.and_then(|v| v.as_ref().try_into().ok()).map(u64::from_be_bytes).unwrap_or(0)
}

impl Outbox {
    pub fn open(db: &sled::Db, meta: &sled::Tree) -> Result<Self, StoreError> {
        let tree = db.open_tree(OUTBOX_TREE)?;
        let acked = u64_value(meta.get(ACKED_KEY)?);
        let last = tree.last()?.map(|(k, _)| u64_value(Some(k))).unwrap_or(0);
        let reserved = u64_value(meta.get(RESERVED_KEY)?);
        // Numbers below `reserved` may have reached the collector before a crash lost
        // the outbox tail, and numbers below the clock may have come from an earlier
        // database of this host: start above all of them.
        let clock_us = crate::host::procfs::now_wall_ns() / 1_000;
        let next = (acked + 1).max(last + 1).max(reserved).max(clock_us).max(1);
        Ok(Self {
            db: db.clone(),
            tree: tree.clone(),
            meta: meta.clone(),
            next: Arc::new(AtomicU64::new(next)),
            reserved: Arc::new(AtomicU64::new(next)),
            pending: Arc::new(AtomicU64::new(tree.len() as u64)),
            notify: Arc::new(Notify::new()),
        })
    }

    /// Appends a record: `item_key` is its `FleetItem` tag (`edge`, `node`, `host_info`)
    /// and `item_json` its schema JSON, already serialized for the local store.
    pub fn append(&self, item_key: &str, item_json: &[u8], now_ns: u64) -> Result<u64, StoreError> {
        let seq = self.next.fetch_add(1, Ordering::SeqCst);
        self.reserve_through(seq)?;
        let mut value = Vec::with_capacity(item_json.len() + item_key.len() + 40);
        value.extend_from_slice(&now_ns.to_be_bytes());
        // Exactly `serde_json::to_vec(&FleetRecord { seq, item })` (a test checks it),
        // without serializing the item a second time.
        value.extend_from_slice(format!("{{\"seq\":{seq},\"{item_key}\":").as_bytes());
        value.extend_from_slice(item_json);
        value.push(b'}');
        self.tree.insert(seq.to_be_bytes(), value)?;
        self.pending.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_one();
        Ok(seq)
    }

    /// Makes sure `seq` is below the flushed reservation.
    fn reserve_through(&self, seq: u64) -> Result<(), StoreError> {
        if seq < self.reserved.load(Ordering::SeqCst) {
            return Ok(());
        }
        let upto = seq + RESERVE_BLOCK;
        self.meta.insert(RESERVED_KEY, &upto.to_be_bytes())?;
        self.db.flush()?;
        self.reserved.fetch_max(upto, Ordering::SeqCst);
        Ok(())
    }

    /// On a clean stop: the next number is exactly the next one used, no gap.
    pub fn close(&self) -> Result<(), StoreError> {
        let next = self.next.load(Ordering::SeqCst);
        self.meta.insert(RESERVED_KEY, &next.to_be_bytes())?;
        Ok(())
    }

    pub fn acked(&self) -> Result<u64, StoreError> {
        Ok(u64_value(self.meta.get(ACKED_KEY)?))
    }

    /// The next sequence number to be handed out.
    pub fn next_seq(&self) -> u64 {
        self.next.load(Ordering::SeqCst)
    }

    /// Up to `max_batches` batches of records after `after`, oldest first, each of at most
    /// `MAX_BATCH_RECORDS` records and `max_bytes` (a single larger record goes alone): what
    /// the publisher holds in memory at once.
    pub fn read_batches(&self, after: u64, max_batches: usize, max_bytes: usize) -> Result<Vec<Vec<Pending>>, StoreError> {
        let mut batches: Vec<Vec<Pending>> = Vec::new();
        let mut current: Vec<Pending> = Vec::new();
        let mut bytes = 0usize;
        for entry in self.tree.range((after + 1).to_be_bytes()..) {
            let (key, value) = entry?;
            let seq = u64_value(Some(key));
            let (appended, line) = value.split_at(8.min(value.len()));
            let appended_ns = u64::from_be_bytes(appended.try_into().unwrap_or([0; 8]));
            if !current.is_empty() && (current.len() >= MAX_BATCH_RECORDS || bytes + line.len() + 1 > max_bytes) {
                batches.push(std::mem::take(&mut current));
                bytes = 0;
                if batches.len() >= max_batches {
                    return Ok(batches);
                }
            }
            bytes += line.len() + 1;
            current.push(Pending { seq, appended_ns, line: line.to_vec() });
        }
        if !current.is_empty() {
            batches.push(current);
        }
        Ok(batches)
    }

    /// JetStream stored everything up to `seq`: record it, then drop those entries. The
    /// cursor is written first, so a crash in between only leaves entries already sent.
    pub fn acknowledge(&self, seq: u64) -> Result<(), StoreError> {
        self.meta.insert(ACKED_KEY, &seq.to_be_bytes())?;
        let mut batch = sled::Batch::default();
        let mut removed = 0u64;
        for key in self.tree.range(..=seq.to_be_bytes()).keys() {
            batch.remove(key?);
            removed += 1;
        }
        self.tree.apply_batch(batch)?;
        let _ = self.pending.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| Some(n.saturating_sub(removed)));
        Ok(())
    }

    /// Records waiting, and the wall time the oldest was appended.
    pub fn backlog(&self) -> Result<(u64, Option<u64>), StoreError> {
        let count = self.pending.load(Ordering::SeqCst);
        let oldest = match self.tree.first()? {
            Some((_, v)) => v.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes),
            None => None,
        };
        Ok((count, oldest))
    }

    /// Resolves when a record is appended (or at once if one was since the last wait).
    pub async fn appended(&self) {
        self.notify.notified().await
    }

    pub fn backfilled(&self) -> Result<bool, StoreError> {
        Ok(self.meta.get(BACKFILLED_KEY)?.is_some())
    }

    /// Starts (or restarts) the one-time backfill. A backfill cut by a crash left part of
    /// the database queued: those records, never sent (the publisher starts after the
    /// backfill), are removed so that they are not queued twice.
    pub fn begin_backfill(&self) -> Result<(), StoreError> {
        if let Some(from) = self.meta.get(BACKFILL_FROM_KEY)? {
            let from = u64_value(Some(from));
            let mut batch = sled::Batch::default();
            let mut removed = 0u64;
            for key in self.tree.range(from.to_be_bytes()..).keys() {
                batch.remove(key?);
                removed += 1;
            }
            self.tree.apply_batch(batch)?;
            let _ = self.pending.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| Some(n.saturating_sub(removed)));
        }
        self.meta.insert(BACKFILL_FROM_KEY, &self.next_seq().to_be_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    pub fn mark_backfilled(&self) -> Result<(), StoreError> {
        self.meta.insert(BACKFILLED_KEY, &[1u8][..])?;
        self.meta.remove(BACKFILL_FROM_KEY)?;
        Ok(())
    }

    /// Moves a record no server would take (larger than its `max_payload`) out of the way,
    /// into `fleet_oversized` where it stays for `export`, and counts it as acknowledged:
    /// one record must not hold back every later one.
    pub fn set_aside(&self, seq: u64) -> Result<(), StoreError> {
        let aside = self.db.open_tree(OVERSIZED_TREE)?;
        if let Some(value) = self.tree.get(seq.to_be_bytes())? {
            aside.insert(seq.to_be_bytes(), value)?;
        }
        self.acknowledge(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::store::tests::tempdir;
    use sensor_common::graph::{
        Edge, EdgeData, NoAttrs,
        fleet::{FleetItem, FleetRecord, MAX_BATCH_BYTES},
    };

    fn open(dir: &std::path::Path) -> (sled::Db, Outbox) {
        // sled's flusher may hold the lock of a database just dropped for a moment.
        let mut db = sled::open(dir);
        for _ in 0..50 {
            if db.is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(40));
            db = sled::open(dir);
        }
        let db = db.unwrap();
        let meta = db.open_tree("meta").unwrap();
        let outbox = Outbox::open(&db, &meta).unwrap();
        (db, outbox)
    }

    #[test]
    fn lines_are_fleet_records() {
        let dir = tempdir();
        let (_db, outbox) = open(&dir);
        let edge = Edge { ts_ns: 9, src: "a".into(), dst: "b".into(), host: "h".into(), data: EdgeData::Fork(NoAttrs {}) };
        let seq = outbox.append("edge", &serde_json::to_vec(&edge).unwrap(), 5).unwrap();
        let batches = outbox.read_batches(0, 4, MAX_BATCH_BYTES).unwrap();
        let expected = serde_json::to_vec(&FleetRecord { seq, item: FleetItem::Edge(edge) }).unwrap();
        assert_eq!(batches[0][0].line, expected);
        assert_eq!(batches[0][0].appended_ns, 5);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn acked_records_leave_and_numbers_are_never_reused() {
        let dir = tempdir();
        let first;
        {
            let (db, outbox) = open(&dir);
            first = outbox.next_seq();
            assert!(first >= crate::host::procfs::now_wall_ns() / 1_000 - 60_000_000, "numbers start at the clock");
            for i in 0..10u64 {
                assert_eq!(outbox.append("edge", b"{}", i).unwrap(), first + i);
            }
            outbox.acknowledge(first + 3).unwrap();
            assert_eq!(outbox.backlog().unwrap(), (6, Some(4)));
            let batches = outbox.read_batches(outbox.acked().unwrap(), 4, MAX_BATCH_BYTES).unwrap();
            assert_eq!(batches.iter().flatten().map(|p| p.seq).collect::<Vec<_>>(), (first + 4..first + 10).collect::<Vec<_>>());
            db.flush().unwrap();
            // No clean close: a crash. Numbers up to the reservation may be in use.
        }
        {
            let (_db, outbox) = open(&dir);
            assert!(outbox.next_seq() > first + 9, "a crash must not reuse numbers");
            assert_eq!(outbox.backlog().unwrap().0, 6, "the unacknowledged records survive");
            let last = outbox.append("edge", b"{}", 1).unwrap();
            outbox.close().unwrap();
            drop(outbox);
            drop(_db);
            let (_db, again) = open(&dir);
            assert!(again.next_seq() > last, "a clean stop does not reuse numbers either");
        }
        std::fs::remove_dir_all(&dir).ok();
        // A new database of the same host (the old one moved aside) numbers above the old one.
        let fresh = tempdir();
        let (_db, outbox) = open(&fresh);
        assert!(outbox.next_seq() > first + 10, "a new database starts above the old one's numbers");
        std::fs::remove_dir_all(&fresh).ok();
    }

    #[test]
    fn a_backfill_cut_by_a_crash_is_not_queued_twice() {
        let dir = tempdir();
        {
            let (db, outbox) = open(&dir);
            outbox.begin_backfill().unwrap();
            for _ in 0..3 {
                outbox.append("node", b"{}", 0).unwrap();
            }
            db.flush().unwrap();
            // Crash: no mark_backfilled.
        }
        let (_db, outbox) = open(&dir);
        assert!(!outbox.backfilled().unwrap());
        outbox.begin_backfill().unwrap();
        assert_eq!(outbox.backlog().unwrap().0, 0, "the cut backfill's records are gone");
        for _ in 0..3 {
            outbox.append("node", b"{}", 0).unwrap();
        }
        outbox.mark_backfilled().unwrap();
        assert_eq!(outbox.backlog().unwrap().0, 3);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn an_oversized_record_is_set_aside_not_lost() {
        let dir = tempdir();
        let (db, outbox) = open(&dir);
        let big = outbox.append("edge", &vec![b'x'; 1000], 0).unwrap();
        let small = outbox.append("edge", b"{}", 0).unwrap();
        outbox.set_aside(big).unwrap();
        let left: Vec<u64> = outbox.read_batches(outbox.acked().unwrap(), 4, MAX_BATCH_BYTES).unwrap().into_iter().flatten().map(|p| p.seq).collect();
        assert_eq!(left, vec![small]);
        assert!(db.open_tree(OVERSIZED_TREE).unwrap().get(big.to_be_bytes()).unwrap().is_some(), "kept locally");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn batches_respect_the_limits() {
        let dir = tempdir();
        let (_db, outbox) = open(&dir);
        let big = vec![b'x'; MAX_BATCH_BYTES / 3];
        for _ in 0..7 {
            outbox.append("edge", &big, 0).unwrap();
        }
        let batches = outbox.read_batches(0, 10, MAX_BATCH_BYTES).unwrap();
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 2, 1]);
        assert_eq!(outbox.read_batches(0, 2, MAX_BATCH_BYTES).unwrap().len(), 2, "memory is bounded by max_batches");
        std::fs::remove_dir_all(&dir).ok();
    }
}
