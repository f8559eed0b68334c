//! Databases of earlier versions, converted in place when a sensor opens them
//! (`sensor_common::graph::database` says what each version holds). Each step can run
//! again after a crash and gives the same result: the version is written last.
use std::collections::BTreeMap;

use sensor_common::graph::{
    TaintedFile,
    database::{BucketEntry, ChunkKey, DATABASE_VERSION, EDGES_PER_CHUNK, bucket_key},
    trees, v1,
};

use super::{GraphStore, StoreError, json_err};

/// Edges of a version-1 database that did not convert (see `upgrade_from_v1`).
pub(super) const UNCONVERTED_V1: &str = "edges_unconverted_v1";

impl GraphStore {
    /// Rewrites a version-1 database's edges as version 2 (`graph::v1` says what differs),
    /// in one atomic batch, then records the new version. An edge that does not convert is
    /// moved, as it was, to the `edges_unconverted_v1` tree - kept, not lost - and logged.
    /// Running it again on converted edges changes nothing, so a crash before the version
    /// is written only repeats it.
    pub(super) fn upgrade_from_v1(&self) -> Result<(), StoreError> {
        let unconverted = self.db.open_tree(UNCONVERTED_V1)?;
        let edges = self.db.open_tree(trees::EDGES)?;
        let (mut batch, mut moved, mut converted) = (sled::Batch::default(), sled::Batch::default(), 0u64);
        let mut failed = 0u64;
        for record in edges.iter() {
            let (key, value) = record?;
            match v1::edge_from_v1(&value).and_then(|edge| serde_json::to_vec(&edge)) {
                Ok(json) => {
                    batch.insert(key, json);
                    converted += 1;
                }
                Err(e) => {
                    tracing::warn!("graph database {}: edge record not converted from schema 1 ({e}); kept in tree {UNCONVERTED_V1}", self.path.display());
                    moved.insert(key.clone(), value);
                    batch.remove(key);
                    failed += 1;
                }
            }
        }
        unconverted.apply_batch(moved)?;
        edges.apply_batch(batch)?;
        self.meta.insert("schema_version", &2u32.to_be_bytes())?;
        self.db.flush()?;
        tracing::info!("graph database {}: converted {converted} edges from schema 1 to 2 ({failed} kept aside)", self.path.display());
        Ok(())
    }

    /// Rewrites a version-2 database's edges as chunks and its untrusted files as buckets
    /// (version 3), then drops the old trees. The chunks are numbered from 0 in the old
    /// (time) order, so running it again writes the same records.
    pub(super) fn upgrade_to_chunks(&self) -> Result<(), StoreError> {
        let edges = self.db.open_tree(trees::EDGES)?;
        let untrusted = self.db.open_tree(trees::UNTRUSTED_FILES)?;
        let (mut chunk, mut value, mut in_chunk, mut min_ts, mut converted) = (0u64, Vec::new(), 0u32, 0u64, 0u64);
        let write_chunk = |chunk: &mut u64, value: &mut Vec<u8>, in_chunk: &mut u32, min_ts: u64| -> Result<(), StoreError> {
            if *in_chunk > 0 {
                let key = ChunkKey { min_ts_ns: min_ts, chunk: *chunk, edges: *in_chunk };
                self.edge_chunks.insert(key.to_bytes(), std::mem::take(value))?;
                *chunk += 1;
                *in_chunk = 0;
            }
            Ok(())
        };
        for record in edges.iter() {
            let (key, json) = record?;
            if in_chunk == 0 {
                min_ts = key.get(..8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_be_bytes);
            }
            value.extend_from_slice(&json);
            value.push(b'\n');
            in_chunk += 1;
            converted += 1;
            if in_chunk as usize == EDGES_PER_CHUNK {
                write_chunk(&mut chunk, &mut value, &mut in_chunk, min_ts)?;
            }
        }
        write_chunk(&mut chunk, &mut value, &mut in_chunk, min_ts)?;
        let mut buckets: BTreeMap<[u8; 12], Vec<BucketEntry>> = BTreeMap::new();
        for record in untrusted.iter() {
            let (key, json) = record?;
            let (Some(dev), Some(ino)) = (key.get(..4).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes), key.get(4..12).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes)) else {
                return Err(StoreError::Corrupt { tree: trees::UNTRUSTED_FILES, message: "bad key length".into() });
            };
            let file: TaintedFile = serde_json::from_slice(&json).map_err(|e| json_err(trees::UNTRUSTED_FILES, e))?;
            buckets.entry(bucket_key(dev, ino)).or_default().push(BucketEntry { ino, file });
        }
        let files: usize = buckets.values().map(Vec::len).sum();
        for (key, mut entries) in buckets {
            entries.sort_by_key(|e| e.ino);
            self.untrusted.insert(key, serde_json::to_vec(&entries).map_err(|e| json_err(trees::UNTRUSTED_BUCKETS, e))?)?;
        }
        self.db.flush()?;
        self.meta.insert("schema_version", &DATABASE_VERSION.to_be_bytes())?;
        self.db.flush()?;
        self.db.drop_tree(trees::EDGES)?;
        self.db.drop_tree(trees::UNTRUSTED_FILES)?;
        tracing::info!("graph database {}: rewrote {converted} edges as {chunk} chunks and {files} untrusted files as buckets (database version 2 to {DATABASE_VERSION})", self.path.display());
        Ok(())
    }
}
