//! Sends the outbox to JetStream, oldest first: a window of batches is published, their
//! acks awaited in order, and the outbox cursor advanced only over acknowledged batches.
//! Any failure rewinds to the cursor after a bounded backoff, so a batch is sent until it
//! is stored (the collector drops repeats by (host, seq)). Memory is the window: at most
//! `WINDOW` batches of `MAX_BATCH_BYTES`.
use std::time::Duration;

use async_nats::{
    connection::State,
    jetstream::{
        self,
        context::PublishErrorKind,
        message::PublishMessage,
    },
};
use tracing::{info, warn};
use sensor_common::graph::{
    SCHEMA_VERSION,
    fleet::{BatchHeader, MAX_BATCH_BYTES, SCHEMA_HEADER, encode_batch},
};

use super::{SharedState, link::PERMISSION_VIOLATION, outbox::Outbox};

/// Batches in flight at once.
const WINDOW: usize = 8;
/// How long JetStream may take to acknowledge a batch.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Rounds in a row without an ack before the link is taken for dead and rebuilt. The NATS
/// client notices a dead TCP connection only when its pings go unanswered (minutes); a
/// sensor whose address changed would keep publishing into it meanwhile (seen in the lab:
/// 433 records held for 90 s after a guest was re-addressed).
const TIMEOUTS_BEFORE_RECONNECT: u32 = 2;
/// Room left under the server's `max_payload` for headers.
const HEADER_ROOM: usize = 4096;

pub struct Publisher {
    pub outbox: Outbox,
    pub state: SharedState,
    pub client: async_nats::Client,
    pub host_id: String,
    pub subject: String,
}

/// Why one round stopped.
struct Failure {
    reason: &'static str,
    problem: String,
}

impl Publisher {
    pub async fn run(self) {
        let js = jetstream::ContextBuilder::new().timeout(ACK_TIMEOUT).ack_timeout(ACK_TIMEOUT).build(self.client.clone());
        let mut backoff = BACKOFF_MIN;
        let mut failing = false;
        let mut timeouts = 0u32;
        loop {
            if self.client.connection_state() != State::Connected {
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
            match self.round(&js).await {
                Ok(true) => {
                    if failing {
                        info!("fleet: publishing again on {}", self.subject);
                        failing = false;
                    }
                    backoff = BACKOFF_MIN;
                    timeouts = 0;
                }
                Ok(false) => {
                    // Nothing to send: wait for the next record (or look again in a second).
                    let _ = tokio::time::timeout(Duration::from_secs(1), self.outbox.appended()).await;
                }
                Err(failure) => {
                    if !failing {
                        warn!("fleet: publishing stopped ({}): {}; retrying, records wait in the outbox", failure.reason, failure.problem);
                        failing = true;
                    }
                    timeouts = if failure.reason == "timeout" { timeouts + 1 } else { 0 };
                    self.state.update(|s| {
                        *s.publish_errors.entry(failure.reason.into()).or_default() += 1;
                        s.problem = Some(failure.problem);
                    });
                    if timeouts >= TIMEOUTS_BEFORE_RECONNECT {
                        timeouts = 0;
                        warn!("fleet: no acknowledgement in {TIMEOUTS_BEFORE_RECONNECT} rounds: reconnecting (the connection may be dead, e.g. this host's address changed)");
                        self.state.update(|s| s.forced_reconnects += 1);
                        if let Err(e) = self.client.force_reconnect().await {
                            warn!("fleet: reconnect failed: {e}; the client keeps trying");
                        }
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// Publishes one window. Ok(false) when the outbox is empty.
    async fn round(&self, js: &jetstream::Context) -> Result<bool, Failure> {
        let store_failure = |e: crate::graph::store::StoreError| Failure { reason: "outbox", problem: format!("cannot read the outbox: {e}") };
        let acked = self.outbox.acked().map_err(store_failure)?;
        let max_payload = self.client.server_info().max_payload;
        let max_bytes = if max_payload > HEADER_ROOM { (max_payload - HEADER_ROOM).min(MAX_BATCH_BYTES) } else { MAX_BATCH_BYTES };
        let mut batches = self.outbox.read_batches(acked, WINDOW, max_bytes).map_err(store_failure)?;
        if batches.is_empty() {
            return Ok(false);
        }
        // A record larger than the server takes goes alone in its batch: the first one is
        // set aside (kept locally, counted); a later one waits to be first.
        if let Some(at) = batches.iter().position(|b| b.len() == 1 && b[0].line.len() > max_bytes) {
            if at == 0 {
                let seq = batches[0][0].seq;
                self.outbox.set_aside(seq).map_err(store_failure)?;
                warn!("fleet: record {seq} ({} bytes) is larger than the server accepts ({max_bytes}): kept in the local database (tree fleet_oversized), not sent", batches[0][0].line.len());
                self.state.update(|s| *s.publish_errors.entry("too_large".into()).or_default() += 1);
                return Ok(true);
            }
            batches.truncate(at);
        }
        let mut in_flight = Vec::with_capacity(batches.len());
        for batch in &batches {
            let (first, last) = (batch[0].seq, batch[batch.len() - 1].seq);
            let header = BatchHeader::new(&self.host_id, first, last, batch.len() as u64);
            let lines: Vec<&[u8]> = batch.iter().map(|p| p.line.as_slice()).collect();
            let message = PublishMessage::build()
                .payload(encode_batch(&header, &lines).into())
                .message_id(header.message_id())
                .header(SCHEMA_HEADER, SCHEMA_VERSION.to_string().as_str());
            match js.send_publish(self.subject.clone(), message).await {
                Ok(ack) => in_flight.push((last, batch.len() as u64, ack)),
                Err(e) => {
                    if in_flight.is_empty() {
                        return Err(self.classify(e.kind(), &e.to_string()));
                    }
                    break;
                }
            }
        }
        for (last, records, ack) in in_flight {
            match ack.await {
                Ok(ack) => {
                    self.outbox.acknowledge(last).map_err(store_failure)?;
                    self.state.update(|s| {
                        s.acked_seq = last;
                        s.published_batches += 1;
                        s.published_records += records;
                        s.duplicate_batches += u64::from(ack.duplicate);
                        s.problem = None;
                    });
                }
                // Later acks of this window are not awaited: their batches are sent again.
                Err(e) => return Err(self.classify(e.kind(), &e.to_string())),
            }
        }
        Ok(true)
    }

    fn classify(&self, kind: PublishErrorKind, text: &str) -> Failure {
        let server_said = self.state.snapshot().problem.unwrap_or_default();
        let (reason, problem) = match kind {
            PublishErrorKind::StreamNotFound => (
                "no_stream",
                format!("no JetStream stream takes {} (start `vtrail-collect run`, which creates it)", self.subject),
            ),
            PublishErrorKind::TimedOut if server_said.contains(PERMISSION_VIOLATION) => ("permission_denied", server_said),
            PublishErrorKind::TimedOut => ("timeout", format!("JetStream did not acknowledge within {ACK_TIMEOUT:?}")),
            PublishErrorKind::MaxPayloadExceeded => ("too_large", text.to_owned()),
            PublishErrorKind::BrokenPipe => ("not_connected", format!("the link dropped while publishing: {text}")),
            _ if ["maximum", "storage", "resources"].iter().any(|w| text.contains(w)) => {
                ("stream_full", format!("the stream refused the batch (full): {text}"))
            }
            _ => ("other", text.to_owned()),
        };
        Failure { reason, problem }
    }
}
