//! Who this host is, and who a remote IP is: node IDs derived from disk serials
//! (`ddns-updater`), so records name both ends by an ID that outlives IP changes.
use std::{net::IpAddr, path::Path, sync::Arc};

use ddns_updater::lookup::{LookupConfig, Resolver};
use log::{info, warn};
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
