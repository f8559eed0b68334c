//! The fleet: this sensor's records streamed to the organisation's central database.
//!
//! `outbox` queues every stored record under this host's sequence number, in the graph's
//! own sled database; `link` connects to NATS with this host's credentials; `publisher`
//! sends the outbox as JetStream batches on `<prefix>.graph.<host>` and drops what was
//! acknowledged. The ring-buffer consumer only ever appends to sled: it never waits on the
//! network.
pub mod alerts;
pub mod config;
pub mod link;
pub mod outbox;
pub mod publisher;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use serde::{Deserialize, Serialize};

/// What `vtrail-sensor status` shows of the fleet.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FleetStatus {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
    pub connected: bool,
    /// Why the link is down or the last publish failed (cleared by the next success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Highest sequence number JetStream acknowledged.
    pub acked_seq: u64,
    /// The next sequence number to be used.
    pub next_seq: u64,
    /// Records recorded but not yet acknowledged, and how long the oldest has waited.
    pub backlog_records: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog_age_seconds: Option<f64>,
    pub published_batches: u64,
    pub published_records: u64,
    /// Alerts JetStream acknowledged on this host's alerts subject.
    #[serde(default)]
    pub published_alerts: u64,
    /// Batches JetStream had already stored (a resend after a lost ack or a restart).
    pub duplicate_batches: u64,
    /// Failed publishes by reason: `not_connected`, `no_stream`, `permission_denied`,
    /// `stream_full`, `timeout`, `too_large`, `other`.
    pub publish_errors: BTreeMap<String, u64>,
    /// Reconnects the publisher forced because acks stopped coming on a link the client
    /// still thought up (a dead TCP connection: this host's address changed, a middlebox
    /// dropped the flow).
    #[serde(default)]
    pub forced_reconnects: u64,
    /// The last warning logged about the link (repeats are not logged again).
    #[serde(skip)]
    pub last_warning: Option<String>,
}

/// The publisher's view of the link, shared with the daemon's status answer.
#[derive(Clone, Default)]
pub struct SharedState(Arc<Mutex<FleetStatus>>);

impl SharedState {
    pub fn update(&self, f: impl FnOnce(&mut FleetStatus)) {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard);
    }

    pub fn snapshot(&self) -> FleetStatus {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The running fleet link of the daemon.
pub struct Fleet {
    outbox: outbox::Outbox,
    state: SharedState,
}

impl Fleet {
    /// Queues records from now on (and, the first time, what the database holds), connects
    /// in the background and starts the publisher task.
    pub async fn start(config: &config::FleetConfig, store: &crate::graph::GraphStore, host_id: &str) -> anyhow::Result<Self> {
        let subject = sensor_common::graph::fleet::graph_subject(&config.subject_prefix, host_id);
        let outbox = store.enable_outbox()?;
        let state = SharedState::default();
        state.update(|s| {
            s.enabled = true;
            s.servers = config.nats_url.clone();
            s.subject = subject.clone();
            s.acked_seq = outbox.acked().unwrap_or(0);
        });
        let client = link::connect(config, host_id, &subject, state.clone()).await?;
        tracing::info!("fleet: streaming this host's graph to {} on {subject}", config.nats_url.join(", "));
        let alerts = alerts::AlertPublisher {
            feed: store.alerts_feed(),
            state: state.clone(),
            client: client.clone(),
            host_id: host_id.into(),
            subject: sensor_common::graph::fleet::alerts_subject(&config.subject_prefix, host_id),
        };
        tokio::spawn(alerts.run());
        let publisher = publisher::Publisher { outbox: outbox.clone(), state: state.clone(), client, host_id: host_id.into(), subject };
        tokio::spawn(publisher.run());
        Ok(Self { outbox, state })
    }

    pub fn status(&self, now_ns: u64) -> FleetStatus {
        let mut status = self.state.snapshot();
        status.next_seq = self.outbox.next_seq();
        if let Ok((records, oldest)) = self.outbox.backlog() {
            status.backlog_records = records;
            status.backlog_age_seconds = oldest.filter(|_| records > 0).map(|t| now_ns.saturating_sub(t) as f64 / 1e9);
        }
        status
    }
}
