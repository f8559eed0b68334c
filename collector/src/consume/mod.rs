//! `vtrail-collect run`: the consumer loop. Each round takes up to `batch_messages`
//! messages from the durable pull consumer, judges each (`receive`), stores every good
//! batch and every dead letter in one transaction (`store`), and only after the commit
//! acknowledges the messages. A collector killed at any point leaves its messages
//! unacknowledged; JetStream delivers them again and the store's keys drop what was
//! already committed. Several collectors on one durable consumer share its messages.

mod receive;
mod store;

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::PullConsumer};
use futures::StreamExt;
use tokio::sync::mpsc::UnboundedSender;

use crate::db::writer::Written;
use crate::deadletter::{DeadLetter, ReasonCounts};
use crate::link::{Link, Shutdown, sleep_unless_stopped, stopped, stopping};
use crate::nats::{self, NatsTarget, StreamSettings};
use receive::Received;
use store::Store;

pub use receive::graph_subject_token;

#[derive(Clone, Debug)]
pub struct RunSettings {
    pub nats: NatsTarget,
    pub db_url: String,
    pub stream: StreamSettings,
    /// Most messages per round (one transaction).
    pub batch_messages: usize,
    /// How long a round waits for more messages once it has one.
    pub linger: Duration,
}

/// Bytes of payload that end a round early: bounds the memory a round holds.
const MAX_ROUND_BYTES: usize = 64 << 20;
/// Dead letters logged one by one; after that only the periodic counts.
const DEAD_LETTERS_LOGGED: u64 = 100;
const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// A committed round, for whoever measures the collector (the benchmark).
#[derive(Clone, Debug)]
pub struct Committed {
    /// (host, first seq, last seq) of every good batch of the round.
    pub batches: Vec<(String, u64, u64)>,
    pub written: Written,
    pub at: Instant,
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    pub messages: u64,
    pub written: Written,
    pub dead: ReasonCounts,
}

enum Round {
    Messages(Vec<jetstream::Message>),
    /// The message stream ended or failed: set the consumer up again.
    Lost(String),
    Stop,
}

/// A round taken from the consumer and judged, waiting for its commit.
struct Judged {
    messages: Vec<jetstream::Message>,
    received: Vec<Received>,
}

/// Consumes until SIGTERM/SIGINT (`shutdown`); returns after the round in progress is
/// committed and acknowledged. PostgreSQL or NATS being down is waited out, not an error.
/// Taking and judging the next round (decoding JSON, building rows) runs on a task of its
/// own while the current one is written, so the two overlap on separate cores.
pub async fn run(settings: &RunSettings, mut shutdown: Shutdown, observer: Option<UnboundedSender<Committed>>) -> anyhow::Result<Totals> {
    let mut totals = Totals::default();
    let mut store = Store::new(&settings.db_url);
    // Migrate (and find a database newer than this binary) before taking any message.
    if store.ready(&mut shutdown).await.is_none() {
        return store.take_fatal().map_or(Ok(totals), Err);
    }
    let client = nats::connect(&settings.nats, "vtrail-collect").await?;
    // One judged round waits while another is written: the messages held are bounded by
    // two rounds (and by the consumer's max_ack_pending).
    let (judged_rounds, mut rounds) = tokio::sync::mpsc::channel::<Judged>(1);
    let taker = tokio::spawn(take_rounds(client.clone(), settings.clone(), shutdown.clone(), judged_rounds));
    let mut last_summary = Instant::now();
    let mut summarised = 0u64;
    let mut outcome = Ok(());
    while let Some(Judged { messages, received }) = rounds.recv().await {
        let replies: Vec<async_nats::Subject> = messages.iter().filter_map(|m| m.reply.clone()).collect();
        let progress_client = client.clone();
        // While PostgreSQL is down, tell JetStream the messages are being worked on, so
        // that they are not handed to another collector that cannot store them either.
        let in_progress = || {
            let (client, replies) = (progress_client.clone(), replies.clone());
            tokio::spawn(async move {
                for reply in replies {
                    let _ = client.publish(reply, bytes::Bytes::from_static(b"+WPI")).await;
                }
            });
        };
        let Some((written, dead)) = store.commit(&received, &mut shutdown, in_progress).await else {
            // Shutdown (or a fatal database state) before the commit: nothing is acked.
            if let Some(fatal) = store.take_fatal() {
                outcome = Err(fatal);
            }
            break;
        };
        // Only now: an ack of a message whose records are not committed could lose them.
        for message in &messages {
            if let Err(error) = message.ack().await {
                log::debug!("ack of {} failed ({error}); it will be delivered again and dropped as a repeat", message.subject);
            }
        }
        account(&mut totals, messages.len(), written, &dead);
        if let Some(observer) = &observer {
            let batches = received
                .iter()
                .filter_map(|r| match r {
                    Received::Rows { host, first_seq, last_seq, .. } => Some((host.clone(), *first_seq, *last_seq)),
                    Received::Dead(_) => None,
                })
                .collect();
            let _ = observer.send(Committed { batches, written, at: Instant::now() });
        }
        if last_summary.elapsed() >= SUMMARY_EVERY && totals.messages != summarised {
            log_summary(&totals);
            (last_summary, summarised) = (Instant::now(), totals.messages);
        }
        if stopping(&shutdown) {
            break;
        }
    }
    // A round taken but not committed is not acknowledged: JetStream delivers it again.
    drop(rounds);
    taker.abort();
    if let Err(error) = client.flush().await {
        log::warn!("NATS: the last acknowledgements may not have been sent ({error}); those messages will be delivered again");
    }
    log_summary(&totals);
    outcome.map(|()| totals)
}

