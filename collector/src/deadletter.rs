//! What could not be stored, kept aside with why: a message that failed its checks, a record
//! that does not fit its columns, a message the database refused. Nothing received is
//! dropped without a row here (and a count in the log).

use std::collections::BTreeMap;

use crate::db::rows::RefusedRecord;

/// Payloads are kept up to this size: enough to see what was sent, bounded per row.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// Collector reasons beside `BatchError::reason()` and the record reasons of `db::rows`.
pub const OVERSIZED: &str = "oversized";
pub const NOT_A_GRAPH_SUBJECT: &str = "not_a_graph_subject";
pub const STORE_REFUSED: &str = "store_refused";

#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    pub subject: String,
    /// The host the subject (or the record) names.
    pub host: Option<String>,
    pub reason: &'static str,
    pub detail: String,
    pub payload: Vec<u8>,
}

impl DeadLetter {
    pub fn new(subject: &str, host: Option<&str>, reason: &'static str, detail: String, payload: &[u8]) -> Self {
        // A batch the database refused holds good records beside the bad one: it is kept
        // whole (messages are capped at MAX_MESSAGE_BYTES) so that it can be stored again.
        let limit = if reason == STORE_REFUSED { payload.len() } else { MAX_PAYLOAD_BYTES };
        let kept = &payload[..payload.len().min(limit)];
        let detail = if kept.len() < payload.len() {
            format!("{detail} (payload of {} bytes cut to {MAX_PAYLOAD_BYTES})", payload.len())
        } else {
            detail
        };
        Self { subject: subject.into(), host: host.map(str::to_owned), reason, detail, payload: kept.to_vec() }
    }

    /// One record refused out of a batch that was otherwise stored.
    pub fn of_record(subject: &str, refused: &RefusedRecord) -> Self {
        Self::new(subject, Some(&refused.host), refused.reason, refused.detail.clone(), &refused.record)
    }
}

/// Dead letters by reason, for the log.
#[derive(Clone, Debug, Default)]
pub struct ReasonCounts(pub BTreeMap<&'static str, u64>);

impl ReasonCounts {
    pub fn add(&mut self, reason: &'static str) {
        *self.0.entry(reason).or_default() += 1;
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

impl std::fmt::Display for ReasonCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return write!(f, "none");
        }
        let parts: Vec<String> = self.0.iter().map(|(reason, n)| format!("{reason} {n}")).collect();
        write!(f, "{}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_cut_and_the_cut_is_said() {
        let big = vec![b'x'; MAX_PAYLOAD_BYTES + 10];
        let letter = DeadLetter::new("vtrail.graph.h", Some("h"), OVERSIZED, "too big".into(), &big);
        assert_eq!(letter.payload.len(), MAX_PAYLOAD_BYTES);
        assert!(letter.detail.contains(&format!("cut to {MAX_PAYLOAD_BYTES}")), "{}", letter.detail);
        let small = DeadLetter::new("s", None, OVERSIZED, "d".into(), b"abc");
        assert_eq!((small.payload.as_slice(), small.detail.as_str()), (&b"abc"[..], "d"));
    }
}
