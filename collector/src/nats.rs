//! The collector's NATS side: connecting (nkey or user + password), the stream every host
//! publishes into, and the durable pull consumer collectors share.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, consumer, stream};

/// The collector's reply subjects. Hosts may subscribe to `_INBOX.<host token>.>` only
/// (`graph::fleet::inbox_prefix`); a prefix outside `_INBOX.` cannot be one of theirs.
pub const COLLECTOR_INBOX_PREFIX: &str = "_INBOX_vtrail_collect";

#[derive(Clone, Debug)]
pub enum NatsAuth {
    None,
    /// A file holding a user nkey seed (`SU...`), as `nats-config` writes.
    Nkey(PathBuf),
    /// The password is read from a file so that it is not on the command line.
    UserPassword { user: String, password_file: PathBuf },
}

#[derive(Clone, Debug)]
pub struct NatsTarget {
    /// Servers of one cluster (`nats://host:port`), tried in turn.
    pub urls: Vec<String>,
    pub auth: NatsAuth,
}

impl NatsTarget {
    pub fn describe(&self) -> String {
        self.urls.join(",")
    }
}

/// Connects; the client reconnects by itself after a cut, and the first connection is
/// retried in the background too, so a server that is down at start is not an error.
pub async fn connect(target: &NatsTarget, name: &str) -> anyhow::Result<async_nats::Client> {
    let mut options = async_nats::ConnectOptions::new()
        .name(name)
        .custom_inbox_prefix(COLLECTOR_INBOX_PREFIX)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => log::info!("NATS: connected"),
                async_nats::Event::Disconnected => log::warn!("NATS: disconnected; reconnecting"),
                async_nats::Event::Closed => log::debug!("NATS: connection closed"),
                // Every failed reconnect attempt reports one; the disconnect was logged once.
                async_nats::Event::ClientError(error) => log::debug!("NATS: {error}"),
                other => log::warn!("NATS: {other}"),
            }
        });
    options = match &target.auth {
        NatsAuth::None => options,
        NatsAuth::Nkey(path) => {
            let seed = std::fs::read_to_string(path).with_context(|| format!("read the nkey seed {}", path.display()))?;
            options.nkey(seed.trim().to_owned())
        }
        NatsAuth::UserPassword { user, password_file } => {
            let password = std::fs::read_to_string(password_file)
                .with_context(|| format!("read the NATS password file {}", password_file.display()))?;
            options.user_and_password(user.clone(), password.trim_end_matches(['\n', '\r']).to_owned())
        }
    };
    options.connect(&target.urls).await.with_context(|| format!("connect to NATS at {}", target.describe()))
}

#[derive(Clone, Debug)]
pub struct StreamSettings {
    pub stream: String,
    pub subject_prefix: String,
    pub durable: String,
    /// 0: no limit but the server's.
    pub max_bytes: i64,
    /// Stream replicas in a cluster.
    pub replicas: usize,
    /// How long a delivered message may stay unacknowledged before it goes to another
    /// collector (or again to this one).
    pub ack_wait: Duration,
    /// Messages delivered and not yet acknowledged, over all collectors of the consumer.
    pub max_ack_pending: i64,
}

impl StreamSettings {
    pub fn graph_filter(&self) -> String {
        format!("{}.graph.*", self.subject_prefix)
    }
}

