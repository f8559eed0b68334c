//! Sends this host's alerts to the fleet: each stored alert, oldest first, as one message
//! on `<prefix>.alerts.<host>` (the collector's alerts stream keeps them for managers).
//! An alert is sent until JetStream acknowledges it; the cursor is kept in the database,
//! so a restart or an outage loses none (the duplicate window drops resends).
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use sensor_common::graph::fleet::alert_message_id;
use tracing::{info, warn};

use super::SharedState;
use crate::graph::store::AlertsFeed;

const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the feed is looked at when it was empty, and the longest backoff.
const POLL: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Alerts sent per round.
const ROUND: usize = 64;

pub struct AlertPublisher {
    pub feed: AlertsFeed,
    pub state: SharedState,
    pub client: async_nats::Client,
    pub host_id: String,
    pub subject: String,
}

impl AlertPublisher {
    pub async fn run(self) {
        let js = jetstream::ContextBuilder::new().timeout(ACK_TIMEOUT).ack_timeout(ACK_TIMEOUT).build(self.client.clone());
        let mut backoff = POLL;
        let mut failing = false;
        loop {
            match self.round(&js).await {
                Ok(0) => tokio::time::sleep(POLL).await,
                Ok(n) => {
                    if failing {
                        info!("fleet: alerts are published again on {}", self.subject);
                        failing = false;
                    }
                    backoff = POLL;
                    self.state.update(|s| s.published_alerts += n as u64);
                }
                Err(problem) => {
                    if !failing {
                        warn!("fleet: cannot publish alerts on {} ({problem}); they are kept and sent again", self.subject);
                        failing = true;
                    }
                    self.state.update(|s| *s.publish_errors.entry("alerts".into()).or_default() += 1);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// Publishes what waits; returns how many alerts were acknowledged.
    async fn round(&self, js: &jetstream::Context) -> Result<usize, String> {
        let waiting = self.feed.unpublished(ROUND).map_err(|e| format!("cannot read the alerts: {e}"))?;
        let mut sent = 0;
        for (key, json) in waiting {
            let message = PublishMessage::build().payload(json.into()).message_id(alert_message_id(&self.host_id, &key));
            let ack = js.send_publish(self.subject.clone(), message).await.map_err(|e| e.to_string())?;
            ack.await.map_err(|e| e.to_string())?;
            self.feed.acknowledge(&key).map_err(|e| format!("cannot record the acknowledgement: {e}"))?;
            sent += 1;
        }
        Ok(sent)
    }
}
