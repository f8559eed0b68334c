//! The same messages through live attribution and through `replay` give the same answer:
//! both read them with `sensor_common::session`. Each test feeds one conversation as the
//! TC program reports it (live) and as a capture holds it (replay).
use super::*;
use crate::replay::tests::{create_response_body, smb_response, synthetic, synthetic_with_stats};
use sensor_common::proto::smb2::{self, build};

const CLIENT: &str = "10.0.0.1";
const SERVER: &str = "10.0.0.2";

/// A record of the TC program: a request (client -> server, ingress) or a response.
fn record(verb: NetVerb, request: bool, proto: Protocol, port: u16) -> NetFileEvent {
    let (c, s) = (CLIENT.parse().unwrap(), SERVER.parse().unwrap());
    let (src, sport, dst, dport) = if request { (c, 40000, s, port) } else { (s, port, c, 40000) };
    NetFileEvent {
        ts_ns: 1_000, kind: EventKind::NetFile, direction: if request { NetDirection::Ingress } else { NetDirection::Egress }, proto: Some(proto), verb,
        src, sport, dst, dport, name: String::new(), line: Vec::new(), name_truncated: false, partial: false,
        blocked: false, write_intent: false, session_id: 0x1122, message_id: 0, tree_id: 0, file_id: None,
        file_id_raw: [0; 16], access: 0, disposition: 0, length: 0, offset: 0, tcp_seq: 0, missing: 0,
    }
}

fn with_store(f: impl FnOnce(&GraphWriter)) {
    let dir = crate::graph::store::tests::tempdir();
    let store = crate::graph::GraphStore::open(&dir).unwrap();
    f(&GraphWriter::new(&store, "h"));
    std::fs::remove_dir_all(&dir).ok();
}

/// An FTP session: what the server resolves each upload to, live (`uploads`' names) and
/// in replay (`path`, which is rooted), and how many transfers were refused.
fn ftp_both(lines: &[(bool, &[u8])]) -> (Vec<String>, u64, Vec<String>, u64) {
    let mut live = (Vec::new(), 0);
    with_store(|store| {
        let mut a = Attribution::new(Vec::new());
        let mut seq = [100u32, 900];
        for (from_client, line) in lines {
            let mut ev = record(if *from_client { NetVerb::Command } else { NetVerb::Reply }, *from_client, Protocol::Ftp, 21);
            let s = &mut seq[usize::from(!from_client)];
            ev.line = line.to_vec();
            ev.tcp_seq = *s;
            *s += line.len() as u32;
            a.on_net(store, &ev).unwrap();
        }
        live = (a.uploads.iter().map(|t| t.norm.clone()).collect(), a.stats.ftp_refused_transfers);
    });
    let (transfers, stats) = synthetic_with_stats(21, lines);
    let replayed = transfers.iter().filter(|t| t.direction == "upload").filter_map(|t| t.path.clone()).collect();
    (live.0, live.1, replayed, stats.ftp_failed_transfers)
}

#[test]
fn ftp_cwd_quoting_and_stou_names_agree() {
    let lines: &[(bool, &[u8])] = &[
        (false, b"220 (vsFTPd 3.0.3)\r\n"),
        (true, b"PWD\r\n"),
        // RFC 959 appendix II: `""` inside the quotes is one `"`: the directory `/a "b"`.
        (false, b"257 \"/a \"\"b\"\"\" is the current directory\r\n"),
        // vsftpd's STOU: the name in the 150.
        (true, b"STOU\r\n"),
        (false, b"150 FILE: up.1\r\n"),
        (false, b"226 Transfer complete.\r\n"),
        (true, b"CWD sub\r\n"),
        (false, b"250 Directory successfully changed.\r\n"),
        (true, b"STOR x.bin\r\n"),
        (false, b"150 Ok to send data.\r\n"),
        (false, b"226 Transfer complete.\r\n"),
        // RFC 959's STOU: the name in the 250 that ends it.
        (true, b"STOU wanted\r\n"),
        (false, b"250 FILE: wanted.1\r\n"),
        (true, b"STOR refused.bin\r\n"),
        (false, b"553 Could not create file.\r\n"),
    ];
    let (live, live_refused, replayed, replay_failed) = ftp_both(lines);
    assert_eq!(replayed, ["/a \"b\"/up.1", "/a \"b\"/sub/x.bin", "/a \"b\"/sub/wanted.1"]);
    assert_eq!(live, replayed.iter().map(|p| p.trim_start_matches('/')).collect::<Vec<_>>());
    assert_eq!((live_refused, replay_failed), (1, 1));
}

