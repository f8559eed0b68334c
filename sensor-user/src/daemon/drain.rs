//! The ring buffer is emptied by a thread of its own, as fast as the kernel fills it, into
//! batches the event loop ingests. The kernel then drops only if userspace is starved of
//! CPU or its queue is full; bursts (a worm creating thousands of files a second) wait in
//! memory instead of being lost while the graph writes catch up.
//!
//! The queue is bounded in bytes (`QUEUE_LIMIT_BYTES`): when it is full the thread stops
//! draining, the ring fills, and the kernel counts what it cannot deliver (`kernel_drops`),
//! so memory stays bounded and every loss is still counted where it happens.
use std::{
    os::fd::{AsRawFd, RawFd},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{Context, Result};
use aya::maps::{MapData, RingBuf};
use tokio::sync::mpsc;

/// Raw records waiting for ingest, at most (256 MiB: about 700,000 create records).
pub const QUEUE_LIMIT_BYTES: u64 = 256 << 20;
/// Records per batch, at most: the event loop answers control calls between batches.
const BATCH_RECORDS: usize = 4096;
/// How long the thread sleeps in poll(2) when the ring is empty: bounds how late it sees
/// the stop flag.
const POLL_MS: i32 = 100;
/// A batch smaller than this waits `COALESCE_WAIT` for more before it is sent: at most
/// 1 ms more latency, and at 200,000 events/s about 120 KiB of a 16 MiB ring meanwhile.
const COALESCE_BELOW: usize = 256;
const COALESCE_WAIT: Duration = Duration::from_millis(1);

/// Records copied out of the ring, back to back.
#[derive(Default)]
pub struct Batch {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Batch {
    fn push(&mut self, record: &[u8]) {
        self.bytes.extend_from_slice(record);
        self.ends.push(self.bytes.len());
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn size_bytes(&self) -> u64 {
        self.bytes.len() as u64
    }

    pub fn records(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(self.ends.iter().copied()).map(|(s, e)| &self.bytes[s..e])
    }
}

/// What the drain thread did, for `status` and the metrics.
#[derive(Default)]
pub struct DrainStats {
    pub records: AtomicU64,
    /// Bytes copied out of the ring and not yet ingested.
    pub queued_bytes: AtomicU64,
    pub queued_records: AtomicU64,
    pub peak_queued_bytes: AtomicU64,
    pub peak_queued_records: AtomicU64,
    /// Times the queue was full and the thread left records in the ring.
    pub queue_full_waits: AtomicU64,
    /// Ring bytes in use (records written by the kernel, not yet consumed), last seen and
    /// highest seen.
    pub ring_used_bytes: AtomicU64,
    pub ring_peak_used_bytes: AtomicU64,
}

impl DrainStats {
    /// A batch left the queue (ingested).
    pub fn ingested(&self, batch: &Batch) {
        self.queued_bytes.fetch_sub(batch.size_bytes(), Ordering::Relaxed);
        self.queued_records.fetch_sub(batch.len() as u64, Ordering::Relaxed);
    }

    fn queued(&self, batch: &Batch) {
        let bytes = self.queued_bytes.fetch_add(batch.size_bytes(), Ordering::Relaxed) + batch.size_bytes();
        let records = self.queued_records.fetch_add(batch.len() as u64, Ordering::Relaxed) + batch.len() as u64;
        self.records.fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.peak_queued_bytes.fetch_max(bytes, Ordering::Relaxed);
        self.peak_queued_records.fetch_max(records, Ordering::Relaxed);
    }
}

/// The ring's producer and consumer positions, read from a read-only mapping of its two
/// metadata pages (the kernel's layout for BPF_MAP_TYPE_RINGBUF: consumer page, then
/// producer page). Their difference is the fill level, which aya does not expose.
struct RingPositions {
    base: *mut libc::c_void,
    page: usize,
}

// The mapping is read-only and only read with atomic loads.
unsafe impl Send for RingPositions {}

impl RingPositions {
    fn map(fd: RawFd) -> Result<Self> {
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let base = unsafe { libc::mmap(std::ptr::null_mut(), 2 * page, libc::PROT_READ, libc::MAP_SHARED, fd, 0) };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error()).context("mapping the ring buffer's positions");
        }
        Ok(Self { base, page })
    }

    fn used_bytes(&self) -> u64 {
        // Both positions are u64 counters at the start of their page, written by the
        // kernel (producer) and by aya (consumer) with release stores.
        let load = |offset: usize| unsafe { (*(self.base.add(offset) as *const AtomicU64)).load(Ordering::Acquire) };
        let consumer = load(0);
        let producer = load(self.page);
        producer.saturating_sub(consumer)
    }
}

impl Drop for RingPositions {
    fn drop(&mut self) {
        unsafe { libc::munmap(self.base, 2 * self.page) };
    }
}

pub struct Drain {
    pub batches: mpsc::Receiver<Batch>,
    pub stats: Arc<DrainStats>,
    ring_size_bytes: u32,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drain {
    pub fn start(ring: RingBuf<MapData>, ring_size_bytes: u32) -> Result<Self> {
        let stats = Arc::new(DrainStats::default());
        let positions = RingPositions::map(ring.as_raw_fd())?;
        let stop = Arc::new(AtomicBool::new(false));
        // Enough batches for the whole queue limit; the byte limit is what binds.
        let (tx, rx) = mpsc::channel(4096);
        let thread = std::thread::Builder::new()
            .name("vtrail-drain".into())
            .spawn({
                let (stats, stop) = (stats.clone(), stop.clone());
                move || drain_loop(ring, positions, tx, &stats, &stop)
            })
            .context("cannot start the ring buffer thread")?;
        Ok(Self { batches: rx, stats, ring_size_bytes, stop, thread: Some(thread) })
    }

    pub fn ring_status(&self) -> crate::control::status::RingStatus {
        let s = &*self.stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        crate::control::status::RingStatus {
            size_bytes: self.ring_size_bytes.into(),
            used_bytes: get(&s.ring_used_bytes),
            peak_used_bytes: get(&s.ring_peak_used_bytes),
            drained_records: get(&s.records),
            queued_records: get(&s.queued_records),
            queued_bytes: get(&s.queued_bytes),
            peak_queued_records: get(&s.peak_queued_records),
            peak_queued_bytes: get(&s.peak_queued_bytes),
            queue_limit_bytes: QUEUE_LIMIT_BYTES,
            queue_full_waits: get(&s.queue_full_waits),
        }
    }

    /// The thread still drains the ring (it ends only when stopped or if it panicked).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the thread: what it already queued stays in `batches`.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Moves what the ring holds into `batch`, up to its size.
fn fill(ring: &mut RingBuf<MapData>, batch: &mut Batch) {
    while batch.len() < BATCH_RECORDS {
        match ring.next() {
            Some(item) => batch.push(&item),
            None => break,
        }
    }
}

fn drain_loop(mut ring: RingBuf<MapData>, positions: RingPositions, tx: mpsc::Sender<Batch>, stats: &DrainStats, stop: &AtomicBool) {
    let fd = ring.as_raw_fd();
    while !stop.load(Ordering::Relaxed) {
        let used = positions.used_bytes();
        stats.ring_used_bytes.store(used, Ordering::Relaxed);
        stats.ring_peak_used_bytes.fetch_max(used, Ordering::Relaxed);
        if stats.queued_bytes.load(Ordering::Relaxed) >= QUEUE_LIMIT_BYTES {
            // Ingest is behind by the whole queue: leave the rest in the ring (the kernel
            // counts what no longer fits) until it catches up.
            stats.queue_full_waits.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let mut batch = Batch::default();
        fill(&mut ring, &mut batch);
        if batch.is_empty() {
            let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            unsafe { libc::poll(&mut pfd, 1, POLL_MS) };
            continue;
        }
        if batch.len() < COALESCE_BELOW {
            // A trickle, or a burst just starting: a moment's wait makes one batch of
            // what would be many, each waking this thread and the event loop (at a worm's
            // rate that was a tenth of the sensor's CPU). The ring holds far more than
            // arrives meanwhile.
            std::thread::sleep(COALESCE_WAIT);
            fill(&mut ring, &mut batch);
        }
        stats.queued(&batch);
        if tx.blocking_send(batch).is_err() {
            return; // the event loop is gone
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_gives_back_each_record_as_pushed() {
        let mut b = Batch::default();
        for r in [&b"abc"[..], b"", b"de"] {
            b.push(r);
        }
        let got: Vec<&[u8]> = b.records().collect();
        assert_eq!(got, vec![&b"abc"[..], b"", b"de"]);
        assert_eq!((b.len(), b.size_bytes()), (3, 5));
    }

    #[test]
    fn queue_accounting_tracks_peaks_and_returns_to_zero() {
        let stats = DrainStats::default();
        let mut b = Batch::default();
        b.push(&[0u8; 100]);
        b.push(&[0u8; 50]);
        stats.queued(&b);
        stats.queued(&b);
        stats.ingested(&b);
        assert_eq!(stats.peak_queued_bytes.load(Ordering::Relaxed), 300);
        assert_eq!(stats.peak_queued_records.load(Ordering::Relaxed), 4);
        stats.ingested(&b);
        assert_eq!(stats.queued_bytes.load(Ordering::Relaxed), 0);
        assert_eq!(stats.records.load(Ordering::Relaxed), 4);
    }
}
