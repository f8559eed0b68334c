//! Reading records of schema version 1.
//!
//! Version 1 had the same JSON layout, with the attributes an untyped map. Version 2
//! types them per kind and changes two things, undone here when a version-1 record is read:
//! - `received_from`/`sent_to` carried `time`, a copy of the edge's `ts_ns`: dropped.
//! - `chmod` `mode` could have leading zeros (`0755`): written without them (`755`).
//!
//! Everything else a version-1 sensor wrote fits the version-2 types as it is; a record
//! that does not is refused like any malformed record (the readers count and report it).

use super::{DumpLine, Edge, EdgeKind};

/// An edge as a version-1 sensor wrote it, converted.
pub fn edge_from_v1(json: &[u8]) -> Result<Edge, serde_json::Error> {
    let mut value: serde_json::Value = serde_json::from_slice(json)?;
    upgrade_edge(&mut value);
    serde_json::from_value(value)
}

/// A dump line (`{"node": ...}` or `{"edge": ...}`) of a version-1 dump, converted.
pub fn dump_line_from_v1(json: &[u8]) -> Result<DumpLine, serde_json::Error> {
    let mut value: serde_json::Value = serde_json::from_slice(json)?;
    if let Some(edge) = value.get_mut("edge") {
        upgrade_edge(edge);
    }
    serde_json::from_value(value)
}

fn upgrade_edge(edge: &mut serde_json::Value) {
    let kind = edge.get("kind").and_then(|k| serde_json::from_value::<EdgeKind>(k.clone()).ok());
    let Some(attrs) = edge.get_mut("attrs").and_then(|a| a.as_object_mut()) else { return };
    match kind {
        Some(EdgeKind::ReceivedFrom | EdgeKind::SentTo) => {
            attrs.remove("time");
        }
        Some(EdgeKind::Chmod) => {
            if let Some(serde_json::Value::String(mode)) = attrs.get_mut("mode") {
                let trimmed = mode.trim_start_matches('0');
                *mode = if trimmed.is_empty() { "0".into() } else { trimmed.into() };
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{EdgeData, Protocol, Verb};

    #[test]
    fn version_1_records_convert() {
        let line = br#"{"ts_ns":7,"kind":"received_from","src":"remote:10.0.0.2","dst":"file:h:1:2","host":"h","attrs":{"inferred":false,"ip":"10.0.0.2","name":"x.exe","path":"/srv/x.exe","port":50000,"protocol":"smb2","server":"10.0.0.1","server_port":445,"session_id":7,"time":7,"verb":"create"}}"#;
        let edge = edge_from_v1(line).unwrap();
        let EdgeData::ReceivedFrom(t) = &edge.data else { panic!("{edge:?}") };
        assert_eq!((t.protocol, t.verb, t.port, t.session_id), (Some(Protocol::Smb2), Some(Verb::SmbCreate), Some(50000), Some(7)));
        assert!(!serde_json::to_string(&edge).unwrap().contains("\"time\""));
        // Without the conversion a version-2 reader keeps `time` out too, but the mode differs.
        let chmod = br#"{"ts_ns":7,"kind":"chmod","src":"p","dst":"f","host":"h","attrs":{"mode":"0755","executable":true}}"#;
        let EdgeData::Chmod(c) = edge_from_v1(chmod).unwrap().data else { panic!() };
        assert_eq!(c.mode, "755");
        let EdgeData::Chmod(c) = serde_json::from_slice::<Edge>(chmod).unwrap().data else { panic!() };
        assert_eq!(c.mode, "0755", "a version-2 record is read as written");
    }

    #[test]
    fn version_1_dump_lines_convert() {
        let line = br#"{"edge":{"ts_ns":7,"kind":"sent_to","src":"f","dst":"r","host":"h","attrs":{"ip":"10.0.0.2","protocol":"ftp","time":7}}}"#;
        let DumpLine::Edge(edge) = dump_line_from_v1(line).unwrap() else { panic!() };
        assert_eq!(edge.kind(), EdgeKind::SentTo);
        let node = br#"{"node":{"id":"user:x","host":"h","first_seen_ns":1,"kind":"user","name":"x"}}"#;
        assert!(matches!(dump_line_from_v1(node).unwrap(), DumpLine::Node(_)));
    }

    #[test]
    fn version_1_records_that_do_not_fit_are_refused() {
        assert!(edge_from_v1(br#"{"ts_ns":7,"kind":"relabel","src":"u","dst":"f","host":"h","attrs":{"to":"sort of"}}"#).is_err());
        assert!(edge_from_v1(b"{not json").is_err());
    }
}