/// Sets up the stream and consumer (again after a loss) and hands judged rounds to the
/// writer until shutdown or until the writer is gone.
async fn take_rounds(client: async_nats::Client, settings: RunSettings, mut shutdown: Shutdown, rounds: tokio::sync::mpsc::Sender<Judged>) {
    let js = jetstream::new(client);
    let mut link = Link::new(format!("NATS JetStream {} at {}", settings.stream.stream, settings.nats.describe()));
    'setup: while !stopping(&shutdown) {
        let mut messages = match open_messages(&js, &settings).await {
            Ok(messages) => messages,
            Err(error) => {
                let wait = link.down(&format!("{error:#}"));
                sleep_unless_stopped(wait, &mut shutdown).await;
                continue;
            }
        };
        link.up();
        loop {
            let round = match next_round(&mut messages, &settings, &mut shutdown, &mut link).await {
                Round::Messages(round) => round,
                Round::Lost(why) => {
                    let wait = link.down(&why);
                    sleep_unless_stopped(wait, &mut shutdown).await;
                    continue 'setup;
                }
                Round::Stop => return,
            };
            let received = round.iter().map(|m| receive::judge(&settings.stream.subject_prefix, m.subject.as_str(), &m.payload)).collect();
            if rounds.send(Judged { messages: round, received }).await.is_err() {
                return;
            }
        }
    }
}

async fn open_messages(js: &jetstream::Context, settings: &RunSettings) -> anyhow::Result<jetstream::consumer::pull::Stream> {
    let stream = nats::ensure_stream(js, &settings.stream).await?;
    nats::ensure_alerts_stream(js, &settings.stream).await?;
    let consumer: PullConsumer = nats::ensure_consumer(&stream, &settings.stream).await?;
    consumer
        .stream()
        .max_messages_per_batch(settings.batch_messages)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(|e| anyhow::anyhow!("pull from the durable consumer {}: {e}", settings.stream.durable))
}

/// Waits for a first message, then takes what follows within `linger`, up to a round's size.
async fn next_round(
    messages: &mut jetstream::consumer::pull::Stream,
    settings: &RunSettings,
    shutdown: &mut Shutdown,
    link: &mut Link,
) -> Round {
    let mut round = Vec::new();
    let mut bytes = 0usize;
    while round.is_empty() {
        let next = tokio::select! {
            next = messages.next() => next,
            _ = stopped(shutdown) => return Round::Stop,
        };
        match next {
            Some(Ok(message)) => {
                link.up();
                bytes += message.payload.len();
                round.push(message);
            }
            // Heartbeats missed while the server is away, a refused pull: the stream goes on.
            Some(Err(error)) => {
                let wait = link.down(&error);
                if sleep_unless_stopped(wait, shutdown).await {
                    return Round::Stop;
                }
            }
            None => return Round::Lost("the consumer's message stream ended".into()),
        }
    }
    while round.len() < settings.batch_messages && bytes < MAX_ROUND_BYTES {
        match tokio::time::timeout(settings.linger, messages.next()).await {
            Ok(Some(Ok(message))) => {
                bytes += message.payload.len();
                round.push(message);
            }
            // Errors and the end are met again by the next round's first read.
            Ok(Some(Err(_)) | None) | Err(_) => break,
        }
    }
    Round::Messages(round)
}

fn account(totals: &mut Totals, messages: usize, written: Written, dead: &[DeadLetter]) {
    totals.messages += messages as u64;
    totals.written += written;
    for letter in dead {
        totals.dead.add(letter.reason);
        if totals.dead.total() <= DEAD_LETTERS_LOGGED {
            log::warn!("dead letter from {}: {}: {}", letter.subject, letter.reason, letter.detail);
        }
    }
}

fn log_summary(totals: &Totals) {
    log::info!(
        "{} messages: {} nodes, {} edges, {} transfers stored; dead letters: {}",
        totals.messages,
        totals.written.nodes,
        totals.written.edges,
        totals.written.transfers,
        totals.dead
    );
}
