//! Applies a [`RowSet`] (and the dead letters that came with it) in one transaction.
//!
//! Rows go by binary COPY into session-local staging tables, then
//! `INSERT .. SELECT .. ON CONFLICT` into the real ones: COPY is the fast path into
//! PostgreSQL but cannot skip rows that are already stored, and a record delivered twice
//! (a lost ack, a restarted sensor, a second collector) must be stored once. Every step
//! takes its row locks in key order (hosts, then nodes, edges, transfers, each sorted), so
//! concurrent writers wait for each other but never deadlock.

use std::pin::pin;

use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Statement, Transaction};

use super::partitions::Partitions;
use super::rows::RowSet;
use crate::deadletter::DeadLetter;

const CREATE_STAGING: &str = "
CREATE TEMP TABLE IF NOT EXISTS stage_nodes (host text, id text, kind text, first_seen_ns bigint, seq bigint, node text)
    ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_edges (host text, origin text, seq bigint, ts_ns bigint, kind text, src text, dst text, attrs text)
    ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_transfers (host text, origin text, seq bigint, ts_ns bigint, kind text, file text, remote text,
    ip text, protocol text, name text) ON COMMIT DELETE ROWS;
";

/// A host's row: hostname and disk ids from the newest host info (a dump's header fills
/// them only while they are unknown), `last_seq` only grows.
const UPSERT_HOST: &str = "
INSERT INTO hosts AS h (host, hostname, disk_ids, info_seq, last_seq)
VALUES ($1, coalesce($2, ''), coalesce($3, '{}'::text[]), $4, $5)
ON CONFLICT (host) DO UPDATE SET
    hostname = CASE WHEN $2 IS NOT NULL AND (EXCLUDED.info_seq > h.info_seq OR h.hostname = '') THEN EXCLUDED.hostname ELSE h.hostname END,
    disk_ids = CASE WHEN $2 IS NOT NULL AND (EXCLUDED.info_seq > h.info_seq OR h.hostname = '') THEN EXCLUDED.disk_ids ELSE h.disk_ids END,
    info_seq = greatest(h.info_seq, EXCLUDED.info_seq),
    last_seq = greatest(h.last_seq, EXCLUDED.last_seq),
    last_seen = now()";

/// A node's newest state wins; DISTINCT ON because one statement may not update a row twice.
const MERGE_NODES: &str = "
INSERT INTO nodes AS n (host, id, kind, first_seen_ns, seq, node)
SELECT DISTINCT ON (host, id) host, id, kind, first_seen_ns, seq, node::jsonb FROM stage_nodes ORDER BY host, id, seq DESC
ON CONFLICT (host, id) DO UPDATE SET kind = EXCLUDED.kind, first_seen_ns = EXCLUDED.first_seen_ns, seq = EXCLUDED.seq, node = EXCLUDED.node
WHERE n.seq < EXCLUDED.seq";

const MERGE_EDGES: &str = "
INSERT INTO edges (host, origin, seq, ts_ns, kind, src, dst, attrs)
SELECT host, origin, seq, ts_ns, kind, src, dst, attrs::jsonb FROM stage_edges ORDER BY host, origin, seq, ts_ns
ON CONFLICT DO NOTHING";

const MERGE_TRANSFERS: &str = "
INSERT INTO transfers (host, origin, seq, ts_ns, kind, file, remote, ip, protocol, name)
SELECT host, origin, seq, ts_ns, kind, file, remote, ip, protocol, name FROM stage_transfers ORDER BY host, origin, seq
ON CONFLICT DO NOTHING";

const INSERT_DEAD_LETTERS: &str = "
INSERT INTO dead_letters (subject, host, reason, detail, payload)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[])";

/// What one transaction stored (rows already present are not counted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub nodes: u64,
    pub edges: u64,
    pub transfers: u64,
    pub dead_letters: u64,
}

impl std::ops::AddAssign for Written {
    fn add_assign(&mut self, other: Self) {
        self.nodes += other.nodes;
        self.edges += other.edges;
        self.transfers += other.transfers;
        self.dead_letters += other.dead_letters;
    }
}

/// A writer bound to one connection (its staging tables and statements live in that
/// session): make a new one after reconnecting.
pub struct Writer {
    partitions: Partitions,
    upsert_host: Statement,
    insert_dead_letters: Statement,
}

