//! RFC 2136 updates of a node's names, signed with TSIG, over TCP.
//!
//! For each node ID, one atomic UPDATE message to the zone's primary:
//!
//! ```text
//! zone:    Z IN SOA
//! update:  <id>.Z ANY A                       (delete the A rrset)
//!          <id>.Z ANY AAAA                    (delete the AAAA rrset)
//!          <id>.Z TTL IN A/AAAA <addr>        (one per current address)
//!          <rev(old)>.Z NONE PTR <id>.Z       (for each address the node no longer has)
//!          <rev(new)>.Z TTL IN PTR <id>.Z     (one per current address)
//! ```
//!
//! The old addresses are read with a plain query of `<id>.Z` A and AAAA on the same
//! connection just before. Names are explained in [`crate::names`].
//!
//! [`build_update`] and [`check_update_reply`] are pure; [`Updater`] adds the network,
//! the clock, retries with exponential backoff (transport failures only: a server's
//! refusal is final) and per-ID results.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode, UpdateMessage};
use hickory_proto::rr::rdata::tsig::TsigError;
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, TSigVerifier, TSigner};

use crate::error::UpdateError;
use crate::keyfile::TsigKey;
use crate::names::{NameError, forward_name, reverse_name};
use crate::transport::{Conn, TransportError};

/// Retries of transport failures (refused connection, reset, timeout).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Total attempts, at least 1.
    pub attempts: u32,
    /// Wait before the second attempt; doubled each time up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// Backoff before attempt `n` (1-based; attempt 1 has none).
    pub fn backoff(&self, n: u32) -> Duration {
        if n <= 1 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(n - 2).unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Where and how to update.
#[derive(Debug, Clone)]
pub struct UpdateConfig {
    /// The zone's primary server (TCP).
    pub server: SocketAddr,
    pub zone: Name,
    pub key: TsigKey,
    /// TTL of the A/AAAA/PTR records written.
    pub ttl: u32,
    /// Time to wait for a connection or for one reply.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// TSIG fudge (allowed clock difference) in seconds; BIND uses 300.
    pub fudge: u16,
    /// Added to the system clock when signing. Only for tests of BADTIME handling.
    pub clock_offset_secs: i64,
}

impl UpdateConfig {
    pub fn new(server: SocketAddr, zone: Name, key: TsigKey) -> Self {
        Self {
            server,
            zone,
            key,
            ttl: 60,
            timeout: Duration::from_secs(3),
            retry: RetryPolicy::default(),
            fudge: 300,
            clock_offset_secs: 0,
        }
    }
}

/// What one ID's update changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Published {
    pub id: String,
    pub name: String,
    pub addresses: Vec<IpAddr>,
    /// Addresses the record had before and that were removed (with their PTRs).
    pub removed: Vec<IpAddr>,
    pub attempts: u32,
}

/// Builds the atomic update message for one ID (see module docs). Addresses are
/// de-duplicated; the message ID is random.
pub fn build_update(
    zone: &Name,
    id: &str,
    old: &[IpAddr],
    new: &[IpAddr],
    ttl: u32,
) -> Result<Message, NameError> {
    let fwd = forward_name(id, zone)?;
    let mut new: Vec<IpAddr> = new.to_vec();
    new.sort();
    new.dedup();

    let mut msg = Message::query();
    msg.metadata.op_code = OpCode::Update;
    msg.metadata.recursion_desired = false;
    let mut zq = Query::query(zone.clone(), RecordType::SOA);
    zq.set_query_class(DNSClass::IN);
    msg.add_zone(zq);

    for rtype in [RecordType::A, RecordType::AAAA] {
        let mut del = Record::update0(fwd.clone(), 0, rtype);
        del.dns_class = DNSClass::ANY;
        msg.add_update(del);
    }
    for ip in &new {
        let data = match ip {
            IpAddr::V4(v4) => RData::A(A(*v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(*v6)),
        };
        msg.add_update(Record::from_rdata(fwd.clone(), ttl, data));
    }
    for ip in old.iter().filter(|ip| !new.contains(ip)) {
        let mut del = Record::from_rdata(reverse_name(*ip, zone), 0, RData::PTR(PTR(fwd.clone())));
        del.dns_class = DNSClass::NONE;
        msg.add_update(del);
    }
    for ip in &new {
        msg.add_update(Record::from_rdata(
            reverse_name(*ip, zone),
            ttl,
            RData::PTR(PTR(fwd.clone())),
        ));
    }
    Ok(msg)
}

/// Context for naming things in errors.
#[derive(Debug, Clone)]
pub struct ReplyContext<'a> {
    pub server: SocketAddr,
    pub key: &'a str,
    pub zone: &'a Name,
    pub name: &'a Name,
    /// The time we put in the request's TSIG.
    pub our_time: u64,
}

