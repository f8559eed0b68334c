//! `vtrail-collect bench` (hidden; `cargo xtask bench` runs it): publishes N edges from
//! many hosts to JetStream as fast as it acknowledges them, consumes them with in-process
//! collectors into PostgreSQL, and reports edges/s end to end (first publish -> last row
//! committed) and the lag from publish to queryable (commit) per batch.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use async_nats::jetstream;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use sensor_common::graph::fleet::{
    BatchHeader, FleetItem, FleetRecord, MAX_BATCH_BYTES, MAX_BATCH_RECORDS, SCHEMA_HEADER, encode_batch, graph_subject,
};
use sensor_common::graph::{Edge, EdgeData, FileWriteAttrs, NoAttrs, SCHEMA_VERSION, file_node_id, process_node_id};
use serde::Serialize;

use crate::consume::{self, Committed, RunSettings};
use crate::nats;

/// Publish acknowledgements awaited at once: enough to keep the server busy.
const PUBLISHES_IN_FLIGHT: usize = 256;

/// Splits one host's records (consecutive sequences) into batches as a sensor sends them:
/// at most `MAX_BATCH_RECORDS` records and about `MAX_BATCH_BYTES` of body each.
pub fn pack_batches(host: &str, records: &[FleetRecord]) -> Vec<(BatchHeader, Vec<u8>)> {
    let lines: Vec<(u64, Vec<u8>)> = records
        .iter()
        .map(|r| (r.seq, serde_json::to_vec(r).expect("a graph record serializes")))
        .collect();
    let mut batches = Vec::new();
    let mut start = 0;
    while start < lines.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < lines.len() && end - start < MAX_BATCH_RECORDS && (end == start || bytes + lines[end].1.len() < MAX_BATCH_BYTES) {
            bytes += lines[end].1.len() + 1;
            end += 1;
        }
        let header = BatchHeader::new(host, lines[start].0, lines[end - 1].0, (end - start) as u64);
        let refs: Vec<&[u8]> = lines[start..end].iter().map(|(_, l)| l.as_slice()).collect();
        batches.push((header.clone(), encode_batch(&header, &refs)));
        start = end;
    }
    batches
}

/// The `Nats-Msg-Id` and schema headers a sensor sends with a batch.
pub fn batch_headers(header: &BatchHeader) -> async_nats::HeaderMap {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", header.message_id().as_str());
    headers.insert(SCHEMA_HEADER, SCHEMA_VERSION.to_string().as_str());
    headers
}

/// A host's synthetic activity: forks and writes, as a busy file server records them.
fn host_records(host: &str, count: u64, ts_ns: u64) -> Vec<FleetRecord> {
    (1..=count)
        .map(|seq| {
            let parent = process_node_id(host, 1000 + (seq % 97) as u32, 1);
            let data = if seq % 2 == 0 {
                EdgeData::Fork(NoAttrs {})
            } else {
                EdgeData::Write(FileWriteAttrs { path: Some(format!("/srv/share/f{seq}.bin")), ..FileWriteAttrs::default() })
            };
            let dst = match data {
                EdgeData::Fork(_) => process_node_id(host, 2000 + seq as u32, seq),
                _ => file_node_id(host, 2049, seq),
            };
            FleetRecord { seq, item: FleetItem::Edge(Edge { ts_ns: ts_ns + seq, src: parent, dst, host: host.into(), data }) }
        })
        .collect()
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub edges: u64,
    pub hosts: usize,
    pub messages: usize,
    /// Edges/s asked for (0: as fast as acknowledged).
    pub rate: u64,
    pub collectors: usize,
    pub publish_seconds: f64,
    /// First publish -> last batch committed.
    pub end_to_end_seconds: f64,
    pub edges_per_second: f64,
    /// Publish (ack received) -> the batch's transaction committed.
    pub lag_median_ms: f64,
    pub lag_p99_ms: f64,
    pub lag_max_ms: f64,
}

pub struct BenchSettings {
    pub run: RunSettings,
    pub edges: u64,
    pub hosts: usize,
    pub collectors: usize,
    /// Edges per second to publish at (0: as fast as JetStream acknowledges). Below the
    /// collectors' capacity the lag is the pipeline's own; above it, mostly queueing.
    pub rate: u64,
}