impl Writer {
    pub async fn new(client: &Client) -> Result<Self, tokio_postgres::Error> {
        client.batch_execute(CREATE_STAGING).await?;
        let partitions = Partitions::load(client).await?;
        Ok(Self {
            partitions,
            upsert_host: client.prepare(UPSERT_HOST).await?,
            insert_dead_letters: client.prepare(INSERT_DEAD_LETTERS).await?,
        })
    }

    /// Stores `rows` and `dead` in one transaction (the partitions the edges need are
    /// created before it, in their own).
    pub async fn write(&mut self, client: &mut Client, rows: &RowSet, dead: &[DeadLetter]) -> Result<Written, tokio_postgres::Error> {
        self.partitions.ensure(client, rows.edge_days()).await?;
        let tx = client.transaction().await?;
        let mut written = Written::default();
        for (host, row) in &rows.hosts {
            let info = row.info.as_ref();
            tx.execute(
                &self.upsert_host,
                &[host, &info.map(|i| i.hostname.as_str()), &info.map(|i| &i.disk_ids), &row.info_seq, &row.last_seq],
            )
            .await?;
        }
        if !rows.nodes.is_empty() {
            copy_in(&tx, "stage_nodes", &[Type::TEXT, Type::TEXT, Type::TEXT, Type::INT8, Type::INT8, Type::TEXT], &rows.nodes, |n| {
                [&n.host, &n.id, &n.kind, &n.first_seen_ns, &n.seq, &n.json]
            })
            .await?;
            written.nodes = tx.execute(MERGE_NODES, &[]).await?;
        }
        if !rows.edges.is_empty() {
            let types = [Type::TEXT, Type::TEXT, Type::INT8, Type::INT8, Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT];
            copy_in(&tx, "stage_edges", &types, &rows.edges, |e| [&e.host, &e.origin, &e.seq, &e.ts_ns, &e.kind, &e.src, &e.dst, &e.attrs])
                .await?;
            written.edges = tx.execute(MERGE_EDGES, &[]).await?;
        }
        if !rows.transfers.is_empty() {
            let types = [Type::TEXT, Type::TEXT, Type::INT8, Type::INT8, Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT];
            copy_in(&tx, "stage_transfers", &types, &rows.transfers, |t| {
                [&t.host, &t.origin, &t.seq, &t.ts_ns, &t.kind, &t.file, &t.remote, &t.ip, &t.protocol, &t.name]
            })
            .await?;
            written.transfers = tx.execute(MERGE_TRANSFERS, &[]).await?;
        }
        if !dead.is_empty() {
            written.dead_letters = self.insert_dead_letters(&tx, dead).await?;
        }
        tx.commit().await?;
        Ok(written)
    }

    async fn insert_dead_letters(&self, tx: &Transaction<'_>, dead: &[DeadLetter]) -> Result<u64, tokio_postgres::Error> {
        let subjects: Vec<&str> = dead.iter().map(|d| d.subject.as_str()).collect();
        let hosts: Vec<Option<&str>> = dead.iter().map(|d| d.host.as_deref()).collect();
        let reasons: Vec<&str> = dead.iter().map(|d| d.reason).collect();
        let details: Vec<&str> = dead.iter().map(|d| d.detail.as_str()).collect();
        let payloads: Vec<&[u8]> = dead.iter().map(|d| d.payload.as_slice()).collect();
        tx.execute(&self.insert_dead_letters, &[&subjects, &hosts, &reasons, &details, &payloads]).await
    }
}

/// Binary COPY of `rows` into `table`, one `fields` array per row.
async fn copy_in<'a, R, const N: usize>(
    tx: &Transaction<'_>,
    table: &str,
    types: &[Type; N],
    rows: &'a [R],
    fields: impl Fn(&'a R) -> [&'a (dyn ToSql + Sync); N],
) -> Result<(), tokio_postgres::Error> {
    let sink = tx.copy_in(&format!("COPY {table} FROM STDIN (FORMAT binary)")).await?;
    let mut writer = pin!(BinaryCopyInWriter::new(sink, types));
    for row in rows {
        writer.as_mut().write(&fields(row)).await?;
    }
    writer.finish().await?;
    Ok(())
}
