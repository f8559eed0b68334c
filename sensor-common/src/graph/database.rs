//! How a sensor database lays the graph out in sled: what the sensor writes and
//! `vtrail-analysis` reads, so both sides share one definition.
//!
//! The database version (the `schema_version` key of the `meta` tree) says the layout and
//! the schema of the records in it:
//! - 1 and 2: one sled record per edge (`edges`) and per untrusted file
//!   (`untrusted_files`); records of schema 1 or 2.
//! - 3: records of schema 2, edges written in chunks (`edge_chunks`) and untrusted files
//!   in buckets of neighbouring inodes (`untrusted_buckets`). sled costs a few
//!   microseconds per record whatever its size (it copies a leaf at every insert and
//!   splits leaves past 16 entries): a worm creating files makes one edge and one
//!   untrusted file per event, so per-record storage capped ingest at about 30,000
//!   events/s on a 2-vCPU file server. A chunk is one record for up to
//!   [`EDGES_PER_CHUNK`] edges, and a worm's files, created one after the other, get
//!   neighbouring inode numbers, so they share buckets.
//!
//! Nodes keep one record each (`nodes`, by node id): they are read and merged by id.

use serde::{Deserialize, Serialize};

use super::{SCHEMA_VERSION, TaintedFile};

/// The version a sensor writes.
pub const DATABASE_VERSION: u32 = 3;
/// The versions readers accept (older ones are converted by the sensor when it opens them).
pub const READABLE_DATABASE_VERSIONS: [u32; 3] = [1, 2, 3];

/// The schema of the records in a database of `version` (see the module text).
pub fn record_schema(database_version: u32) -> u32 {
    database_version.min(SCHEMA_VERSION)
}

/// Edges in one chunk, at most: a commit of more is split.
pub const EDGES_PER_CHUNK: usize = 1024;

/// Key of an `edge_chunks` record: the earliest `ts_ns` in it, the chunk's number (in
/// write order, unique), and how many edges it holds (so counting them reads no value).
/// Sorted by time first, so readers walk chunks in time order; chunks can overlap in time
/// (an event reported late), which readers merge (the edges within a chunk are sorted).
/// The value is the edges' JSON (`Edge`, schema 2), one per line, in time order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkKey {
    pub min_ts_ns: u64,
    pub chunk: u64,
    pub edges: u32,
}

impl ChunkKey {
    pub const LEN: usize = 20;

    pub fn to_bytes(self) -> [u8; Self::LEN] {
        let mut key = [0u8; Self::LEN];
        key[..8].copy_from_slice(&self.min_ts_ns.to_be_bytes());
        key[8..16].copy_from_slice(&self.chunk.to_be_bytes());
        key[16..].copy_from_slice(&self.edges.to_be_bytes());
        key
    }

    /// None for a key of another length (a damaged record).
    pub fn from_bytes(key: &[u8]) -> Option<Self> {
        let key: &[u8; Self::LEN] = key.try_into().ok()?;
        Some(Self {
            min_ts_ns: u64::from_be_bytes(key[..8].try_into().ok()?),
            chunk: u64::from_be_bytes(key[8..16].try_into().ok()?),
            edges: u32::from_be_bytes(key[16..].try_into().ok()?),
        })
    }
}

/// The edge records of a chunk's value (JSON lines; an empty line is none).
pub fn chunk_records(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b'\n').filter(|line| !line.is_empty())
}

/// Inodes per `untrusted_buckets` record: inode numbers `ino` with the same
/// `ino / INODES_PER_BUCKET` on one device share it.
pub const INODES_PER_BUCKET: u64 = 64;

/// Key of an `untrusted_buckets` record: dev (u32 BE) ++ ino / [`INODES_PER_BUCKET`] (u64 BE).
pub fn bucket_key(dev: u32, ino: u64) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..4].copy_from_slice(&dev.to_be_bytes());
    key[4..].copy_from_slice(&(ino / INODES_PER_BUCKET).to_be_bytes());
    key
}

/// The device of a bucket key, None for a key of another length.
pub fn bucket_dev(key: &[u8]) -> Option<u32> {
    (key.len() == 12).then(|| u32::from_be_bytes([key[0], key[1], key[2], key[3]]))
}

/// One file of a bucket: the value is a JSON array of them, by inode number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketEntry {
    pub ino: u64,
    #[serde(flatten)]
    pub file: TaintedFile,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_keys_round_trip_and_sort_by_time_first() {
        let a = ChunkKey { min_ts_ns: 5, chunk: 9, edges: 3 };
        let b = ChunkKey { min_ts_ns: 6, chunk: 1, edges: 1024 };
        assert_eq!(ChunkKey::from_bytes(&a.to_bytes()), Some(a));
        assert!(a.to_bytes() < b.to_bytes());
        assert_eq!(ChunkKey::from_bytes(&[0; 16]), None);
    }

    #[test]
    fn neighbouring_inodes_share_a_bucket() {
        assert_eq!(bucket_key(1, 64), bucket_key(1, 127));
        assert_ne!(bucket_key(1, 63), bucket_key(1, 64));
        assert_ne!(bucket_key(1, 64), bucket_key(2, 64));
        assert_eq!(bucket_dev(&bucket_key(7, 1)), Some(7));
    }

    #[test]
    fn chunk_records_skip_empty_lines() {
        let records: Vec<&[u8]> = chunk_records(b"{\"a\":1}\n\n{\"b\":2}\n").collect();
        assert_eq!(records, vec![&b"{\"a\":1}"[..], &b"{\"b\":2}"[..]]);
    }
}
