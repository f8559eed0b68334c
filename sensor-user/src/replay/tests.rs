//! Replays the public captures in `tests/data/pcaps` (in the repository) and checks them
//! against what its `README.md` says; re-encodes them (pcapng, gzip, other
//! link types, re-segmented and shuffled TCP) to check that the result does not change.

use super::capture::linktype;
use super::link::tests::{build, ipv4_tcp};
use super::*;
use sensor_common::proto::{nbss, smb2, utf16};
use std::io::Cursor;
use std::path::PathBuf;

fn pcaps() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/pcaps");
    assert!(d.join("README.md").is_file(), "test captures missing: expected {} with its README.md", d.display());
    d
}

fn capture(name: &str) -> PathBuf {
    let p = pcaps().join(name);
    assert!(p.is_file(), "test capture {} is missing", p.display());
    p
}

fn replay(name: &str) -> Vec<Transfer> {
    let (t, s) = transfers_from_file(&capture(name)).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    assert_eq!(s.parse_errors, 0, "{name}: {s:?}");
    assert_eq!(s.tcp_gaps, 0, "{name}: {s:?}");
    t
}

fn by_verb<'a>(t: &'a [Transfer], verb: &str) -> Vec<&'a Transfer> {
    t.iter().filter(|x| x.verb == verb).collect()
}

/// Every frame's TCP payload as the TC program would see it: one packet at a time.
fn segments(name: &str) -> Vec<(u64, link::Segment<'static>)> {
    let data: &'static [u8] = Box::leak(std::fs::read(capture(name)).unwrap().into_boxed_slice());
    let mut r = CaptureReader::new(Box::new(Cursor::new(data))).unwrap();
    let mut v = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        let frame: &'static [u8] = Box::leak(f.data.to_vec().into_boxed_slice());
        if let Ok(s) = link::decode(f.linktype, frame) {
            v.push((f.ts_ns, s));
        }
    }
    v
}

/// Per-packet parse (no reassembly): every CREATE request name in the capture, plus the
/// number of compound messages, related PDUs and related all-0xFF FileIds seen.
#[derive(Default, Debug)]
struct PacketView {
    create_names: Vec<String>,
    compounds: usize,
    related: usize,
    related_ff_file_ids: usize,
    transform_headers: usize,
    dialects: Vec<u16>,
    tree_paths: Vec<String>,
}

fn packet_view(name: &str) -> PacketView {
    let mut v = PacketView::default();
    for (_, s) in segments(name) {
        for rec in nbss::records(s.payload).filter(|r| r.complete) {
            match smb2::classify(rec.payload) {
                smb2::Kind::Encrypted => v.transform_headers += 1,
                smb2::Kind::Smb2 => {}
                _ => continue,
            }
            let pdus: Vec<_> = smb2::pdus(rec.payload).filter_map(|p| p.ok()).collect();
            if pdus.len() > 1 {
                v.compounds += 1;
            }
            for h in pdus {
                if h.is_related() {
                    v.related += 1;
                }
                let b = h.into_inner();
                if let Ok(c) = smb2::CloseRequest::new_checked(b)
                    && h.is_related() && c.file_id().is_related() {
                        v.related_ff_file_ids += 1;
                    }
                if let Ok(c) = smb2::CreateRequest::new_checked(b) {
                    let mut out = [0u8; 1024];
                    let r = utf16::utf16le_to_utf8(c.name().unwrap(), &mut out);
                    v.create_names.push(String::from_utf8(out[..r.len].to_vec()).unwrap());
                }
                if let Ok(n) = smb2::NegotiateResponse::new_checked(b) {
                    v.dialects.push(n.dialect_revision());
                }
                if let Ok(t) = smb2::TreeConnectRequest::new_checked(b) {
                    let mut out = [0u8; 1024];
                    let r = utf16::utf16le_to_utf8(t.path().unwrap(), &mut out);
                    v.tree_paths.push(String::from_utf8(out[..r.len].to_vec()).unwrap());
                }
            }
        }
    }
    v
}

#[test]
fn every_capture_replays_cleanly() {
    let mut n = 0;
    for e in std::fs::read_dir(pcaps()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng" || x == "gz") {
            let (t, s) = transfers_from_file(&p).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
            assert!(!t.is_empty() || p.ends_with("smb_smb2-multiple-pdus.pcap"), "{}: no transfer", p.display());
            assert_eq!(s.parse_errors, 0, "{}: {s:?}", p.display());
            n += 1;
        }
    }
    assert_eq!(n, 8, "the README lists 8 captures");
}

