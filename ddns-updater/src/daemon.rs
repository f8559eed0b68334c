//! Daemon mode: publish the node's IDs at its current global addresses, again on every
//! rtnetlink address change, after netlink overruns and every `resync` interval.

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use crate::netwatch::{Change, Watcher, publishable_addresses};
use crate::update::Updater;

/// Daemon settings.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Publish again this often even without changes (repairs records changed by others).
    pub resync: Duration,
    /// After a failed publish, try again after this long (capped at `resync`).
    pub retry_after: Duration,
    /// Only addresses of these interface indexes (empty = all).
    pub only_ifindex: Vec<u32>,
    /// Log each successful publish to stderr (failures are always logged).
    pub log_success: bool,
}

/// Runs until an unrecoverable local error (netlink socket failure). Update errors are
/// logged to stderr and retried; they never end the daemon.
pub async fn run(updater: &Updater, ids: &[String], opts: &DaemonOptions) -> io::Result<()> {
    let mut watcher = Watcher::new()?;
    let mut published: Option<Vec<IpAddr>> = None;
    let mut next_sync = Instant::now();
    loop {
        let addrs = publishable_addresses(&opts.only_ifindex)?;
        let changed = published.as_ref() != Some(&addrs);
        if changed || Instant::now() >= next_sync {
            match updater.publish(ids, &addrs).await {
                Ok(done) => {
                    for p in done.iter().filter(|_| opts.log_success) {
                        eprintln!(
                            "vtrail-ddns: published {} -> {:?} (removed {:?})",
                            p.name, p.addresses, p.removed
                        );
                    }
                    published = Some(addrs);
                    next_sync = Instant::now() + opts.resync;
                }
                Err(e) => {
                    eprintln!(
                        "vtrail-ddns: update failed (exit code {} in --once mode): {e}",
                        e.exit_code()
                    );
                    published = None;
                    next_sync = Instant::now() + opts.retry_after.min(opts.resync);
                }
            }
        }
        tokio::select! {
            change = watcher.next() => match change? {
                Change::Addresses => {}
                Change::Overrun => eprintln!("vtrail-ddns: netlink overrun, re-reading all addresses"),
            },
            _ = tokio::time::sleep_until(next_sync) => {}
        }
    }
}
