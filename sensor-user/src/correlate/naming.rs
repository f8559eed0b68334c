//! Who this host is, and who a remote IP is: node IDs derived from disk serials
//! (`ddns-updater`), so records name both ends by an ID that outlives IP changes.
use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use ddns_updater::lookup::{LookupConfig, Resolver};
use tracing::{info, warn};
use tokio::sync::mpsc;
use sensor_common::graph::HostInfo;

/// This host: its disk IDs (first one is the host's node id); the hostname when no disk
/// has a serial, said in the log since such an id is not stable across renames.
pub fn this_host(sysfs_root: &Path) -> HostInfo {
    let hostname = std::fs::read_to_string(sysfs_root.join("proc/sys/kernel/hostname"))
        .or_else(|_| std::fs::read_to_string("/proc/sys/kernel/hostname"))
        .unwrap_or_default()
        .trim()
        .to_string();
    let disk_ids = match ddns_updater::disks::discover_all(sysfs_root) {
        Ok(found) => found.ids(),
        Err(e) => {
            warn!("cannot list this host's disks ({e}); naming it by hostname");
            Vec::new()
        }
    };
    match disk_ids.first() {
        Some(id) => HostInfo { id: id.clone(), hostname, disk_ids },
        None => {
            warn!("no disk with a serial number found: this host's node id falls back to its hostname");
            HostInfo { id: format!("hostname-{hostname}"), hostname, disk_ids }
        }
    }
}

/// Remote IP -> node IDs through the DNS reverse mapping, cached with the records' TTL.
/// Lookups never block event handling: a miss starts a lookup in the background and the
/// answer is applied to the remote node when it arrives.
#[derive(Clone)]
pub struct RemoteNamer {
    resolver: Option<Arc<Resolver>>,
}

impl RemoteNamer {
    pub fn new(server: Option<std::net::SocketAddr>, zones: &[String]) -> Self {
        let resolver = server.and_then(|server| {
            let names: Result<Vec<_>, _> = zones.iter().map(|z| z.parse()).collect();
            match names {
                Ok(names) if !names.is_empty() => {
                    info!("resolving remote IPs to node ids via {server}, zones {zones:?}");
                    Some(Arc::new(Resolver::new(LookupConfig::new(server, names))))
                }
                Ok(_) => None,
                Err(e) => {
                    warn!("bad dns_zones {zones:?}: {e}; remote IPs will not be named");
                    None
                }
            }
        });
        Self { resolver }
    }

    /// Naming off: no lookups, every IP unnamed.
    pub fn disabled() -> Self {
        Self { resolver: None }
    }

    pub fn enabled(&self) -> bool {
        self.resolver.is_some()
    }

    /// Cached IDs for `ip`, or None if a lookup is needed.
    pub fn cached(&self, ip: IpAddr) -> Option<Vec<String>> {
        self.resolver.as_ref()?.cached(ip).map(|r| r.ids)
    }

    /// Looks `ip` up (cache first); errors are returned for the caller to record.
    pub async fn resolve(&self, ip: IpAddr) -> Result<Vec<String>, String> {
        match &self.resolver {
            None => Ok(Vec::new()),
            Some(r) => r.resolve(ip).await.map(|r| r.ids).map_err(|e| e.to_string()),
        }
    }
}

/// A background lookup's answer: the IP and its ids, or why the lookup failed.
pub type Answer = (IpAddr, Result<Vec<String>, String>);

/// After a failed lookup of an IP, neither retry nor warn again for this long.
pub const FAILURE_TTL: Duration = Duration::from_secs(30);
const MAX_TRACKED: usize = 4096;

/// What `status --json` shows under `naming`.
#[derive(Default, Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NamingStats {
    pub enabled: bool,
    /// Lookups started (cache misses).
    pub lookups: u64,
    /// Lookups that found ids.
    pub resolved: u64,
    /// Lookups that found no ids (the IP is not in the mapping).
    pub unknown: u64,
    /// Lookups that failed (server down, timeout, error answer).
    pub failed: u64,
    /// IPs named from the cache when their node was touched.
    pub cache_hits: u64,
    pub pending: usize,
    pub last_error: Option<String>,
}

/// The event loop's side of naming: cached ids at once, misses looked up by a spawned
/// task whose answer comes back through a channel the daemon loop polls.
pub struct Naming {
    namer: RemoteNamer,
    tx: mpsc::UnboundedSender<Answer>,
    rx: Option<mpsc::UnboundedReceiver<Answer>>,
    pending: HashSet<IpAddr>,
    failed_until: HashMap<IpAddr, Instant>,
    pub stats: NamingStats,
}