/// Checks the reply to a signed update: TSIG errors first (they come unsigned or signed
/// with an error code), then the signature, then the RCODE.
pub fn check_update_reply(
    reply: &[u8],
    verifier: Option<&mut TSigVerifier>,
    cx: &ReplyContext<'_>,
) -> Result<(), UpdateError> {
    let server = cx.server;
    let msg = Message::from_vec(reply).map_err(|e| UpdateError::Protocol {
        server,
        detail: format!("cannot decode reply: {e}"),
    })?;
    if let Some(sig) = msg.signature() {
        match &sig.data.error {
            None => {}
            Some(TsigError::BadKey) => {
                return Err(UpdateError::BadKey {
                    server,
                    key: cx.key.to_string(),
                });
            }
            Some(TsigError::BadSig) => {
                return Err(UpdateError::BadSig {
                    server,
                    key: cx.key.to_string(),
                });
            }
            Some(TsigError::BadTime) => {
                // RFC 8945 5.2.3: Other Data holds the server's time (48 bits).
                let other = &sig.data.other;
                let server_time = if other.len() == 6 {
                    other.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
                } else {
                    sig.data.time
                };
                return Err(UpdateError::BadTime {
                    server,
                    skew_secs: cx.our_time as i64 - server_time as i64,
                    server_time,
                    our_time: cx.our_time,
                    fudge: sig.data.fudge,
                });
            }
            Some(other) => {
                return Err(UpdateError::AuthFailed {
                    server,
                    key: cx.key.to_string(),
                    detail: format!("TSIG error {other:?}"),
                });
            }
        }
    }
    if let Some(verifier) = verifier
        && let Err(e) = verifier.verify(reply)
    {
        let text = e.to_string();
        let detail = if text.contains("truncated HMAC") {
            // hickory-proto 0.26.3 reports an unsigned (empty MAC) BADKEY/BADSIG reply this way.
            "the server rejected the signature (unsigned reply with empty MAC: unknown key or wrong secret)".to_string()
        } else if msg.signature().is_none() {
            format!(
                "the reply is not signed (RCODE {}): unknown key or wrong secret",
                rcode_name(msg.metadata.response_code)
            )
        } else {
            format!("the reply's signature does not verify: {text}")
        };
        return Err(UpdateError::AuthFailed {
            server,
            key: cx.key.to_string(),
            detail,
        });
    }
    match msg.metadata.response_code {
        ResponseCode::NoError => Ok(()),
        ResponseCode::Refused => Err(UpdateError::Refused {
            server,
            key: cx.key.to_string(),
            name: cx.name.to_ascii(),
        }),
        ResponseCode::NotAuth => Err(UpdateError::NotAuth {
            server,
            zone: cx.zone.to_ascii(),
        }),
        other => Err(UpdateError::Server {
            server,
            rcode: rcode_name(other),
            name: cx.name.to_ascii(),
        }),
    }
}

fn rcode_name(rc: ResponseCode) -> String {
    format!("{rc:?}").to_uppercase()
}

