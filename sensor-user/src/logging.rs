//! Losses that can come by the thousand a second (kernel drops, undecodable records, a
//! full map) are logged through [`RateLimited`]: at most one line per kind per interval,
//! with the count since the last line, so the journal says what is lost without being
//! flooded. (The subscriber itself is `sensor_common::logging`, shared with the
//! collector.)
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

/// How often a loss of one kind is logged, at most.
pub const DROP_LOG_EVERY: Duration = Duration::from_secs(30);

/// Counts of events per kind, and when each kind was last logged. The first event of a
/// kind is logged at once (an admin learns of the first loss right away); later ones are
/// added up until the interval has passed.
#[derive(Debug)]
pub struct RateLimited<K> {
    every: Duration,
    kinds: BTreeMap<K, Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    last_line: Option<Instant>,
    unlogged: u64,
}

impl Pending {
    fn due(&self, now: Instant, every: Duration) -> bool {
        self.unlogged > 0 && self.last_line.is_none_or(|t| now.saturating_duration_since(t) >= every)
    }

    fn take(&mut self, now: Instant) -> u64 {
        self.last_line = Some(now);
        std::mem::take(&mut self.unlogged)
    }
}

impl<K: Ord> RateLimited<K> {
    pub fn new(every: Duration) -> Self {
        Self { every, kinds: BTreeMap::new() }
    }

    /// `n` more of `kind` at `now`: the count to log (all since the last line) if a line
    /// is due, else None (they wait for a later line).
    pub fn add(&mut self, kind: K, n: u64, now: Instant) -> Option<u64> {
        let p = self.kinds.entry(kind).or_default();
        p.unlogged += n;
        p.due(now, self.every).then(|| p.take(now))
    }

    /// Kinds whose waiting counts are due at `now` (a periodic tick: a loss that stopped
    /// is still logged once its interval has passed).
    pub fn due(&mut self, now: Instant) -> Vec<(&K, u64)> {
        let every = self.every;
        self.kinds.iter_mut().filter(|(_, p)| p.due(now, every)).map(|(k, p)| (k, p.take(now))).collect()
    }

    /// Every waiting count, whatever the interval (the daemon is stopping).
    pub fn flush(&mut self) -> Vec<(&K, u64)> {
        self.kinds.iter_mut().filter(|(_, p)| p.unlogged > 0).map(|(k, p)| (k, std::mem::take(&mut p.unlogged))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_kind_per_interval_with_the_count_since_the_last() {
        let every = Duration::from_secs(30);
        let mut r = RateLimited::new(every);
        let t0 = Instant::now();
        assert_eq!(r.add("ring", 5, t0), Some(5), "the first loss is logged at once");
        assert_eq!(r.add("ring", 3, t0 + Duration::from_secs(1)), None);
        assert_eq!(r.add("map", 1, t0 + Duration::from_secs(2)), Some(1), "kinds are limited apart");
        assert_eq!(r.add("ring", 4, t0 + Duration::from_secs(29)), None);
        assert_eq!(r.add("ring", 2, t0 + every), Some(9), "3 + 4 + 2 since the last line");
        assert_eq!(r.add("ring", 0, t0 + 3 * every), None, "nothing new, nothing to say");
    }

    #[test]
    fn waiting_counts_come_out_on_the_tick_and_at_the_end() {
        let every = Duration::from_secs(30);
        let mut r = RateLimited::new(every);
        let t0 = Instant::now();
        r.add("ring", 1, t0);
        r.add("ring", 7, t0 + Duration::from_secs(10));
        r.add("map", 1, t0);
        r.add("map", 2, t0 + Duration::from_secs(20));
        assert!(r.due(t0 + Duration::from_secs(29)).is_empty());
        assert_eq!(r.due(t0 + every), vec![(&"map", 2), (&"ring", 7)]);
        assert_eq!(r.add("ring", 4, t0 + every + Duration::from_secs(1)), None, "a line was just written");
        assert!(r.due(t0 + every + Duration::from_secs(2)).is_empty(), "not due yet");
        assert_eq!(r.flush(), vec![(&"ring", 4)], "stopping: whatever waits is logged");
        assert!(r.flush().is_empty());
    }
}