/// A capture cut inside its last record: the transfers before the cut, and the cut said.
#[test]
fn a_cut_capture_gives_what_came_before_and_says_so() {
    let whole = std::fs::read(capture("ftp_ftp-upload-passive_input.pcap")).unwrap();
    let (all, s) = replay_reader(Box::new(Cursor::new(whole.clone())), ReplayOptions::default()).unwrap();
    assert!(s.truncated.is_none());
    let cut = whole[..whole.len() - 10].to_vec();
    let (t, s) = replay_reader(Box::new(Cursor::new(cut)), ReplayOptions::default()).unwrap();
    assert!(s.truncated.as_deref().is_some_and(|w| w.contains("inside a record")), "{s:?}");
    assert_eq!(strip_ts(t), strip_ts(all), "the transfer before the cut is kept");
}

#[test]
fn smb2_readwrite() {
    let t = replay("smb_smb2readwrite.pcap");
    for x in &t {
        assert_eq!((x.proto, x.client.as_str(), x.server.as_str(), x.server_port), ("smb2", "169.254.128.18", "169.254.128.15", 445));
        assert_eq!(x.encrypted, Some(false));
    }
    let creates = by_verb(&t, "create");
    assert_eq!(creates.len(), 1, "{t:#?}");
    assert_eq!(creates[0].name.as_deref(), Some("pythonfile2"));
    assert_eq!(creates[0].disposition, Some("overwrite_if"));
    assert_eq!(creates[0].direction, "upload");
    let writes = by_verb(&t, "write");
    assert_eq!(writes.len(), 1);
    assert_eq!((writes[0].name.as_deref(), writes[0].bytes, writes[0].direction), (Some("pythonfile2"), Some(7000), "upload"));
    assert_eq!(writes[0].file_id, creates[0].file_id);
    let reads = by_verb(&t, "read");
    assert_eq!(reads.len(), 1);
    assert_eq!((reads[0].name.as_deref(), reads[0].direction, reads[0].bytes), (Some("pythonfile"), "download", Some(16)));
    assert_eq!(t.len(), 3);

    // "also opens pythonfile, desktop.ini, share root": visible per packet.
    let v = packet_view("smb_smb2readwrite.pcap");
    for n in ["pythonfile", "pythonfile2", "desktop.ini", ""] {
        assert!(v.create_names.iter().any(|x| x == n), "{n:?} not in {:?}", v.create_names);
    }
}

#[test]
fn smb2_multiple_pdus() {
    let v = packet_view("smb_smb2-multiple-pdus.pcap");
    assert_eq!(v.create_names, ["testfile.txt"]);
    assert_eq!(v.compounds, 2, "request and response are compounds");
    assert!(v.related >= 2);
    assert_eq!(v.related_ff_file_ids, 1, "the CLOSE refers to the CREATE by FileId all 0xFF");
    let segs = segments("smb_smb2-multiple-pdus.pcap");
    assert_eq!(segs[0].1.src.ip().to_string(), "192.168.2.12");
    assert_eq!((segs[0].1.dst.ip().to_string(), segs[0].1.dst.port()), ("192.168.2.222".to_string(), 445));
    // An OPEN for DELETE + SET_INFO(delete on close): not a transfer.
    assert!(replay("smb_smb2-multiple-pdus.pcap").is_empty());
}

#[test]
fn smb2_delete_macos() {
    let t = replay("smb2-delete_input.pcap");
    for x in &t {
        assert_eq!((x.client.as_str(), x.server.as_str(), x.server_port), ("192.168.1.12", "192.168.1.51", 445));
        assert_eq!(x.dialect, Some("3.0.2"));
        assert_eq!(x.share.as_deref(), Some(r"\\192.168.1.51\SAND"));
    }
    let creates = by_verb(&t, "create");
    assert_eq!(creates.len(), 1, "{t:#?}");
    assert_eq!((creates[0].name.as_deref(), creates[0].disposition), (Some("test"), Some("overwrite_if")));
    let writes = by_verb(&t, "write");
    assert_eq!(writes.len(), 1);
    assert_eq!((writes[0].name.as_deref(), writes[0].bytes), (Some("test"), Some(10)));
    let v = packet_view("smb2-delete_input.pcap");
    assert!(v.compounds >= 20, "{v:?}");
    assert!(v.create_names.iter().any(|n| n == ":AFP_AfpInfo"));
    // SMB1 negotiate answered with the 2.??? wildcard, then SMB2 negotiate: 3.0.2.
    assert_eq!(v.dialects, [smb2::dialect::SMB2_WILDCARD, smb2::dialect::SMB3_0_2]);
}

