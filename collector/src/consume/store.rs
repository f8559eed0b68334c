//! Committing what a round of messages gave, whatever PostgreSQL does meanwhile: a link
//! or server failure is retried (reconnecting, with backoff) until it commits or shutdown
//! is asked for; a refusal of the data itself is narrowed to the message that caused it,
//! which becomes a dead letter, so one bad message cannot hold back the others.

use anyhow::Context;
use tokio_postgres::Client;

use super::receive::Received;
use crate::db::{self, migrate, rows::RowSet, writer::Writer, writer::Written};
use crate::deadletter::{self, DeadLetter};
use crate::link::{Link, Shutdown, sleep_unless_stopped};

pub struct Store {
    url: String,
    session: Option<(Client, Writer)>,
    link: Link,
    /// A state waiting cannot fix (a database newer than this binary).
    fatal: Option<anyhow::Error>,
}

/// How a write ended.
enum Attempt {
    Committed(Written),
    /// The link or the server failed: try again later.
    Retry(tokio_postgres::Error),
    /// The server refused the data: trying again would fail again.
    Refused(tokio_postgres::Error),
}

impl Store {
    pub fn new(url: &str) -> Self {
        Self { url: url.into(), session: None, link: Link::new(format!("PostgreSQL {}", db::describe(url))), fatal: None }
    }

    /// Why the store gave up, if it did.
    pub fn take_fatal(&mut self) -> Option<anyhow::Error> {
        self.fatal.take()
    }

    /// Connects (and migrates) until it works; None if shutdown came first or the
    /// database cannot be used by this binary ([`Store::take_fatal`]).
    pub async fn ready(&mut self, shutdown: &mut Shutdown) -> Option<&mut (Client, Writer)> {
        while self.session.is_none() {
            match open(&self.url).await {
                Ok(session) => {
                    self.link.up();
                    self.session = Some(session);
                }
                Err(error) if error.downcast_ref::<migrate::NewerSchema>().is_some() => {
                    self.fatal = Some(error);
                    return None;
                }
                Err(error) => {
                    let wait = self.link.down(&format!("{error:#}"));
                    if sleep_unless_stopped(wait, shutdown).await {
                        return None;
                    }
                }
            }
        }
        self.session.as_mut()
    }

    async fn attempt(&mut self, sets: &[&RowSet], dead: &[DeadLetter], shutdown: &mut Shutdown) -> Option<Attempt> {
        let (client, writer) = self.ready(shutdown).await?;
        Some(match writer.write(client, sets, dead).await {
            Ok(written) => Attempt::Committed(written),
            Err(error) if db::is_transient(&error) || db::is_missing_partition(&error) => {
                self.session = None;
                Attempt::Retry(error)
            }
            Err(error) => Attempt::Refused(error),
        })
    }

    /// Writes `sets` and `dead` in one transaction, retrying until it commits. None:
    /// shutdown came first, nothing of this round is committed. Err: the data was refused.
    async fn write_retrying(
        &mut self,
        sets: &[&RowSet],
        dead: &[DeadLetter],
        shutdown: &mut Shutdown,
        mut waiting: impl FnMut(),
    ) -> Option<Result<Written, tokio_postgres::Error>> {
        loop {
            match self.attempt(sets, dead, shutdown).await? {
                Attempt::Committed(written) => {
                    self.link.up();
                    return Some(Ok(written));
                }
                Attempt::Refused(error) => return Some(Err(error)),
                Attempt::Retry(error) => {
                    let wait = self.link.down(&error);
                    waiting();
                    if sleep_unless_stopped(wait, shutdown).await {
                        return None;
                    }
                }
            }
        }
    }

    /// Commits everything `round` holds. Returns what was written and the dead letters
    /// stored (those of the messages plus any message the server refused), or None if
    /// shutdown came before the commit. `waiting` runs while PostgreSQL is unreachable
    /// (the caller tells JetStream the messages are still being worked on).
    pub async fn commit(
        &mut self,
        round: &[Received],
        shutdown: &mut Shutdown,
        mut waiting: impl FnMut(),
    ) -> Option<(Written, Vec<DeadLetter>)> {
        let sets: Vec<&RowSet> = round.iter().filter_map(Received::rows).collect();
        let dead: Vec<DeadLetter> = round.iter().flat_map(Received::dead_letters).collect();
        match self.write_retrying(&sets, &dead, shutdown, &mut waiting).await? {
            Ok(written) => return Some((written, dead)),
            Err(error) => log::warn!("PostgreSQL refused a round of {} messages ({error}); storing them one by one", round.len()),
        }
        let mut total = Written::default();
        let mut all_dead = Vec::new();
        for received in round {
            let sets: Vec<&RowSet> = received.rows().into_iter().collect();
            let mut dead = received.dead_letters();
            let written = match self.write_retrying(&sets, &dead, shutdown, &mut waiting).await? {
                Ok(written) => written,
                Err(error) => {
                    dead = vec![refused_letter(received, &error)];
                    match self.write_retrying(&[], &dead, shutdown, &mut waiting).await? {
                        Ok(written) => written,
                        // Not even the dead letter could be stored: keep the message unacknowledged.
                        Err(error) => {
                            log::error!("PostgreSQL refused a dead letter ({error}); the message stays in the stream");
                            return None;
                        }
                    }
                }
            };
            total += written;
            all_dead.extend(dead);
        }
        Some((total, all_dead))
    }
}

async fn open(url: &str) -> anyhow::Result<(Client, Writer)> {
    let mut client = db::connect(url).await?;
    migrate::migrate(&mut client).await.with_context(|| format!("migrate {}", db::describe(url)))?;
    let writer = Writer::new(&client).await.context("prepare the writer")?;
    Ok((client, writer))
}

/// The message whose rows the server would not take, kept with the server's reason.
fn refused_letter(received: &Received, error: &tokio_postgres::Error) -> DeadLetter {
    let reason = error.as_db_error().map_or_else(|| error.to_string(), |db| format!("{} ({})", db.message(), db.code().code()));
    match received {
        Received::Rows { subject, host, first_seq, last_seq, payload, .. } => DeadLetter::new(
            subject,
            Some(host),
            deadletter::STORE_REFUSED,
            format!("PostgreSQL refused records {first_seq}-{last_seq}: {reason}"),
            payload,
        ),
        Received::Dead(letter) => DeadLetter { reason: deadletter::STORE_REFUSED, detail: format!("{}; then: {reason}", letter.detail), ..letter.clone() },
    }
}