/// The stream: every host's graph subject on disk (the alerts subjects get a stream of
/// their own with the consumer that reads them: in a work-queue stream nothing would
/// remove unread alerts, and a full stream refuses every host's graph); a work queue (a record is
/// gone once a collector acknowledged it); when full it refuses publishers, which keep the
/// records in their outbox, rather than dropping records nobody read; a 2 minute duplicate
/// window against resent batches. No message size limit of its own: the server's
/// `max_payload` applies, and a batch larger than a collector takes is kept as a dead letter
/// (`oversized`) rather than refused where nobody sees it.
pub fn stream_config(settings: &StreamSettings) -> stream::Config {
    stream::Config {
        name: settings.stream.clone(),
        subjects: vec![settings.graph_filter()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::WorkQueue,
        discard: stream::DiscardPolicy::New,
        duplicate_window: Duration::from_secs(120),
        max_bytes: if settings.max_bytes > 0 { settings.max_bytes } else { -1 },
        num_replicas: settings.replicas.max(1),
        ..Default::default()
    }
}

/// The alerts stream: every host's alerts (`vtrail-alert/1` documents, one a message) kept
/// 90 days for the managers that read them (limits retention: reading removes nothing, the
/// oldest go first when full), a 2 minute duplicate window against a sensor's resends.
pub fn alerts_stream_config(settings: &StreamSettings) -> stream::Config {
    stream::Config {
        name: sensor_common::graph::fleet::alerts_stream(&settings.stream),
        subjects: vec![sensor_common::graph::fleet::alerts_filter(&settings.subject_prefix)],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::Old,
        duplicate_window: Duration::from_secs(120),
        max_age: Duration::from_secs(90 * 24 * 3600),
        num_replicas: settings.replicas.max(1),
        ..Default::default()
    }
}

/// Creates the alerts stream if it is missing (an existing one is used as it is).
pub async fn ensure_alerts_stream(js: &jetstream::Context, settings: &StreamSettings) -> anyhow::Result<()> {
    let wanted = alerts_stream_config(settings);
    if js.get_stream(&wanted.name).await.is_err() {
        js.create_stream(wanted.clone()).await.with_context(|| format!("create the JetStream stream {}", wanted.name))?;
    }
    Ok(())
}

/// Creates the stream if it is missing. An existing stream is used as it is: a collector
/// started with other flags (say, without `--replicas 3` on a cluster) must not scale down
/// or resize what the others rely on; differences are logged.
pub async fn ensure_stream(js: &jetstream::Context, settings: &StreamSettings) -> anyhow::Result<stream::Stream> {
    let wanted = stream_config(settings);
    let stream = match js.get_stream(&settings.stream).await {
        Ok(stream) => stream,
        Err(e) if matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(ref api)
            if api.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
        {
            js.create_stream(wanted.clone()).await.with_context(|| format!("create the JetStream stream {}", settings.stream))?;
            return js.get_stream(&settings.stream).await.with_context(|| format!("open the JetStream stream {}", settings.stream));
        }
        Err(e) => return Err(anyhow::Error::new(e).context(format!("open the JetStream stream {}", settings.stream))),
    };
    let mut probe = stream.clone();
    let have = probe.info().await.with_context(|| format!("read the settings of stream {}", settings.stream))?.config.clone();
    let differs = [
        ("subjects", have.subjects != wanted.subjects),
        ("replicas", have.num_replicas != wanted.num_replicas),
        ("max_bytes", have.max_bytes != wanted.max_bytes),
        ("retention", have.retention != wanted.retention),
        ("discard", have.discard != wanted.discard),
    ];
    let names: Vec<&str> = differs.iter().filter(|(_, d)| *d).map(|(n, _)| *n).collect();
    if !names.is_empty() {
        log::warn!(
            "stream {} exists with other settings than this collector's flags ({}): used as it is; change it with the NATS tools if intended",
            settings.stream,
            names.join(", ")
        );
    }
    Ok(stream)
}

/// The durable pull consumer of the graph subjects (alerts are left to their own consumer:
/// a work-queue stream gives each subject to one consumer).
pub async fn ensure_consumer(stream: &stream::Stream, settings: &StreamSettings) -> anyhow::Result<consumer::PullConsumer> {
    let config = consumer::pull::Config {
        durable_name: Some(settings.durable.clone()),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: settings.ack_wait,
        max_ack_pending: settings.max_ack_pending,
        filter_subject: settings.graph_filter(),
        ..Default::default()
    };
    stream
        .get_or_create_consumer(&settings.durable, config)
        .await
        .with_context(|| format!("create the durable consumer {} on stream {}", settings.durable, settings.stream))
}
