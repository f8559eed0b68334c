//! Nodes go to sled on a thread of their own. A new node is one sled insert (about 6 us
//! here, the largest cost left per event once edges and untrusted files went in chunks
//! and buckets); on this thread it overlaps with the next events' decoding on the event
//! loop. A batch sent is held, shared, until it is written, so a read finds the newest
//! version of a node whether it is waiting, being written, or in sled.
use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    thread::JoinHandle,
};

use sensor_common::graph::Node;

/// A node as stored: the value and its JSON (what sled gets).
pub(super) struct Written {
    pub(super) node: Node,
    pub(super) json: Vec<u8>,
}

/// Nodes by id, the newest version of each.
pub(super) type NodeBatch = HashMap<String, Arc<Written>>;

/// Batches the writer may be behind by before a send waits: bounds the memory held.
const BATCHES_AHEAD: usize = 4;

enum Job {
    Write(Arc<NodeBatch>),
    /// Answered once every batch sent before it is written.
    Sync(mpsc::SyncSender<()>),
}

#[derive(Default)]
struct Shared {
    /// Sent and not yet written, oldest first.
    in_flight: Mutex<VecDeque<Arc<NodeBatch>>>,
    /// The first write that failed, and how many nodes were not written: kept, so every
    /// later flush fails too (those nodes are lost; no checkpoint may claim them).
    failed: Mutex<Option<(sled::Error, u64)>>,
    /// Held by a test to keep batches in flight.
    #[cfg(test)]
    paused: Mutex<()>,
}

impl Shared {
    fn in_flight(&self) -> MutexGuard<'_, VecDeque<Arc<NodeBatch>>> {
        self.in_flight.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn failed(&self) -> MutexGuard<'_, Option<(sled::Error, u64)>> {
        self.failed.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub(super) struct NodeWriter {
    jobs: Option<mpsc::SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl NodeWriter {
    /// Writes into `tree`; `stored` counts the nodes that were not there before.
    pub(super) fn start(tree: sled::Tree, stored: Arc<AtomicU64>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let (jobs, rx) = mpsc::sync_channel(BATCHES_AHEAD);
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new().name("vtrail-nodes".into()).spawn(move || write_loop(&tree, &rx, &shared, &stored))?
        };
        Ok(Self { jobs: Some(jobs), thread: Some(thread), shared })
    }

    /// Queues `batch` (visible to `find` at once); waits while the writer is
    /// `BATCHES_AHEAD` behind.
    pub(super) fn send(&self, batch: NodeBatch) {
        if batch.is_empty() {
            return;
        }
        let batch = Arc::new(batch);
        self.shared.in_flight().push_back(batch.clone());
        if let Some(jobs) = &self.jobs
            && jobs.send(Job::Write(batch)).is_err()
        {
            // The thread is gone (it only ends when told to): what was sent stays held.
            tracing::error!("the graph's node writer has stopped: nodes are kept in memory, not written");
        }
    }

    /// The newest version of `id` sent and not yet written.
    pub(super) fn find(&self, id: &str) -> Option<Arc<Written>> {
        self.shared.in_flight().iter().rev().find_map(|batch| batch.get(id).cloned())
    }

    /// Keeps the writer from writing while the guard lives.
    #[cfg(test)]
    pub(super) fn pause(&self) -> MutexGuard<'_, ()> {
        self.shared.paused.lock().unwrap()
    }

    /// Waits until every batch sent is written. An error if any node write ever failed,
    /// or if the thread has stopped.
    pub(super) fn sync(&self) -> Result<(), sled::Error> {
        let (done, wait) = mpsc::sync_channel(1);
        let synced = self.jobs.as_ref().is_some_and(|jobs| jobs.send(Job::Sync(done)).is_ok()) && wait.recv().is_ok();
        if let Some((e, lost)) = self.shared.failed().as_ref() {
            return Err(sled::Error::Io(std::io::Error::other(format!("{lost} nodes were not written since the sensor started; the first failure: {e}"))));
        }
        if !synced {
            return Err(sled::Error::Io(std::io::Error::other("the graph's node writer has stopped: nodes are kept in memory, not written")));
        }
        Ok(())
    }
}

impl Drop for NodeWriter {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn write_loop(tree: &sled::Tree, jobs: &mpsc::Receiver<Job>, shared: &Shared, stored: &AtomicU64) {
    for job in jobs {
        match job {
            Job::Write(batch) => {
                #[cfg(test)]
                let _paused = shared.paused.lock();
                let mut not_written = 0usize;
                for (id, written) in batch.iter() {
                    match tree.insert(id.as_bytes(), written.json.as_slice()) {
                        Ok(None) => {
                            stored.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Some(_)) => {}
                        Err(e) => {
                            not_written += 1;
                            let mut failed = shared.failed();
                            failed.get_or_insert((e, 0)).1 += 1;
                        }
                    }
                }
                if not_written > 0 {
                    // One line a batch (a full disk fails them all); every flush fails after.
                    tracing::error!("graph database: {not_written} of {} nodes not written: {:?}", batch.len(), shared.failed().as_ref().map(|(e, _)| e.to_string()));
                }
                shared.in_flight().pop_front();
            }
            Job::Sync(done) => {
                let _ = done.send(());
            }
        }
    }
}
