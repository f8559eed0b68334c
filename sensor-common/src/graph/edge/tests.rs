use super::*;

fn edge(data: EdgeData) -> Edge {
    Edge { ts_ns: 5, src: "a".into(), dst: "b".into(), host: "h".into(), data }
}

#[test]
fn every_kind_round_trips_and_keeps_its_json_name() {
    let transfer = {
        let mut t = TransferAttrs::new("10.0.0.2", Protocol::Smb2);
        t.verb = Some(Verb::SmbCreate);
        t.name = Some("dir\\x.exe".into());
        t.node_ids = vec!["d2".into()];
        t
    };
    let samples = [
        EdgeData::Exec(ExecAttrs { path: Some("/x".into()), taint_reason: Some(TaintReason::ExecUntrusted), ..Default::default() }),
        EdgeData::Read(ReadAttrs::default()),
        EdgeData::Fork(NoAttrs {}),
        EdgeData::Create(FileWriteAttrs { activation_point: Some("/etc/cron.d/".into()), severity: Some(Severity::High), ..Default::default() }),
        EdgeData::Write(FileWriteAttrs { via: Some(WriteVia::InheritedFd), ..Default::default() }),
        EdgeData::Truncate(FileWriteAttrs::default()),
        EdgeData::Chmod(ChmodAttrs { mode: "755".into(), executable: true, ..Default::default() }),
        EdgeData::Rename(RenameAttrs { from: Some("/a".into()), to: "/b".into(), ..Default::default() }),
        EdgeData::Link(RenameAttrs { to: "/c".into(), ..Default::default() }),
        EdgeData::Unlink(UnlinkAttrs { path: Some("/d".into()) }),
        EdgeData::ReceivedFrom(transfer.clone()),
        EdgeData::SentTo(transfer),
        EdgeData::Relabel(RelabelAttrs { to: Trust::Untrusted, by: "root(uid 0)".into(), path: None }),
        EdgeData::Block(QuarantineAttrs { ip: "10.0.0.9".into(), by: "root(uid 0)".into() }),
        EdgeData::Unblock(QuarantineAttrs { ip: "10.0.0.9".into(), by: "root(uid 0)".into() }),
        EdgeData::Detected(DetectedAttrs {
            path: Some("/srv/in/x.exe".into()),
            sha256: "ab".repeat(32),
            size: 68,
            detections: vec![Detection { engine: "clamav".into(), names: vec!["Eicar-Signature".into()] }],
        }),
        EdgeData::Prevented(PreventedAttrs { action: PreventedAction::Exec, path: Some("/srv/in/x.exe".into()), by: "deny_exec".into() }),
        EdgeData::Connect(ConnectAttrs {
            ip: "10.0.0.3".into(),
            port: 4444,
            local_port: None,
            protocol: Protocol::Tcp,
            direction: ConnectDirection::Out,
            node_ids: vec![],
        }),
    ];
    assert_eq!(samples.len(), EdgeKind::ALL.len(), "a sample per kind");
    for data in samples {
        let e = edge(data);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["kind"], e.kind().name(), "{json}");
        assert_eq!(json.get("attrs").is_some(), e.data.has_attrs(), "{json}");
        let back: Edge = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, e, "{json}");
    }
}

#[test]
fn json_keeps_the_readable_layout() {
    let mut t = TransferAttrs::new("10.0.0.2", Protocol::Ftp);
    t.verb = Some(Verb::FtpStor);
    t.port = Some(21);
    let text = serde_json::to_string(&edge(EdgeData::ReceivedFrom(t))).unwrap();
    assert_eq!(
        text,
        r#"{"ts_ns":5,"kind":"received_from","src":"a","dst":"b","host":"h","attrs":{"ip":"10.0.0.2","port":21,"protocol":"ftp","verb":"STOR","inferred":false}}"#
    );
    let chmod = serde_json::to_string(&edge(EdgeData::Chmod(ChmodAttrs {
        mode: "755".into(),
        executable: true,
        activation_point: Some("/etc/cron.d/".into()),
        severity: Some(Severity::High),
        ..Default::default()
    })))
    .unwrap();
    assert!(chmod.contains(r#""attrs":{"mode":"755","executable":true,"activation_point":"/etc/cron.d/","severity":"high"}"#), "{chmod}");
}

#[test]
fn attributes_before_the_kind_and_missing_ones_are_read() {
    let e: Edge = serde_json::from_str(r#"{"attrs":{"to":"/b"},"ts_ns":1,"kind":"rename","src":"p","dst":"f","host":"h","extra":[1]}"#).unwrap();
    assert_eq!(e.data, EdgeData::Rename(RenameAttrs { to: "/b".into(), ..Default::default() }));
    let e: Edge = serde_json::from_str(r#"{"ts_ns":1,"kind":"fork","src":"p","dst":"c","host":"h"}"#).unwrap();
    assert_eq!(e.kind(), EdgeKind::Fork);
    let e: Edge = serde_json::from_str(r#"{"ts_ns":1,"kind":"write","src":"p","dst":"f","host":"h"}"#).unwrap();
    assert_eq!(e.data, EdgeData::Write(FileWriteAttrs::default()));
}

#[test]
fn attributes_that_do_not_fit_the_kind_are_refused() {
    for bad in [
        r#"{"ts_ns":1,"kind":"relabel","src":"u","dst":"f","host":"h","attrs":{"to":"maybe","by":"x"}}"#,
        r#"{"ts_ns":1,"kind":"connect","src":"p","dst":"r","host":"h","attrs":{"ip":"1.2.3.4","port":"http","protocol":"tcp","direction":"out"}}"#,
        r#"{"ts_ns":1,"kind":"received_from","src":"r","dst":"f","host":"h","attrs":{"protocol":"smb1"}}"#,
        r#"{"ts_ns":1,"kind":"teleport","src":"r","dst":"f","host":"h"}"#,
        r#"{"attrs":{"to":1},"ts_ns":1,"kind":"relabel","src":"u","dst":"f","host":"h"}"#,
    ] {
        assert!(serde_json::from_str::<Edge>(bad).is_err(), "{bad}");
    }
}
