//! `NetEvent` records from the TC programs, decoded. Names are converted from UTF-16LE
//! (SMB2) with the shared parser; FTP lines are kept raw for `attribution` to parse.
use std::net::{IpAddr, Ipv6Addr};

use sensor_common::{
    event::{
        EventHeader, EventKind, NET_DIR_EGRESS, NET_PROTO_FTP, NET_PROTO_SMB2, NF_BLOCKED, NF_IPV6,
        NF_NAME_TRUNCATED, NF_PARTIAL, NF_WRITE_INTENT, NetEvent, net_verb,
    },
    graph::Protocol,
    proto::utf16,
};
use serde::Serialize;

use crate::host::procfs::WallClock;

/// Longest SMB2 name kept (UTF-8 bytes); the kernel copies fewer UTF-16 bytes than this holds.
const NAME_MAX: usize = 1024;

/// Is this ring-buffer record a `NetEvent`? Its header says so.
pub fn is_net(bytes: &[u8]) -> bool {
    crate::decode::events::read_record::<EventHeader>(bytes).is_some_and(|h| h.kind() == Some(EventKind::NetFile))
}

pub fn parse(bytes: &[u8]) -> Option<NetEvent> {
    if !is_net(bytes) {
        return None;
    }
    crate::decode::events::read_record::<NetEvent>(bytes)
}

#[derive(Clone, Debug, Serialize)]
pub struct NetFileEvent {
    pub ts_ns: u64,
    /// Always `net_file` (so that `events --follow` lines say what they are).
    pub kind: EventKind,
    pub direction: NetDirection,
    /// None for a protocol code this build does not know.
    pub proto: Option<Protocol>,
    pub verb: NetVerb,
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    /// SMB2: the name (UTF-8 from UTF-16LE). FTP: empty (the line is in `line`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip)]
    pub line: Vec<u8>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub name_truncated: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub blocked: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub write_intent: bool,
    #[serde(skip_serializing_if = "is_zero")]
    pub session_id: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub message_id: u64,
    #[serde(skip_serializing_if = "is_zero32")]
    pub tree_id: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    #[serde(skip)]
    pub file_id_raw: [u8; 16],
    #[serde(skip_serializing_if = "is_zero32")]
    pub access: u32,
    #[serde(skip_serializing_if = "is_zero32")]
    pub disposition: u32,
    #[serde(skip_serializing_if = "is_zero32")]
    pub length: u32,
    #[serde(skip_serializing_if = "is_zero")]
    pub offset: u64,
    /// TCP sequence number of the segment's first payload byte (FTP stream reassembly).
    #[serde(skip)]
    pub tcp_seq: u32,
    /// Bytes of the segment past what the kernel copied (`line` / `name`).
    #[serde(skip)]
    pub missing: u32,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}
fn is_zero32(v: &u32) -> bool {
    *v == 0
}

fn addr(bytes: [u8; 16]) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(bytes)).to_canonical()
}

/// Which way the packet went through the classifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetDirection {
    Ingress,
    Egress,
}

/// What the TC program saw (`net_verb` codes in the record).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NetVerb {
    Create,
    CreateResponse,
    Write,
    Read,
    /// An SMB3 transform header: the session is encrypted.
    Encrypted,
    /// The rest of a PDU cut in the previous record (`reassembly` joins them).
    Continuation,
    TreeConnect,
    TreeConnectResponse,
    /// An FTP control segment from the client, raw.
    Command,
    /// An FTP control segment from the server, raw.
    Reply,
    /// A code this build does not know.
    Unknown,
}

impl NetVerb {
    pub fn of_code(code: u8) -> Self {
        match code {
            net_verb::SMB_CREATE => NetVerb::Create,
            net_verb::SMB_CREATE_RESPONSE => NetVerb::CreateResponse,
            net_verb::SMB_WRITE => NetVerb::Write,
            net_verb::SMB_READ => NetVerb::Read,
            net_verb::SMB_ENCRYPTED => NetVerb::Encrypted,
            net_verb::SMB_CONTINUATION => NetVerb::Continuation,
            net_verb::SMB_TREE_CONNECT => NetVerb::TreeConnect,
            net_verb::SMB_TREE_CONNECT_RESPONSE => NetVerb::TreeConnectResponse,
            net_verb::FTP_COMMAND => NetVerb::Command,
            net_verb::FTP_REPLY => NetVerb::Reply,
            _ => NetVerb::Unknown,
        }
    }
}

pub fn decode(ev: &NetEvent, clock: &WallClock) -> NetFileEvent {
    let raw = ev.payload.name_bytes();
    let (name, line) = if ev.payload.proto == NET_PROTO_SMB2 {
        (utf16::to_string(raw, NAME_MAX).0, Vec::new())
    } else {
        (String::new(), raw.to_vec())
    };
    let _ = NF_IPV6;
    NetFileEvent {
        ts_ns: clock.wall_ns(ev.header.ts_boot_ns),
        kind: EventKind::NetFile,
        direction: if ev.payload.direction == NET_DIR_EGRESS { NetDirection::Egress } else { NetDirection::Ingress },
        proto: match ev.payload.proto {
            NET_PROTO_SMB2 => Some(Protocol::Smb2),
            NET_PROTO_FTP => Some(Protocol::Ftp),
            _ => None,
        },
        verb: NetVerb::of_code(ev.payload.verb),
        src: addr(ev.payload.saddr),
        sport: ev.payload.sport,
        dst: addr(ev.payload.daddr),
        dport: ev.payload.dport,
        name,
        line,
        name_truncated: ev.header.flags & NF_NAME_TRUNCATED != 0,
        partial: ev.header.flags & NF_PARTIAL != 0,
        blocked: ev.header.flags & NF_BLOCKED != 0,
        write_intent: ev.header.flags & NF_WRITE_INTENT != 0,
        session_id: ev.payload.session_id,
        message_id: ev.payload.message_id,
        tree_id: ev.payload.tree_id,
        file_id: (ev.payload.file_id != [0; 16]).then(|| ev.payload.file_id.iter().map(|b| format!("{b:02x}")).collect()),
        file_id_raw: ev.payload.file_id,
        access: ev.payload.access,
        disposition: ev.payload.disposition,
        length: ev.payload.length,
        offset: ev.payload.offset,
        tcp_seq: ev.payload.tcp_seq,
        missing: ev.payload.missing,
    }
}
