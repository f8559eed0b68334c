use super::*;
use crate::graph::GraphStore;
use sensor_common::graph::Edge;
use crate::decode::events::{Connection, FileRef};

fn net(verb: NetVerb, client: &str) -> NetFileEvent {
    NetFileEvent {
        ts_ns: 1_000, kind: EventKind::NetFile, direction: NetDirection::Ingress, proto: Some(Protocol::Smb2), verb,
        src: client.parse().unwrap(), sport: 50000, dst: "10.0.0.1".parse().unwrap(), dport: 445,
        name: String::new(), line: Vec::new(), name_truncated: false, partial: false, blocked: false,
        write_intent: false, session_id: 7, message_id: 0, tree_id: 0, file_id: None, file_id_raw: [0; 16],
        access: 0, disposition: 0, length: 0, offset: 0, tcp_seq: 0, missing: 0,
    }
}

/// A process event of a pid that does not exist, so /proc knows nothing of it: as
/// for an smbd child that exited before userspace read its record.
fn proc_event(kind: EventKind, ts_ns: u64, path: Option<&str>, connection: Option<Connection>) -> SensorEvent {
    SensorEvent {
        ts_ns, kind, tgid: 4_000_000, tid: 4_000_000, start_ticks: 5, parent: None, uid: 0, comm: "smbd".into(),
        tainted: false, port_program: true, file: path.map(|_| FileRef { dev: 1, ino: 2, generation: 0 }),
        path: path.map(String::from), path2: None, name_truncated: false, path_incomplete: false, file_was_untrusted: false,
        file_newly_untrusted: true, inode_map_full: false, exec_prevented: false, write_prevented: false, taint_reason: None, mode: None, open_flags: None,
        write_via: None, inherited: Vec::new(), inherited_overflow: None, connection,
    }
}

