//! A peer's reachability (PostgreSQL, NATS), logged once per change, and the bounded
//! backoff between attempts while it is down.

use std::fmt::Display;
use std::time::Duration;

use tokio::sync::watch;

const FIRST_RETRY: Duration = Duration::from_millis(100);
const LONGEST_RETRY: Duration = Duration::from_secs(5);

pub struct Link {
    name: String,
    up: Option<bool>,
    next_retry: Duration,
}

impl Link {
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), up: None, next_retry: FIRST_RETRY }
    }

    pub fn up(&mut self) {
        if self.up != Some(true) {
            log::info!("{}: up", self.name);
        }
        self.up = Some(true);
        self.next_retry = FIRST_RETRY;
    }

    /// Records a failure; returns how long to wait before the next attempt.
    pub fn down(&mut self, error: &dyn Display) -> Duration {
        if self.up != Some(false) {
            log::warn!("{}: down ({error}); retrying every {:?} at most", self.name, LONGEST_RETRY);
        } else {
            log::debug!("{}: still down ({error})", self.name);
        }
        self.up = Some(false);
        let wait = self.next_retry;
        self.next_retry = (self.next_retry * 2).min(LONGEST_RETRY);
        wait
    }
}

/// Set to true once SIGTERM or SIGINT arrived: the current batch finishes, nothing new starts.
pub type Shutdown = watch::Receiver<bool>;

pub fn stopping(shutdown: &Shutdown) -> bool {
    *shutdown.borrow()
}

/// Resolves when shutdown is asked for (never, if the sender is gone without asking).
pub async fn stopped(shutdown: &mut Shutdown) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Sleeps `wait`; returns true if shutdown was asked for meanwhile.
pub async fn sleep_unless_stopped(wait: Duration, shutdown: &mut Shutdown) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => stopping(shutdown),
        _ = stopped(shutdown) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_bound_and_resets_when_up() {
        let mut link = Link::new("test");
        let waits: Vec<Duration> = (0..8).map(|_| link.down(&"refused")).collect();
        assert_eq!(waits[0], FIRST_RETRY);
        assert_eq!(waits[1], FIRST_RETRY * 2);
        assert_eq!(*waits.last().unwrap(), LONGEST_RETRY);
        link.up();
        assert_eq!(link.down(&"refused"), FIRST_RETRY);
    }
}