#[test]
fn smb3_encrypted() {
    let t = replay("smb_smb3.pcap");
    assert_eq!(t.len(), 1, "{t:#?}");
    let x = &t[0];
    assert_eq!((x.proto, x.verb.as_str(), x.encrypted), ("smb2", "encrypted", Some(true)));
    assert_eq!((x.client.as_str(), x.server.as_str(), x.server_port), ("10.160.64.139", "10.160.65.202", 445));
    assert_eq!((x.messages_to_server, x.messages_to_client), (Some(22), Some(22)));
    assert!(x.name.is_none());
    assert_eq!(x.dialect, Some("3.0"));
    let v = packet_view("smb_smb3.pcap");
    assert_eq!(v.transform_headers, 44);
    assert!(v.create_names.is_empty());
}

fn ftp_upload(name: &str, mode: &str) {
    let t = replay(name);
    assert_eq!(t.len(), 1, "{t:#?}");
    let x = &t[0];
    assert_eq!((x.proto, x.direction, x.verb.as_str(), x.name.as_deref()), ("ftp", "upload", "STOR", Some("index.html")));
    assert_eq!((x.client.as_str(), x.server.as_str(), x.server_port), ("172.23.0.3", "172.23.0.2", 21));
    assert_eq!(x.data_mode, Some(mode));
    assert_eq!(x.status.as_deref(), Some("226"));
    assert!(x.bytes.unwrap_or(0) > 0, "data bytes counted: {x:?}");
}

#[test]
fn ftp_upload_active() {
    ftp_upload("ftp_ftp-upload-active_input.pcap", "active");
}

#[test]
fn ftp_upload_passive() {
    ftp_upload("ftp_ftp-upload-passive_input.pcap", "passive");
}

#[test]
fn ftp_ipv6_all_data() {
    let t = replay("firewall_ruletype-firewall-117-ftp-all-data-ipv6_input.pcap");
    for x in &t {
        assert_eq!((x.proto, x.client.as_str(), x.server.as_str(), x.server_port), ("ftp", "fd00:10:16:1::3", "fd00:10:16:1::2", 21));
    }
    let sessions: std::collections::BTreeSet<u16> = t.iter().map(|x| x.client_port).collect();
    assert_eq!(sessions.len(), 2, "two control sessions");
    for mode in ["passive", "active"] {
        let m: Vec<_> = t.iter().filter(|x| x.data_mode == Some(mode)).collect();
        let verbs: Vec<_> = m.iter().map(|x| x.verb.as_str()).collect();
        assert_eq!(verbs, ["STOR", "APPE", "STOU", "RETR"], "{mode}: {m:#?}");
        let stor_appe = format!("all-data-ipv6-{mode}-stor-appe.txt");
        assert_eq!(m[0].name.as_deref(), Some(stor_appe.as_str()));
        assert_eq!(m[1].name.as_deref(), Some(stor_appe.as_str()));
        let stou = format!("all-data-ipv6-{mode}-stou.txt");
        assert_eq!(m[2].requested_name.as_deref(), Some(stou.as_str()));
        assert!(m[2].name.as_deref().unwrap().starts_with(&format!("{stou}.")), "server-chosen name from 125 FILE: {:?}", m[2].name);
        assert_eq!((m[3].name.as_deref(), m[3].direction), (Some("index.html"), "download"));
        for x in &m[..3] {
            assert_eq!(x.direction, "upload");
            assert!(x.bytes.unwrap() > 0);
        }
    }
    assert_eq!(t.len(), 8);
}

#[test]
fn ftp_ipv6_downloads() {
    let t = replay("ftp_ipv6.pcap");
    assert_eq!(t.len(), 2, "{t:#?}");
    for x in &t {
        assert_eq!((x.verb.as_str(), x.direction, x.name.as_deref()), ("RETR", "download", Some("robots.txt")));
        assert_eq!(x.bytes, Some(77), "the 150 reply says 77 bytes");
        assert_eq!(x.path.as_deref(), Some("/robots.txt"), "cwd from 257");
        assert_eq!(x.server, "2001:470:4867:99::21");
    }
    assert_eq!(t[0].data_mode, Some("passive"));
    assert_eq!(t[1].data_mode, Some("active"));
}

