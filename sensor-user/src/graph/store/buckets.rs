//! Untrusted files in buckets of neighbouring inodes (database version 3,
//! `sensor_common::graph::database`): a bucket read or changed stays decoded in memory;
//! changed ones are written at the next commit, so a worm's run of new files costs one
//! sled write per bucket instead of one per file.
use std::collections::HashMap;

use sensor_common::graph::{
    TaintedFile,
    database::{BucketEntry, bucket_key},
    trees,
};

use super::{StoreError, json_err};

/// Decoded buckets held at most; past it, the unchanged ones are let go (changed ones are
/// written first when all are changed).
pub(super) const BUCKETS_HELD: usize = 4096;

pub(super) type BucketKey = [u8; 12];
/// A bucket to write (`Some` value) or remove (`None`: it is empty).
pub(super) type BucketWrite = (BucketKey, Option<Vec<u8>>);

#[derive(Default)]
pub(super) struct Bucket {
    /// By inode number.
    entries: Vec<BucketEntry>,
    changed: bool,
}

impl Bucket {
    pub(super) fn decode(value: &[u8]) -> Result<Self, StoreError> {
        let entries = serde_json::from_slice(value).map_err(|e| json_err(trees::UNTRUSTED_BUCKETS, e))?;
        Ok(Self { entries, changed: false })
    }

    /// None when empty: the record is removed.
    fn encode(&self) -> Result<Option<Vec<u8>>, StoreError> {
        if self.entries.is_empty() {
            return Ok(None);
        }
        serde_json::to_vec(&self.entries).map(Some).map_err(|e| json_err(trees::UNTRUSTED_BUCKETS, e))
    }

    pub(super) fn entries(&self) -> &[BucketEntry] {
        &self.entries
    }

    pub(super) fn get(&self, ino: u64) -> Option<&TaintedFile> {
        self.entries.binary_search_by_key(&ino, |e| e.ino).ok().map(|i| &self.entries[i].file)
    }

    /// Sets `ino`'s record; true if it had none.
    pub(super) fn set(&mut self, ino: u64, file: &TaintedFile) -> bool {
        match self.entries.binary_search_by_key(&ino, |e| e.ino) {
            Ok(i) => {
                if self.entries[i].file != *file {
                    self.entries[i].file = file.clone();
                    self.changed = true;
                }
                false
            }
            Err(i) => {
                self.entries.insert(i, BucketEntry { ino, file: file.clone() });
                self.changed = true;
                true
            }
        }
    }

    /// Removes `ino`'s record; true if it had one.
    pub(super) fn remove(&mut self, ino: u64) -> bool {
        match self.entries.binary_search_by_key(&ino, |e| e.ino) {
            Ok(i) => {
                self.entries.remove(i);
                self.changed = true;
                true
            }
            Err(_) => false,
        }
    }
}

/// The buckets held in memory.
#[derive(Default)]
pub(super) struct HeldBuckets {
    buckets: HashMap<BucketKey, Bucket>,
}

impl HeldBuckets {
    pub(super) fn key(dev: u32, ino: u64) -> BucketKey {
        bucket_key(dev, ino)
    }

    pub(super) fn get_mut(&mut self, key: &BucketKey) -> Option<&mut Bucket> {
        self.buckets.get_mut(key)
    }

    pub(super) fn is_full(&self) -> bool {
        self.buckets.len() >= BUCKETS_HELD
    }

    /// Lets the unchanged buckets go.
    pub(super) fn release_unchanged(&mut self) {
        self.buckets.retain(|_, b| b.changed);
    }

    pub(super) fn hold(&mut self, key: BucketKey, bucket: Bucket) -> &mut Bucket {
        self.buckets.entry(key).or_insert(bucket)
    }

    /// What to write for the changed buckets: (key, Some(value)) or (key, None) to remove.
    pub(super) fn changes(&self) -> Result<Vec<BucketWrite>, StoreError> {
        self.buckets.iter().filter(|(_, b)| b.changed).map(|(k, b)| Ok((*k, b.encode()?))).collect()
    }

    /// After `changes` were written.
    pub(super) fn written(&mut self) {
        for bucket in self.buckets.values_mut() {
            bucket.changed = false;
        }
        if self.is_full() {
            self.buckets.clear();
        }
    }
}