#[test]
fn encrypted_upload_by_an_exited_process_is_attributed_at_its_close() {
    let dir = crate::graph::store::tests::tempdir();
    let store = GraphStore::open(&dir).unwrap();
    let graph = GraphWriter::new(&store, "h");
    let mut a = Attribution::new(vec!["/srv/share".into()]);
    a.on_net(&graph, &net(NetVerb::Encrypted, "10.0.0.2")).unwrap();
    let file = "file:h:1:2";
    a.on_file(&graph, &proc_event(EventKind::Create, 2_000, Some("/srv/share/evil.exe"), None), file).unwrap();
    assert_eq!(a.stats.received_from_inferred, 0, "no peer known yet");
    let close = |remote: &str| Connection { local: "10.0.0.1:445".parse().unwrap(), remote: remote.parse().unwrap(), action: ConnectionAction::Close };
    a.on_connection(&graph, &proc_event(EventKind::Connection, 3_000, None, Some(close("10.0.0.2:50000")))).unwrap();
    assert_eq!(a.stats.received_from_inferred, 1);
    let edges: Vec<Edge> = store.edges_since(0).map(|e| e.unwrap()).collect();
    let e = edges.iter().find(|e| matches!(e.data, EdgeData::ReceivedFrom(_))).unwrap();
    assert_eq!((e.src.as_str(), e.dst.as_str()), ("remote:10.0.0.2", file));
    let t = e.data.transfer().unwrap();
    assert!(t.inferred);
    assert_eq!(t.peer_seen_by, Some(PeerSeenBy::ConnectionClose));
    // A write after that close is not from that peer; a second peer makes the process
    // ambiguous: nothing more is inferred.
    a.on_file(&graph, &proc_event(EventKind::Create, 4_000, Some("/srv/share/b.exe"), None), "file:h:1:3").unwrap();
    assert_eq!(a.stats.received_from_inferred, 1);
    a.on_connection(&graph, &proc_event(EventKind::Connection, 5_000, None, Some(close("10.0.0.9:50001")))).unwrap();
    assert_eq!(a.stats.received_from_inferred, 1);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn tainted_connections_become_connect_edges_once() {
    let dir = crate::graph::store::tests::tempdir();
    let store = GraphStore::open(&dir).unwrap();
    let graph = GraphWriter::new(&store, "h");
    let mut a = Attribution::new(Vec::new());
    let conn = |action| Connection { local: "10.0.0.1:40000".parse().unwrap(), remote: "[fd00::9]:22".parse().unwrap(), action };
    let mut ev = proc_event(EventKind::Connection, 1_000, None, Some(conn(ConnectionAction::Connect)));
    ev.tainted = true;
    ev.port_program = false;
    a.on_connection(&graph, &ev).unwrap();
    ev.connection = Some(conn(ConnectionAction::Close));
    a.on_connection(&graph, &ev).unwrap();
    // A close without a connect: a connection it accepted.
    ev.connection = Some(Connection { local: "10.0.0.1:4444".parse().unwrap(), ..conn(ConnectionAction::Close) });
    a.on_connection(&graph, &ev).unwrap();
    let connects: Vec<(Edge, ConnectAttrs)> = store
        .edges_since(0)
        .map(|e| e.unwrap())
        .filter_map(|e| match &e.data {
            EdgeData::Connect(c) => Some((e.clone(), c.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(connects.len(), 2, "{connects:?}");
    assert_eq!(connects[0].0.src, "proc:h:4000000:5");
    assert_eq!(connects[0].0.dst, "remote:fd00::9");
    assert_eq!((connects[0].1.direction, connects[1].1.direction), (ConnectDirection::Out, ConnectDirection::In));
    assert_eq!(connects[1].1.local_port, Some(4444));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn names_and_paths() {
    assert_eq!(normalize("\\dir\\evil.exe"), "dir/evil.exe");
    assert_eq!(ftp_join("incoming", "a b.sh"), "incoming/a b.sh");
    assert_eq!(ftp_join("incoming", "/up/x"), "up/x");
    assert_eq!(ftp_join("a/b", ".."), "a");
    assert!(path_matches("/srv/share/dir/evil.exe", "dir/evil.exe"));
    assert!(!path_matches("/srv/share/dir/notevil.exe", "evil.exe"));
    assert!(!path_matches("/srv/x", ""));
    assert_eq!(crate::host::smb_conf::share_roots("[s]\n  path = /srv/share/\n read only = no\n"), vec!["/srv/share"]);
}

/// A fast uploader (busybox `ftpput`) is gone by the time its STOR is read: the file it
/// sent is the untrusted one the kernel saw it open, not one found by name (the copy is
/// sent under another name than it has here).
#[test]
fn an_exited_uploader_sends_what_the_kernel_saw_it_read() {
    let dir = crate::graph::store::tests::tempdir();
    let store = GraphStore::open(&dir).unwrap();
    let graph = GraphWriter::new(&store, "h");
    let mut a = Attribution::new(Vec::new());
    let server = "10.0.0.9:21";
    let mut uploader = proc_event(EventKind::Connection, 1_000, None, None);
    uploader.tainted = true;
    uploader.port_program = false;
    uploader.comm = "ftpput".into();
    // Connected (the kernel has not bound the local port at SYN_SENT), then opened its copy.
    uploader.connection = Some(Connection { local: "0.0.0.0:0".parse().unwrap(), remote: server.parse().unwrap(), action: ConnectionAction::Connect });
    a.on_connection(&graph, &uploader).unwrap();
    let mut read = SensorEvent { kind: EventKind::Read, ts_ns: 2_000, connection: None, ..uploader.clone() };
    read.file = Some(FileRef { dev: 1, ino: 2, generation: 0 });
    read.path = Some("/srv/ftp/incoming/invoice.sh".into());
    let worm = "file:h:1:2";
    a.on_file(&graph, &read, worm).unwrap();
    // An untrusted file of the name sent, which is not what was sent.
    let mut other = proc_event(EventKind::Create, 2_500, Some("/srv/ftp/incoming/report.sh"), None);
    other.file = Some(FileRef { dev: 1, ino: 3, generation: 0 });
    a.on_file(&graph, &other, "file:h:1:3").unwrap();
    let line = |verb, text: &[u8], seq| {
        let request = verb == NetVerb::Command;
        let (local, remote) = ("10.0.0.1".parse().unwrap(), "10.0.0.9".parse().unwrap());
        let (src, sport, dst, dport) = if request { (local, 40000, remote, 21) } else { (remote, 21, local, 40000) };
        NetFileEvent {
            proto: Some(Protocol::Ftp),
            direction: if request { NetDirection::Egress } else { NetDirection::Ingress },
            src, sport, dst, dport, line: text.to_vec(), tcp_seq: seq, ts_ns: 3_000,
            ..net(verb, "10.0.0.1")
        }
    };
    a.on_net(&graph, &line(NetVerb::Reply, b"220 ready\r\n", 900)).unwrap();
    a.on_net(&graph, &line(NetVerb::Command, b"STOR incoming/report.sh\r\n", 100)).unwrap();
    a.on_net(&graph, &line(NetVerb::Reply, b"150 Ok to send data.\r\n", 911)).unwrap();
    let sent: Vec<(Edge, TransferAttrs)> = store
        .edges_since(0)
        .map(|e| e.unwrap())
        .filter_map(|e| match &e.data {
            EdgeData::SentTo(t) => Some((e.clone(), t.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!((sent[0].0.src.as_str(), sent[0].0.dst.as_str()), (worm, "remote:10.0.0.9"));
    assert_eq!(sent[0].1.matched_by, Some(MatchedBy::SenderRead));
    assert_eq!(sent[0].1.process, Some(4_000_000));
    assert_eq!(sent[0].1.path.as_deref(), Some("/srv/ftp/incoming/invoice.sh"));
    std::fs::remove_dir_all(&dir).ok();
}