#[test]
fn json_lines_have_the_required_fields() {
    for name in ["smb_smb2readwrite.pcap", "smb_smb3.pcap", "ftp_ipv6.pcap"] {
        let mut out = Vec::new();
        let stats = replay_file(&capture(name), &mut out, true).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count() as u64, stats.transfers);
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            for f in ["ts", "proto", "direction", "client", "server", "server_port", "verb"] {
                assert!(v.get(f).is_some(), "{name}: {f} missing in {line}");
            }
            assert!(v["ts"].as_f64().unwrap() > 1e9);
            if v["proto"] == "smb2" {
                assert!(v.get("encrypted").is_some(), "{line}");
                if v["verb"] == "create" {
                    assert!(v.get("disposition").is_some() && v.get("access").is_some() && v.get("name").is_some());
                }
            }
        }
        let mut out = Vec::new();
        replay_file(&capture(name), &mut out, false).unwrap();
        assert_eq!(String::from_utf8(out).unwrap().lines().count() as u64, stats.transfers);
    }
}

#[test]
fn text_line_format() {
    let t = replay("smb_smb2readwrite.pcap");
    let c = by_verb(&t, "create")[0].to_text();
    assert!(c.starts_with("2019-02-08T16:43:06.692"), "{c}");
    assert!(c.contains(" smb2 upload create 169.254.128.18 -> 169.254.128.15:445 name=\"pythonfile2\" disposition=overwrite_if access=0x00120196"), "{c}");
    let f = replay("ftp_ipv6.pcap")[0].to_text();
    assert!(f.contains("-> [2001:470:4867:99::21]:21 name=\"robots.txt\""), "{f}");
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
    assert_eq!(rfc3339(951_782_400_000_001_000), "2000-02-29T00:00:00.000001Z");
}

// ---- the same traffic in other encodings gives the same transfers ----

fn strip_ts(mut t: Vec<Transfer>) -> Vec<Transfer> {
    for x in &mut t {
        x.ts = 0.0;
        x.ts_ns = 0;
    }
    t
}

/// The capture as (ts, linktype, frame) triples.
fn frames(name: &str) -> Vec<(u64, u32, Vec<u8>)> {
    let mut r = CaptureReader::new(Box::new(std::fs::File::open(capture(name)).unwrap())).unwrap();
    let mut v = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        v.push((f.ts_ns, f.linktype, f.data.to_vec()));
    }
    v
}

fn replay_frames(frames: &[(u64, u32, Vec<u8>)]) -> Vec<Transfer> {
    let mut r = Replayer::default();
    for (ts, lt, f) in frames {
        r.frame(*ts, *lt, f);
    }
    r.finish().0
}

fn to_pcapng(frames: &[(u64, u32, Vec<u8>)]) -> Vec<u8> {
    let mut v = Vec::new();
    let le32 = |v: &mut Vec<u8>, x: u32| v.extend_from_slice(&x.to_le_bytes());
    le32(&mut v, 0x0a0d0d0a);
    le32(&mut v, 28);
    le32(&mut v, 0x1a2b3c4d);
    v.extend_from_slice(&[1, 0, 0, 0]);
    v.extend_from_slice(&(-1i64).to_le_bytes());
    le32(&mut v, 28);
    // one IDB (microseconds, the default) per link type used
    let mut lts: Vec<u32> = frames.iter().map(|f| f.1).collect();
    lts.dedup();
    for lt in &lts {
        le32(&mut v, 1);
        le32(&mut v, 20);
        v.extend_from_slice(&(*lt as u16).to_le_bytes());
        v.extend_from_slice(&[0, 0]);
        le32(&mut v, 0);
        le32(&mut v, 20);
    }
    for (ts, lt, f) in frames {
        let iface = lts.iter().position(|x| x == lt).unwrap() as u32;
        let us = ts / 1000;
        let pad = f.len().div_ceil(4) * 4;
        let total = (32 + pad) as u32;
        le32(&mut v, 6);
        le32(&mut v, total);
        le32(&mut v, iface);
        le32(&mut v, (us >> 32) as u32);
        le32(&mut v, us as u32);
        le32(&mut v, f.len() as u32);
        le32(&mut v, f.len() as u32);
        v.extend_from_slice(f);
        v.resize(v.len() + pad - f.len(), 0);
        le32(&mut v, total);
    }
    v
}

