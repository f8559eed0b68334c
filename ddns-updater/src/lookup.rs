//! IP -> node IDs through the reverse names of [`crate::names`], with a TTL cache.
//!
//! A lookup of `ip` in zone `Z`:
//! 1. query `PTR` at `<rev(ip)>.ip4|ip6.Z`; each target `<id>.Z` names a candidate ID;
//! 2. forward-confirm: query `A`/`AAAA` of `<id>.Z` and keep the ID only if `ip` is there
//!    (the forward name is writable only by that node's key, see [`crate::bindconf`]);
//! 3. cache the answer (also an empty one) for the smallest TTL seen, clamped to
//!    `[min_ttl, max_ttl]`; an empty answer is cached for `negative_ttl`.
//!
//! Several zones (a sub-zone per subnetwork) are tried in order; the first with IDs wins.
//! Queries go over UDP through hickory-net's client.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_net::NetError;
use hickory_net::client::ClientHandle;
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::udp::UdpClientStream;
use hickory_net::xfer::DnsExchange;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

use crate::names::{forward_name, id_from_forward_name, reverse_name};

/// A lookup failed (the caller records it and goes on).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("query {name} {rtype} at {server}: {detail}")]
    Transport {
        server: SocketAddr,
        name: String,
        rtype: String,
        detail: String,
    },
    #[error("query {name} {rtype} at {server}: server answered {rcode}")]
    Server {
        server: SocketAddr,
        name: String,
        rtype: String,
        rcode: String,
    },
}

/// The IDs found for an IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub ip: IpAddr,
    /// Forward-confirmed IDs, sorted. Empty when the IP is unknown.
    pub ids: Vec<String>,
    /// The zone the IDs were found in.
    pub zone: Option<Name>,
    /// True when served from the cache.
    pub cached: bool,
    /// How long this answer stays cached.
    pub ttl: Duration,
}

/// Resolver settings.
#[derive(Debug, Clone)]
pub struct LookupConfig {
    pub server: SocketAddr,
    pub zones: Vec<Name>,
    pub timeout: Duration,
    pub min_ttl: Duration,
    pub max_ttl: Duration,
    pub negative_ttl: Duration,
    /// Check each PTR against the ID's forward record (default true).
    pub forward_confirm: bool,
}

impl LookupConfig {
    pub fn new(server: SocketAddr, zones: Vec<Name>) -> Self {
        Self {
            server,
            zones,
            timeout: Duration::from_secs(2),
            min_ttl: Duration::from_secs(1),
            max_ttl: Duration::from_secs(3600),
            negative_ttl: Duration::from_secs(30),
            forward_confirm: true,
        }
    }
}

/// Turns IPs into node IDs; cheap to share (`&self` methods, internal lock).
pub struct Resolver {
    cfg: LookupConfig,
    client: DnsExchange<TokioRuntimeProvider>,
    cache: Mutex<HashMap<IpAddr, (Resolution, Instant)>>,
}

impl Resolver {
    /// Needs a tokio runtime (the UDP client runs a background task).
    pub fn new(cfg: LookupConfig) -> Self {
        let client = UdpClientStream::builder(cfg.server, TokioRuntimeProvider::new())
            .with_timeout(Some(cfg.timeout))
            .exchange();
        Self {
            cfg,
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Cached lookup.
    pub async fn resolve(&self, ip: IpAddr) -> Result<Resolution, LookupError> {
        if let Some(hit) = self.cached(ip) {
            return Ok(hit);
        }
        let r = self.resolve_uncached(ip).await?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(ip, (r.clone(), Instant::now() + r.ttl));
        }
        Ok(r)
    }

    /// The cached answer for `ip`, if still fresh.
    pub fn cached(&self, ip: IpAddr) -> Option<Resolution> {
        let mut cache = self.cache.lock().ok()?;
        match cache.get(&ip) {
            Some((r, until)) if *until > Instant::now() => Some(Resolution {
                cached: true,
                ..r.clone()
            }),
            Some(_) => {
                cache.remove(&ip);
                None
            }
            None => None,
        }
    }

    /// Drops every cached answer.
    pub fn clear_cache(&self) {
        if let Ok(mut c) = self.cache.lock() {
            c.clear();
        }
    }

    /// Lookup that always asks the server (and does not fill the cache).
    pub async fn resolve_uncached(&self, ip: IpAddr) -> Result<Resolution, LookupError> {
        for zone in &self.cfg.zones {
            let rev = reverse_name(ip, zone);
            let (ptrs, ptr_ttl) = self.query(&rev, RecordType::PTR).await?;
            let mut ttl = ptr_ttl;
            let mut ids = Vec::new();
            for data in ptrs {
                let RData::PTR(target) = data else { continue };
                let Some(id) = id_from_forward_name(&target.0, zone) else {
                    continue;
                };
                if self.cfg.forward_confirm {
                    let Ok(fwd) = forward_name(&id, zone) else {
                        continue;
                    };
                    let rtype = if ip.is_ipv4() {
                        RecordType::A
                    } else {
                        RecordType::AAAA
                    };
                    let (addrs, fttl) = self.query(&fwd, rtype).await?;
                    ttl = min_opt(ttl, fttl);
                    if !addrs.iter().any(|d| d.ip_addr() == Some(ip)) {
                        continue;
                    }
                }
                ids.push(id);
            }
            if !ids.is_empty() {
                ids.sort();
                ids.dedup();
                let ttl = ttl
                    .map(|t| t.clamp(self.cfg.min_ttl, self.cfg.max_ttl))
                    .unwrap_or(self.cfg.min_ttl);
                return Ok(Resolution {
                    ip,
                    ids,
                    zone: Some(zone.clone()),
                    cached: false,
                    ttl,
                });
            }
        }
        Ok(Resolution {
            ip,
            ids: Vec::new(),
            zone: None,
            cached: false,
            ttl: self.cfg.negative_ttl,
        })
    }

    /// Records of `rtype` at `name` and their smallest TTL; NXDOMAIN/no data = empty.
    async fn query(
        &self,
        name: &Name,
        rtype: RecordType,
    ) -> Result<(Vec<RData>, Option<Duration>), LookupError> {
        let mut client = self.client.clone();
        let err_ctx = |detail: String| LookupError::Transport {
            server: self.cfg.server,
            name: name.to_ascii(),
            rtype: rtype.to_string(),
            detail,
        };
        match client.query(name.clone(), DNSClass::IN, rtype).await {
            Ok(resp) => match resp.metadata.response_code {
                ResponseCode::NoError | ResponseCode::NXDomain => {
                    let mut ttl: Option<Duration> = None;
                    let mut out = Vec::new();
                    for r in resp
                        .answers
                        .iter()
                        .filter(|r| &r.name == name && r.record_type() == rtype)
                    {
                        ttl = min_opt(ttl, Some(Duration::from_secs(u64::from(r.ttl))));
                        out.push(r.data.clone());
                    }
                    Ok((out, ttl))
                }
                rc => Err(LookupError::Server {
                    server: self.cfg.server,
                    name: name.to_ascii(),
                    rtype: rtype.to_string(),
                    rcode: format!("{rc:?}").to_uppercase(),
                }),
            },
            Err(e) if e.is_no_records_found() => Ok((Vec::new(), None)),
            Err(NetError::Timeout) => {
                Err(err_ctx(format!("no answer within {:?}", self.cfg.timeout)))
            }
            Err(e) => Err(err_ctx(e.to_string())),
        }
    }
}

fn min_opt(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}