/// Sends signed updates for node IDs.
pub struct Updater {
    cfg: UpdateConfig,
    signer: TSigner,
}

impl Updater {
    pub fn new(cfg: UpdateConfig) -> Result<Self, UpdateError> {
        let signer = cfg.key.signer(cfg.fudge)?;
        Ok(Self { cfg, signer })
    }

    pub fn config(&self) -> &UpdateConfig {
        &self.cfg
    }

    /// Publishes `addrs` for every ID, one atomic message per ID, over one connection
    /// (re-opened on transport errors). Stops at the first final error.
    pub async fn publish(
        &self,
        ids: &[String],
        addrs: &[IpAddr],
    ) -> Result<Vec<Published>, UpdateError> {
        let mut conn: Option<Conn> = None;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.publish_one(&mut conn, id, addrs).await?);
        }
        Ok(out)
    }

    async fn publish_one(
        &self,
        conn: &mut Option<Conn>,
        id: &str,
        addrs: &[IpAddr],
    ) -> Result<Published, UpdateError> {
        let fwd = forward_name(id, &self.cfg.zone)?;
        let mut last: Option<TransportError> = None;
        let attempts = self.cfg.retry.attempts.max(1);
        for attempt in 1..=attempts {
            tokio::time::sleep(self.cfg.retry.backoff(attempt)).await;
            match self.try_once(conn, id, &fwd, addrs).await {
                Ok(Ok(removed)) => {
                    let mut addresses = addrs.to_vec();
                    addresses.sort();
                    addresses.dedup();
                    return Ok(Published {
                        id: id.to_string(),
                        name: fwd.to_ascii(),
                        addresses,
                        removed,
                        attempts: attempt,
                    });
                }
                Ok(Err(fatal)) => return Err(fatal),
                Err(transport) => {
                    *conn = None;
                    last = Some(transport);
                }
            }
        }
        let server = self.cfg.server;
        let last = last
            .map(|e| (e.is_timeout(), e.to_string()))
            .unwrap_or((false, String::new()));
        Err(if last.0 {
            UpdateError::Timeout {
                server,
                attempts,
                last: last.1,
            }
        } else {
            UpdateError::Unreachable {
                server,
                attempts,
                last: last.1,
            }
        })
    }

    /// One attempt: `Err` = transport failure (retry), `Ok(Err)` = final answer.
    async fn try_once(
        &self,
        conn: &mut Option<Conn>,
        id: &str,
        fwd: &Name,
        addrs: &[IpAddr],
    ) -> Result<Result<Vec<IpAddr>, UpdateError>, TransportError> {
        if conn.is_none() {
            *conn = Some(Conn::connect(self.cfg.server, self.cfg.timeout).await?);
        }
        let Some(c) = conn.as_mut() else {
            unreachable!("connected above")
        };
        let old = current_addresses(c, fwd, self.cfg.timeout).await?;
        let removed: Vec<IpAddr> = old
            .iter()
            .copied()
            .filter(|ip| !addrs.contains(ip))
            .collect();

        let mut msg = match build_update(&self.cfg.zone, id, &old, addrs, self.cfg.ttl) {
            Ok(m) => m,
            Err(e) => return Ok(Err(e.into())),
        };
        let our_time = self.now();
        let mut verifier = match msg.finalize(&self.signer, our_time) {
            Ok(v) => v,
            Err(e) => {
                return Ok(Err(UpdateError::AuthFailed {
                    server: self.cfg.server,
                    key: self.cfg.key.name.clone(),
                    detail: format!("cannot sign: {e}"),
                }));
            }
        };
        let bytes = match msg.to_vec() {
            Ok(b) => b,
            Err(e) => {
                return Ok(Err(UpdateError::Protocol {
                    server: self.cfg.server,
                    detail: format!("cannot encode update: {e}"),
                }));
            }
        };
        let reply = c.exchange(bytes, msg.metadata.id, self.cfg.timeout).await?;
        let cx = ReplyContext {
            server: self.cfg.server,
            key: &self.cfg.key.name,
            zone: &self.cfg.zone,
            name: fwd,
            our_time,
        };
        Ok(check_update_reply(&reply, verifier.as_mut(), &cx).map(|()| removed))
    }

    fn now(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0) as i64;
        (now + self.cfg.clock_offset_secs).max(0) as u64
    }
}