#[test]
fn pcapng_and_gzip_give_the_same_transfers() {
    for name in ["smb_smb2readwrite.pcap", "firewall_ruletype-firewall-117-ftp-all-data-ipv6_input.pcap"] {
        let want = replay(name);
        let ng = to_pcapng(&frames(name));
        let (got, _) = replay_reader(Box::new(Cursor::new(ng.clone())), ReplayOptions::default()).unwrap();
        assert_eq!(got, want, "{name} as pcapng");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &ng).unwrap();
        let (got, _) = replay_reader(Box::new(Cursor::new(gz.finish().unwrap())), ReplayOptions::default()).unwrap();
        assert_eq!(got, want, "{name} as pcapng.gz");
        let raw = std::fs::read(capture(name)).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &raw).unwrap();
        let (got, _) = replay_reader(Box::new(Cursor::new(gz.finish().unwrap())), ReplayOptions::default()).unwrap();
        assert_eq!(got, want, "{name} as pcap.gz");
    }
}

/// Rewrites an Ethernet frame's link header.
fn relink(frame: &[u8], lt: u32) -> Vec<u8> {
    let et = [frame[12], frame[13]];
    let ip = &frame[14..];
    let v6 = et == [0x86, 0xdd];
    let mut v = Vec::new();
    match lt {
        linktype::LINUX_SLL => {
            v.extend_from_slice(&[0u8; 14]);
            v.extend_from_slice(&et);
        }
        linktype::LINUX_SLL2 => {
            v.extend_from_slice(&et);
            v.extend_from_slice(&[0u8; 18]);
        }
        linktype::NULL => v.extend_from_slice(&(if v6 { 30u32 } else { 2 }).to_le_bytes()),
        linktype::LOOP => v.extend_from_slice(&(if v6 { 30u32 } else { 2 }).to_be_bytes()),
        linktype::RAW => {}
        linktype::ETHERNET => {
            // add two VLAN tags (802.1ad outer, 802.1Q inner)
            v.extend_from_slice(&frame[..12]);
            v.extend_from_slice(&[0x88, 0xa8, 0, 10, 0x81, 0x00, 0, 20]);
            v.extend_from_slice(&et);
        }
        _ => unreachable!(),
    }
    v.extend_from_slice(ip);
    v
}

#[test]
fn other_link_types_give_the_same_transfers() {
    for name in ["smb2-delete_input.pcap", "ftp_ipv6.pcap"] {
        let f = frames(name);
        let want = replay_frames(&f);
        assert!(!want.is_empty());
        for lt in [linktype::LINUX_SLL, linktype::LINUX_SLL2, linktype::NULL, linktype::LOOP, linktype::RAW, linktype::ETHERNET] {
            let g: Vec<_> = f.iter().map(|(ts, _, d)| (*ts, lt, relink(d, lt))).collect();
            assert_eq!(replay_frames(&g), want, "{name} as link type {lt}");
        }
    }
}

/// Splits every TCP payload into `chunk`-byte segments, sends them last-first, and
/// retransmits the first one: reassembly must give the same transfers. (The first payload
/// of each direction stays in order: a capture that starts mid-connection has no SYN to
/// say where the stream begins, so the first byte seen is taken as the start.)
fn resegment(frames: &[(u64, u32, Vec<u8>)], chunk: usize) -> Vec<(u64, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut started = std::collections::HashSet::new();
    for (ts, lt, f) in frames {
        let Ok(seg) = link::decode(*lt, f) else { continue };
        let (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) = (seg.src.ip(), seg.dst.ip()) else { panic!("IPv4 only") };
        // the segment's SYN/RST as captured; FIN only on the copy that ends the payload
        let mk = |seq: u32, fin: bool, p: &[u8]| {
            let mut b = ipv4_tcp(s.octets(), seg.src.port(), d.octets(), seg.dst.port(), seq);
            if seg.syn {
                b = b.syn();
            }
            if seg.rst {
                b = b.rst();
            }
            if fin {
                b = b.fin();
            }
            build(b, p)
        };
        if seg.payload.is_empty() {
            out.push((*ts, linktype::RAW, mk(seg.seq, seg.fin, &[])));
            continue;
        }
        let pieces: Vec<_> = seg.payload.chunks(chunk).enumerate().collect();
        let in_order = started.insert((seg.src, seg.dst)) && !seg.syn;
        let order: Vec<_> = if in_order { pieces.iter().collect() } else { pieces.iter().rev().collect() };
        for (i, p) in order {
            let seq = seg.seq.wrapping_add((i * chunk) as u32);
            out.push((*ts, linktype::RAW, mk(seq, false, p)));
        }
        out.push((*ts, linktype::RAW, mk(seg.seq, seg.fin, pieces[0].1)));
    }
    out
}

