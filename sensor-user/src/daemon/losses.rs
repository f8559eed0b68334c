//! What the sensor loses, in the log: kernel drops, records that did not decode, files
//! the full INODES map could not hold, and times the ingest queue was full. Each is a
//! counter in `status` already; the log gets at most one line per kind per
//! `logging::DROP_LOG_EVERY`, with the count since the last line (a worm's burst must not
//! flood the journal with one warning per lost record).
use std::{collections::BTreeMap, time::Instant};

use tracing::warn;

use crate::{
    kernel::Sensor,
    logging::{DROP_LOG_EVERY, RateLimited},
};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Loss {
    /// A kernel drop counter (`kernel_drops` slot name).
    Kernel(String),
    Undecodable,
    InodeMapFull,
    QueueFull,
}

pub(crate) struct Losses {
    limiter: RateLimited<Loss>,
    /// Kernel counters and queue-full waits as last read: their increase is what is new.
    kernel_seen: BTreeMap<String, u64>,
    queue_full_seen: u64,
    /// The last example of a kind, for its next line.
    last: BTreeMap<Loss, String>,
}

impl Default for Losses {
    fn default() -> Self {
        Self { limiter: RateLimited::new(DROP_LOG_EVERY), kernel_seen: BTreeMap::new(), queue_full_seen: 0, last: BTreeMap::new() }
    }
}

impl Losses {
    /// A ring-buffer record that did not decode.
    pub(crate) fn undecodable(&mut self, why: String) {
        self.add(Loss::Undecodable, 1, why);
    }

    /// A file untrusted in the graph that the kernel map had no room for.
    pub(crate) fn inode_map_full(&mut self, path: String) {
        self.add(Loss::InodeMapFull, 1, path);
    }

    /// Reads the kernel's drop counters and the queue's full waits (the periodic tick),
    /// then logs what is due.
    pub(crate) fn poll(&mut self, sensor: &Sensor, queue_full_waits: u64) {
        let now = Instant::now();
        for (name, total) in sensor.drop_counts() {
            let before = self.kernel_seen.insert(name.clone(), total).unwrap_or(0);
            if total > before
                && let Some(n) = self.limiter.add(Loss::Kernel(name.clone()), total - before, now)
            {
                self.line(&Loss::Kernel(name), n);
            }
        }
        let new = queue_full_waits.saturating_sub(std::mem::replace(&mut self.queue_full_seen, queue_full_waits));
        if new > 0 && let Some(n) = self.limiter.add(Loss::QueueFull, new, now) {
            self.line(&Loss::QueueFull, n);
        }
        let due: Vec<(Loss, u64)> = self.limiter.due(now).into_iter().map(|(k, n)| (k.clone(), n)).collect();
        for (loss, n) in due {
            self.line(&loss, n);
        }
    }

    /// Everything not yet logged (the daemon is stopping).
    pub(crate) fn flush(&mut self, sensor: &Sensor, queue_full_waits: u64) {
        self.poll(sensor, queue_full_waits);
        let waiting: Vec<(Loss, u64)> = self.limiter.flush().into_iter().map(|(k, n)| (k.clone(), n)).collect();
        for (loss, n) in waiting {
            self.line(&loss, n);
        }
    }

    fn add(&mut self, loss: Loss, n: u64, example: String) {
        self.last.insert(loss.clone(), example);
        if let Some(n) = self.limiter.add(loss.clone(), n, Instant::now()) {
            self.line(&loss, n);
        }
    }

    fn line(&self, loss: &Loss, n: u64) {
        let every = DROP_LOG_EVERY.as_secs();
        let last = self.last.get(loss).map_or("", String::as_str);
        match loss {
            Loss::Kernel(name) => {
                let total = self.kernel_seen.get(name).copied().unwrap_or(0);
                warn!(kind = %name, dropped = n, total, "kernel dropped {n} {name} (total {total}): increase ring_buffer_bytes or map sizes; logged at most every {every} s")
            }
            Loss::Undecodable => warn!(kind = "undecodable", dropped = n, "dropped {n} kernel record(s) that did not decode (last: {last}); logged at most every {every} s"),
            Loss::InodeMapFull => warn!(kind = "inode_map_full", count = n, "kernel INODES map is full: {n} file(s) untrusted in the graph but not in the kernel (last: {last}); logged at most every {every} s"),
            Loss::QueueFull => warn!(kind = "queue_full", count = n, "the ingest queue was full {n} time(s): records waited in the ring buffer, which drops (and counts) what no longer fits; logged at most every {every} s"),
        }
    }
}