pub async fn run(settings: BenchSettings) -> anyhow::Result<BenchReport> {
    if settings.hosts == 0 || settings.edges < settings.hosts as u64 {
        bail!("--edges must be at least --hosts ({})", settings.hosts);
    }
    let client = nats::connect(&settings.run.nats, "vtrail-collect bench").await?;
    let js = jetstream::new(client.clone());
    nats::ensure_stream(&js, &settings.run.stream).await?;

    // Host ids unique to this run, so that earlier runs' rows are not counted as repeats.
    let now_ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let run_id = now_ns / 1_000_000_000;
    let per_host = settings.edges / settings.hosts as u64;
    let mut messages = Vec::new();
    for h in 0..settings.hosts {
        let host = format!("bench-{run_id}-{h:04}");
        let extra = u64::from((h as u64) < settings.edges % settings.hosts as u64);
        messages.extend(pack_batches(&host, &host_records(&host, per_host + extra, now_ns)).into_iter().map(|b| (host.clone(), b)));
    }
    // Interleave hosts as a fleet publishes: round-robin by batch index.
    messages.sort_by_key(|(_, (header, _))| header.first_seq);
    let total_messages = messages.len();

    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let (observer, mut committed) = tokio::sync::mpsc::unbounded_channel::<Committed>();
    let mut collectors = Vec::new();
    for _ in 0..settings.collectors.max(1) {
        let (run, shutdown, observer) = (settings.run.clone(), shutdown.clone(), observer.clone());
        collectors.push(tokio::spawn(async move { consume::run(&run, shutdown, Some(observer)).await }));
    }
    drop(observer);

    let started = Instant::now();
    let mut published_at: HashMap<(String, u64), Instant> = HashMap::with_capacity(total_messages);
    let mut acks = FuturesUnordered::new();
    let mut sent_edges = 0u64;
    for (host, (header, body)) in messages {
        if settings.rate > 0 {
            let due = started + Duration::from_secs_f64(sent_edges as f64 / settings.rate as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        sent_edges += header.records;
        let subject = graph_subject(&settings.run.stream.subject_prefix, &host);
        let ack = js
            .publish_with_headers(subject.clone(), batch_headers(&header), body.into())
            .await
            .with_context(|| format!("publish to {subject}"))?;
        published_at.insert((host, header.first_seq), Instant::now());
        acks.push(ack.into_future());
        while acks.len() >= PUBLISHES_IN_FLIGHT {
            acks.next().await.expect("not empty").context("JetStream did not acknowledge a batch")?;
        }
    }
    while let Some(ack) = acks.next().await {
        ack.context("JetStream did not acknowledge a batch")?;
    }
    let publish_seconds = started.elapsed().as_secs_f64();

    let mut stored = 0u64;
    let mut lags_ms = Vec::with_capacity(total_messages);
    let mut last_commit = started;
    let deadline = Duration::from_secs(600);
    while stored < settings.edges {
        let Ok(Some(round)) = tokio::time::timeout(deadline, committed.recv()).await else {
            bail!("the collectors stored {stored} of {} edges and then nothing for {deadline:?}", settings.edges);
        };
        stored += round.written.edges;
        last_commit = round.at;
        for (host, first, _) in round.batches {
            if let Some(at) = published_at.get(&(host, first)) {
                lags_ms.push(round.at.saturating_duration_since(*at).as_secs_f64() * 1000.0);
            }
        }
    }
    let _ = stop.send(true);
    for collector in collectors {
        collector.await.context("a collector task failed")??;
    }
    lags_ms.sort_by(f64::total_cmp);
    let quantile = |q: f64| lags_ms.get(((lags_ms.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
    let end_to_end = last_commit.duration_since(started).as_secs_f64();
    Ok(BenchReport {
        edges: settings.edges,
        hosts: settings.hosts,
        messages: total_messages,
        rate: settings.rate,
        collectors: settings.collectors.max(1),
        publish_seconds,
        end_to_end_seconds: end_to_end,
        edges_per_second: settings.edges as f64 / end_to_end,
        lag_median_ms: quantile(0.5),
        lag_p99_ms: quantile(0.99),
        lag_max_ms: quantile(1.0),
    })
}