#[test]
fn resegmented_shuffled_retransmitted_tcp_gives_the_same_transfers() {
    for name in ["smb_smb2readwrite.pcap", "smb2-delete_input.pcap", "ftp_ftp-upload-active_input.pcap"] {
        let f = frames(name);
        let want = strip_ts(replay_frames(&f));
        for chunk in [1, 7, 100, 1000] {
            let got = strip_ts(replay_frames(&resegment(&f, chunk)));
            assert_eq!(got, want, "{name} in {chunk}-byte segments");
        }
    }
}

#[test]
fn lost_segment_resynchronizes() {
    // Drop one segment of a request in the middle of the readwrite capture: the replay
    // skips the hole and still finds the later messages.
    let f = frames("smb_smb2readwrite.pcap");
    let mut r = Replayer::default();
    for (i, (ts, lt, d)) in f.iter().enumerate() {
        if i == 2 {
            continue; // frame 3: a compound QUERY_INFO request
        }
        r.frame(*ts, *lt, d);
    }
    let (t, s) = r.finish();
    assert!(by_verb(&t, "write").iter().any(|x| x.bytes == Some(7000)), "{t:#?} {s:?}");
}

/// Replay throughput on the largest public capture, in memory, repeated for about two
/// seconds. Run: `cargo test -p sensor-user --lib --release replay::tests::throughput -- --ignored --nocapture`
#[test]
#[ignore]
fn throughput() {
    let mut largest: Option<(u64, PathBuf)> = None;
    for e in std::fs::read_dir(pcaps()).unwrap() {
        let p = e.unwrap().path();
        let len = p.metadata().unwrap().len();
        if p.extension().is_some_and(|x| x == "pcap") && largest.as_ref().is_none_or(|(l, _)| len > *l) {
            largest = Some((len, p));
        }
    }
    let (len, path) = largest.unwrap();
    let data: &'static [u8] = Box::leak(std::fs::read(&path).unwrap().into_boxed_slice());
    let start = Instant::now();
    let mut runs = 0u64;
    let mut frames = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        let (_, s) = replay_reader(Box::new(Cursor::new(data)), ReplayOptions::default()).unwrap();
        frames += s.frames;
        runs += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "replay throughput: {} ({len} bytes) x {runs} runs in {secs:.2} s = {:.1} MB/s, {:.0} frames/s",
        path.file_name().unwrap().to_string_lossy(),
        (len * runs) as f64 / 1e6 / secs,
        frames as f64 / secs
    );

    // A bulk SMB2 upload: CREATE, then 1,000 WRITEs of 64 KiB in 1,448-byte segments.
    let pcap = synthetic_smb_upload(1000, 64 << 10);
    let data: &'static [u8] = Box::leak(pcap.into_boxed_slice());
    let start = Instant::now();
    let (t, s) = replay_reader(Box::new(Cursor::new(data)), ReplayOptions::default()).unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(by_verb(&t, "write")[0].bytes, Some(1000 * (64 << 10)));
    println!(
        "replay throughput: synthetic SMB2 upload ({} bytes, {} frames) in {secs:.3} s = {:.1} MB/s",
        data.len(),
        s.frames,
        data.len() as f64 / 1e6 / secs
    );
}

