//! One JetStream message judged: a good batch's rows, or a dead letter saying why not.

use bytes::Bytes;
use sensor_common::graph::fleet::{MAX_MESSAGE_BYTES, decode_batch};

use crate::db::rows::RowSet;
use crate::deadletter::{self, DeadLetter};

/// What a message turned into.
pub enum Received {
    /// A good batch: its rows (some records may have been refused; see `refused`).
    Rows { subject: String, host: String, first_seq: u64, last_seq: u64, rows: RowSet, payload: Bytes },
    Dead(DeadLetter),
}

/// The host token a graph subject ends with, if `subject` is `<prefix>.graph.<token>`.
pub fn graph_subject_token<'a>(prefix: &str, subject: &'a str) -> Option<&'a str> {
    let token = subject.strip_prefix(prefix)?.strip_prefix(".graph.")?;
    (!token.is_empty() && !token.contains('.')).then_some(token)
}

pub fn judge(prefix: &str, subject: &str, payload: &Bytes) -> Received {
    let Some(token) = graph_subject_token(prefix, subject) else {
        return Received::Dead(DeadLetter::new(
            subject,
            None,
            deadletter::NOT_A_GRAPH_SUBJECT,
            format!("subject is not {prefix}.graph.<host token>"),
            payload,
        ));
    };
    if payload.len() > MAX_MESSAGE_BYTES {
        return Received::Dead(DeadLetter::new(
            subject,
            Some(token),
            deadletter::OVERSIZED,
            format!("message of {} bytes is larger than the {MAX_MESSAGE_BYTES} a batch may be", payload.len()),
            payload,
        ));
    }
    match decode_batch(payload, token) {
        Ok(batch) => {
            let mut rows = RowSet::default();
            rows.add_batch(&batch);
            Received::Rows {
                subject: subject.into(),
                host: batch.header.host,
                first_seq: batch.header.first_seq,
                last_seq: batch.header.last_seq,
                rows,
                payload: payload.clone(),
            }
        }
        Err(error) => Received::Dead(DeadLetter::new(subject, Some(token), error.reason(), error.to_string(), payload)),
    }
}

impl Received {
    /// The dead letters this message leaves: itself, or the records of it that were refused.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        match self {
            Received::Rows { subject, rows, .. } => rows.refused.iter().map(|r| DeadLetter::of_record(subject, r)).collect(),
            Received::Dead(letter) => vec![letter.clone()],
        }
    }

    pub fn rows(&self) -> Option<&RowSet> {
        match self {
            Received::Rows { rows, .. } => Some(rows),
            Received::Dead(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_graph_subjects_of_one_token_name_a_host() {
        assert_eq!(graph_subject_token("vtrail", "vtrail.graph.disk-1"), Some("disk-1"));
        assert_eq!(graph_subject_token("org.vtrail", "org.vtrail.graph.h"), Some("h"));
        assert_eq!(graph_subject_token("vtrail", "vtrail.alerts.h"), None);
        assert_eq!(graph_subject_token("vtrail", "vtrail.graph.a.b"), None);
        assert_eq!(graph_subject_token("vtrail", "vtrailx.graph.h"), None);
    }

    #[test]
    fn bad_messages_become_dead_letters_with_their_reason() {
        let reason = |payload: &[u8]| match judge("vtrail", "vtrail.graph.h", &Bytes::copy_from_slice(payload)) {
            Received::Dead(letter) => letter.reason,
            Received::Rows { .. } => "stored",
        };
        assert_eq!(reason(b"garbage"), "bad_header");
        assert_eq!(reason(&vec![b' '; MAX_MESSAGE_BYTES + 1]), deadletter::OVERSIZED);
        let header = br#"{"format":"vtrail-fleet","schema_version":2,"host":"h","first_seq":1,"last_seq":1,"records":0}"#;
        assert_eq!(reason(header), "stored");
    }
}
