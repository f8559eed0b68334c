//! Driving `vtrail-collect` in the fleet tests: the binary as a daemon (killed with SIGKILL
//! or stopped with SIGTERM), and sensors' batches published to JetStream in the wire format.
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use async_nats::jetstream;
use ::collector::bench::{batch_headers, pack_batches};
use ::collector::nats::{StreamSettings, stream_config};
use sensor_common::graph::fleet::{DEFAULT_STREAM, DEFAULT_SUBJECT_PREFIX, FleetItem, FleetRecord, graph_subject};
use sensor_common::graph::{Edge, EdgeData, NoAttrs, process_node_id};

pub fn collect_bin() -> PathBuf {
    crate::sensor::workspace_bin("vtrail-collect")
}

pub fn analysis_bin() -> PathBuf {
    crate::sensor::workspace_bin("vtrail-analysis")
}

/// A `vtrail-collect run` process; its log under the test's directory.
pub struct Collector {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Collector {
    /// Starts `vtrail-collect run --nats URL --db URL ARGS...`.
    pub fn start(dir: &Path, tag: &str, nats_url: &str, db_url: &str, args: &[&str]) -> Self {
        let log = dir.join(format!("collector-{tag}.log"));
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let child = Command::new(collect_bin())
            .args(["run", "--nats", nats_url, "--db", db_url])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("spawn vtrail-collect run");
        Self { child: Some(child), log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits (at most `limit`) for the exit.
    pub fn terminate(&mut self, limit: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("collector running");
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("vtrail-collect did not exit within {limit:?} of SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether it exited by itself, and how.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().unwrap())
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `done` every 100 ms until it holds; panics with `what` (and `context()`) after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool, context: impl Fn() -> String) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what} did not happen within {limit:?}\n{}", context());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `count` fork edges of `host` with sequences `first..first + count`.
pub fn edge_records(host: &str, first: u64, count: u64) -> Vec<FleetRecord> {
    (first..first + count)
        .map(|seq| FleetRecord {
            seq,
            item: FleetItem::Edge(Edge {
                ts_ns: 1_700_000_000_000_000_000 + seq * 1_000,
                src: process_node_id(host, 1, 1),
                dst: process_node_id(host, seq as u32, seq),
                host: host.into(),
                data: EdgeData::Fork(NoAttrs {}),
            }),
        })
        .collect()
}

/// The collector's stream, created as `vtrail-collect run` creates it (so that batches can
/// be published before a collector runs).
pub async fn create_stream(js: &jetstream::Context) {
    let settings = StreamSettings {
        stream: DEFAULT_STREAM.into(),
        subject_prefix: DEFAULT_SUBJECT_PREFIX.into(),
        durable: "vtrail-collect".into(),
        max_bytes: 0,
        replicas: 1,
        ack_wait: Duration::from_secs(30),
        max_ack_pending: 1024,
    };
    js.create_or_update_stream(stream_config(&settings)).await.expect("create the stream");
}

/// Publishes `records` of `host` as a sensor does: batches on the host's subject with
/// their message ids; returns the number of messages once JetStream acknowledged them all.
pub async fn publish_records(js: &jetstream::Context, host: &str, records: &[FleetRecord]) -> usize {
    let batches = pack_batches(host, records);
    let subject = graph_subject(DEFAULT_SUBJECT_PREFIX, host);
    let mut acks = Vec::new();
    for (header, body) in &batches {
        acks.push(js.publish_with_headers(subject.clone(), batch_headers(header), body.clone().into()).await.expect("publish"));
    }
    for ack in acks {
        ack.await.expect("JetStream acknowledges the batch");
    }
    batches.len()
}

/// Publishes a raw body on `subject` (bad input); waits for JetStream's ack.
pub async fn publish_raw(js: &jetstream::Context, subject: &str, body: Vec<u8>) {
    js.publish(subject.to_owned(), body.into()).await.expect("publish").await.expect("JetStream acknowledges the message");
}