/// A pcap (raw IPv4) of one SMB2 CREATE and `writes` WRITE requests of `size` bytes.
fn synthetic_smb_upload(writes: usize, size: usize) -> Vec<u8> {
    use sensor_common::proto::smb2::build;
    let mut stream = build::nbss(&build::create_request(&build::utf16("big.bin"), 0x40000000, 5, 0, 1));
    let mut resp = Vec::new();
    {
        let mut h = build::header(5, smb2::flags::RESPONSE, 0, 1, 7, 0x1122);
        h.extend_from_slice(&89u16.to_le_bytes());
        h.resize(64 + 64, 0);
        h.extend_from_slice(&smb2::FileId { persistent: 9, volatile: 9 }.to_bytes());
        h.resize(64 + 89, 0);
        resp.extend_from_slice(&build::nbss(&h));
    }
    let mut write = build::header(9, 0, 0, 2, 7, 0x1122);
    write.extend_from_slice(&49u16.to_le_bytes());
    write.extend_from_slice(&112u16.to_le_bytes());
    write.extend_from_slice(&(size as u32).to_le_bytes());
    write.extend_from_slice(&0u64.to_le_bytes());
    write.extend_from_slice(&smb2::FileId { persistent: 9, volatile: 9 }.to_bytes());
    write.extend_from_slice(&[0u8; 16]);
    write.resize(112 + size, 0x5a);
    let write = build::nbss(&write);
    let mut file = Vec::new();
    file.extend_from_slice(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    file.extend_from_slice(&(linktype::RAW).to_le_bytes());
    let push = |file: &mut Vec<u8>, pkt: Vec<u8>| {
        file.extend_from_slice(&1_600_000_000u32.to_le_bytes());
        file.extend_from_slice(&0u32.to_le_bytes());
        file.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
        file.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
        file.extend_from_slice(&pkt);
    };
    let (c, sv) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let mut cseq = 1000u32;
    let send = |file: &mut Vec<u8>, bytes: &[u8], cseq: &mut u32| {
        for chunk in bytes.chunks(1448) {
            push(file, build(ipv4_tcp(c, 50000, sv, 445, *cseq), chunk));
            *cseq = cseq.wrapping_add(chunk.len() as u32);
        }
    };
    send(&mut file, &std::mem::take(&mut stream), &mut cseq);
    push(&mut file, build(ipv4_tcp(sv, 445, c, 50000, 1), &resp));
    for _ in 0..writes {
        send(&mut file, &write, &mut cseq);
    }
    file
}

// ---- synthetic sessions for what the public captures do not show ----

/// Feeds `(from_client, bytes)` messages of one TCP connection (client 10.0.0.1:40000,
/// server 10.0.0.2:`port`) to a replayer, each as one segment.
pub(crate) fn synthetic(port: u16, msgs: &[(bool, &[u8])]) -> Vec<Transfer> {
    synthetic_with_stats(port, msgs).0
}

/// `msgs` (client to server or back) on one TCP connection to `port`, replayed.
pub(crate) fn synthetic_with_stats(port: u16, msgs: &[(bool, &[u8])]) -> (Vec<Transfer>, ReplayStats) {
    let (c, s) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let mut r = Replayer::default();
    let (mut cseq, mut sseq) = (100u32, 900u32);
    for (i, (from_client, m)) in msgs.iter().enumerate() {
        let ts = 1_700_000_000_000_000_000 + i as u64 * 1000;
        let f = if *from_client {
            let f = build(ipv4_tcp(c, 40000, s, port, cseq), m);
            cseq = cseq.wrapping_add(m.len() as u32);
            f
        } else {
            let f = build(ipv4_tcp(s, port, c, 40000, sseq), m);
            sseq = sseq.wrapping_add(m.len() as u32);
            f
        };
        r.frame(ts, linktype::RAW, &f);
    }
    r.finish()
}

#[test]
fn ftp_stou_without_argument_spaces_case_lf_cwd_and_failures() {
    let t = synthetic(
        21,
        &[
            (false, b"220 hi\r\n"),
            (true, b"user bob\n"),
            (false, b"230-Welcome\r\n230 ok\r\n"),
            (true, b"cwd /srv/in box\r\n"),
            (false, b"250 ok\r\n"),
            (true, b"stor my report (final).pdf\r\n"),
            (false, b"150 go\r\n"),
            (false, b"226 done\r\n"),
            (true, b"STOU\r\n"),
            (false, b"150 FILE: U0001\r\n226 ok\r\n"),
            (true, b"STOR denied.txt\r\n"),
            (false, b"553 no\r\n"),
            (true, b"CDUP\r\n"),
            (false, b"200 ok\r\n"),
            (true, b"Retr ../etc/passwd\r\n"),
            (false, b"150 go\r\n"),
        ],
    );
    let v: Vec<_> = t.iter().map(|x| (x.verb.as_str(), x.name.as_deref(), x.path.as_deref(), x.status.as_deref())).collect();
    assert_eq!(
        v,
        [
            ("STOR", Some("my report (final).pdf"), Some("/srv/in box/my report (final).pdf"), Some("226")),
            ("STOU", Some("U0001"), Some("/srv/in box/U0001"), Some("226")),
            ("RETR", Some("../etc/passwd"), Some("/etc/passwd"), Some("unanswered")),
        ]
    );
    assert_eq!(t[0].user.as_deref(), Some("bob"));
    assert!(t[1].requested_name.is_none());
}

pub(crate) fn smb_response(cmd: u16, msg_id: u64, status: u32, body: &[u8]) -> Vec<u8> {
    let mut h = smb2::build::header(cmd, smb2::flags::RESPONSE, 0, msg_id, 7, 0x1122);
    h[8..12].copy_from_slice(&status.to_le_bytes());
    h.extend_from_slice(body);
    h
}

pub(crate) fn create_response_body(fid: smb2::FileId) -> Vec<u8> {
    let mut b = 89u16.to_le_bytes().to_vec();
    b.resize(64, 0);
    b.extend_from_slice(&fid.to_bytes());
    b.resize(89, 0);
    b
}

/// Chains PDUs into one compound message (8-byte aligned, NextCommand set).
fn compound(pdus: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in pdus.iter().enumerate() {
        let mut p = p.clone();
        if i + 1 < pdus.len() {
            while !p.len().is_multiple_of(8) {
                p.push(0);
            }
            let n = p.len() as u32;
            p[20..24].copy_from_slice(&n.to_le_bytes());
        }
        out.extend_from_slice(&p);
    }
    out
}

fn related(mut p: Vec<u8>) -> Vec<u8> {
    let f = u32::from_le_bytes(p[16..20].try_into().unwrap()) | smb2::flags::RELATED_OPERATIONS;
    p[16..20].copy_from_slice(&f.to_le_bytes());
    p
}

fn close_request(msg_id: u64, fid: smb2::FileId) -> Vec<u8> {
    let mut c = smb2::build::header(6, 0, 0, msg_id, 7, 0x1122);
    c.extend_from_slice(&24u16.to_le_bytes());
    c.extend_from_slice(&[0u8; 6]);
    c.extend_from_slice(&fid.to_bytes());
    c
}

#[test]
fn smb_compound_create_write_close_and_failed_create() {
    use smb2::build::{create_request, nbss, utf16};
    let fid = smb2::FileId { persistent: 5, volatile: 6 };
    let name = "dir\\😀 ü.exe";
    let req = compound(&[
        create_request(&utf16(name), smb2::access::GENERIC_WRITE, smb2::disposition::CREATE, 0, 10),
        related(smb2::build::write_request(11, smb2::FileId::RELATED, b"MZ\x90\x00")),
        related(close_request(12, smb2::FileId::RELATED)),
    ]);
    let resp = compound(&[
        smb_response(5, 10, 0, &create_response_body(fid)),
        smb_response(9, 11, 0, &[17, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        smb_response(6, 12, 0, &[60, 0]),
    ]);
    // a CREATE that fails (STATUS_ACCESS_DENIED) is not an upload
    let denied = create_request(&utf16("denied.txt"), 0, smb2::disposition::OVERWRITE_IF, 0, 13);
    let denied_resp = smb_response(5, 13, 0xc000_0022, &[9, 0, 0, 0, 0, 0, 0, 0, 0]);
    // a NextCommand loop: bounded, counted, harmless
    let mut looping = smb2::build::header(13, 0, 64, 14, 7, 0x1122);
    looping.extend(std::iter::repeat_n(looping.clone(), 30).flatten().collect::<Vec<u8>>());
    let msgs: Vec<(bool, Vec<u8>)> =
        vec![(true, nbss(&req)), (false, nbss(&resp)), (true, nbss(&denied)), (false, nbss(&denied_resp)), (true, nbss(&looping))];
    let msgs: Vec<(bool, &[u8])> = msgs.iter().map(|(d, m)| (*d, &m[..])).collect();
    let t = synthetic(445, &msgs);
    let v: Vec<_> = t.iter().map(|x| (x.verb.as_str(), x.name.as_deref(), x.bytes)).collect();
    assert_eq!(v, [("create", Some(name), None), ("write", Some(name), Some(4))]);
    assert_eq!(t[0].disposition, Some("create"));
    assert_eq!(t[0].access.as_deref(), Some("0x40000000"));
    assert_eq!(t[1].file_id, t[0].file_id);
}
