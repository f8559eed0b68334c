//! `vtrail-collect status`: what the store holds (schema version, per host counts and last
//! sequence, dead letters by reason) and, given a NATS server, how far the durable consumer
//! is behind.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream;
use serde::Serialize;
use tokio_postgres::Client;

use crate::db::migrate;
use crate::nats::{self, NatsTarget};

#[derive(Debug, Serialize)]
pub struct HostStatus {
    pub host: String,
    pub hostname: String,
    pub last_seq: i64,
    pub nodes: i64,
    pub edges: i64,
    /// UTC, RFC 3339.
    pub last_seen: String,
}

#[derive(Debug, Serialize)]
pub struct ConsumerStatus {
    pub stream: String,
    pub durable: String,
    /// Messages in the stream not yet delivered to any collector.
    pub pending: u64,
    /// Delivered, not yet acknowledged.
    pub ack_pending: usize,
    pub redelivered: usize,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub schema_version: i32,
    pub binary_schema_version: i32,
    pub hosts: Vec<HostStatus>,
    pub dead_letters: BTreeMap<String, i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer: Option<ConsumerStatus>,
}

const HOSTS: &str = "
SELECT h.host, h.hostname, h.last_seq,
       (SELECT count(*) FROM nodes n WHERE n.host = h.host),
       (SELECT count(*) FROM edges e WHERE e.host = h.host),
       to_char(h.last_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
FROM hosts h ORDER BY h.host";

pub async fn of_store(client: &Client) -> anyhow::Result<Status> {
    let schema_version = migrate::current_version(client).await?;
    let mut status = Status {
        schema_version,
        binary_schema_version: migrate::latest_version(),
        hosts: Vec::new(),
        dead_letters: BTreeMap::new(),
        consumer: None,
    };
    if schema_version == 0 {
        return Ok(status);
    }
    migrate::require_current(client).await?;
    for row in client.query(HOSTS, &[]).await.context("count the hosts' rows")? {
        status.hosts.push(HostStatus {
            host: row.get(0),
            hostname: row.get(1),
            last_seq: row.get(2),
            nodes: row.get(3),
            edges: row.get(4),
            last_seen: row.get(5),
        });
    }
    for row in client.query("SELECT reason, count(*) FROM dead_letters GROUP BY reason ORDER BY reason", &[]).await? {
        status.dead_letters.insert(row.get(0), row.get(1));
    }
    Ok(status)
}

/// The durable consumer's backlog (a server that does not answer within a few seconds is
/// an error, not a wait: status is for a person looking).
pub async fn of_consumer(target: &NatsTarget, stream: &str, durable: &str) -> anyhow::Result<ConsumerStatus> {
    let ask = async {
        let client = nats::connect(target, "vtrail-collect status").await?;
        let js = jetstream::new(client);
        let stream_handle = js.get_stream(stream).await.with_context(|| format!("open stream {stream}"))?;
        let mut consumer: jetstream::consumer::PullConsumer =
            stream_handle.get_consumer(durable).await.map_err(|e| anyhow::anyhow!("open consumer {durable} of stream {stream}: {e}"))?;
        let info = consumer.info().await.with_context(|| format!("read consumer {durable}"))?;
        anyhow::Ok(ConsumerStatus {
            stream: stream.into(),
            durable: durable.into(),
            pending: info.num_pending,
            ack_pending: info.num_ack_pending,
            redelivered: info.num_redelivered,
        })
    };
    tokio::time::timeout(Duration::from_secs(10), ask)
        .await
        .with_context(|| format!("NATS at {} did not answer within 10 s", target.describe()))?
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "schema version {} (this binary: {})", self.schema_version, self.binary_schema_version)?;
        writeln!(f, "hosts: {}", self.hosts.len())?;
        for h in &self.hosts {
            writeln!(
                f,
                "  {} ({}): last seq {}, {} nodes, {} edges, last seen {}",
                h.host,
                if h.hostname.is_empty() { "?" } else { &h.hostname },
                h.last_seq,
                h.nodes,
                h.edges,
                h.last_seen
            )?;
        }
        let dead: i64 = self.dead_letters.values().sum();
        writeln!(f, "dead letters: {dead}")?;
        for (reason, n) in &self.dead_letters {
            writeln!(f, "  {reason}: {n}")?;
        }
        if let Some(c) = &self.consumer {
            writeln!(f, "consumer {} on {}: {} pending, {} awaiting ack, {} redelivered", c.durable, c.stream, c.pending, c.ack_pending, c.redelivered)?;
        }
        Ok(())
    }
}