/// The A and AAAA addresses `name` has now (plain queries; an error answer counts as none,
/// so that the update itself reports the real problem).
pub async fn current_addresses(
    conn: &mut Conn,
    name: &Name,
    timeout: Duration,
) -> Result<Vec<IpAddr>, TransportError> {
    let mut out = Vec::new();
    for rtype in [RecordType::A, RecordType::AAAA] {
        let mut q = Message::query();
        q.metadata.message_type = MessageType::Query;
        q.metadata.recursion_desired = false;
        q.add_query(Query::query(name.clone(), rtype));
        let Ok(bytes) = q.to_vec() else { continue };
        let reply = conn.exchange(bytes, q.metadata.id, timeout).await?;
        let Ok(reply) = Message::from_vec(&reply) else {
            continue;
        };
        out.extend(
            reply
                .answers
                .iter()
                .filter(|r| &r.name == name)
                .filter_map(|r| r.data.ip_addr()),
        );
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::parse_zone;
    use hickory_proto::rr::rdata::tsig::{TSIG, TsigAlgorithm};

    fn zone() -> Name {
        parse_zone("nodes.test").unwrap()
    }

    #[test]
    fn update_message_layout() {
        let old: Vec<IpAddr> = vec!["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()];
        let new: Vec<IpAddr> = vec![
            "192.0.2.2".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
            "192.0.2.2".parse().unwrap(),
        ];
        let m = build_update(&zone(), "n1", &old, &new, 30).unwrap();
        assert_eq!(m.metadata.op_code, OpCode::Update);
        assert_eq!(m.zones().len(), 1);
        let ups = m.updates();
        // 2 rrset deletes, 2 adds, 1 PTR delete (192.0.2.1), 2 PTR adds
        assert_eq!(ups.len(), 7, "{ups:#?}");
        assert_eq!(ups[0].dns_class, DNSClass::ANY);
        assert_eq!(ups[4].dns_class, DNSClass::NONE);
        assert_eq!(ups[4].name.to_ascii(), "1.2.0.192.ip4.nodes.test.");
        assert!(
            ups[2..4]
                .iter()
                .all(|r| r.ttl == 30 && r.dns_class == DNSClass::IN)
        );
        // encodes
        assert!(m.to_vec().is_ok());
        assert!(build_update(&zone(), "BAD ID", &[], &new, 30).is_err());
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
        };
        let v: Vec<u128> = (1..=5).map(|n| p.backoff(n).as_millis()).collect();
        assert_eq!(v, [0, 100, 200, 350, 350]);
        assert_eq!(p.backoff(200), Duration::from_millis(350));
    }

    fn reply_with(rcode: ResponseCode, tsig: Option<TSIG>) -> Vec<u8> {
        let mut m = Message::new(7, MessageType::Response, OpCode::Update);
        m.metadata.response_code = rcode;
        if let Some(t) = tsig {
            let mut rec = Record::from_rdata(Name::from_ascii("k.").unwrap(), 0, t);
            rec.dns_class = DNSClass::ANY;
            m.set_signature(Box::new(rec));
        }
        m.to_vec().unwrap()
    }

    fn cx<'a>(zone: &'a Name, name: &'a Name) -> ReplyContext<'a> {
        ReplyContext {
            server: "127.0.0.1:53".parse().unwrap(),
            key: "k",
            zone,
            name,
            our_time: 1_000_000,
        }
    }

    #[test]
    fn maps_tsig_errors() {
        let z = zone();
        let n = forward_name("n1", &z).unwrap();
        let tsig = |err, other: Vec<u8>| {
            TSIG::new(
                TsigAlgorithm::HmacSha256,
                1_000_000,
                300,
                vec![],
                7,
                Some(err),
                other,
            )
        };
        let e = check_update_reply(
            &reply_with(ResponseCode::NotAuth, Some(tsig(TsigError::BadKey, vec![]))),
            None,
            &cx(&z, &n),
        )
        .unwrap_err();
        assert!(
            matches!(e, UpdateError::BadKey { .. }) && e.is_auth(),
            "{e}"
        );
        let e = check_update_reply(
            &reply_with(ResponseCode::NotAuth, Some(tsig(TsigError::BadSig, vec![]))),
            None,
            &cx(&z, &n),
        )
        .unwrap_err();
        assert!(matches!(e, UpdateError::BadSig { .. }), "{e}");
        // server is 3600 s ahead
        let t = 1_003_600u64.to_be_bytes()[2..].to_vec();
        let e = check_update_reply(
            &reply_with(ResponseCode::NotAuth, Some(tsig(TsigError::BadTime, t))),
            None,
            &cx(&z, &n),
        )
        .unwrap_err();
        match e {
            UpdateError::BadTime { skew_secs, .. } => assert_eq!(skew_secs, -3600),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn unsigned_empty_mac_reply_is_an_auth_failure() {
        // hickory-proto 0.26.3 fails verification of an empty-MAC reply with an error about
        // "truncated HMACs"; that must read as an authentication failure.
        let z = zone();
        let n = forward_name("n1", &z).unwrap();
        let key = crate::keyfile::parse_key_text(
            "key \"k\" { algorithm hmac-sha256; secret \"c2VjcmV0\"; };",
            None,
        )
        .unwrap();
        let mut req = build_update(&z, "n1", &[], &["192.0.2.1".parse().unwrap()], 60).unwrap();
        let mut verifier = req.finalize(&key.signer(300).unwrap(), 1_000_000).unwrap();
        let tsig = TSIG::new(
            TsigAlgorithm::HmacSha256,
            1_000_000,
            300,
            vec![],
            req.metadata.id,
            None,
            vec![],
        );
        let mut reply = Message::new(req.metadata.id, MessageType::Response, OpCode::Update);
        reply.metadata.response_code = ResponseCode::NotAuth;
        let mut rec = Record::from_rdata(Name::from_ascii("k.").unwrap(), 0, tsig);
        rec.dns_class = DNSClass::ANY;
        reply.set_signature(Box::new(rec));
        let bytes = reply.to_vec().unwrap();
        let e = check_update_reply(&bytes, verifier.as_mut(), &cx(&z, &n)).unwrap_err();
        assert!(matches!(e, UpdateError::AuthFailed { .. }), "{e}");
        assert_eq!(e.exit_code(), crate::error::exit::AUTH);
        assert!(e.to_string().contains("rejected the signature"), "{e}");
    }

    #[test]
    fn maps_unsigned_rcodes() {
        let z = zone();
        let n = forward_name("n1", &z).unwrap();
        let e = check_update_reply(&reply_with(ResponseCode::Refused, None), None, &cx(&z, &n))
            .unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::REFUSED);
        let e = check_update_reply(&reply_with(ResponseCode::NotAuth, None), None, &cx(&z, &n))
            .unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::NOTAUTH);
        let e = check_update_reply(&reply_with(ResponseCode::ServFail, None), None, &cx(&z, &n))
            .unwrap_err();
        assert!(e.to_string().contains("SERVFAIL"), "{e}");
        assert!(
            check_update_reply(&reply_with(ResponseCode::NoError, None), None, &cx(&z, &n)).is_ok()
        );
        let e = check_update_reply(&[1, 2, 3], None, &cx(&z, &n)).unwrap_err();
        assert!(matches!(e, UpdateError::Protocol { .. }));
    }
}