impl Default for Naming {
    fn default() -> Self {
        Self::new(RemoteNamer::disabled())
    }
}

impl Naming {
    pub fn new(namer: RemoteNamer) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = NamingStats { enabled: namer.enabled(), ..Default::default() };
        Self { namer, tx, rx: Some(rx), pending: HashSet::new(), failed_until: HashMap::new(), stats }
    }

    /// The receiver of lookup answers (for the daemon loop; once).
    pub fn take_receiver(&mut self) -> Option<mpsc::UnboundedReceiver<Answer>> {
        if self.namer.enabled() { self.rx.take() } else { None }
    }

    /// The ids known now for `ip` (cached); on a miss, starts a lookup in the background
    /// (one at a time per IP; not again within [`FAILURE_TTL`] of a failure) and returns
    /// nothing. Must run on a tokio runtime when naming is on.
    pub fn ids(&mut self, ip: IpAddr) -> Vec<String> {
        if !self.namer.enabled() {
            return Vec::new();
        }
        if let Some(ids) = self.namer.cached(ip) {
            if !ids.is_empty() {
                self.stats.cache_hits += 1;
            }
            return ids;
        }
        let now = Instant::now();
        if self.pending.contains(&ip) || self.failed_until.get(&ip).is_some_and(|t| *t > now) {
            return Vec::new();
        }
        if self.pending.len() >= MAX_TRACKED {
            return Vec::new();
        }
        self.pending.insert(ip);
        self.stats.lookups += 1;
        self.stats.pending = self.pending.len();
        let (namer, tx) = (self.namer.clone(), self.tx.clone());
        tokio::spawn(async move {
            let answer = namer.resolve(ip).await;
            let _ = tx.send((ip, answer));
        });
        Vec::new()
    }

    /// Is a lookup of `ip` under way (its answer not applied yet)?
    pub fn is_pending(&self, ip: IpAddr) -> bool {
        self.pending.contains(&ip)
    }

    /// A lookup answered: the ids to put on the remote node (None: nothing to apply).
    /// A failure is counted, kept as `last_error` and logged (once per IP per
    /// [`FAILURE_TTL`], since the IP is not looked up again before then).
    pub fn answered(&mut self, ip: IpAddr, answer: Result<Vec<String>, String>) -> Option<Vec<String>> {
        self.pending.remove(&ip);
        self.stats.pending = self.pending.len();
        match answer {
            Ok(ids) if ids.is_empty() => {
                self.stats.unknown += 1;
                None
            }
            Ok(ids) => {
                self.stats.resolved += 1;
                self.failed_until.remove(&ip);
                Some(ids)
            }
            Err(e) => {
                self.stats.failed += 1;
                warn!("cannot name remote {ip} by node id: {e} (recorded by IP; retried after {} s)", FAILURE_TTL.as_secs());
                self.stats.last_error = Some(format!("{ip}: {e}"));
                let now = Instant::now();
                if self.failed_until.len() >= MAX_TRACKED {
                    self.failed_until.retain(|_, t| *t > now);
                }
                self.failed_until.insert(ip, now + FAILURE_TTL);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_naming_names_nothing() {
        let mut n = Naming::default();
        assert!(!n.stats.enabled);
        assert!(n.ids("10.0.0.1".parse().unwrap()).is_empty());
        assert!(n.take_receiver().is_none());
        assert_eq!(n.stats.lookups, 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn failures_are_counted_and_not_retried_at_once() {
        // Nothing answers DNS on this port: the lookup fails (refused or timeout).
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let server = sock.local_addr().unwrap();
        drop(sock);
        let mut n = Naming::new(RemoteNamer::new(Some(server), &["nodes.test".into()]));
        let mut rx = n.take_receiver().unwrap();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(n.ids(ip).is_empty());
        assert!(n.ids(ip).is_empty(), "second touch while pending");
        assert_eq!(n.stats.lookups, 1);
        let (got, answer) = rx.recv().await.unwrap();
        assert_eq!(got, ip);
        assert!(answer.is_err(), "{answer:?}");
        assert!(n.answered(got, answer).is_none());
        assert_eq!((n.stats.failed, n.stats.pending), (1, 0));
        assert!(n.stats.last_error.as_deref().unwrap().starts_with("10.0.0.1: "));
        assert!(n.ids(ip).is_empty());
        assert_eq!(n.stats.lookups, 1, "not retried within FAILURE_TTL");
    }
}
