//! One host's sensor database, read through the tree names of `sensor_common::graph::trees`.
//! sled has no read-only mode: opening takes the database's lock, so a database in use by
//! a running sensor cannot be read (the error says so).

use std::path::Path;

use sensor_common::graph::{
    HostInfo, Node,
    database::{ChunkKey, READABLE_DATABASE_VERSIONS, chunk_records, record_schema},
    edge_from_json, trees,
};

use super::InputSummary;
use crate::error::LoadError;
use crate::index::GraphBuilder;

/// Opens the database, waiting up to 2 s while its lock is held: a sensor that has just
/// stopped (or a process that just dropped it) releases the lock only when sled's
/// background flusher ends. A database in use for longer still fails, with sled's error.
fn open_when_released(path: &Path) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match sled::Config::new().path(path).open() {
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

pub fn load_database(path: &Path, builder: &mut GraphBuilder) -> Result<InputSummary, LoadError> {
    // sled creates a database where there is none: refuse a directory that is not one.
    if !path.join("conf").exists() && !path.join("db").exists() {
        return Err(LoadError::NotADatabase { path: path.into() });
    }
    let sled_error = |source| LoadError::Sled {
        path: path.into(),
        source,
    };
    let db = open_when_released(path).map_err(sled_error)?;
    let meta = db.open_tree(trees::META).map_err(sled_error)?;

    let version =
        meta.get("schema_version")
            .map_err(sled_error)?
            .ok_or(LoadError::MissingMeta {
                path: path.into(),
                key: "schema_version",
            })?;
    let version = <[u8; 4]>::try_from(version.as_ref())
        .map(u32::from_be_bytes)
        .map_err(|_| LoadError::BadMeta {
            path: path.into(),
            key: "schema_version",
            detail: "not a 4-byte big-endian u32".into(),
        })?;
    if !READABLE_DATABASE_VERSIONS.contains(&version) {
        return Err(LoadError::UnknownDatabaseVersion {
            path: path.into(),
            found: version,
        });
    }
    let host = meta
        .get("host")
        .map_err(sled_error)?
        .ok_or(LoadError::MissingMeta {
            path: path.into(),
            key: "host",
        })?;
    let host: HostInfo = serde_json::from_slice(&host).map_err(|e| LoadError::BadMeta {
        path: path.into(),
        key: "host",
        detail: e.to_string(),
    })?;
    builder.add_host_info(&host, Some(&path.display().to_string()))?;

    let mut summary = InputSummary {
        path: path.display().to_string(),
        format: "database",
        host: host.id.clone(),
        ..InputSummary::default()
    };
    let nodes = db.open_tree(trees::NODES).map_err(sled_error)?;
    for (index, entry) in nodes.iter().enumerate() {
        let Ok((_, value)) = entry.map_err(|e| read_failure(&mut summary, "nodes", index, e))
        else {
            break;
        };
        match serde_json::from_slice::<Node>(&value) {
            Ok(node) => {
                summary.nodes += 1;
                builder.add_node(node)?;
            }
            Err(error) => bad_record(&mut summary, "nodes", index, error),
        }
    }
    let schema = record_schema(version);
    let mut add_edge = |summary: &mut InputSummary, index: usize, record: &[u8], tree: &str| {
        match edge_from_json(schema, record) {
            Ok(edge) => {
                summary.edges += 1;
                builder.add_edge(edge)
            }
            Err(error) => {
                bad_record(summary, tree, index, error);
                Ok(())
            }
        }
    };
    if version < 3 {
        // One record per edge.
        let edges = db.open_tree(trees::EDGES).map_err(sled_error)?;
        for (index, entry) in edges.iter().enumerate() {
            let Ok((_, value)) = entry.map_err(|e| read_failure(&mut summary, "edges", index, e))
            else {
                break;
            };
            add_edge(&mut summary, index, &value, "edges")?;
        }
    } else {
        // Chunks of edges, one per line (the builder orders them by time).
        let chunks = db.open_tree(trees::EDGE_CHUNKS).map_err(sled_error)?;
        let mut index = 0;
        for (chunk, entry) in chunks.iter().enumerate() {
            let Ok((key, value)) =
                entry.map_err(|e| read_failure(&mut summary, trees::EDGE_CHUNKS, chunk, e))
            else {
                break;
            };
            if ChunkKey::from_bytes(&key).is_none() {
                bad_chunk_key(&mut summary, chunk, key.len());
            }
            for record in chunk_records(&value) {
                add_edge(&mut summary, index, record, trees::EDGE_CHUNKS)?;
                index += 1;
            }
        }
    }
    Ok(summary)
}

fn bad_record(summary: &mut InputSummary, tree: &str, index: usize, error: serde_json::Error) {
    summary.bad_records += 1;
    if summary.first_bad_lines.len() < 5 {
        summary.first_bad_lines.push(index as u64 + 1);
        summary
            .first_bad_reasons
            .push(format!("record {} of tree `{tree}`: {error}", index + 1));
    }
}

fn bad_chunk_key(summary: &mut InputSummary, chunk: usize, len: usize) {
    summary.bad_records += 1;
    if summary.first_bad_reasons.len() < 5 {
        summary.first_bad_lines.push(chunk as u64 + 1);
        summary.first_bad_reasons.push(format!(
            "chunk {} of tree `{}`: a key of {len} bytes (its edges are read all the same)",
            chunk + 1,
            trees::EDGE_CHUNKS
        ));
    }
}

fn read_failure(summary: &mut InputSummary, tree: &str, index: usize, error: sled::Error) {
    summary.truncated = Some(format!(
        "reading tree `{tree}` failed at record {} ({error}); records before it were loaded",
        index + 1
    ));
}