/// A TREE_CONNECT request for `path` and its response giving `tree`.
fn tree_connect(path: &str, message_id: u64, tree: u32) -> (Vec<u8>, Vec<u8>) {
    let name = build::utf16(path);
    let mut req = build::header(3, 0, 0, message_id, 0, 0x1122);
    req.extend_from_slice(&9u16.to_le_bytes());
    req.extend_from_slice(&0u16.to_le_bytes()); // flags
    req.extend_from_slice(&72u16.to_le_bytes()); // path offset
    req.extend_from_slice(&(name.len() as u16).to_le_bytes());
    req.extend_from_slice(&name);
    let mut resp = smb_response(3, message_id, 0, &[16, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    resp[smb2::field::TREE_ID].copy_from_slice(&tree.to_le_bytes());
    (req, resp)
}

fn on_tree(mut pdu: Vec<u8>, tree: u32) -> Vec<u8> {
    pdu[smb2::field::TREE_ID].copy_from_slice(&tree.to_le_bytes());
    pdu
}

#[test]
fn smb_named_pipes_are_not_files_and_shares_agree() {
    let pipe_fid = smb2::FileId { persistent: 1, volatile: 1 };
    let file_fid = smb2::FileId { persistent: 2, volatile: 2 };
    let write = smb2::access::GENERIC_WRITE;
    // Replay: the conversation as a capture holds it.
    let (ipc, ipc_resp) = tree_connect(r"\\srv\IPC$", 1, 1);
    let (share, share_resp) = tree_connect(r"\\srv\Public", 2, 2);
    let msgs: Vec<(bool, Vec<u8>)> = vec![
        (true, ipc),
        (false, ipc_resp),
        (true, share),
        (false, share_resp),
        (true, on_tree(build::create_request(&build::utf16("srvsvc"), write | 0x1, smb2::disposition::OPEN, 0, 3), 1)),
        (false, smb_response(5, 3, 0, &create_response_body(pipe_fid))),
        (true, on_tree(build::write_request(4, pipe_fid, b"\x05\x00\x0b"), 1)),
        (true, on_tree(build::create_request(&build::utf16(r"dir\evil.exe"), write, smb2::disposition::CREATE, 0, 5), 2)),
        (false, smb_response(5, 5, 0, &create_response_body(file_fid))),
        (true, on_tree(build::write_request(6, file_fid, b"MZ"), 2)),
    ];
    let nbss: Vec<(bool, Vec<u8>)> = msgs.iter().map(|(c, m)| (*c, build::nbss(m))).collect();
    let nbss: Vec<(bool, &[u8])> = nbss.iter().map(|(c, m)| (*c, &m[..])).collect();
    let replayed: Vec<_> = synthetic(445, &nbss).iter().map(|t| (t.verb.clone(), t.name.clone().unwrap_or_default(), t.share.clone())).collect();
    let public = Some(r"\\srv\Public".to_string());
    assert_eq!(replayed, [("create".into(), r"dir\evil.exe".into(), public.clone()), ("write".into(), r"dir\evil.exe".into(), public)]);

    // Live: the same conversation as the TC program reports it.
    let smb = |verb, request, message_id, f: &dyn Fn(&mut NetFileEvent)| {
        let mut ev = record(verb, request, Protocol::Smb2, 445);
        ev.message_id = message_id;
        f(&mut ev);
        ev
    };
    let events = [
        smb(NetVerb::TreeConnect, true, 1, &|e| e.name = r"\\srv\IPC$".into()),
        smb(NetVerb::TreeConnectResponse, false, 1, &|e| e.tree_id = 1),
        smb(NetVerb::TreeConnect, true, 2, &|e| e.name = r"\\srv\Public".into()),
        smb(NetVerb::TreeConnectResponse, false, 2, &|e| e.tree_id = 2),
        smb(NetVerb::Create, true, 3, &|e| (e.name, e.tree_id, e.write_intent) = ("srvsvc".into(), 1, true)),
        smb(NetVerb::CreateResponse, false, 3, &|e| e.file_id_raw = pipe_fid.to_bytes()),
        smb(NetVerb::Write, true, 4, &|e| (e.tree_id, e.file_id_raw) = (1, pipe_fid.to_bytes())),
        smb(NetVerb::Create, true, 5, &|e| (e.name, e.tree_id, e.write_intent) = (r"dir\evil.exe".into(), 2, true)),
        smb(NetVerb::CreateResponse, false, 5, &|e| e.file_id_raw = file_fid.to_bytes()),
        smb(NetVerb::Write, true, 6, &|e| (e.tree_id, e.file_id_raw) = (2, file_fid.to_bytes())),
    ];
    with_store(|store| {
        let mut a = Attribution::new(Vec::new());
        for ev in &events {
            a.on_net(store, ev).unwrap();
        }
        let live: Vec<(String, String, Option<String>)> = a.uploads.iter().map(|t| (t.verb.name().to_owned(), t.name.clone(), t.share.clone())).collect();
        let public = Some("public".to_string());
        assert_eq!(live, [("create".into(), r"dir\evil.exe".into(), public.clone()), ("write".into(), r"dir\evil.exe".into(), public)]);
        assert_eq!(a.stats.uploads_seen, 2, "the pipe's CREATE and WRITE are no uploads");
    });
}
